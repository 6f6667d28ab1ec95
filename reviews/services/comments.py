"""Comments, inline threads, reviews and the suggestions that authors commit from the browser."""

import re
from collections.abc import Iterable
from dataclasses import dataclass

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from portal import audit
from portal.models import User
from repos import git
from repos import services as repo_services
from repos.access import Principal
from repos.models import Repository, Role
from reviews import access, notifications, rules, signals
from reviews.models import Comment, PullRequest, Review, ReviewRequest
from reviews.services._base import (
    Kind,
    MergeRefused,
    existing_branch_sha,
    old_side_path,
    person_of,
    plain_text,
    record_event,
    require_role,
    touch,
)
from reviews.services.pulls import carry_thread, dismiss_reviews

_SUGGESTION_RE = re.compile(r"^```suggestion[ \t]*\r?\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)


def suggestion_of(body: str) -> str | None:
    """The replacement text of the first suggestion block in a comment, without its final line break."""
    match = _SUGGESTION_RE.search(plain_text(body))
    if match is None:
        return None
    return match.group(1).removesuffix("\n").removesuffix("\r")


def _revision_head(pr: PullRequest, commit_sha: str | None) -> str:
    if not commit_sha:
        return pr.head_sha
    if commit_sha == pr.head_sha or pr.revisions.filter(head_sha=commit_sha).exists():
        return commit_sha
    raise ValidationError(f"{commit_sha[:12]} is not a revision of this pull request.")


def _pending_review(pr: PullRequest, actor: User) -> Review:
    review, _created = Review.objects.get_or_create(
        pull_request=pr, author=actor, state=Review.State.PENDING, defaults={"commit_sha": pr.head_sha}
    )
    return review


def _check_lines(pr: PullRequest, *, path: str, side: str, line: int, start_line: int | None, commit_sha: str) -> str:
    """The sha the comment's lines are read from; ValidationError when they are not in the file."""
    if side not in Comment.Side.values:
        raise ValidationError("side must be LEFT or RIGHT.")
    anchor, anchor_path = commit_sha, path
    if side == Comment.Side.LEFT:
        revision = pr.revisions.filter(head_sha=commit_sha).order_by("-number").first()
        anchor = revision.merge_base_sha if revision else pr.merge_base_sha
        # The diff names a renamed file by its new name; its old side is the file under its old name.
        anchor_path = old_side_path(pr.repository, anchor, commit_sha, path)
    lines = git.file_lines(pr.repository.path, anchor, anchor_path)
    if lines is None:
        raise ValidationError(f"{git.label(path)} is not a text file on that side of the diff.")
    if start_line is not None and start_line > line:
        raise ValidationError("A comment's range must start before it ends.")
    if not 1 <= (start_line or line) <= line <= len(lines):
        raise ValidationError(f"Line {line} is not in {git.label(path)} ({len(lines)} lines).")
    return anchor


def _thread_people(thread: Comment) -> set[int]:
    return {thread.author_id, *thread.replies.values_list("author_id", flat=True)}


def _notify_comment(pr: PullRequest, comment: Comment, actor: User) -> None:
    recipients = {pr.author_id}
    if comment.reply_to_id:
        recipients |= _thread_people(comment.reply_to)
    notifications.notify(
        Kind.COMMENT,
        pr,
        actor=actor,
        recipients=User.objects.filter(pk__in=recipients),
        text=f"{actor.username} commented" + (f" on {git.label(comment.path)}" if comment.path else ""),
        url=f"{pr.get_absolute_url()}#comment-{comment.pk}",
    )


@transaction.atomic
def add_comment(
    pr: PullRequest,
    *,
    actor: User,
    body: str,
    path: str = "",
    line: int | None = None,
    start_line: int | None = None,
    side: str = Comment.Side.RIGHT,
    commit_sha: str | None = None,
    reply_to: Comment | None = None,
    pending: bool = False,
) -> Comment:
    """A general comment, an inline one on a line range, or a reply; pending ones wait for the author's review."""
    require_role(actor, pr.repository, Role.READ)
    body = plain_text(body)
    if not body.strip():
        raise ValidationError("A comment cannot be empty.")
    fields: dict = {}
    if reply_to is not None:
        if reply_to.pull_request_id != pr.pk or (reply_to.is_pending and reply_to.author_id != actor.pk):
            raise ValidationError("That thread is not on this pull request.")
        reply_to = reply_to.reply_to or reply_to
    elif path:
        if line is None:
            raise ValidationError("An inline comment needs a line.")
        head = _revision_head(pr, commit_sha)
        anchor = _check_lines(pr, path=path, side=side, line=line, start_line=start_line, commit_sha=head)
        if suggestion_of(body) is not None and side != Comment.Side.RIGHT:
            raise ValidationError("A suggestion can only change lines of the new side.")
        fields = {
            "path": path,
            "side": side,
            "line": line,
            "start_line": start_line if start_line != line else None,
            "commit_sha": anchor,
            "original_line": line,
            "original_start_line": start_line if start_line != line else None,
            "original_commit_sha": head,
            "original_base_sha": anchor if side == Comment.Side.LEFT else "",
        }
    review = _pending_review(pr, actor) if pending else None
    comment = Comment.objects.create(
        pull_request=pr, author=actor, body=body, review=review, reply_to=reply_to, **fields
    )
    if fields and fields["commit_sha"] not in (pr.head_sha, pr.merge_base_sha):
        # Written on an earlier revision: carry it to the current one now, as a push would have.
        revision = pr.revisions.filter(head_sha=fields["original_commit_sha"]).order_by("-number").first()
        carry_thread(
            comment,
            old_head=fields["original_commit_sha"],
            new_head=pr.head_sha,
            old_base=revision.merge_base_sha if revision else pr.merge_base_sha,
            new_base=pr.merge_base_sha,
        )
    if not pending:
        touch(pr)
        audit.record(actor, "pull_request.comment", pr, after={"comment": comment.pk, "path": path or None})
        signals.comment_created.send(Comment, comment=comment, pull_request=pr, actor=actor)
        _notify_comment(pr, comment, actor)
    return comment


@transaction.atomic
def edit_comment(comment: Comment, *, actor: User, body: str) -> Comment:
    """Change one's own comment."""
    require_role(actor, comment.pull_request.repository, Role.READ)
    if not access.can_edit_comment(actor, comment):
        raise PermissionDenied("You can only edit your own comments.")
    body = plain_text(body)
    if not body.strip():
        raise ValidationError("A comment cannot be empty.")
    Comment.objects.filter(pk=comment.pk).update(body=body, edited=timezone.now())
    comment.body = body
    audit.record(actor, "pull_request.edit_comment", comment.pull_request, after={"comment": comment.pk})
    return comment


@transaction.atomic
def delete_comment(comment: Comment, *, actor: User) -> None:
    """Delete one's own comment (maintainers may delete any)."""
    repo = comment.pull_request.repository
    require_role(actor, repo, Role.READ)
    if not access.can_delete_comment(actor, comment):
        raise PermissionDenied("You can only delete your own comments.")
    audit.record(actor, "pull_request.delete_comment", comment.pull_request, before={"comment": comment.pk})
    comment.delete()


@transaction.atomic
def resolve_thread(thread: Comment, *, actor: User, resolved: bool = True) -> Comment:
    """Mark an inline thread resolved (or not): its author, the PR's author or a writer may."""
    pr = thread.pull_request
    require_role(actor, pr.repository, Role.READ)
    thread = thread.reply_to or thread
    if not access.can_resolve_thread(actor, thread):
        raise PermissionDenied("Only the thread's author, the pull request's author or a writer can resolve it.")
    now = timezone.now() if resolved else None
    Comment.objects.filter(pk=thread.pk).update(resolved_at=now, resolved_by=actor if resolved else None)
    thread.resolved_at, thread.resolved_by = now, actor if resolved else None
    audit.record(
        actor, "pull_request.resolve" if resolved else "pull_request.unresolve", pr, after={"comment": thread.pk}
    )
    return thread


REVIEW_EVENTS = {
    "APPROVE": Review.State.APPROVED,
    "REQUEST_CHANGES": Review.State.CHANGES_REQUESTED,
    "COMMENT": Review.State.COMMENTED,
}


@dataclass(frozen=True)
class InlineComment:
    path: str
    line: int
    body: str
    side: str = Comment.Side.RIGHT
    start_line: int | None = None


@transaction.atomic
def submit_review(
    pr: PullRequest,
    *,
    actor: User,
    event: str,
    body: str = "",
    commit_sha: str | None = None,
    comments: Iterable[InlineComment] = (),
) -> Review:
    """Approve, request changes or comment, bound to the head the reviewer saw; publishes pending comments."""
    require_role(actor, pr.repository, Role.READ)
    state = REVIEW_EVENTS.get(event)
    if state is None:
        raise ValidationError("event must be APPROVE, REQUEST_CHANGES or COMMENT.")
    if not pr.is_open:
        raise ValidationError("Only an open pull request can be reviewed.")
    if state != Review.State.COMMENTED and not access.can_give_verdict(actor, pr):
        verb = "approve" if state == Review.State.APPROVED else "request changes on"
        raise PermissionDenied(f"You cannot {verb} your own pull request.")
    head = _revision_head(pr, commit_sha)
    body = plain_text(body)
    review = _pending_review(pr, actor)
    for item in comments:
        add_comment(
            pr,
            actor=actor,
            body=item.body,
            path=item.path,
            line=item.line,
            start_line=item.start_line,
            side=item.side,
            commit_sha=head,
            pending=True,
        )
    if state == Review.State.COMMENTED and not body.strip() and not review.comments.exists():
        raise ValidationError("A comment review needs a body or at least one comment.")
    now = timezone.now()
    Review.objects.filter(pk=review.pk).update(state=state, body=body, commit_sha=head, submitted_at=now)
    review.refresh_from_db()
    ReviewRequest.objects.filter(pull_request=pr, user=actor).delete()
    touch(pr)
    audit.record(actor, f"pull_request.review.{state}", pr, after={"commit": head, "review": review.pk})
    signals.review_submitted.send(Review, review=review, pull_request=pr, actor=actor)
    kind = {Review.State.APPROVED: Kind.APPROVED, Review.State.CHANGES_REQUESTED: Kind.CHANGES_REQUESTED}.get(
        state, Kind.REVIEW
    )
    text = {
        Review.State.APPROVED: f"{actor.username} approved",
        Review.State.CHANGES_REQUESTED: f"{actor.username} requested changes",
    }.get(state, f"{actor.username} reviewed")
    notifications.notify(
        kind, pr, actor=actor, recipients=[pr.author], text=text, url=f"{pr.get_absolute_url()}#review-{review.pk}"
    )
    threads = {c.reply_to_id for c in review.comments.all() if c.reply_to_id}
    if threads:
        people = set(Comment.objects.filter(pk__in=threads).values_list("author_id", flat=True))
        people |= set(Comment.objects.filter(reply_to__in=threads).values_list("author_id", flat=True))
        notifications.notify(
            Kind.COMMENT,
            pr,
            actor=actor,
            recipients=User.objects.filter(pk__in=people - {pr.author_id}),
            text=f"{actor.username} replied in a thread you are in",
        )
    return review


@transaction.atomic
def dismiss_review(review: Review, *, actor: User, reason: str) -> Review:
    """A maintainer dismisses an approval or a change request, with a reason."""
    pr = review.pull_request
    require_role(actor, pr.repository, Role.READ)
    if not access.can_dismiss_review(actor, pr):
        raise PermissionDenied("Only a maintainer can dismiss a review.")
    if not reason.strip():
        raise ValidationError("Say why the review is dismissed.")
    dismiss_reviews(pr, Review.objects.filter(pk=review.pk), actor=actor, reason=reason.strip())
    audit.record(actor, "pull_request.dismiss_review", pr, after={"review": review.pk, "reason": reason})
    review.refresh_from_db()
    return review


@transaction.atomic
def override_approval_rules(pr: PullRequest, *, actor: User, reason: str) -> PullRequest:
    """An admin lets the pull request merge without its approvals; recorded and shown on the page."""
    require_role(actor, pr.repository, Role.READ)
    if not access.can_override_rules(actor, pr):
        raise PermissionDenied("Only an admin can override the approval rules.")
    refusal = rules.override_blocker(pr)
    if refusal:
        raise PermissionDenied(refusal)
    if not reason.strip():
        raise ValidationError("An override needs a reason.")
    touch(pr, override_by=actor, override_reason=reason.strip()[:500], override_at=timezone.now())
    record_event(pr, "override", actor, reason=reason.strip())
    audit.record(actor, "pull_request.override_approval_rules", pr, after={"reason": reason.strip()})
    return pr


# Writing to the head branch from the browser.


def _move_branch(repo: Repository, branch: str, new_sha: str, old_sha: str, *, actor: User, message: str) -> None:
    """Compare-and-swap a branch to a commit the portal wrote, and record it as a push: its announcement makes the
    pull requests of the branch follow, as for any push."""
    reason = rules.protection_blocker(
        Principal(user=actor), repo, f"refs/heads/{branch}", is_delete=False, forced=False
    )
    if reason:
        raise PermissionDenied(reason)
    try:
        git.update_ref(repo.path, f"refs/heads/{branch}", new_sha, old_sha, message=message)
    except git.GitError:
        raise MergeRefused(f"The branch {branch} changed since you looked; reload and try again.") from None
    update = repo_services.RefUpdate(ref=f"refs/heads/{branch}", old_sha=old_sha, new_sha=new_sha)
    repo_services.record_push(repo, actor=Principal(user=actor), protocol="web", updates=[update])


def suggestion_message(comment: Comment) -> str:
    """The commit message a suggestion is proposed with, as GitHub words it."""
    return f"Apply suggestion from @{comment.author.username}"


@transaction.atomic
def apply_suggestion(comment: Comment, *, actor: User, message: str = "") -> str:
    """Commit a comment's suggestion to the head branch (the suggester as author, the message as typed, or the
    proposed one) and resolve its thread."""
    pr = comment.pull_request
    repo = pr.repository
    require_role(actor, repo, Role.READ)
    if not access.can_apply_suggestion(actor, pr):
        raise PermissionDenied("Only the author or someone with write access can apply suggestions.")
    replacement = suggestion_of(comment.body)
    if replacement is None or not comment.is_inline or comment.side != Comment.Side.RIGHT:
        raise ValidationError("This comment holds no suggestion.")
    if not pr.is_open:
        raise ValidationError("Only an open pull request takes suggestions.")
    if comment.suggestion_applied_sha:
        raise ValidationError("This suggestion is already applied.")
    if comment.outdated or comment.commit_sha != pr.head_sha:
        raise ValidationError("The lines of this suggestion changed since; it can no longer be applied.")
    head = existing_branch_sha(repo, pr.head_branch)
    if head != pr.head_sha:
        raise MergeRefused("The branch changed since you looked; reload and try again.")
    start = comment.start_line or comment.line
    message = plain_text(message).strip() or suggestion_message(comment)
    summary = message.split("\n", 1)[0]
    new_sha = git.edit_lines(
        repo.path,
        head,
        comment.path,
        start,
        comment.line,
        replacement,
        message=message + "\n",
        author=person_of(comment.author),
        committer=person_of(actor),
    )
    _move_branch(repo, pr.head_branch, new_sha, head, actor=actor, message=f"portal: {summary}")
    Comment.objects.filter(pk=comment.pk).update(suggestion_applied_sha=new_sha)
    comment.suggestion_applied_sha = new_sha
    resolve_thread(comment, actor=actor)
    record_event(pr, "suggestion_applied", actor, comment=comment.pk, commit=new_sha)
    audit.record(actor, "pull_request.apply_suggestion", pr, after={"comment": comment.pk, "commit": new_sha})
    return new_sha
