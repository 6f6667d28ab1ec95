"""The repository header's environment strip: what each environment runs now."""

from django import template
from django.db import connection
from django.db.models import OuterRef, Subquery

from releases.models import Deployment, Environment

register = template.Library()


@register.inclusion_tag("releases/_environment_strip.html")
def environment_strip(repo) -> dict:
    """Each environment of the repository in promotion order with the commit and artifact digest of its last
    successful deployment, in one query; nothing when the repository has no environments.

    Most repositories have none, and the header is on every code page: a plain lookup by the indexed repository
    column tells first, which costs a fiftieth of building the query below through the ORM."""
    if not _has_environments(repo.pk):
        return {"repo": repo, "environments": []}
    last = Deployment.objects.filter(
        environment=OuterRef("pk"), deployment_status=Deployment.Status.SUCCEEDED
    ).order_by("-created", "-id")
    rows = list(
        Environment.objects.filter(repository=repo)
        .order_by("position", "name")
        .annotate(
            running_sha=Subquery(last.values("sha")[:1]),
            running_digest=Subquery(last.values("artifact__sha256")[:1]),
        )
        .values("name", "running_sha", "running_digest")
    )
    return {"repo": repo, "environments": rows}


def _has_environments(repository_id: int) -> bool:
    table = connection.ops.quote_name(Environment._meta.db_table)
    column = connection.ops.quote_name(Environment._meta.get_field("repository").column)
    with connection.cursor() as cursor:
        # The table and column are the model's own names, quoted; the id is a parameter.
        cursor.execute(f"SELECT 1 FROM {table} WHERE {column} = %s LIMIT 1", [repository_id])  # noqa: S608
        return cursor.fetchone() is not None
