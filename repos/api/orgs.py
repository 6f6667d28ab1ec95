"""Organizations and their teams in Gitea's shapes. A team's permission is what it holds on the organization's
repositories, which repos knows: so these live here rather than with the accounts."""

from django.db.models import Max
from django.http import HttpRequest, HttpResponse
from ninja import Query, Schema, Status

from portal import services as accounts
from portal.access import get_org_for_member
from portal.api import (
    InputSchema,
    OrganizationOut,
    current_user,
    gitea_unsupported,
    organization_out,
)
from portal.api_pages import PageParams, paginate
from portal.api_scopes import READ_ORG, WRITE_ORG
from portal.models import Team
from repos.api.repositories import GITEA_ACCESS
from repos.api.router import router
from repos.models import TeamRepository

# Teams: Gitea's Team.

# The units of Gitea a portal repository has: its code, its pull requests and its builds (actions).
UNITS = ("repo.code", "repo.pulls", "repo.actions")
ABSENT_UNITS = ("repo.issues", "repo.ext_issues", "repo.wiki", "repo.ext_wiki", "repo.releases", "repo.projects")


class TeamOut(Schema):
    id: int
    name: str
    description: str
    organization: OrganizationOut | None
    includes_all_repositories: bool
    permission: str
    units: list[str]
    units_map: dict[str, str]
    can_create_org_repo: bool


def team_out(team: Team, best_role: int | None) -> dict:
    """A team as Gitea shows it: the owners team owns every repository; another team's permission is the highest
    role it was given on a repository (none before it is given one)."""
    permission = "owner" if team.is_owners else GITEA_ACCESS.get(best_role or 0, "none")
    unit_level = "admin" if team.is_owners else permission
    return {
        "id": team.pk,
        "name": team.name,
        "description": team.description,
        "organization": organization_out(team.organization),
        "includes_all_repositories": team.is_owners,
        "permission": permission,
        "units": list(UNITS),
        "units_map": {unit: unit_level for unit in UNITS} | {unit: "none" for unit in ABSENT_UNITS},
        "can_create_org_repo": team.is_owners,
    }


class TeamCreateIn(InputSchema):
    """Gitea's CreateTeamOption: a team starts with no repository; grant it some on each repository's settings."""

    name: str
    description: str = ""
    permission: gitea_unsupported(str, "a team's role is given per repository", "none") = None
    includes_all_repositories: gitea_unsupported(bool, "only the owners team holds every repository") = None
    can_create_org_repo: gitea_unsupported(bool, "only the owners team creates repositories") = None
    units: gitea_unsupported(list[str], "a team's role covers a repository's code, pull requests and builds") = None
    units_map: gitea_unsupported(dict, "a team's role covers a repository's code, pull requests and builds") = None


def _best_roles(teams: list[Team]) -> dict[int, int]:
    grants = TeamRepository.objects.filter(team__in=teams).values("team").annotate(best=Max("role"))
    return {grant["team"]: grant["best"] for grant in grants}


@router.get(
    "/orgs/{org}/teams",
    scope=READ_ORG,
    response=list[TeamOut],
    tags=["organization"],
    summary="List an organization's teams (its members only)",
)
def list_teams(request: HttpRequest, response: HttpResponse, org: str, pages: Query[PageParams]):
    organization = get_org_for_member(current_user(request), org)
    teams = paginate(Team.objects.filter(organization=organization).select_related("organization"), response, pages)
    best = _best_roles(teams)
    return [team_out(team, best.get(team.pk)) for team in teams]


@router.post(
    "/orgs/{org}/teams",
    scope=WRITE_ORG,
    response={201: TeamOut},
    tags=["organization"],
    summary="Create a team (the organization's owners only)",
)
def create_team(request: HttpRequest, org: str, payload: TeamCreateIn):
    actor = current_user(request)
    organization = get_org_for_member(actor, org, admin=True)
    team = accounts.create_team(organization, actor=actor, name=payload.name, description=payload.description)
    return Status(201, team_out(team, None))
