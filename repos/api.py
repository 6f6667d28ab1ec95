"""Repository endpoints of the REST API, in Gitea's shapes; every one asks repos.access first."""

from datetime import datetime
from typing import Literal

from django.http import Http404, HttpRequest, HttpResponse
from ninja import Query, Schema, Status

from portal.api import (
    InputSchema,
    KeyIn,
    UserOut,
    api_url,
    current_user,
    gitea_unsupported,
    key_out,
    principal,
    user_out,
)
from portal.api_pages import PageParams, paginate
from portal.api_scopes import READ_REPO, WRITE_REPO, ScopedRouter
from portal.models import SshKey, User
from repos import git
from repos import services as repo_services
from repos.access import get_org_for_user, get_repo_for_principal, member_repositories, role_for_principal
from repos.models import Collaborator, Repository, Role, Visibility

router = ScopedRouter(tags=["repository"])

Permission = Literal["read", "write", "maintain", "admin"]
VisibilityName = Literal["private", "internal", "public"]


class RepoPermissions(Schema):
    admin: bool
    push: bool
    pull: bool


class RepositoryOut(Schema):
    id: int
    owner: UserOut
    name: str
    full_name: str
    description: str
    private: bool
    internal: bool
    visibility: str
    default_branch: str
    empty: bool
    url: str
    clone_url: str
    ssh_url: str
    html_url: str
    created_at: datetime
    updated_at: datetime
    pushed_at: datetime | None
    permissions: RepoPermissions


class RepositoryCreateIn(InputSchema):
    name: str
    description: str = ""
    private: bool | None = None
    visibility: VisibilityName | None = None
    auto_init: bool = False
    default_branch: str = "main"
    # Sent by Gitea's clients; accepted only when they ask for nothing the portal lacks.
    issue_labels: gitea_unsupported(str, "there are no labels") = None
    template: gitea_unsupported(bool, "repositories are not templates") = None
    gitignores: gitea_unsupported(str, "auto_init writes a README only") = None
    license: gitea_unsupported(str, "auto_init writes a README only") = None
    readme: gitea_unsupported(str, "auto_init writes the default README", "Default") = None
    trust_model: gitea_unsupported(str, "commit signatures are not verified", "default") = None
    object_format_name: gitea_unsupported(str, "repositories use SHA-1", "sha1") = None


class RepositoryEditIn(InputSchema):
    name: str | None = None
    description: str | None = None
    private: bool | None = None
    visibility: VisibilityName | None = None
    default_branch: str | None = None


class CollaboratorIn(InputSchema):
    permission: Permission = "write"


class CollaboratorOut(UserOut):
    role_name: str
    permissions: RepoPermissions


class DeployKeyIn(KeyIn):
    read_only: bool = True


class DeployKeyOut(Schema):
    id: int
    key_id: int
    key: str
    url: str
    title: str
    fingerprint: str
    key_type: str
    created_at: datetime
    read_only: bool
    last_used_at: datetime | None


class CommitUser(Schema):
    name: str
    email: str


class BranchCommit(Schema):
    id: str
    message: str
    url: str
    author: CommitUser
    committer: CommitUser
    timestamp: datetime


class BranchOut(Schema):
    name: str
    commit: BranchCommit
    user_can_push: bool


def _permissions(role: int) -> dict:
    return {"admin": role >= Role.ADMIN, "push": role >= Role.WRITE, "pull": role >= Role.READ}


def _is_empty(repo: Repository) -> bool:
    try:
        return git.is_empty(repo.path)
    except git.GitError:
        return True


def repository_out(request: HttpRequest, repo: Repository) -> dict:
    """A repository in Gitea's shape, with the caller's permissions on it."""
    return repository_json(repo, current_user(request), role_for_principal(principal(request), repo))


def repository_json(repo: Repository, viewer: User | None, role: int) -> dict:
    """A repository in Gitea's shape as viewer sees it, with the permissions of role."""
    return {
        "id": repo.pk,
        "owner": user_out(repo.owner, viewer),
        "name": repo.name,
        "full_name": repo.full_name,
        "description": repo.description,
        "private": repo.visibility == Visibility.PRIVATE,
        "internal": repo.visibility == Visibility.INTERNAL,
        "visibility": repo.visibility,
        "default_branch": repo.default_branch,
        "empty": _is_empty(repo),
        "url": api_url(f"/repos/{repo.full_name}"),
        "clone_url": repo.http_url,
        "ssh_url": repo.ssh_url,
        "html_url": repo.web_url,
        "created_at": repo.created,
        "updated_at": repo.updated,
        "pushed_at": repo.pushed,
        "permissions": _permissions(role),
    }


def _repo(request: HttpRequest, owner: str, repo: str, need: int = Role.READ) -> Repository:
    return get_repo_for_principal(principal(request), owner, repo, need)


def _visibility(private: bool | None, visibility: str | None) -> str | None:
    # Gitea's boolean maps onto our three levels; an explicit visibility wins.
    if visibility is not None:
        return visibility
    if private is None:
        return None
    return Visibility.PRIVATE if private else Visibility.PUBLIC


def _create(request: HttpRequest, owner: User, payload: RepositoryCreateIn) -> Status:
    repo = repo_services.create_repository(
        actor=current_user(request),
        owner=owner,
        name=payload.name,
        description=payload.description,
        visibility=_visibility(payload.private, payload.visibility) or Visibility.PRIVATE,
        default_branch=payload.default_branch,
        initialize=payload.auto_init,
    )
    return Status(201, repository_out(request, repo))


@router.post(
    "/user/repos",
    scope=WRITE_REPO,
    response={201: RepositoryOut},
    summary="Create a repository you own",
    description="Private unless `private: false` or a `visibility` is given.",
)
def create_user_repository(request: HttpRequest, payload: RepositoryCreateIn):
    return _create(request, current_user(request), payload)


@router.post(
    "/orgs/{org}/repos",
    scope=WRITE_REPO,
    response={201: RepositoryOut},
    summary="Create a repository in an organization",
)
def create_org_repository(request: HttpRequest, org: str, payload: RepositoryCreateIn):
    return _create(request, get_org_for_user(current_user(request), org), payload)


@router.get(
    "/user/repos", scope=READ_REPO, response=list[RepositoryOut], summary="List the repositories you own or were given"
)
def list_user_repositories(
    request: HttpRequest,
    response: HttpResponse,
    pages: Query[PageParams],
):
    who = principal(request)
    repos = paginate(member_repositories(who.user), response, pages)
    # A token without repository scopes sees nothing here, just as it could read none of them.
    return [repository_out(request, repo) for repo in repos if role_for_principal(who, repo) >= Role.READ]


@router.get("/repos/{owner}/{repo}", scope=READ_REPO, response=RepositoryOut, summary="Get a repository")
def get_repository(request: HttpRequest, owner: str, repo: str):
    return repository_out(request, _repo(request, owner, repo))


@router.patch("/repos/{owner}/{repo}", scope=WRITE_REPO, response=RepositoryOut, summary="Edit a repository's settings")
def edit_repository(request: HttpRequest, owner: str, repo: str, payload: RepositoryEditIn):
    repository = _repo(request, owner, repo, Role.ADMIN)
    repository = repo_services.edit_repository(
        repository,
        actor=current_user(request),
        name=payload.name,
        description=payload.description,
        visibility=_visibility(payload.private, payload.visibility),
        default_branch=payload.default_branch,
    )
    return repository_out(request, repository)


@router.delete("/repos/{owner}/{repo}", scope=WRITE_REPO, response={204: None}, summary="Delete a repository")
def delete_repository(request: HttpRequest, owner: str, repo: str):
    repository = _repo(request, owner, repo, Role.ADMIN)
    # The API call itself names the repository, which is the confirmation the web form asks to type.
    repo_services.delete_repository(repository, actor=current_user(request), confirm=repository.full_name)
    return Status(204, None)


# Collaborators.


@router.get(
    "/repos/{owner}/{repo}/collaborators", scope=READ_REPO, response=list[CollaboratorOut], summary="List collaborators"
)
def list_collaborators(request: HttpRequest, owner: str, repo: str):
    repository = _repo(request, owner, repo)
    viewer = current_user(request)
    grants = Collaborator.objects.filter(repository=repository).select_related("user").order_by("user__username")
    return [
        user_out(grant.user, viewer) | {"role_name": Role(grant.role).label, "permissions": _permissions(grant.role)}
        for grant in grants
    ]


def _collaborator(username: str) -> User:
    user = User.objects.people().filter(username__iexact=username).first()
    if user is None:
        raise Http404(f"No user named {username!r}.")
    return user


@router.put(
    "/repos/{owner}/{repo}/collaborators/{username}",
    scope=WRITE_REPO,
    response={204: None},
    summary="Add a collaborator or change their permission",
)
def set_collaborator(request: HttpRequest, owner: str, repo: str, username: str, payload: CollaboratorIn):
    repository = _repo(request, owner, repo, Role.ADMIN)
    repo_services.set_collaborator(
        repository, _collaborator(username), actor=current_user(request), role=Role.from_name(payload.permission)
    )
    return Status(204, None)


@router.delete(
    "/repos/{owner}/{repo}/collaborators/{username}",
    scope=WRITE_REPO,
    response={204: None},
    summary="Remove a collaborator",
)
def remove_collaborator(request: HttpRequest, owner: str, repo: str, username: str):
    repository = _repo(request, owner, repo, Role.ADMIN)
    repo_services.remove_collaborator(repository, _collaborator(username), actor=current_user(request))
    return Status(204, None)


# Deploy keys.


def _deploy_key_out(repo: Repository, key: SshKey) -> dict:
    out = key_out(key, None, api_url(f"/repos/{repo.full_name}/keys/{key.pk}"))
    out.pop("user")
    return out | {"key_id": key.pk}


def _deploy_key(repo: Repository, key_id: int) -> SshKey:
    key = SshKey.objects.filter(repository=repo, pk=key_id).first()
    if key is None:
        raise Http404("Deploy key not found")
    return key


@router.get("/repos/{owner}/{repo}/keys", scope=READ_REPO, response=list[DeployKeyOut], summary="List deploy keys")
def list_deploy_keys(request: HttpRequest, owner: str, repo: str):
    repository = _repo(request, owner, repo, Role.ADMIN)
    return [_deploy_key_out(repository, key) for key in SshKey.objects.filter(repository=repository)]


@router.post(
    "/repos/{owner}/{repo}/keys",
    scope=WRITE_REPO,
    response={201: DeployKeyOut},
    summary="Add a deploy key",
    description="Read-only unless `read_only: false`.",
)
def add_deploy_key(request: HttpRequest, owner: str, repo: str, payload: DeployKeyIn):
    repository = _repo(request, owner, repo, Role.ADMIN)
    key = repo_services.add_deploy_key(
        repository,
        actor=current_user(request),
        title=payload.title,
        public_key=payload.key,
        writable=not payload.read_only,
    )
    return Status(201, _deploy_key_out(repository, key))


@router.get("/repos/{owner}/{repo}/keys/{id}", scope=READ_REPO, response=DeployKeyOut, summary="Get a deploy key")
def get_deploy_key(request: HttpRequest, owner: str, repo: str, id: int):
    repository = _repo(request, owner, repo, Role.ADMIN)
    return _deploy_key_out(repository, _deploy_key(repository, id))


@router.delete("/repos/{owner}/{repo}/keys/{id}", scope=WRITE_REPO, response={204: None}, summary="Remove a deploy key")
def delete_deploy_key(request: HttpRequest, owner: str, repo: str, id: int):
    repository = _repo(request, owner, repo, Role.ADMIN)
    repo_services.remove_deploy_key(_deploy_key(repository, id), actor=current_user(request))
    return Status(204, None)


# Branches.


@router.get("/repos/{owner}/{repo}/branches", scope=READ_REPO, response=list[BranchOut], summary="List branches")
def list_branches(request: HttpRequest, owner: str, repo: str):
    repository = _repo(request, owner, repo)
    can_push = role_for_principal(principal(request), repository) >= Role.WRITE
    return [
        {
            "name": branch.name,
            "commit": {
                "id": commit.sha,
                "message": commit.message,
                "url": f"{repository.web_url}/commit/{commit.sha}",
                "author": {"name": commit.author.name, "email": commit.author.email},
                "committer": {"name": commit.committer.name, "email": commit.committer.email},
                "timestamp": commit.committer.when,
            },
            "user_can_push": can_push,
        }
        for branch, commit in git.branch_heads(repository.path)
    ]
