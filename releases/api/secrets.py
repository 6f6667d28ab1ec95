"""Build secrets and variables of a repository or an organization, in Gitea's shapes (its /actions/ endpoints).

Only a repository's admins (an organization's owners) see or change them. A secret's value goes in and never comes
out: a list names the secrets and when they were made, nothing else."""

from datetime import datetime

from django.http import Http404, HttpRequest, HttpResponse
from ninja import Query, Schema, Status
from ninja.errors import HttpError

from portal.api import InputSchema, current_user, principal
from portal.api_pages import PageParams, paginate
from portal.api_scopes import READ_ORG, READ_REPO, WRITE_ORG, WRITE_REPO
from releases import variables
from releases.api.router import router
from releases.models import BuildVariable
from repos.access import get_org_for_member, get_repo_for_principal
from repos.models import Role


class SecretIn(InputSchema):
    """Gitea's CreateOrUpdateSecretOption."""

    data: str


class VariableCreateIn(InputSchema):
    """Gitea's CreateVariableOption."""

    value: str


class VariableUpdateIn(InputSchema):
    """Gitea's UpdateVariableOption: a new value, and a new name when given."""

    value: str
    name: str | None = None


class SecretOut(Schema):
    name: str
    created_at: datetime


class VariableOut(Schema):
    owner_id: int
    repo_id: int
    name: str
    data: str


def _secret_out(row: BuildVariable) -> dict:
    return {"name": row.name, "created_at": row.created}


def _variable_out(row: BuildVariable) -> dict:
    # As Gitea: a repository's variable has owner_id 0, an organization's repo_id 0.
    return {
        "owner_id": row.organization_id or 0,
        "repo_id": row.repository_id or 0,
        "name": row.name,
        "data": row.value,
    }


def _repo(request: HttpRequest, owner: str, repo: str) -> dict:
    return {"repository": get_repo_for_principal(principal(request), owner, repo, Role.ADMIN)}


def _org(request: HttpRequest, org: str) -> dict:
    return {"organization": get_org_for_member(current_user(request), org, admin=True)}


def _found(place: dict, name: str, *, secret: bool) -> BuildVariable:
    row = variables.find_variable(name, secret=secret, **place)
    if row is None:
        raise Http404("Secret not found" if secret else "Variable not found")
    return row


# The operations, once for both places.


def _list_secrets(place: dict, response: HttpResponse, pages: PageParams) -> list[dict]:
    return [_secret_out(row) for row in paginate(variables.variables_of(secret=True, **place), response, pages)]


def _put_secret(request: HttpRequest, place: dict, secretname: str, payload: SecretIn) -> Status:
    _row, created = variables.set_build_variable(
        actor=current_user(request),
        name=secretname,
        value=payload.data,
        secret=True,
        name_field="secretname",
        value_field="data",
        **place,
    )
    return Status(201 if created else 204, None)


def _delete(request: HttpRequest, place: dict, name: str, *, secret: bool) -> Status:
    variables.delete_build_variable(_found(place, name, secret=secret), actor=current_user(request))
    return Status(204, None)


def _list_variables(place: dict, response: HttpResponse, pages: PageParams) -> list[dict]:
    return [_variable_out(row) for row in paginate(variables.variables_of(secret=False, **place), response, pages)]


def _create_variable(request: HttpRequest, place: dict, variablename: str, payload: VariableCreateIn) -> Status:
    if variables.find_variable(variablename, secret=False, **place) is not None:
        raise HttpError(409, f"There is already a variable named {variablename}.")
    variables.set_build_variable(
        actor=current_user(request),
        name=variablename,
        value=payload.value,
        secret=False,
        name_field="variablename",
        **place,
    )
    return Status(201, None)


def _update_variable(request: HttpRequest, place: dict, variablename: str, payload: VariableUpdateIn) -> Status:
    row = _found(place, variablename, secret=False)
    variables.set_build_variable(
        actor=current_user(request),
        name=row.name,
        value=payload.value,
        secret=False,
        new_name=payload.name,
        **place,
    )
    return Status(204, None)


RS = "/repos/{owner}/{repo}/actions/secrets"
RV = "/repos/{owner}/{repo}/actions/variables"
OS = "/orgs/{org}/actions/secrets"
OV = "/orgs/{org}/actions/variables"
TAGS = ["builds"]


@router.get(RS, scope=READ_REPO, response=list[SecretOut], tags=TAGS, summary="List a repository's build secrets")
def list_repo_secrets(request: HttpRequest, response: HttpResponse, owner: str, repo: str, pages: Query[PageParams]):
    return _list_secrets(_repo(request, owner, repo), response, pages)


@router.put(
    RS + "/{secretname}",
    scope=WRITE_REPO,
    response={201: None, 204: None},
    tags=TAGS,
    summary="Create or update a repository's build secret",
    description="201 when created, 204 when replaced. The value is never returned.",
)
def put_repo_secret(request: HttpRequest, owner: str, repo: str, secretname: str, payload: SecretIn):
    return _put_secret(request, _repo(request, owner, repo), secretname, payload)


@router.delete(
    RS + "/{secretname}",
    scope=WRITE_REPO,
    response={204: None},
    tags=TAGS,
    summary="Delete a repository's build secret",
)
def delete_repo_secret(request: HttpRequest, owner: str, repo: str, secretname: str):
    return _delete(request, _repo(request, owner, repo), secretname, secret=True)


@router.get(RV, scope=READ_REPO, response=list[VariableOut], tags=TAGS, summary="List a repository's build variables")
def list_repo_variables(request: HttpRequest, response: HttpResponse, owner: str, repo: str, pages: Query[PageParams]):
    return _list_variables(_repo(request, owner, repo), response, pages)


@router.post(
    RV + "/{variablename}",
    scope=WRITE_REPO,
    response={201: None},
    tags=TAGS,
    summary="Create a repository's build variable",
    description="409 when the repository has a variable of that name (whatever its case).",
)
def create_repo_variable(request: HttpRequest, owner: str, repo: str, variablename: str, payload: VariableCreateIn):
    return _create_variable(request, _repo(request, owner, repo), variablename, payload)


@router.get(RV + "/{variablename}", scope=READ_REPO, response=VariableOut, tags=TAGS, summary="Get a build variable")
def get_repo_variable(request: HttpRequest, owner: str, repo: str, variablename: str):
    return _variable_out(_found(_repo(request, owner, repo), variablename, secret=False))


@router.put(
    RV + "/{variablename}",
    scope=WRITE_REPO,
    response={204: None},
    tags=TAGS,
    summary="Update a repository's build variable",
    description="A new value, and a new name when `name` is given.",
)
def update_repo_variable(request: HttpRequest, owner: str, repo: str, variablename: str, payload: VariableUpdateIn):
    return _update_variable(request, _repo(request, owner, repo), variablename, payload)


@router.delete(
    RV + "/{variablename}",
    scope=WRITE_REPO,
    response={204: None},
    tags=TAGS,
    summary="Delete a repository's build variable",
)
def delete_repo_variable(request: HttpRequest, owner: str, repo: str, variablename: str):
    return _delete(request, _repo(request, owner, repo), variablename, secret=False)


@router.get(OS, scope=READ_ORG, response=list[SecretOut], tags=TAGS, summary="List an organization's build secrets")
def list_org_secrets(request: HttpRequest, response: HttpResponse, org: str, pages: Query[PageParams]):
    return _list_secrets(_org(request, org), response, pages)


@router.put(
    OS + "/{secretname}",
    scope=WRITE_ORG,
    response={201: None, 204: None},
    tags=TAGS,
    summary="Create or update an organization's build secret",
    description="201 when created, 204 when replaced. The value is never returned.",
)
def put_org_secret(request: HttpRequest, org: str, secretname: str, payload: SecretIn):
    return _put_secret(request, _org(request, org), secretname, payload)


@router.delete(
    OS + "/{secretname}", scope=WRITE_ORG, response={204: None}, tags=TAGS, summary="Delete an organization's secret"
)
def delete_org_secret(request: HttpRequest, org: str, secretname: str):
    return _delete(request, _org(request, org), secretname, secret=True)


@router.get(OV, scope=READ_ORG, response=list[VariableOut], tags=TAGS, summary="List an organization's variables")
def list_org_variables(request: HttpRequest, response: HttpResponse, org: str, pages: Query[PageParams]):
    return _list_variables(_org(request, org), response, pages)


@router.post(
    OV + "/{variablename}",
    scope=WRITE_ORG,
    response={201: None},
    tags=TAGS,
    summary="Create an organization's build variable",
    description="409 when the organization has a variable of that name (whatever its case).",
)
def create_org_variable(request: HttpRequest, org: str, variablename: str, payload: VariableCreateIn):
    return _create_variable(request, _org(request, org), variablename, payload)


@router.get(
    OV + "/{variablename}", scope=READ_ORG, response=VariableOut, tags=TAGS, summary="Get an organization's variable"
)
def get_org_variable(request: HttpRequest, org: str, variablename: str):
    return _variable_out(_found(_org(request, org), variablename, secret=False))


@router.put(
    OV + "/{variablename}",
    scope=WRITE_ORG,
    response={204: None},
    tags=TAGS,
    summary="Update an organization's build variable",
    description="A new value, and a new name when `name` is given.",
)
def update_org_variable(request: HttpRequest, org: str, variablename: str, payload: VariableUpdateIn):
    return _update_variable(request, _org(request, org), variablename, payload)


@router.delete(
    OV + "/{variablename}",
    scope=WRITE_ORG,
    response={204: None},
    tags=TAGS,
    summary="Delete an organization's build variable",
)
def delete_org_variable(request: HttpRequest, org: str, variablename: str):
    return _delete(request, _org(request, org), variablename, secret=False)
