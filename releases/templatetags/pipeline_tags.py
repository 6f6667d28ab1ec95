"""The repository header's environment strip: what each environment runs now."""

import threading

from django import template
from django.db import connections, router
from django.db.models import OuterRef, QuerySet, Subquery
from django.template.loader import render_to_string

from releases.models import Deployment, Environment

register = template.Library()


@register.simple_tag
def environment_strip(repo) -> str:
    """Each environment of the repository in promotion order with the commit and artifact digest of its last
    successful deployment, in one query; nothing (and no template) when the repository has no environments."""
    environments = _strip_rows(repo.pk)
    if not environments:
        return ""
    return render_to_string("releases/_environment_strip.html", {"repo": repo, "environments": environments})


def _strip_query(repository_id: int) -> QuerySet:
    last = Deployment.objects.filter(
        environment=OuterRef("pk"), deployment_status=Deployment.Status.SUCCEEDED
    ).order_by("-created", "-id")
    return (
        Environment.objects.filter(repository_id=repository_id)
        .order_by("position", "name")
        .annotate(
            running_sha=Subquery(last.values("sha")[:1]),
            running_digest=Subquery(last.values("artifact__sha256")[:1]),
        )
        .values("name", "running_sha", "running_digest")
    )


# The header is on every code page, and building the query above through the ORM took fifteen times what the
# database takes to answer it (most repositories have no environments at all): its SQL is compiled once per
# database, with a stand-in for the repository's id, and run with the real one.
_MARK_ID = -7_300_117
_compiled: dict[str, tuple[str, list, int, list[str]] | None] = {}
_lock = threading.Lock()


def warm_up() -> None:
    """Compile the strip's query (at a web process's start), by asking for the environments of no repository."""
    _strip_rows(0)


def _strip_rows(repository_id: int) -> list[dict]:
    alias = router.db_for_read(Environment)
    connection = connections[alias]
    key = f"{alias}:{connection.vendor}"
    if key not in _compiled:
        with _lock:
            _compiled[key] = _compile(alias)
    compiled = _compiled[key]
    if compiled is None:
        return list(_strip_query(repository_id))
    sql, params, at, names = compiled
    params = list(params)
    params[at] = repository_id
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _compile(alias: str) -> tuple[str, list, int, list[str]] | None:
    query = _strip_query(_MARK_ID).using(alias).query
    sql, params = query.get_compiler(alias).as_sql()
    params = list(params)
    if params.count(_MARK_ID) != 1:
        return None
    # The columns' names as values() gives them (django.db.models.query.ValuesIterable).
    names = [*query.extra_select, *query.values_select, *query.annotation_select]
    return sql, params, params.index(_MARK_ID), names
