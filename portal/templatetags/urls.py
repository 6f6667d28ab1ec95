"""{% quick_url %}: {% url %} for the links every page repeats, without a reverse() per link.

The repository header and tabs link to eight pages of the repository, and reversing each of those names (the
URLconf's tables, converters, quoting) was the biggest share of rendering the header. A name is reversed once per
process with stand-in arguments, and each link is that template with the arguments put in, quoted as reverse()
quotes them. A name whose arguments a converter would not take as stand-ins is reversed every time.
"""

import re
import threading
from collections.abc import Iterable
from urllib.parse import quote

from django import template
from django.template.library import SimpleNode
from django.urls import NoReverseMatch, get_script_prefix, reverse

register = template.Library()

# What reverse() leaves unquoted in an argument (django.urls.resolvers: RFC 3986's sub-delimiters and "/~:@").
_SAFE = "!$&'()*+,;=/~:@"
_MARK = "quickurlarg{}x"
_MARKS = re.compile(r"quickurlarg(\d+)x")
_templates: dict[tuple[str, str, int], str | None] = {}
_lock = threading.Lock()


@register.simple_tag
def quick_url(name: str, *args) -> str:
    """The URL of a named route with these positional arguments, or "" when it has none (as `{% url ... as var %}`
    gives: a link to an app that is not installed is left out)."""
    pattern = _template(name, len(args))
    if pattern is None:
        return _reverse_or_nothing(name, args)
    # In one pass, so that an argument that reads like a mark is left as it is.
    return _MARKS.sub(lambda match: quote(str(args[int(match.group(1))]), safe=_SAFE), pattern)


def _template(name: str, count: int) -> str | None:
    key = (get_script_prefix(), name, count)
    pattern = _templates.get(key, "")
    if pattern == "":
        pattern = _compile(name, count)
        with _lock:
            _templates[key] = pattern
    return pattern


def warm_up(templates: Iterable[template.Template]) -> None:
    """Make the URL templates of every {% quick_url %} in these compiled templates that names its route plainly
    (a web process's start, portal.warmup), rather than on the first page each appears on."""
    for compiled in templates:
        for node in compiled.nodelist.get_nodes_by_type(SimpleNode):
            if node.func is not quick_url or not node.args:
                continue
            name = node.args[0]
            if not name.filters and isinstance(name.var, str):
                _template(name.var, len(node.args) - 1)


def _compile(name: str, count: int) -> str | None:
    """The route's URL with a mark for each argument, or None when it cannot be made so."""
    marks = [_MARK.format(index) for index in range(count)]
    try:
        url = reverse(name, args=marks)
    except NoReverseMatch:
        return None
    # Each mark must come back once and whole, or putting the arguments in would not give reverse()'s answer.
    return url if all(url.count(mark) == 1 for mark in marks) else None


def _reverse_or_nothing(name: str, args: tuple) -> str:
    try:
        return reverse(name, args=args)
    except NoReverseMatch:
        return ""
