"""Repositories, their collaborators, deploy keys and transfers, in Gitea's shapes."""

from datetime import datetime
from typing import Literal

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from ninja import Query, Schema, Status

from portal.access import Principal, get_owner_for_user
from portal.api import (
    EPOCH,
    ZERO_TIME,
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
from portal.api_scopes import READ_REPO, WRITE_REPO
from portal.models import SshKey, User
from repos import git, signals
from repos import services as repo_services
from repos.access import (
    get_org_for_user,
    get_repo_for_principal,
    is_repo_owner,
    member_repositories,
    role_for,
    role_for_principal,
    visible_repositories,
)
from repos.api.router import router
from repos.models import Collaborator, Repository, Role, Visibility

Permission = Literal["read", "write", "maintain", "admin"]
VisibilityName = Literal["private", "internal", "public"]


class RepoPermissions(Schema):
    admin: bool
    push: bool
    pull: bool


class RepositoryOut(Schema):
    """Gitea's Repository. Features the portal lacks (issues, wikis, stars, forks, mirrors, templates, archiving,
    releases, packages) have Gitea's empty or false values."""

    id: int
    owner: UserOut
    name: str
    full_name: str
    description: str
    empty: bool
    private: bool
    fork: bool
    template: bool
    mirror: bool
    size: int
    language: str
    languages_url: str
    html_url: str
    url: str
    link: str
    ssh_url: str
    clone_url: str
    original_url: str
    website: str
    stars_count: int
    forks_count: int
    watchers_count: int
    open_issues_count: int
    open_pr_counter: int
    release_counter: int
    default_branch: str
    archived: bool
    created_at: datetime
    updated_at: datetime
    archived_at: datetime
    pushed_at: datetime | None
    permissions: RepoPermissions
    has_issues: bool
    has_wiki: bool
    has_pull_requests: bool
    has_projects: bool
    projects_mode: str
    has_releases: bool
    has_packages: bool
    has_actions: bool
    ignore_whitespace_conflicts: bool
    allow_merge_commits: bool
    allow_rebase: bool
    allow_rebase_explicit: bool
    allow_squash_merge: bool
    allow_fast_forward_only_merge: bool
    allow_rebase_update: bool
    allow_manual_merge: bool
    autodetect_manual_merge: bool
    default_delete_branch_after_merge: bool
    default_merge_style: str
    default_allow_maintainer_edit: bool
    avatar_url: str
    internal: bool
    visibility: str
    mirror_interval: str
    object_format_name: str
    mirror_updated: datetime
    topics: list[str]
    licenses: list[str]


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


def _permissions(role: int) -> dict:
    return {"admin": role >= Role.ADMIN, "push": role >= Role.WRITE, "pull": role >= Role.READ}


def _is_empty(repo: Repository) -> bool:
    try:
        return git.is_empty(repo.path)
    except git.GitError:
        return True


def repository_out(request: HttpRequest, repo: Repository) -> dict:
    """A repository in Gitea's shape, with the caller's permissions on it."""
    who = principal(request)
    return repository_json(repo, current_user(request), role_for_principal(who, repo), who)


# Gitea's times for what never happened: a repository never archived (a timestamp never set), never mirrored (Go's
# zero time).
NEVER_ARCHIVED = EPOCH
NEVER_MIRRORED = ZERO_TIME


def repository_json(repo: Repository, viewer: User | None, role: int, principal: Principal | None = None) -> dict:
    """A repository in Gitea's shape as viewer sees it, with the permissions of role. The apps above answer what
    only they know (pull requests and how they merge) through repos.signals.repository_described."""
    principal = principal or Principal(user=viewer)
    out = {
        "id": repo.pk,
        "owner": user_out(repo.owner, viewer),
        "name": repo.name,
        "full_name": repo.full_name,
        "description": repo.description,
        "empty": _is_empty(repo),
        "private": repo.visibility == Visibility.PRIVATE,
        "fork": False,
        "template": False,
        "mirror": False,
        "size": _size_kib(repo),
        "language": "",
        "languages_url": "",
        "html_url": repo.web_url,
        "url": api_url(f"/repos/{repo.full_name}"),
        "link": f"/{repo.full_name}",
        "ssh_url": repo.ssh_url,
        "clone_url": repo.http_url,
        "original_url": "",
        "website": "",
        "stars_count": 0,
        "forks_count": 0,
        "watchers_count": 0,
        "open_issues_count": 0,
        "open_pr_counter": 0,
        "release_counter": 0,
        "default_branch": repo.default_branch,
        "archived": False,
        "created_at": repo.created,
        "updated_at": repo.updated,
        "archived_at": NEVER_ARCHIVED,
        "pushed_at": repo.pushed,
        "permissions": _permissions(role),
        "has_issues": False,
        "has_wiki": False,
        "has_pull_requests": False,
        "has_projects": False,
        "projects_mode": "",
        "has_releases": False,
        "has_packages": False,
        # Builds answer Gitea's and GitHub's actions routes (runs, artifacts, secrets, variables).
        "has_actions": True,
        "ignore_whitespace_conflicts": False,
        "allow_merge_commits": False,
        "allow_rebase": False,
        "allow_rebase_explicit": False,
        "allow_squash_merge": False,
        "allow_fast_forward_only_merge": False,
        "allow_rebase_update": False,
        "allow_manual_merge": False,
        "autodetect_manual_merge": False,
        "default_delete_branch_after_merge": False,
        "default_merge_style": "",
        "default_allow_maintainer_edit": False,
        "avatar_url": "",
        "internal": repo.visibility == Visibility.INTERNAL,
        "visibility": repo.visibility,
        "mirror_interval": "",
        "object_format_name": "sha1",
        "mirror_updated": NEVER_MIRRORED,
        "topics": [],
        "licenses": [],
    }
    for _receiver, answer in signals.repository_described.send(Repository, repository=repo, principal=principal):
        out |= {key: value for key, value in (answer or {}).items() if key in out}
    return out


def _size_kib(repo: Repository) -> int:
    try:
        return git.disk_size(repo.path) // 1024
    except OSError:
        return 0


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


# Someone's repositories, and an organization's.


def _listed(request: HttpRequest, response: HttpResponse, pages: PageParams, owner: User) -> list[dict]:
    who = principal(request)
    repos = visible_repositories(who.user).filter(owner=owner).select_related("owner").order_by("name")
    # A token without repository scopes sees only what anyone may see.
    shown = [repo for repo in repos if role_for_principal(who, repo) >= Role.READ]
    return [repository_out(request, repo) for repo in paginate(shown, response, pages)]


@router.get(
    "/users/{username}/repos",
    scope=READ_REPO,
    response=list[RepositoryOut],
    summary="List a user's repositories that you can see",
)
def list_repositories_of_user(request: HttpRequest, response: HttpResponse, username: str, pages: Query[PageParams]):
    return _listed(request, response, pages, get_owner_for_user(current_user(request), username))


@router.get(
    "/orgs/{org}/repos",
    scope=READ_REPO,
    response=list[RepositoryOut],
    summary="List an organization's repositories that you can see",
)
def list_org_repositories(request: HttpRequest, response: HttpResponse, org: str, pages: Query[PageParams]):
    return _listed(request, response, pages, get_org_for_user(current_user(request), org))


# One collaborator.


class CollaboratorPermissionOut(Schema):
    """Gitea's RepoCollaboratorPermission."""

    permission: str
    role_name: str
    user: UserOut


@router.get(
    "/repos/{owner}/{repo}/collaborators/{username}",
    scope=READ_REPO,
    response={204: None},
    summary="Whether a user is a collaborator (204) or not (404)",
)
def check_collaborator(request: HttpRequest, owner: str, repo: str, username: str):
    repository = _repo(request, owner, repo)
    if not Collaborator.objects.filter(repository=repository, user__username__iexact=username).exists():
        raise Http404(f"{username} is not a collaborator of {repository.full_name}.")
    return Status(204, None)


# Gitea has no maintain level: a maintainer writes.
GITEA_ACCESS = {Role.READ: "read", Role.WRITE: "write", Role.MAINTAIN: "write", Role.ADMIN: "admin"}


@router.get(
    "/repos/{owner}/{repo}/collaborators/{username}/permission",
    scope=READ_REPO,
    response=CollaboratorPermissionOut,
    summary="A user's permission on the repository",
    description="Your own, or anyone's for the repository's administrators. `permission` is Gitea's access level "
    "(`none`, `read`, `write`, `admin` or `owner`), `role_name` the portal's role (`maintain` is `write` in Gitea).",
)
def get_collaborator_permission(request: HttpRequest, owner: str, repo: str, username: str):
    repository = _repo(request, owner, repo)
    viewer = current_user(request)
    user = _collaborator(username)
    if user.pk != viewer.pk and role_for_principal(principal(request), repository) < Role.ADMIN:
        raise PermissionDenied("Only the repository's administrators can read someone else's permission.")
    role = role_for(user, repository)
    permission = "owner" if is_repo_owner(user, repository) else GITEA_ACCESS.get(role, "none")
    return {
        "permission": permission,
        "role_name": Role(role).label if role else "none",
        "user": user_out(user, viewer),
    }


class TopicsOut(Schema):
    topics: list[str]


@router.get(
    "/repos/{owner}/{repo}/topics",
    scope=READ_REPO,
    response=TopicsOut,
    summary="A repository's topics: always none, the portal has no topics",
)
def list_topics(request: HttpRequest, owner: str, repo: str):
    _repo(request, owner, repo)
    return {"topics": []}


class TransferIn(InputSchema):
    new_owner: str
    team_ids: gitea_unsupported(list[int], "team grants do not travel with a repository; grant them afterwards") = None


@router.post(
    "/repos/{owner}/{repo}/transfer",
    scope=WRITE_REPO,
    response={202: RepositoryOut},
    summary="Give a repository to another user or organization",
    description="Only the repository's owner (or an owner of its organization) transfers it, to themselves or an "
    "organization they own; it moves at once. Its teams' grants stay behind.",
)
def transfer_repository(request: HttpRequest, owner: str, repo: str, payload: TransferIn):
    repository = _repo(request, owner, repo, Role.ADMIN)
    actor = current_user(request)
    new_owner = get_owner_for_user(actor, payload.new_owner)
    repository = repo_services.transfer_repository(repository, actor=actor, new_owner=new_owner)
    return Status(202, repository_out(request, repository))
