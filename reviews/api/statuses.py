"""Commit status endpoints: checks report their state on a commit, and anyone who reads the repository sees it."""

from django.http import Http404, HttpRequest, HttpResponse
from ninja import Query, Status

from portal.api import api_url, current_user, user_out
from portal.api_pages import PageParams, paginate
from portal.api_scopes import READ_REPO, WRITE_REPO
from portal.models import User
from repos import git
from repos.api import repository_out
from repos.models import Repository, Role
from reviews import services
from reviews.api.lookups import get_repo
from reviews.api.router import router
from reviews.api.schemas import CombinedStatusOut, StatusIn, StatusOut
from reviews.models import CommitStatus


def status_out(status: CommitStatus, viewer: User) -> dict:
    return {
        "id": status.pk,
        "status": status.state,
        "state": status.state,
        "context": status.context,
        "target_url": status.target_url,
        "description": status.description,
        "url": api_url(f"/repos/{status.repository.full_name}/statuses/{status.sha}"),
        "creator": user_out(status.creator, viewer) if status.creator_id else None,
        "created_at": status.created,
        "updated_at": status.updated,
    }


def _commit_sha(repository: Repository, ref: str, *, sha_only: bool = False) -> str:
    """The full sha a ref (or a sha, or a prefix of one) names; 404 when it names no commit."""
    try:
        found = git.resolve_commit(repository.path, ref)
    except git.GitError:
        raise Http404(f"No commit {ref!r} in {repository.full_name}.") from None
    if sha_only and found.kind != "commit":
        raise Http404(f"{ref!r} is not a commit id.")
    return found.sha


def _statuses(repository: Repository, sha: str):
    return CommitStatus.objects.filter(repository=repository, sha=sha).select_related("repository__owner", "creator")


@router.post(
    "/repos/{owner}/{repo}/statuses/{sha}",
    scope=WRITE_REPO,
    response={201: StatusOut},
    tags=["commit status"],
    summary="Report a check's state on a commit",
    description="The latest report per `context` replaces the earlier one.",
)
def create_commit_status(request: HttpRequest, owner: str, repo: str, sha: str, payload: StatusIn):
    repository = get_repo(request, owner, repo, Role.WRITE)
    actor = current_user(request)
    status = services.set_commit_status(
        repository,
        actor=actor,
        sha=_commit_sha(repository, sha, sha_only=True),
        state=payload.state,
        context=payload.context,
        target_url=payload.target_url,
        description=payload.description,
    )
    return Status(201, status_out(status, actor))


def _list_statuses(request: HttpRequest, response: HttpResponse, owner: str, repo: str, ref: str, pages: PageParams):
    repository = get_repo(request, owner, repo)
    statuses = list(_statuses(repository, _commit_sha(repository, ref)))
    viewer = current_user(request)
    return [status_out(s, viewer) for s in paginate(statuses, response, pages)]


@router.get(
    "/repos/{owner}/{repo}/statuses/{sha}",
    scope=READ_REPO,
    response=list[StatusOut],
    tags=["commit status"],
    summary="List a commit's statuses",
)
def list_commit_statuses(
    request: HttpRequest,
    response: HttpResponse,
    pages: Query[PageParams],
    owner: str,
    repo: str,
    sha: str,
):
    return _list_statuses(request, response, owner, repo, sha, pages)


@router.get(
    "/repos/{owner}/{repo}/commits/{path:ref}/statuses",
    scope=READ_REPO,
    response=list[StatusOut],
    tags=["commit status"],
    summary="List the statuses of a branch, tag or commit",
)
def list_ref_statuses(
    request: HttpRequest,
    response: HttpResponse,
    pages: Query[PageParams],
    owner: str,
    repo: str,
    ref: str,
):
    return _list_statuses(request, response, owner, repo, ref, pages)


@router.get(
    "/repos/{owner}/{repo}/commits/{path:ref}/status",
    scope=READ_REPO,
    response=CombinedStatusOut,
    tags=["commit status"],
    summary="Get the combined status of a branch, tag or commit",
)
def get_combined_status(request: HttpRequest, owner: str, repo: str, ref: str):
    repository = get_repo(request, owner, repo)
    sha = _commit_sha(repository, ref)
    statuses = list(_statuses(repository, sha))
    viewer = current_user(request)
    return {
        "state": CommitStatus.combined(s.state for s in statuses),
        "sha": sha,
        "total_count": len(statuses),
        "statuses": [status_out(s, viewer) for s in statuses],
        "repository": repository_out(request, repository),
        "commit_url": api_url(f"/repos/{repository.full_name}/git/commits/{sha}"),
        "url": api_url(f"/repos/{repository.full_name}/commits/{sha}/status"),
    }
