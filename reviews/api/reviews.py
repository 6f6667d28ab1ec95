"""Review endpoints: approve, request changes or comment, and read reviews and inline comments."""

from django.core.exceptions import ValidationError
from django.db.models import Count, Q
from django.http import Http404, HttpRequest, HttpResponse
from ninja import Query

from portal.api import current_user, user_out
from portal.api_pages import PageParams, paginate
from portal.api_scopes import READ_REPO, WRITE_REPO
from portal.models import User
from reviews import services
from reviews.access import get_pull
from reviews.api.lookups import get_repo
from reviews.api.router import router
from reviews.api.schemas import ReviewCommentIn, ReviewCommentOut, ReviewIn, ReviewOut
from reviews.models import Comment, PullRequest, Review

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
    "/repos/{owner}/{repo}/pulls/{index}/reviews",
    scope=READ_REPO,
    response=list[ReviewOut],
    summary="List a pull request's reviews",
)
def list_reviews(
    request: HttpRequest,
    response: HttpResponse,
    pages: Query[PageParams],
    owner: str,
    repo: str,
    index: int,
):
    pr = get_pull(get_repo(request, owner, repo), index)
    viewer = current_user(request)
    reviews = list(_visible_reviews(pr, viewer))
    return [review_out(review, pr, viewer) for review in paginate(reviews, response, pages)]


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
    scope=WRITE_REPO,
    response=ReviewOut,
    summary="Approve, request changes or comment",
    description="`commit_id` binds the review to the head you saw; an approval is of exactly that code.",
)
def create_review(request: HttpRequest, owner: str, repo: str, index: int, payload: ReviewIn):
    pr = get_pull(get_repo(request, owner, repo), index)
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


@router.get(
    "/repos/{owner}/{repo}/pulls/{index}/reviews/{id}", scope=READ_REPO, response=ReviewOut, summary="Get a review"
)
def get_review(request: HttpRequest, owner: str, repo: str, index: int, id: int):
    pr = get_pull(get_repo(request, owner, repo), index)
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
    scope=READ_REPO,
    response=list[ReviewCommentOut],
    summary="List a pull request's inline comments and their replies",
)
def list_inline_comments(
    request: HttpRequest,
    response: HttpResponse,
    pages: Query[PageParams],
    owner: str,
    repo: str,
    index: int,
):
    pr = get_pull(get_repo(request, owner, repo), index)
    viewer = current_user(request)
    comments = list(_inline_comments(pr, viewer))
    return [comment_out(c, pr, viewer) for c in paginate(comments, response, pages)]


@router.get(
    "/repos/{owner}/{repo}/pulls/{index}/reviews/{id}/comments",
    scope=READ_REPO,
    response=list[ReviewCommentOut],
    summary="List the inline comments of one review",
)
def list_review_comments(request: HttpRequest, owner: str, repo: str, index: int, id: int):
    pr = get_pull(get_repo(request, owner, repo), index)
    viewer = current_user(request)
    review = _review(pr, viewer, id)
    return [comment_out(c, pr, viewer) for c in _inline_comments(pr, viewer).filter(review=review)]
