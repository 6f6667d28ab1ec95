"""Pull request endpoints: list, open, edit, changed files, commits, and merge."""

from typing import Literal
from urllib.parse import quote

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from ninja import Query, Status
from ninja.errors import HttpError

from portal.api import api_url, current_user, user_out
from portal.api_pages import PageParams, paginate
from portal.api_scopes import READ_REPO, WRITE_REPO
from portal.models import User
from repos import code, git
from repos.api import repository_json, repository_out
from repos.git import patches
from repos.models import Repository, Role
from reviews import rules, services
from reviews.access import get_pull
from reviews.api.lookups import find_people, find_teams, get_repo
from reviews.api.router import router
from reviews.api.schemas import (
    ChangedFileOut,
    CommitOut,
    MergeIn,
    PullRequestCreateIn,
    PullRequestDetailOut,
    PullRequestEditIn,
    PullRequestOut,
)
from reviews.models import PullRequest, Review

MAX_COMMITS = 10_000


def _branch_info(repo: Repository, repository: dict, branch: str, sha: str) -> dict:
    return {"label": branch, "ref": branch, "sha": sha, "repo_id": repo.pk, "repo": repository}


def _mergeable(pr: PullRequest) -> bool:
    # As in Gitea: whether git can merge it, not whether the rules allow it yet (merge_blocker says that).
    if not pr.is_open:
        return False
    try:
        return not rules.conflicts(pr)
    except git.GitError:
        return False


def _diff_counts(pr: PullRequest) -> tuple[int, int, int]:
    """Lines added, lines deleted and files changed, as the files tab counts them."""
    if not pr.merge_base_sha:
        return 0, 0, 0
    try:
        files = code.diff_files(pr.repository.path, pr.merge_base_sha, pr.head_sha, False)
    except git.GitError:
        return 0, 0, 0
    return sum(f.additions for f in files), sum(f.deletions for f in files), len(files)


# Published comments: a pending review's stay its author's alone until it is submitted.
_PUBLISHED = Q(comments__review__isnull=True) | ~Q(comments__review__state=Review.State.PENDING)


def with_comment_counts(pulls: QuerySet[PullRequest]) -> QuerySet[PullRequest]:
    """Each pull request with its published comments counted: those on the conversation (Gitea's comments) and
    those on lines (its review_comments), in the one query of a list."""
    return pulls.annotate(
        conversation_comments=Count("comments", filter=_PUBLISHED & Q(comments__path="")),
        line_comments=Count("comments", filter=_PUBLISHED & ~Q(comments__path="")),
    )


def _comment_counts(pr: PullRequest) -> tuple[int, int]:
    if not hasattr(pr, "conversation_comments"):
        pr = with_comment_counts(PullRequest.objects.filter(pk=pr.pk)).get()
    return pr.conversation_comments, pr.line_comments


def pull_out(pr: PullRequest, viewer: User | None, repository: dict | None = None) -> dict:
    """A pull request in Gitea's shape: a merged one is closed with merged set. repository is the repository as the
    viewer sees it (Gitea's head.repo and base.repo), as its administrators do when not given."""
    repo = pr.repository
    if repository is None:
        repository = repository_json(repo, viewer, Role.ADMIN)
    requests = list(pr.review_requests.all())
    additions, deletions, changed_files = _diff_counts(pr)
    comments, review_comments = _comment_counts(pr)
    url = api_url(f"/repos/{repo.full_name}/pulls/{pr.number}")
    return {
        "id": pr.pk,
        "url": url,
        "number": pr.number,
        "user": user_out(pr.author, viewer),
        "title": pr.title,
        "body": pr.description,
        "labels": [],
        "milestone": None,
        "assignee": None,
        "assignees": [],
        "requested_reviewers": [user_out(r.user, viewer) for r in requests if r.user_id],
        "requested_reviewers_teams": [
            {"id": r.team.pk, "name": r.team.name, "description": r.team.description} for r in requests if r.team_id
        ],
        "state": "open" if pr.is_open else "closed",
        "draft": pr.draft,
        "is_locked": False,
        "comments": comments,
        "review_comments": review_comments,
        "additions": additions,
        "deletions": deletions,
        "changed_files": changed_files,
        "html_url": pr.web_url,
        "diff_url": f"{url}.diff",
        "patch_url": f"{url}.patch",
        "mergeable": _mergeable(pr),
        "merged": pr.is_merged,
        "merged_at": pr.merged_at,
        "merge_commit_sha": pr.merge_commit_sha or None,
        "merged_by": user_out(pr.merged_by, viewer) if pr.merged_by_id else None,
        # The head branch is in the same repository, where anyone who may write may push to it.
        "allow_maintainer_edit": False,
        "merge_style": pr.merge_strategy or None,
        "base": _branch_info(repo, repository, pr.base_branch, pr.base_sha),
        "head": _branch_info(repo, repository, pr.head_branch, pr.head_sha),
        "merge_base": pr.merge_base_sha,
        "due_date": None,
        "created_at": pr.created,
        "updated_at": pr.updated,
        "closed_at": pr.merged_at or pr.closed_at,
        "pin_order": 0,
    }


def _pull_detail(request: HttpRequest, pr: PullRequest) -> dict:
    viewer = current_user(request)
    repository = repository_out(request, pr.repository)
    return pull_out(pr, viewer, repository) | {"merge_blocker": rules.merge_blocker(pr, viewer)}


@router.get("/repos/{owner}/{repo}/pulls", scope=READ_REPO, response=list[PullRequestOut], summary="List pull requests")
def list_pull_requests(
    request: HttpRequest,
    response: HttpResponse,
    pages: Query[PageParams],
    owner: str,
    repo: str,
    state: Literal["open", "closed", "all"] = "open",
    poster: str = Query("", description="Only those opened by this user."),
    reviewer: str = Query("", description="Only those this user was asked to review or has reviewed."),
):
    repository = get_repo(request, owner, repo)
    pulls = PullRequest.objects.filter(repository=repository).select_related("repository__owner", "author", "merged_by")
    if state == "open":
        pulls = pulls.filter(state=PullRequest.State.OPEN)
    elif state == "closed":
        pulls = pulls.exclude(state=PullRequest.State.OPEN)
    if poster:
        pulls = pulls.opened_by_name(poster)
    if reviewer:
        pulls = pulls.with_reviewer_named(reviewer)
    pulls = with_comment_counts(pulls.prefetch_related("review_requests__user", "review_requests__team"))
    viewer = current_user(request)
    shape = repository_out(request, repository)
    return [pull_out(pr, viewer, shape) for pr in paginate(pulls.order_by("-number"), response, pages)]


def _head_branch(repository: Repository, head: str) -> str:
    # Gitea names a head as owner:branch; only branches of the same repository can be pulled from here.
    owner, colon, branch = head.rpartition(":")
    if colon and owner.lower() != repository.owner.username.lower():
        raise ValidationError("Pull requests from another repository are not supported; push the branch here.")
    return branch


@router.post(
    "/repos/{owner}/{repo}/pulls", scope=WRITE_REPO, response={201: PullRequestDetailOut}, summary="Open a pull request"
)
def create_pull_request(request: HttpRequest, owner: str, repo: str, payload: PullRequestCreateIn):
    repository = get_repo(request, owner, repo)
    actor = current_user(request)
    pr = services.open_pull_request(
        repository,
        actor=actor,
        title=payload.title,
        base=payload.base,
        head=_head_branch(repository, payload.head),
        description=payload.body,
        draft=payload.draft,
        reviewers=find_people(payload.reviewers),
        teams=find_teams(repository.owner, payload.team_reviewers),
    )
    return Status(201, _pull_detail(request, pr))


# Before the pull request's own route, whose {index} would otherwise take "1.diff" whole.
def _text(content: bytes) -> HttpResponse:
    return HttpResponse(content, content_type="text/plain; charset=utf-8")


PLAIN_TEXT = {"responses": {200: {"description": "OK", "content": {"text/plain": {"schema": {"type": "string"}}}}}}


@router.get(
    "/repos/{owner}/{repo}/pulls/{index}.diff",
    scope=READ_REPO,
    openapi_extra=PLAIN_TEXT,
    summary="Get a pull request's diff, as git diff writes it",
    description="From the merge base to the head. `binary=true` puts binary files in it too, for `git apply`.",
)
def get_pull_request_diff(request: HttpRequest, owner: str, repo: str, index: int, binary: bool = False):
    repository = get_repo(request, owner, repo)
    pr = get_pull(repository, index)
    return _text(patches.diff_text(repository.path, pr.merge_base_sha, pr.head_sha, binary=binary))


@router.get(
    "/repos/{owner}/{repo}/pulls/{index}.patch",
    scope=READ_REPO,
    openapi_extra=PLAIN_TEXT,
    summary="Get a pull request's commits as git format-patch writes them",
    description="One mail per commit from the merge base to the head, oldest first, ready for `git am`.",
)
def get_pull_request_patch(request: HttpRequest, owner: str, repo: str, index: int):
    repository = get_repo(request, owner, repo)
    pr = get_pull(repository, index)
    return _text(patches.format_patch(repository.path, pr.merge_base_sha, pr.head_sha))


@router.get(
    "/repos/{owner}/{repo}/pulls/{index}", scope=READ_REPO, response=PullRequestDetailOut, summary="Get a pull request"
)
def get_pull_request(request: HttpRequest, owner: str, repo: str, index: int):
    pr = get_pull(get_repo(request, owner, repo), index)
    return _pull_detail(request, pr)


@router.patch(
    "/repos/{owner}/{repo}/pulls/{index}",
    scope=WRITE_REPO,
    response=PullRequestDetailOut,
    summary="Edit a pull request, close or reopen it",
)
def edit_pull_request(request: HttpRequest, owner: str, repo: str, index: int, payload: PullRequestEditIn):
    pr = get_pull(get_repo(request, owner, repo), index)
    actor = current_user(request)
    # One request, one outcome: a refused change leaves the state change before it undone too.
    try:
        with transaction.atomic():
            if payload.state == "open" and not pr.is_open:
                services.reopen_pull_request(pr, actor=actor)
            if any(value is not None for value in (payload.title, payload.body, payload.base, payload.draft)):
                services.update_pull_request(
                    pr,
                    actor=actor,
                    title=payload.title,
                    description=payload.body,
                    base=payload.base,
                    draft=payload.draft,
                )
            if payload.state == "closed" and pr.state != PullRequest.State.CLOSED:
                services.close_pull_request(pr, actor=actor)
    except ValidationError as exc:
        # Another request closed, reopened or merged it meanwhile.
        if exc.code == "conflict":
            raise HttpError(409, " ".join(exc.messages)) from None
        raise
    return _pull_detail(request, pr)


def _side(pr: PullRequest, file: git.FileDiff) -> str:
    return pr.merge_base_sha if file.status == "deleted" else pr.head_sha


@router.get(
    "/repos/{owner}/{repo}/pulls/{index}/files",
    scope=READ_REPO,
    response=list[ChangedFileOut],
    summary="List the files a pull request changes",
)
def list_pull_request_files(
    request: HttpRequest,
    response: HttpResponse,
    pages: Query[PageParams],
    owner: str,
    repo: str,
    index: int,
):
    repository = get_repo(request, owner, repo)
    pr = get_pull(repository, index)
    files = code.diff_files(repository.path, pr.merge_base_sha, pr.head_sha, False)
    return [
        {
            "filename": f.path,
            "previous_filename": f.old_path if f.status in ("renamed", "copied") else None,
            "status": f.status,
            "additions": f.additions,
            "deletions": f.deletions,
            "changes": f.changes,
            "binary": f.binary,
            "html_url": f"{pr.web_url}/files#{f.path}",
            # The file as the head has it (a deleted one as the merge base had it), as Gitea links them.
            "contents_url": api_url(f"/repos/{repository.full_name}/contents/{quote(f.path)}?ref={_side(pr, f)}"),
            "raw_url": f"{repository.web_url}/raw/{_side(pr, f)}/{quote(f.path)}",
        }
        for f in paginate(files, response, pages)
    ]


def _person(signature: git.Signature) -> dict:
    return {"name": signature.name, "email": signature.email, "date": signature.when}


@router.get(
    "/repos/{owner}/{repo}/pulls/{index}/commits",
    scope=READ_REPO,
    response=list[CommitOut],
    summary="List a pull request's commits, oldest first",
)
def list_pull_request_commits(
    request: HttpRequest,
    response: HttpResponse,
    pages: Query[PageParams],
    owner: str,
    repo: str,
    index: int,
):
    repository = get_repo(request, owner, repo)
    pr = get_pull(repository, index)
    commits = git.commits_between(repository.path, pr.merge_base_sha, pr.head_sha, limit=MAX_COMMITS)
    return [
        {
            "sha": c.sha,
            "html_url": f"{repository.web_url}/commit/{c.sha}",
            "commit": {"message": c.message, "author": _person(c.author), "committer": _person(c.committer)},
            "parents": [{"sha": p} for p in c.parents],
        }
        for c in paginate(commits, response, pages)
    ]


# Merging.


def _merge_message(payload: MergeIn) -> str:
    return "\n\n".join(part.strip() for part in (payload.MergeTitleField, payload.MergeMessageField) if part.strip())


@router.post(
    "/repos/{owner}/{repo}/pulls/{index}/merge",
    scope=WRITE_REPO,
    response=PullRequestDetailOut,
    summary="Merge a pull request",
    description=(
        "`head_commit_id` names the head you reviewed, so that nothing pushed since merges unseen (409 if it moved)."
        " Without it, as in Gitea, the head the pull request has now is merged, and only if every approval the rules"
        " count was given on that very head (an approval of an earlier head, even of the same patch, does not count)."
        " 405 with the reason when the rules, checks or conflicts refuse the merge."
    ),
)
def merge_pull_request(request: HttpRequest, owner: str, repo: str, index: int, payload: MergeIn):
    pr = get_pull(get_repo(request, owner, repo, Role.WRITE), index)
    actor = current_user(request)
    try:
        services.merge_pull_request(
            pr,
            actor=actor,
            strategy=payload.Do,
            head_sha=payload.head_commit_id or None,
            message=_merge_message(payload),
            delete_branch=payload.delete_branch_after_merge,
        )
    except services.StaleHead as exc:
        raise HttpError(409, str(exc)) from None
    except services.MergeRefused as exc:
        raise HttpError(405, str(exc)) from None
    except ValidationError as exc:
        raise HttpError(422, " ".join(exc.messages)) from None
    return _pull_detail(request, pr)


@router.get(
    "/repos/{owner}/{repo}/pulls/{index}/merge",
    scope=READ_REPO,
    response={204: None},
    summary="Whether a pull request is merged: 204 if it is, 404 if not",
)
def is_pull_request_merged(request: HttpRequest, owner: str, repo: str, index: int):
    pr = get_pull(get_repo(request, owner, repo), index)
    if not pr.is_merged:
        raise Http404("The pull request is not merged.")
    return Status(204, None)
