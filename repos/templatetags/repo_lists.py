"""Repository lists for pages of other apps: the portal's home and team pages show what their viewer may read,
which repos decides, without the portal importing repos."""

from django import template
from django.db.models import QuerySet

from portal.models import Team, User
from repos.access import visible_repositories
from repos.models import Repository, TeamRepository

register = template.Library()


@register.simple_tag
def recent_repositories(user: User | None, limit: int = 50) -> QuerySet[Repository]:
    """The repositories the user can read, most recently updated first."""
    return visible_repositories(user).order_by("-updated")[:limit]


@register.simple_tag
def visible_team_grants(team: Team, user: User | None) -> QuerySet[TeamRepository]:
    """A team's grants on the repositories the viewer can read, so that no other repository's name leaks."""
    visible = visible_repositories(user).values("pk")
    return team.repository_grants.filter(repository__in=visible).select_related("repository__owner")
