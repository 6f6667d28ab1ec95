import json

from django import template

register = template.Library()


def _show(value) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


@register.filter
def changes(event) -> list[tuple[str, str | None, str | None]]:
    """An audit event's before/after as (field, before, after) rows, fields in a stable order."""
    before, after = event.before or {}, event.after or {}
    fields = list(dict.fromkeys([*before, *after]))
    return [
        (field, _show(before[field]) if field in before else None, _show(after[field]) if field in after else None)
        for field in fields
    ]
