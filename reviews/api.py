"""Pull request, review, commit status, branch protection and approval rule endpoints, in Gitea's shapes.

Every endpoint asks repos.access first and changes state only through reviews.services. The services check the
user's role; the token's scopes are checked here, since only the API knows how the caller signed in.
"""

from datetime import datetime
from typing import Literal

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, Q
from django.http import Http404, HttpRequest, HttpResponse
from ninja import Query, Router, Schema, Status
from ninja.errors import HttpError

from portal.api import (
    MAX_PAGE_SIZE,
    UserOut,
    api_url,
    current_user,
    paginate,
    principal,
    require_token_scope,
    user_out,
)
from portal.models import Team, User
from repos import git
from repos.access import get_org_for_member, get_repo_for_principal
from repos.models import Repository, Role
from reviews import rules, services
from reviews.models import (
    ApprovalRule,
    BranchProtection,
    Comment,
    CommitStatus,
    PullRequest,
    Review,
)

router = Router(tags=["pull request"])

StatusState = Literal["pending", "success", "failure", "error"]
ReviewEvent = Literal["APPROVE", "REQUEST_CHANGES", "COMMENT"]
Side = Literal["LEFT", "RIGHT"]
MAX_COMMITS = 10_000


# Schemas (Gitea's field names, and ours where Gitea has none).


class TeamOut(Schema):
    id: int
    name: str
    description: str


class BranchInfo(Schema):
    label: str
    ref: str
    sha: str
    repo_id: int


class PullRequestOut(Schema):
    id: int
    url: str
    number: int
    user: UserOut
    title: str
    body: str
    state: Literal["open", "closed"]
    draft: bool
    html_url: str
    mergeable: bool
    merged: bool
    merged_at: datetime | None
    merged_by: UserOut | None
    merge_commit_sha: str | None
    merge_style: str | None
    base: BranchInfo
    head: BranchInfo
    merge_base: str
    requested_reviewers: list[UserOut]
    requested_reviewers_teams: list[TeamOut]
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None


class PullRequestDetailOut(PullRequestOut):
    merge_blocker: str | None


class PullRequestCreateIn(Schema):
    title: str
    head: str
    base: str
    body: str = ""
    draft: bool = False
    reviewers: list[str] = []
    team_reviewers: list[str] = []


class PullRequestEditIn(Schema):
    title: str | None = None
    body: str | None = None
    base: str | None = None
    draft: bool | None = None
    state: Literal["open", "closed"] | None = None


class ChangedFileOut(Schema):
    filename: str
    previous_filename: str | None
    status: str
    additions: int
    deletions: int
    changes: int
    binary: bool
    html_url: str


class CommitPerson(Schema):
    name: str
    email: str
    date: datetime


class CommitDetail(Schema):
    message: str
    author: CommitPerson
    committer: CommitPerson


class CommitParent(Schema):
    sha: str


class CommitOut(Schema):
    sha: str
    html_url: str
    commit: CommitDetail
    parents: list[CommitParent]


class ReviewOut(Schema):
    id: int
    user: UserOut
    state: Literal["APPROVED", "REQUEST_CHANGES", "COMMENT", "PENDING"]
    body: str
    commit_id: str
    stale: bool
    dismissed: bool
    dismissed_reason: str
    comments_count: int
    submitted_at: datetime | None
    updated_at: datetime
    html_url: str
    pull_request_url: str


class ReviewCommentIn(Schema):
    path: str
    body: str
    line: int | None = None
    side: Side = "RIGHT"
    start_line: int | None = None
    # Gitea's way to say the same: the line on the new side, or on the old one.
    new_position: int | None = None
    old_position: int | None = None


class ReviewIn(Schema):
    event: ReviewEvent
    body: str = ""
    commit_id: str | None = None
    comments: list[ReviewCommentIn] = []


class ReviewCommentOut(Schema):
    id: int
    body: str
    user: UserOut
    resolver: UserOut | None
    pull_request_review_id: int | None
    in_reply_to: int | None
    path: str
    side: str
    line: int | None
    start_line: int | None
    original_line: int | None
    original_start_line: int | None
    position: int
    original_position: int
    commit_id: str
    original_commit_id: str
    outdated: bool
    resolved: bool
    created_at: datetime
    updated_at: datetime
    html_url: str
    pull_request_url: str


class MergeIn(Schema):
    Do: Literal["merge", "squash", "rebase", "fast-forward-only"]
    head_commit_id: str | None = None
    MergeTitleField: str = ""
    MergeMessageField: str = ""
    delete_branch_after_merge: bool | None = None


class StatusIn(Schema):
    state: StatusState
    context: str = "default"
    target_url: str = ""
    description: str = ""


class StatusOut(Schema):
    id: int
    state: StatusState
    context: str
    target_url: str
    description: str
    url: str
    creator: UserOut | None
    created_at: datetime
    updated_at: datetime


class CombinedStatusOut(Schema):
    state: StatusState
    sha: str
    total_count: int
    statuses: list[StatusOut]
    commit_url: str
    url: str


class BranchProtectionIn(Schema):
    """Gitea's fields plus ours; on PATCH, what is left out stays as it was."""

    rule_name: str | None = None
    branch_name: str | None = None
    enable_push: bool | None = None
    require_pull_request: bool | None = None
    enable_push_whitelist: bool | None = None
    push_whitelist_usernames: list[str] | None = None
    push_whitelist_teams: list[str] | None = None
    enable_merge_whitelist: bool | None = None
    merge_whitelist_usernames: list[str] | None = None
    merge_whitelist_teams: list[str] | None = None
    enable_status_check: bool | None = None
    status_check_contexts: list[str] | None = None
    block_on_outdated_branch: bool | None = None
    block_force_push: bool | None = None
    block_deletion: bool | None = None


class BranchProtectionOut(Schema):
    rule_name: str
    branch_name: str
    enable_push: bool
    require_pull_request: bool
    enable_push_whitelist: bool
    push_whitelist_usernames: list[str]
    push_whitelist_teams: list[str]
    enable_merge_whitelist: bool
    merge_whitelist_usernames: list[str]
    merge_whitelist_teams: list[str]
    enable_status_check: bool
    status_check_contexts: list[str]
    block_on_outdated_branch: bool
    block_force_push: bool
    block_deletion: bool
    created_at: datetime


class ApprovalRuleIn(Schema):
    """On PATCH, what is left out stays as it was."""

    name: str | None = None
    branch_pattern: str | None = None
    required_approvals: int | None = None
    users: list[str] | None = None
    teams: list[str] | None = None
    exclude_committers: bool | None = None
    dismissal: Literal["new_code", "always"] | None = None


class ApprovalRuleTemplateIn(ApprovalRuleIn):
    repository_pattern: str | None = None


class ApprovalRuleOut(Schema):
    id: int
    name: str
    branch_pattern: str
    required_approvals: int
    users: list[str]
    teams: list[str]
    exclude_committers: bool
    dismissal: str
    created_at: datetime


class ApprovalRuleTemplateOut(ApprovalRuleOut):
    organization: str
    repository_pattern: str


# Access and lookups.


def _repo(request: HttpRequest, owner: str, repo: str, need: int = Role.READ) -> Repository:
    return get_repo_for_principal(principal(request), owner, repo, need)


def _repo_to_change(request: HttpRequest, owner: str, repo: str, need: int = Role.READ) -> Repository:
    """The repository for a call that writes: the token must carry write:repo whatever the role needs."""
    require_token_scope(request, "write:repo")
    return _repo(request, owner, repo, need)


def _pull(repository: Repository, index: int) -> PullRequest:
    pr = (
        PullRequest.objects.filter(repository=repository, number=index)
        .select_related("repository__owner", "author", "merged_by")
        .first()
    )
    if pr is None:
        raise Http404("Pull request not found")
    return pr


def _people(usernames: list[str]) -> list[User]:
    found = []
    for name in usernames:
        user = User.objects.people().filter(username__iexact=name.strip()).first()
        if user is None:
            raise ValidationError(f"No user named {name!r}.")
        found.append(user)
    return found


def _teams(owner: User, names: list[str]) -> list[Team]:
    found = []
    for name in names:
        team = Team.objects.filter(organization=owner, name__iexact=name.strip()).first()
        if team is None:
            raise ValidationError(f"{owner.username} has no team named {name!r}.")
        found.append(team)
    return found


def _page(items: list, response: HttpResponse, page: int, limit: int) -> list:
    """One page of a list; the total goes in X-Total-Count like the other list endpoints."""
    response["X-Total-Count"] = str(len(items))
    start = (page - 1) * limit
    return items[start : start + limit]


# Pull requests.


def _branch_info(repo: Repository, branch: str, sha: str) -> dict:
    return {"label": branch, "ref": branch, "sha": sha, "repo_id": repo.pk}


def _mergeable(pr: PullRequest) -> bool:
    # As in Gitea: whether git can merge it, not whether the rules allow it yet (merge_blocker says that).
    if not pr.is_open:
        return False
    try:
        return not rules.conflicts(pr)
    except git.GitError:
        return False


def pull_out(pr: PullRequest, viewer: User) -> dict:
    """A pull request in Gitea's shape: a merged one is closed with merged set."""
    repo = pr.repository
    requests = list(pr.review_requests.all())
    return {
        "id": pr.pk,
        "url": api_url(f"/repos/{repo.full_name}/pulls/{pr.number}"),
        "number": pr.number,
        "user": user_out(pr.author, viewer),
        "title": pr.title,
        "body": pr.description,
        "state": "open" if pr.is_open else "closed",
        "draft": pr.draft,
        "html_url": pr.web_url,
        "mergeable": _mergeable(pr),
        "merged": pr.is_merged,
        "merged_at": pr.merged_at,
        "merged_by": user_out(pr.merged_by, viewer) if pr.merged_by_id else None,
        "merge_commit_sha": pr.merge_commit_sha or None,
        "merge_style": pr.merge_strategy or None,
        "base": _branch_info(repo, pr.base_branch, pr.base_sha),
        "head": _branch_info(repo, pr.head_branch, pr.head_sha),
        "merge_base": pr.merge_base_sha,
        "requested_reviewers": [user_out(r.user, viewer) for r in requests if r.user_id],
        "requested_reviewers_teams": [
            {"id": r.team.pk, "name": r.team.name, "description": r.team.description} for r in requests if r.team_id
        ],
        "created_at": pr.created,
        "updated_at": pr.updated,
        "closed_at": pr.merged_at or pr.closed_at,
    }


def _pull_detail(pr: PullRequest, viewer: User) -> dict:
    return pull_out(pr, viewer) | {"merge_blocker": rules.merge_blocker(pr, viewer)}


@router.get("/repos/{owner}/{repo}/pulls", response=list[PullRequestOut], summary="List pull requests")
def list_pull_requests(
    request: HttpRequest,
    response: HttpResponse,
    owner: str,
    repo: str,
    state: Literal["open", "closed", "all"] = "open",
    poster: str = Query("", description="Only those opened by this user."),
    reviewer: str = Query("", description="Only those this user was asked to review or has reviewed."),
    page: int = Query(1, ge=1),
    limit: int = Query(50, ge=1, le=MAX_PAGE_SIZE),
):
    repository = _repo(request, owner, repo)
    pulls = PullRequest.objects.filter(repository=repository).select_related("repository__owner", "author", "merged_by")
    if state == "open":
        pulls = pulls.filter(state=PullRequest.State.OPEN)
    elif state == "closed":
        pulls = pulls.exclude(state=PullRequest.State.OPEN)
    if poster:
        pulls = pulls.filter(author__username__iexact=poster)
    if reviewer:
        asked = Q(review_requests__user__username__iexact=reviewer)
        reviewed = Q(reviews__author__username__iexact=reviewer, reviews__submitted_at__isnull=False)
        pulls = pulls.filter(pk__in=PullRequest.objects.filter(asked | reviewed).values("pk"))
    pulls = pulls.prefetch_related("review_requests__user", "review_requests__team")
    viewer = current_user(request)
    return [pull_out(pr, viewer) for pr in paginate(pulls.order_by("-number"), response, page, limit)]


def _head_branch(repository: Repository, head: str) -> str:
    # Gitea names a head as owner:branch; only branches of the same repository can be pulled from here.
    owner, colon, branch = head.rpartition(":")
    if colon and owner.lower() != repository.owner.username.lower():
        raise ValidationError("Pull requests from another repository are not supported; push the branch here.")
    return branch


@router.post("/repos/{owner}/{repo}/pulls", response={201: PullRequestDetailOut}, summary="Open a pull request")
def create_pull_request(request: HttpRequest, owner: str, repo: str, payload: PullRequestCreateIn):
    repository = _repo_to_change(request, owner, repo)
    actor = current_user(request)
    pr = services.open_pull_request(
        repository,
        actor=actor,
        title=payload.title,
        base=payload.base,
        head=_head_branch(repository, payload.head),
        description=payload.body,
        draft=payload.draft,
        reviewers=_people(payload.reviewers),
        teams=_teams(repository.owner, payload.team_reviewers),
    )
    return Status(201, _pull_detail(pr, actor))


@router.get("/repos/{owner}/{repo}/pulls/{index}", response=PullRequestDetailOut, summary="Get a pull request")
def get_pull_request(request: HttpRequest, owner: str, repo: str, index: int):
    pr = _pull(_repo(request, owner, repo), index)
    return _pull_detail(pr, current_user(request))


@router.patch(
    "/repos/{owner}/{repo}/pulls/{index}",
    response=PullRequestDetailOut,
    summary="Edit a pull request, close or reopen it",
)
def edit_pull_request(request: HttpRequest, owner: str, repo: str, index: int, payload: PullRequestEditIn):
    pr = _pull(_repo_to_change(request, owner, repo), index)
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
    return _pull_detail(pr, actor)


@router.get(
    "/repos/{owner}/{repo}/pulls/{index}/files",
    response=list[ChangedFileOut],
    summary="List the files a pull request changes",
)
def list_pull_request_files(
    request: HttpRequest,
    response: HttpResponse,
    owner: str,
    repo: str,
    index: int,
    page: int = Query(1, ge=1),
    limit: int = Query(50, ge=1, le=MAX_PAGE_SIZE),
):
    repository = _repo(request, owner, repo)
    pr = _pull(repository, index)
    files = git.diff(repository.path, pr.merge_base_sha, pr.head_sha)
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
        }
        for f in _page(files, response, page, limit)
    ]


def _person(signature: git.Signature) -> dict:
    return {"name": signature.name, "email": signature.email, "date": signature.when}


@router.get(
    "/repos/{owner}/{repo}/pulls/{index}/commits",
    response=list[CommitOut],
    summary="List a pull request's commits, oldest first",
)
def list_pull_request_commits(
    request: HttpRequest,
    response: HttpResponse,
    owner: str,
    repo: str,
    index: int,
    page: int = Query(1, ge=1),
    limit: int = Query(50, ge=1, le=MAX_PAGE_SIZE),
):
    repository = _repo(request, owner, repo)
    pr = _pull(repository, index)
    commits = git.commits_between(repository.path, pr.merge_base_sha, pr.head_sha, limit=MAX_COMMITS)
    return [
        {
            "sha": c.sha,
            "html_url": f"{repository.web_url}/commit/{c.sha}",
            "commit": {"message": c.message, "author": _person(c.author), "committer": _person(c.committer)},
            "parents": [{"sha": p} for p in c.parents],
        }
        for c in _page(commits, response, page, limit)
    ]


# Reviews and inline comments.

REVIEW_STATES = {
    Review.State.APPROVED: "APPROVED",
    Review.State.CHANGES_REQUESTED: "REQUEST_CHANGES",
    Review.State.COMMENTED: "COMMENT",
    Review.State.PENDING: "PENDING",
}


def review_out(review: Review, pr: PullRequest, viewer: User) -> dict:
    return {
        "id": review.pk,
        "user": user_out(review.author, viewer),
        "state": REVIEW_STATES[review.state],
        "body": review.body,
        "commit_id": review.commit_sha,
        "stale": review.commit_sha != pr.head_sha,
        "dismissed": review.is_dismissed,
        "dismissed_reason": review.dismissed_reason,
        "comments_count": getattr(review, "comments_count", None) or review.comments.count(),
        "submitted_at": review.submitted_at,
        "updated_at": review.dismissed_at or review.submitted_at or review.created,
        "html_url": f"{pr.web_url}#review-{review.pk}",
        "pull_request_url": pr.web_url,
    }


def _visible_reviews(pr: PullRequest, viewer: User):
    # A pending review is a draft: only its author sees it, as in Gitea.
    return (
        pr.reviews.exclude(Q(state=Review.State.PENDING) & ~Q(author=viewer))
        .select_related("author")
        .annotate(comments_count=Count("comments"))
    )


@router.get(
    "/repos/{owner}/{repo}/pulls/{index}/reviews", response=list[ReviewOut], summary="List a pull request's reviews"
)
def list_reviews(
    request: HttpRequest,
    response: HttpResponse,
    owner: str,
    repo: str,
    index: int,
    page: int = Query(1, ge=1),
    limit: int = Query(50, ge=1, le=MAX_PAGE_SIZE),
):
    pr = _pull(_repo(request, owner, repo), index)
    viewer = current_user(request)
    reviews = list(_visible_reviews(pr, viewer))
    return [review_out(review, pr, viewer) for review in _page(reviews, response, page, limit)]


def _inline(item: ReviewCommentIn) -> services.InlineComment:
    line, side = item.line, item.side
    if line is None and item.new_position:
        line, side = item.new_position, Comment.Side.RIGHT
    elif line is None and item.old_position:
        line, side = item.old_position, Comment.Side.LEFT
    if line is None:
        raise ValidationError(f"The comment on {item.path} needs a line.")
    return services.InlineComment(path=item.path, line=line, body=item.body, side=side, start_line=item.start_line)


@router.post(
    "/repos/{owner}/{repo}/pulls/{index}/reviews",
    response=ReviewOut,
    summary="Approve, request changes or comment",
    description="`commit_id` binds the review to the head you saw; an approval is of exactly that code.",
)
def create_review(request: HttpRequest, owner: str, repo: str, index: int, payload: ReviewIn):
    pr = _pull(_repo_to_change(request, owner, repo), index)
    actor = current_user(request)
    review = services.submit_review(
        pr,
        actor=actor,
        event=payload.event,
        body=payload.body,
        commit_sha=payload.commit_id,
        comments=[_inline(item) for item in payload.comments],
    )
    return review_out(review, pr, actor)


def _review(pr: PullRequest, viewer: User, review_id: int) -> Review:
    review = _visible_reviews(pr, viewer).filter(pk=review_id).first()
    if review is None:
        raise Http404("Review not found")
    return review


@router.get("/repos/{owner}/{repo}/pulls/{index}/reviews/{id}", response=ReviewOut, summary="Get a review")
def get_review(request: HttpRequest, owner: str, repo: str, index: int, id: int):
    pr = _pull(_repo(request, owner, repo), index)
    viewer = current_user(request)
    return review_out(_review(pr, viewer, id), pr, viewer)


def comment_out(comment: Comment, pr: PullRequest, viewer: User) -> dict:
    """An inline comment in Gitea's shape; a reply carries its thread's place and resolution."""
    thread = comment.reply_to or comment
    right = thread.side == Comment.Side.RIGHT
    return {
        "id": comment.pk,
        "body": comment.body,
        "user": user_out(comment.author, viewer),
        "resolver": user_out(thread.resolved_by, viewer) if thread.resolved_by_id else None,
        "pull_request_review_id": comment.review_id,
        "in_reply_to": comment.reply_to_id,
        "path": thread.path,
        "side": thread.side,
        "line": thread.line,
        "start_line": thread.start_line,
        "original_line": thread.original_line,
        "original_start_line": thread.original_start_line,
        "position": (thread.line or 0) if right else 0,
        "original_position": 0 if right else (thread.line or 0),
        "commit_id": thread.commit_sha,
        "original_commit_id": thread.original_commit_sha,
        "outdated": thread.outdated,
        "resolved": thread.resolved_at is not None,
        "created_at": comment.created,
        "updated_at": comment.edited or comment.created,
        "html_url": f"{pr.web_url}#comment-{comment.pk}",
        "pull_request_url": pr.web_url,
    }


def _inline_comments(pr: PullRequest, viewer: User):
    # Pending comments belong to a review not yet submitted: only their author sees them.
    return (
        pr.comments.filter(Q(path__gt="") | Q(reply_to__path__gt=""))
        .exclude(Q(review__state=Review.State.PENDING) & ~Q(author=viewer))
        .select_related("author", "resolved_by", "reply_to__resolved_by")
        .order_by("created", "id")
    )


@router.get(
    "/repos/{owner}/{repo}/pulls/{index}/comments",
    response=list[ReviewCommentOut],
    summary="List a pull request's inline comments and their replies",
)
def list_inline_comments(
    request: HttpRequest,
    response: HttpResponse,
    owner: str,
    repo: str,
    index: int,
    page: int = Query(1, ge=1),
    limit: int = Query(50, ge=1, le=MAX_PAGE_SIZE),
):
    pr = _pull(_repo(request, owner, repo), index)
    viewer = current_user(request)
    comments = list(_inline_comments(pr, viewer))
    return [comment_out(c, pr, viewer) for c in _page(comments, response, page, limit)]


@router.get(
    "/repos/{owner}/{repo}/pulls/{index}/reviews/{id}/comments",
    response=list[ReviewCommentOut],
    summary="List the inline comments of one review",
)
def list_review_comments(request: HttpRequest, owner: str, repo: str, index: int, id: int):
    pr = _pull(_repo(request, owner, repo), index)
    viewer = current_user(request)
    review = _review(pr, viewer, id)
    return [comment_out(c, pr, viewer) for c in _inline_comments(pr, viewer).filter(review=review)]


# Merging.


def _merge_message(payload: MergeIn) -> str:
    return "\n\n".join(part.strip() for part in (payload.MergeTitleField, payload.MergeMessageField) if part.strip())


@router.post(
    "/repos/{owner}/{repo}/pulls/{index}/merge",
    response=PullRequestDetailOut,
    summary="Merge a pull request",
    description=(
        "`head_commit_id` is required: the head you reviewed, so that nothing pushed since merges unseen (409 if it"
        " moved). 405 with the reason when the rules, checks or conflicts refuse the merge."
    ),
)
def merge_pull_request(request: HttpRequest, owner: str, repo: str, index: int, payload: MergeIn):
    pr = _pull(_repo_to_change(request, owner, repo, Role.WRITE), index)
    actor = current_user(request)
    if not payload.head_commit_id:
        raise HttpError(422, "head_commit_id is required: send the head commit you reviewed.")
    try:
        services.merge_pull_request(
            pr,
            actor=actor,
            strategy=payload.Do,
            head_sha=payload.head_commit_id,
            message=_merge_message(payload),
            delete_branch=payload.delete_branch_after_merge,
        )
    except services.StaleHead as exc:
        raise HttpError(409, str(exc)) from None
    except services.MergeRefused as exc:
        raise HttpError(405, str(exc)) from None
    except ValidationError as exc:
        raise HttpError(422, " ".join(exc.messages)) from None
    return _pull_detail(pr, actor)


@router.get(
    "/repos/{owner}/{repo}/pulls/{index}/merge",
    response={204: None},
    summary="Whether a pull request is merged: 204 if it is, 404 if not",
)
def is_pull_request_merged(request: HttpRequest, owner: str, repo: str, index: int):
    pr = _pull(_repo(request, owner, repo), index)
    if not pr.is_merged:
        raise Http404("The pull request is not merged.")
    return Status(204, None)


# Commit statuses.


def status_out(status: CommitStatus, viewer: User) -> dict:
    return {
        "id": status.pk,
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
    response={201: StatusOut},
    tags=["commit status"],
    summary="Report a check's state on a commit",
    description="The latest report per `context` replaces the earlier one.",
)
def create_commit_status(request: HttpRequest, owner: str, repo: str, sha: str, payload: StatusIn):
    repository = _repo_to_change(request, owner, repo, Role.WRITE)
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


def _list_statuses(request: HttpRequest, response: HttpResponse, owner: str, repo: str, ref: str, page, limit):
    repository = _repo(request, owner, repo)
    statuses = list(_statuses(repository, _commit_sha(repository, ref)))
    viewer = current_user(request)
    return [status_out(s, viewer) for s in _page(statuses, response, page, limit)]


@router.get(
    "/repos/{owner}/{repo}/statuses/{sha}",
    response=list[StatusOut],
    tags=["commit status"],
    summary="List a commit's statuses",
)
def list_commit_statuses(
    request: HttpRequest,
    response: HttpResponse,
    owner: str,
    repo: str,
    sha: str,
    page: int = Query(1, ge=1),
    limit: int = Query(50, ge=1, le=MAX_PAGE_SIZE),
):
    return _list_statuses(request, response, owner, repo, sha, page, limit)


@router.get(
    "/repos/{owner}/{repo}/commits/{path:ref}/statuses",
    response=list[StatusOut],
    tags=["commit status"],
    summary="List the statuses of a branch, tag or commit",
)
def list_ref_statuses(
    request: HttpRequest,
    response: HttpResponse,
    owner: str,
    repo: str,
    ref: str,
    page: int = Query(1, ge=1),
    limit: int = Query(50, ge=1, le=MAX_PAGE_SIZE),
):
    return _list_statuses(request, response, owner, repo, ref, page, limit)


def combined_state(statuses: list[CommitStatus]) -> str:
    """failure if any check failed or errored, pending while any is pending or none reported, else success."""
    states = {s.state for s in statuses}
    if states & {CommitStatus.State.FAILURE, CommitStatus.State.ERROR}:
        return CommitStatus.State.FAILURE
    if not states or CommitStatus.State.PENDING in states:
        return CommitStatus.State.PENDING
    return CommitStatus.State.SUCCESS


@router.get(
    "/repos/{owner}/{repo}/commits/{path:ref}/status",
    response=CombinedStatusOut,
    tags=["commit status"],
    summary="Get the combined status of a branch, tag or commit",
)
def get_combined_status(request: HttpRequest, owner: str, repo: str, ref: str):
    repository = _repo(request, owner, repo)
    sha = _commit_sha(repository, ref)
    statuses = list(_statuses(repository, sha))
    viewer = current_user(request)
    return {
        "state": combined_state(statuses),
        "sha": sha,
        "total_count": len(statuses),
        "statuses": [status_out(s, viewer) for s in statuses],
        "commit_url": api_url(f"/repos/{repository.full_name}/git/commits/{sha}"),
        "url": api_url(f"/repos/{repository.full_name}/commits/{sha}/status"),
    }


# Branch protection: the repository's admins only, reads included.


def protection_out(protection: BranchProtection) -> dict:
    push_users = [u.username for u in protection.push_users.all()]
    push_teams = [t.name for t in protection.push_teams.all()]
    merge_users = [u.username for u in protection.merge_users.all()]
    merge_teams = [t.name for t in protection.merge_teams.all()]
    return {
        "rule_name": protection.branch_pattern,
        "branch_name": protection.branch_pattern,
        # Gitea's enable_push: false is our pull-request requirement: nobody pushes to the branch directly.
        "enable_push": not protection.require_pull_request,
        "require_pull_request": protection.require_pull_request,
        "enable_push_whitelist": bool(push_users or push_teams),
        "push_whitelist_usernames": push_users,
        "push_whitelist_teams": push_teams,
        "enable_merge_whitelist": bool(merge_users or merge_teams),
        "merge_whitelist_usernames": merge_users,
        "merge_whitelist_teams": merge_teams,
        "enable_status_check": bool(protection.required_checks),
        "status_check_contexts": list(protection.required_checks),
        "block_on_outdated_branch": protection.require_up_to_date,
        "block_force_push": protection.block_force_push,
        "block_deletion": protection.block_deletion,
        "created_at": protection.created,
    }


def _allow_list(enabled: bool | None, names: list[str] | None, current: list[str]) -> list[str]:
    # Gitea's enable_*_whitelist: false empties the list; names given replace it; neither keeps it.
    if enabled is False:
        return []
    return current if names is None else names


def _protection_fields(repository: Repository, payload: BranchProtectionIn, current: BranchProtection | None) -> dict:
    """save_branch_protection's arguments: the payload over the current protection (or the defaults)."""
    now = protection_out(current) if current is not None else {}
    require_pull_request = payload.require_pull_request
    if payload.enable_push is not None:
        if require_pull_request is not None and require_pull_request == payload.enable_push:
            raise ValidationError("enable_push and require_pull_request contradict each other; send one of them.")
        require_pull_request = not payload.enable_push
    pattern = payload.rule_name or payload.branch_name or now.get("rule_name", "")

    def keep(value, name: str, default):
        return value if value is not None else now.get(name, default)

    push_users = _allow_list(
        payload.enable_push_whitelist, payload.push_whitelist_usernames, now.get("push_whitelist_usernames", [])
    )
    push_teams = _allow_list(
        payload.enable_push_whitelist, payload.push_whitelist_teams, now.get("push_whitelist_teams", [])
    )
    merge_users = _allow_list(
        payload.enable_merge_whitelist, payload.merge_whitelist_usernames, now.get("merge_whitelist_usernames", [])
    )
    merge_teams = _allow_list(
        payload.enable_merge_whitelist, payload.merge_whitelist_teams, now.get("merge_whitelist_teams", [])
    )
    checks = _allow_list(
        payload.enable_status_check, payload.status_check_contexts, now.get("status_check_contexts", [])
    )
    return {
        "branch_pattern": pattern,
        "require_pull_request": keep(require_pull_request, "require_pull_request", True),
        "required_checks": checks,
        "require_up_to_date": keep(payload.block_on_outdated_branch, "block_on_outdated_branch", False),
        "block_force_push": keep(payload.block_force_push, "block_force_push", True),
        "block_deletion": keep(payload.block_deletion, "block_deletion", True),
        "push_users": _people(push_users),
        "push_teams": _teams(repository.owner, push_teams),
        "merge_users": _people(merge_users),
        "merge_teams": _teams(repository.owner, merge_teams),
    }


def _protection(repository: Repository, name: str) -> BranchProtection:
    protection = BranchProtection.objects.filter(repository=repository, branch_pattern=name).first()
    if protection is None:
        raise Http404("Branch protection not found")
    return protection


@router.get(
    "/repos/{owner}/{repo}/branch_protections",
    response=list[BranchProtectionOut],
    tags=["branch protection"],
    summary="List branch protections",
)
def list_branch_protections(request: HttpRequest, owner: str, repo: str):
    repository = _repo(request, owner, repo, Role.ADMIN)
    protections = BranchProtection.objects.filter(repository=repository).prefetch_related(
        "push_users", "push_teams", "merge_users", "merge_teams"
    )
    return [protection_out(p) for p in protections]


@router.post(
    "/repos/{owner}/{repo}/branch_protections",
    response={201: BranchProtectionOut},
    tags=["branch protection"],
    summary="Protect a branch pattern",
    description="`rule_name` (or `branch_name`) is the pattern, such as `main` or `release/*`.",
)
def create_branch_protection(request: HttpRequest, owner: str, repo: str, payload: BranchProtectionIn):
    repository = _repo_to_change(request, owner, repo, Role.ADMIN)
    protection = services.save_branch_protection(
        None, actor=current_user(request), repository=repository, **_protection_fields(repository, payload, None)
    )
    return Status(201, protection_out(protection))


@router.get(
    "/repos/{owner}/{repo}/branch_protections/{path:name}",
    response=BranchProtectionOut,
    tags=["branch protection"],
    summary="Get a branch protection",
)
def get_branch_protection(request: HttpRequest, owner: str, repo: str, name: str):
    return protection_out(_protection(_repo(request, owner, repo, Role.ADMIN), name))


@router.patch(
    "/repos/{owner}/{repo}/branch_protections/{path:name}",
    response=BranchProtectionOut,
    tags=["branch protection"],
    summary="Change a branch protection",
)
def edit_branch_protection(request: HttpRequest, owner: str, repo: str, name: str, payload: BranchProtectionIn):
    repository = _repo_to_change(request, owner, repo, Role.ADMIN)
    protection = _protection(repository, name)
    protection = services.save_branch_protection(
        protection, actor=current_user(request), **_protection_fields(repository, payload, protection)
    )
    return protection_out(protection)


@router.delete(
    "/repos/{owner}/{repo}/branch_protections/{path:name}",
    response={204: None},
    tags=["branch protection"],
    summary="Remove a branch protection",
)
def delete_branch_protection(request: HttpRequest, owner: str, repo: str, name: str):
    repository = _repo_to_change(request, owner, repo, Role.ADMIN)
    services.delete_branch_protection(_protection(repository, name), actor=current_user(request))
    return Status(204, None)


# Approval rules of a repository, and the templates an organization gives its repositories.


def rule_out(rule: ApprovalRule) -> dict:
    out = {
        "id": rule.pk,
        "name": rule.name,
        "branch_pattern": rule.branch_pattern,
        "required_approvals": rule.required_approvals,
        "users": [u.username for u in rule.users.all()],
        "teams": [t.name for t in rule.teams.all()],
        "exclude_committers": rule.exclude_committers,
        "dismissal": rule.dismissal,
        "created_at": rule.created,
    }
    if rule.organization_id:
        out |= {"organization": rule.organization.username, "repository_pattern": rule.repository_pattern}
    return out


def _rule_fields(owner: User, payload: ApprovalRuleIn, current: ApprovalRule | None) -> dict:
    """save_approval_rule's arguments: the payload over the current rule (or the defaults)."""
    now = rule_out(current) if current is not None else {}

    def keep(name: str, default):
        value = getattr(payload, name, None)
        return value if value is not None else now.get(name, default)

    fields = {
        "name": keep("name", ""),
        "branch_pattern": keep("branch_pattern", "*"),
        "required_approvals": keep("required_approvals", 1),
        "users": _people(keep("users", [])),
        "teams": _teams(owner, keep("teams", [])),
        "exclude_committers": keep("exclude_committers", False),
        "dismissal": keep("dismissal", ApprovalRule.Dismissal.NEW_CODE),
    }
    if isinstance(payload, ApprovalRuleTemplateIn):
        fields["repository_pattern"] = keep("repository_pattern", "*")
    return fields


def _repo_rule(repository: Repository, rule_id: int) -> ApprovalRule:
    rule = ApprovalRule.objects.filter(repository=repository, pk=rule_id).first()
    if rule is None:
        raise Http404("Approval rule not found")
    return rule


@router.get(
    "/repos/{owner}/{repo}/approval_rules",
    response=list[ApprovalRuleOut],
    tags=["approval rule"],
    summary="List a repository's approval rules",
)
def list_approval_rules(request: HttpRequest, owner: str, repo: str):
    repository = _repo(request, owner, repo, Role.ADMIN)
    found = ApprovalRule.objects.filter(repository=repository).prefetch_related("users", "teams")
    return [rule_out(rule) for rule in found]


@router.post(
    "/repos/{owner}/{repo}/approval_rules",
    response={201: ApprovalRuleOut},
    tags=["approval rule"],
    summary="Add an approval rule",
    description="`required_approvals` from the pool of `users` and `teams` (empty: anyone with write access).",
)
def create_approval_rule(request: HttpRequest, owner: str, repo: str, payload: ApprovalRuleIn):
    repository = _repo_to_change(request, owner, repo, Role.ADMIN)
    rule = services.save_approval_rule(
        None, actor=current_user(request), repository=repository, **_rule_fields(repository.owner, payload, None)
    )
    return Status(201, rule_out(rule))


@router.get(
    "/repos/{owner}/{repo}/approval_rules/{id}",
    response=ApprovalRuleOut,
    tags=["approval rule"],
    summary="Get an approval rule",
)
def get_approval_rule(request: HttpRequest, owner: str, repo: str, id: int):
    return rule_out(_repo_rule(_repo(request, owner, repo, Role.ADMIN), id))


@router.patch(
    "/repos/{owner}/{repo}/approval_rules/{id}",
    response=ApprovalRuleOut,
    tags=["approval rule"],
    summary="Change an approval rule",
)
def edit_approval_rule(request: HttpRequest, owner: str, repo: str, id: int, payload: ApprovalRuleIn):
    repository = _repo_to_change(request, owner, repo, Role.ADMIN)
    rule = _repo_rule(repository, id)
    rule = services.save_approval_rule(
        rule, actor=current_user(request), **_rule_fields(repository.owner, payload, rule)
    )
    return rule_out(rule)


@router.delete(
    "/repos/{owner}/{repo}/approval_rules/{id}",
    response={204: None},
    tags=["approval rule"],
    summary="Remove an approval rule",
)
def delete_approval_rule(request: HttpRequest, owner: str, repo: str, id: int):
    repository = _repo_to_change(request, owner, repo, Role.ADMIN)
    services.delete_approval_rule(_repo_rule(repository, id), actor=current_user(request))
    return Status(204, None)


def _org(request: HttpRequest, org: str, *, write: bool = False) -> User:
    """An organization whose templates the caller administers: outsiders get 404, members who do not own it 403."""
    require_token_scope(request, "write:repo" if write else "read:repo")
    return get_org_for_member(current_user(request), org, admin=True)


def _template(organization: User, rule_id: int) -> ApprovalRule:
    rule = ApprovalRule.objects.filter(organization=organization, pk=rule_id).select_related("organization").first()
    if rule is None:
        raise Http404("Approval rule template not found")
    return rule


@router.get(
    "/orgs/{org}/approval_rule_templates",
    response=list[ApprovalRuleTemplateOut],
    tags=["approval rule"],
    summary="List an organization's approval rule templates",
)
def list_approval_rule_templates(request: HttpRequest, org: str):
    organization = _org(request, org)
    found = ApprovalRule.objects.filter(organization=organization).select_related("organization")
    return [rule_out(rule) for rule in found.prefetch_related("users", "teams")]


@router.post(
    "/orgs/{org}/approval_rule_templates",
    response={201: ApprovalRuleTemplateOut},
    tags=["approval rule"],
    summary="Add an approval rule template",
    description="The rule applies to the organization's repositories whose names match `repository_pattern`.",
)
def create_approval_rule_template(request: HttpRequest, org: str, payload: ApprovalRuleTemplateIn):
    organization = _org(request, org, write=True)
    rule = services.save_approval_rule(
        None, actor=current_user(request), organization=organization, **_rule_fields(organization, payload, None)
    )
    return Status(201, rule_out(rule))


@router.get(
    "/orgs/{org}/approval_rule_templates/{id}",
    response=ApprovalRuleTemplateOut,
    tags=["approval rule"],
    summary="Get an approval rule template",
)
def get_approval_rule_template(request: HttpRequest, org: str, id: int):
    return rule_out(_template(_org(request, org), id))


@router.patch(
    "/orgs/{org}/approval_rule_templates/{id}",
    response=ApprovalRuleTemplateOut,
    tags=["approval rule"],
    summary="Change an approval rule template",
)
def edit_approval_rule_template(request: HttpRequest, org: str, id: int, payload: ApprovalRuleTemplateIn):
    organization = _org(request, org, write=True)
    rule = _template(organization, id)
    rule = services.save_approval_rule(rule, actor=current_user(request), **_rule_fields(organization, payload, rule))
    return rule_out(rule)


@router.delete(
    "/orgs/{org}/approval_rule_templates/{id}",
    response={204: None},
    tags=["approval rule"],
    summary="Remove an approval rule template",
)
def delete_approval_rule_template(request: HttpRequest, org: str, id: int):
    organization = _org(request, org, write=True)
    services.delete_approval_rule(_template(organization, id), actor=current_user(request))
    return Status(204, None)
