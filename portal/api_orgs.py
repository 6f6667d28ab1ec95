"""Organizations in the REST API, in Gitea's shapes: creating and reading them, and who belongs to which.

Organizations are public; who belongs to one is for its members to see. Their teams are in repos/api/orgs.py, since
a team's permission is what it holds on repositories."""

from django.http import HttpRequest, HttpResponse
from ninja import Query, Status

from portal import services
from portal.access import get_org_for_user, is_site_admin
from portal.api import (
    OrganizationCreateIn,
    OrganizationOut,
    _person,
    current_user,
    organization_out,
    require_admin,
)
from portal.api_pages import PageParams, paginate
from portal.api_scopes import ADMIN, READ_ORG, WRITE_ORG, ScopedRouter
from portal.models import User

router = ScopedRouter(tags=["organization"])


@router.post(
    "/orgs", scope=WRITE_ORG, response={201: OrganizationOut}, tags=["organization"], summary="Create an organization"
)
def create_organization(request: HttpRequest, payload: OrganizationCreateIn):
    org = services.create_organization(
        actor=current_user(request),
        name=payload.username,
        full_name=payload.full_name,
        description=payload.description,
    )
    return Status(201, organization_out(org))


def _orgs_of(user: User):
    return User.objects.organizations().filter(is_active=True, teams__members=user).distinct().order_by("username")


@router.get(
    "/orgs", scope=READ_ORG, response=list[OrganizationOut], tags=["organization"], summary="List organizations"
)
def list_organizations(request: HttpRequest, response: HttpResponse, pages: Query[PageParams]):
    orgs = User.objects.organizations().filter(is_active=True).order_by("username")
    return [organization_out(org) for org in paginate(orgs, response, pages)]


@router.get(
    "/admin/orgs", scope=ADMIN, response=list[OrganizationOut], tags=["admin"], summary="List every organization"
)
def admin_list_organizations(request: HttpRequest, response: HttpResponse, pages: Query[PageParams]):
    require_admin(request)
    orgs = User.objects.organizations().order_by("username")
    return [organization_out(org) for org in paginate(orgs, response, pages)]


@router.get(
    "/user/orgs",
    scope=READ_ORG,
    response=list[OrganizationOut],
    tags=["organization"],
    summary="List the organizations you belong to",
)
def list_own_organizations(request: HttpRequest, response: HttpResponse, pages: Query[PageParams]):
    return [organization_out(org) for org in paginate(_orgs_of(current_user(request)), response, pages)]


@router.get(
    "/users/{username}/orgs",
    scope=READ_ORG,
    response=list[OrganizationOut],
    tags=["organization"],
    summary="List the organizations a user belongs to that you belong to too",
    description="Who belongs to an organization is for its members to see: yours, anyone's for site admins.",
)
def list_user_organizations(request: HttpRequest, response: HttpResponse, username: str, pages: Query[PageParams]):
    viewer = current_user(request)
    orgs = _orgs_of(_person(username))
    if not is_site_admin(viewer) and viewer.username.lower() != username.lower():
        orgs = orgs.filter(pk__in=_orgs_of(viewer).values("pk"))
    return [organization_out(org) for org in paginate(orgs, response, pages)]


@router.get(
    "/orgs/{org}", scope=READ_ORG, response=OrganizationOut, tags=["organization"], summary="Get an organization"
)
def get_organization(request: HttpRequest, org: str):
    return organization_out(get_org_for_user(current_user(request), org))


@router.post(
    "/admin/users/{username}/orgs",
    scope=ADMIN,
    response={201: OrganizationOut},
    tags=["admin"],
    summary="Create an organization owned by a user",
    description="The user is the only member of its owners team.",
)
def admin_create_organization(request: HttpRequest, username: str, payload: OrganizationCreateIn):
    admin = require_admin(request)
    org = services.create_organization(
        actor=admin,
        owner=_person(username),
        name=payload.username,
        full_name=payload.full_name,
        description=payload.description,
    )
    return Status(201, organization_out(org))
