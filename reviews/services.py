"""Every state change of pull requests: open, push, comment, review, rules, statuses, merge."""

import re
from collections.abc import Iterable
from dataclasses import dataclass

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from portal import audit
from portal.models import Team, User
from repos import code, git
from repos import services as repo_services
from repos.access import Principal, check_role, is_org_owner, role_for
from repos.models import Repository, Role
from reviews import notifications, rules
from reviews.models import (
    ApprovalRule,
    BranchProtection,
    Comment,
    CommitStatus,
    Event,
    MergeStrategy,
    Notification,
    PullRequest,
    Review,
    ReviewRequest,
    ReviewSettings,
    Revision,
)
from reviews.rules import merge_blocker

__all__ = ["merge_blocker"]

Kind = Notification.Kind


class MergeRefused(Exception):
    """The merge did not happen; the message says why, in words fit for the page."""


class StaleHead(MergeRefused):
    """The head the user saw is not the head now."""


def _require(actor: User | None, repo: Repository, need: Role) -> None:
    check_role(role_for(actor, repo), need)


def _require_author_or(actor: User, pr: PullRequest, need: Role = Role.WRITE) -> None:
    _require(actor, pr.repository, Role.READ)
    if actor.pk != pr.author_id and role_for(actor, pr.repository) < need:
        raise PermissionDenied("Only the author or someone with write access can do that.")


def _event(pr: PullRequest, kind: str, actor: User | None, **data) -> Event:
    return Event.objects.create(pull_request=pr, actor=actor, kind=kind, data=data)


def _touch(pr: PullRequest, **fields) -> None:
    fields["updated"] = timezone.now()
    PullRequest.objects.filter(pk=pr.pk).update(**fields)
    for name, value in fields.items():
        setattr(pr, name, value)


def _branch_sha(repo: Repository, branch: str) -> str:
    try:
        return git.branch_sha(repo.path, branch)
    except git.RefNotFound:
        raise ValidationError(f"There is no branch {branch!r} in {repo.full_name}.") from None


def _person(user: User) -> "git.Person":
    return git.Person(name=user.display_name, email=user.email or f"{user.username}@users.noreply")


# Opening and editing.


def _reviewers(pr: PullRequest, users: Iterable[User], teams: Iterable[Team], actor: User) -> list[User]:
    """Add review requests; returns the users who were newly asked (team members included)."""
    asked: list[User] = []
    for user in users:
        if user.pk == pr.author_id or user.is_organization:
            continue
        if role_for(user, pr.repository) < Role.READ:
            raise ValidationError(f"{user.username} cannot read {pr.repository.full_name}.")
        _request, created = ReviewRequest.objects.get_or_create(
            pull_request=pr, user=user, defaults={"requested_by": actor}
        )
        if created:
            asked.append(user)
    for team in teams:
        if team.organization_id != pr.repository.owner_id:
            raise ValidationError(f"The team {team.name} is not in {pr.repository.owner.username}.")
        _request, created = ReviewRequest.objects.get_or_create(
            pull_request=pr, team=team, defaults={"requested_by": actor}
        )
        if created:
            asked += [member for member in team.members.all() if member.pk != pr.author_id]
    return asked


def _notify_requested(pr: PullRequest, asked: list[User], actor: User) -> None:
    if asked:
        notifications.notify(
            Kind.REVIEW_REQUESTED, pr, actor=actor, recipients=asked, text=f"{actor.username} asked for your review"
        )


@transaction.atomic
def open_pull_request(
    repo: Repository,
    *,
    actor: User,
    title: str,
    base: str,
    head: str,
    description: str = "",
    draft: bool = False,
    reviewers: Iterable[User] = (),
    teams: Iterable[Team] = (),
) -> PullRequest:
    """Open a pull request from head into base, with its first revision."""
    _require(actor, repo, Role.READ)
    title = title.strip()
    if not title:
        raise ValidationError("A pull request needs a title.")
    if base == head:
        raise ValidationError("The base and head branches must differ.")
    base_sha, head_sha = _branch_sha(repo, base), _branch_sha(repo, head)
    if PullRequest.objects.open().filter(repository=repo, base_branch=base, head_branch=head).exists():
        raise ValidationError(f"A pull request from {head} into {base} is already open.")
    merge_base = git.merge_base(repo.path, base_sha, head_sha)
    if merge_base is None:
        raise ValidationError(f"{head} and {base} have no history in common.")
    if merge_base == head_sha:
        raise ValidationError(f"{base} already contains everything in {head}.")
    # Numbers are per repository; the unique constraint turns a race for the same number into an error, not a duplicate.
    number = (PullRequest.objects.filter(repository=repo).aggregate(n=Max("number"))["n"] or 0) + 1
    pr = PullRequest.objects.create(
        repository=repo,
        number=number,
        title=title[:255],
        description=description,
        author=actor,
        base_branch=base,
        head_branch=head,
        head_sha=head_sha,
        base_sha=base_sha,
        merge_base_sha=merge_base,
        draft=draft,
    )
    _new_revision(pr, head_sha=head_sha, base_sha=base_sha, merge_base=merge_base, pusher=actor, forced=False)
    _event(pr, "opened", actor)
    asked = _reviewers(pr, reviewers, teams, actor)
    for user in asked:
        _event(pr, "review_requested", actor, reviewer=user.username)
    audit.record(actor, "pull_request.open", pr, after={"base": base, "head": head, "head_sha": head_sha})
    _notify_requested(pr, asked, actor)
    return pr


@transaction.atomic
def update_pull_request(
    pr: PullRequest,
    *,
    actor: User,
    title: str | None = None,
    description: str | None = None,
    base: str | None = None,
    draft: bool | None = None,
) -> PullRequest:
    """Edit the title, description, draft flag or base branch; a new base dismisses every approval."""
    _require_author_or(actor, pr)
    before = {"title": pr.title, "base": pr.base_branch, "draft": pr.draft}
    changes: dict = {}
    if title is not None and title.strip() != pr.title:
        if not title.strip():
            raise ValidationError("A pull request needs a title.")
        changes["title"] = title.strip()[:255]
        _event(pr, "renamed", actor, old=pr.title, new=changes["title"])
    if description is not None and description != pr.description:
        changes["description"] = description
    if draft is not None and draft != pr.draft:
        changes["draft"] = draft
        _event(pr, "draft" if draft else "ready", actor)
    if base is not None and base != pr.base_branch:
        if not pr.is_open:
            raise ValidationError("Only an open pull request can change its base.")
        if base == pr.head_branch:
            raise ValidationError("The base and head branches must differ.")
        base_sha = _branch_sha(pr.repository, base)
        merge_base = git.merge_base(pr.repository.path, base_sha, pr.head_sha)
        if merge_base is None:
            raise ValidationError(f"{pr.head_branch} and {base} have no history in common.")
        _event(pr, "retargeted", actor, old=pr.base_branch, new=base)
        changes.update(base_branch=base, base_sha=base_sha, merge_base_sha=merge_base)
        _touch(pr, **changes)
        changes = {}
        _dismiss(pr, pr.reviews.filter(state=Review.State.APPROVED), actor=actor, reason=f"the base changed to {base}")
        _new_revision(pr, head_sha=pr.head_sha, base_sha=base_sha, merge_base=merge_base, pusher=actor, forced=False)
    if changes:
        _touch(pr, **changes)
    audit.record(
        actor,
        "pull_request.update",
        pr,
        before=before,
        after={"title": pr.title, "base": pr.base_branch, "draft": pr.draft},
    )
    return pr


@transaction.atomic
def request_review(
    pr: PullRequest, *, actor: User, users: Iterable[User] = (), teams: Iterable[Team] = ()
) -> list[User]:
    """Ask users or teams to review; returns who was newly asked."""
    _require_author_or(actor, pr)
    asked = _reviewers(pr, users, teams, actor)
    for user in asked:
        _event(pr, "review_requested", actor, reviewer=user.username)
    audit.record(actor, "pull_request.request_review", pr, after={"users": [u.username for u in asked]})
    _notify_requested(pr, asked, actor)
    return asked


@transaction.atomic
def remove_review_request(pr: PullRequest, *, actor: User, user: User | None = None, team: Team | None = None) -> None:
    """Withdraw a review request of a user or a team."""
    _require_author_or(actor, pr)
    pr.review_requests.filter(user=user, team=team).delete()
    audit.record(actor, "pull_request.remove_review_request", pr, after={"user": user and user.username})


def _transition(pr: PullRequest, new: str, **fields) -> None:
    """Move the state, failing if another process changed it first."""
    if new not in PullRequest.TRANSITIONS[pr.state]:
        raise ValidationError(f"A {pr.state} pull request cannot become {new}.")
    now = timezone.now()
    # Nothing updated: another request got there first (merged or closed it meanwhile).
    if not PullRequest.objects.filter(pk=pr.pk, state=pr.state).update(state=new, updated=now, **fields):
        raise ValidationError("The pull request changed meanwhile; reload it.", code="conflict")
    pr.state = new
    pr.updated = now
    for name, value in fields.items():
        setattr(pr, name, value)


@transaction.atomic
def close_pull_request(pr: PullRequest, *, actor: User) -> PullRequest:
    """Close without merging."""
    _require_author_or(actor, pr)
    _transition(pr, PullRequest.State.CLOSED, closed_at=timezone.now())
    _event(pr, "closed", actor)
    audit.record(actor, "pull_request.close", pr)
    return pr


@transaction.atomic
def reopen_pull_request(pr: PullRequest, *, actor: User) -> PullRequest:
    """Reopen a closed pull request, catching up with its head branch."""
    _require_author_or(actor, pr)
    head_sha = _branch_sha(pr.repository, pr.head_branch)
    _branch_sha(pr.repository, pr.base_branch)
    if (
        PullRequest.objects.open()
        .filter(repository=pr.repository, base_branch=pr.base_branch, head_branch=pr.head_branch)
        .exists()
    ):
        raise ValidationError(f"Another pull request from {pr.head_branch} into {pr.base_branch} is open.")
    _transition(pr, PullRequest.State.OPEN, closed_at=None)
    _event(pr, "reopened", actor)
    if head_sha != pr.head_sha:
        _add_revision(pr, head_sha=head_sha, pusher=actor, forced=False)
    audit.record(actor, "pull_request.reopen", pr)
    return pr


# Revisions: one per push to the head branch.


def _new_revision(
    pr: PullRequest, *, head_sha: str, base_sha: str, merge_base: str, pusher: User | None, forced: bool
) -> Revision:
    repo = pr.repository
    last = pr.revisions.order_by("-number").first()
    return Revision.objects.create(
        pull_request=pr,
        number=(last.number + 1) if last else 1,
        head_sha=head_sha,
        base_sha=base_sha,
        merge_base_sha=merge_base,
        patch_id=git.patch_id(repo.path, base_sha, head_sha),
        pusher=pusher,
        forced=forced,
        commit_count=len(git.commits_between(repo.path, merge_base, head_sha, limit=10_000)),
    )


def _dismiss(pr: PullRequest, reviews, *, actor: User | None, reason: str) -> list[Review]:
    dismissed = list(reviews.filter(dismissed_at__isnull=True, submitted_at__isnull=False).select_related("author"))
    if dismissed:
        Review.objects.filter(pk__in=[r.pk for r in dismissed]).update(
            dismissed_at=timezone.now(), dismissed_reason=reason[:300]
        )
        _event(pr, "approvals_dismissed", actor, reviewers=[r.author.username for r in dismissed], reason=reason)
    return dismissed


def _add_revision(pr: PullRequest, *, head_sha: str, pusher: User | None, forced: bool) -> Revision:
    """Record a new head: dismiss approvals of other code, carry inline threads to the new lines."""
    repo = pr.repository
    try:
        base_sha = git.branch_sha(repo.path, pr.base_branch)
    except git.RefNotFound:
        base_sha = pr.base_sha
    merge_base = git.merge_base(repo.path, base_sha, head_sha) or pr.merge_base_sha
    old_head, old_base = pr.head_sha, pr.merge_base_sha
    revision = _new_revision(
        pr, head_sha=head_sha, base_sha=base_sha, merge_base=merge_base, pusher=pusher, forced=forced
    )
    _touch(pr, head_sha=head_sha, base_sha=base_sha, merge_base_sha=merge_base)
    same_patch = set(pr.revisions.filter(patch_id=revision.patch_id).values_list("head_sha", flat=True))
    always = any(
        rule.dismissal == ApprovalRule.Dismissal.ALWAYS for rule in rules.approval_rules_for(repo, pr.base_branch)
    )
    stale = pr.reviews.filter(state=Review.State.APPROVED).exclude(commit_sha=head_sha)
    if not always:
        stale = stale.exclude(commit_sha__in=same_patch)
    _dismiss(pr, stale, actor=None, reason=f"new code was pushed (revision {revision.number})")
    for thread in pr.comments.filter(reply_to=None, outdated=False).exclude(path=""):
        _carry_thread(thread, old_head=old_head, new_head=head_sha, old_base=old_base, new_base=merge_base)
    return revision


def _carry_thread(thread: Comment, *, old_head: str, new_head: str, old_base: str, new_base: str) -> None:
    """Move an inline thread to the same lines of a new revision, or mark it outdated when they changed."""
    new_anchor = new_head if thread.side == Comment.Side.RIGHT else new_base
    if thread.commit_sha == new_anchor:
        return
    ranges = git.changed_ranges(thread.pull_request.repository.path, thread.commit_sha, new_anchor, thread.path)
    start = thread.start_line or thread.line
    shift = 0
    outdated = ranges is None
    for old_start, old_lines, _new_start, new_lines in ranges or ():
        # A pure insertion after line old_start touches no old line, so it only shifts the lines below it.
        old_end = old_start + old_lines - 1 if old_lines else old_start
        first = old_start if old_lines else old_start + 1
        if old_lines and first <= thread.line and old_end >= start:
            outdated = True
            break
        if first <= start:
            shift += new_lines - old_lines
    if outdated:
        Comment.objects.filter(pk=thread.pk).update(outdated=True)
        return
    Comment.objects.filter(pk=thread.pk).update(
        commit_sha=new_anchor,
        line=thread.line + shift,
        start_line=(thread.start_line + shift) if thread.start_line else None,
    )


def record_branch_update(
    repo: Repository, *, ref: str, old_sha: str, new_sha: str, forced: bool, pusher: User | None
) -> list[PullRequest]:
    """Follow a branch that moved: new revisions for the pull requests it heads; returns those (for the push's output)."""
    if not ref.startswith("refs/heads/"):
        return []
    branch = ref.removeprefix("refs/heads/")
    deleted = new_sha.strip("0") == ""
    touched = []
    with transaction.atomic():
        for pr in PullRequest.objects.open().filter(repository=repo, head_branch=branch).select_related("repository"):
            touched.append(pr)
            if deleted:
                _event(pr, "head_deleted", pusher)
            elif pr.head_sha != new_sha:
                _add_revision(pr, head_sha=new_sha, pusher=pusher, forced=forced)
        if not deleted:
            for pr in (
                PullRequest.objects.open().filter(repository=repo, base_branch=branch).select_related("repository")
            ):
                _merged_by_push(pr, new_sha, pusher)
    return touched


def _merged_by_push(pr: PullRequest, base_sha: str, pusher: User | None) -> None:
    """A pull request whose head a push brought into its base (merged by hand, where nothing forbids it) is merged."""
    if not git.is_ancestor(pr.repository.path, pr.head_sha, base_sha):
        return
    _transition(pr, PullRequest.State.MERGED, merged_at=timezone.now(), merged_by=pusher, merge_commit_sha=base_sha)
    _event(pr, "merged", pusher, commit=base_sha, by_push=True)
    audit.record(pusher, "pull_request.merged_by_push", pr, after={"commit": base_sha})


def open_pull_requests_for(repo: Repository, branch: str) -> list[PullRequest]:
    return list(PullRequest.objects.open().filter(repository=repo, head_branch=branch))


# Comments and reviews.

_SUGGESTION_RE = re.compile(r"^```suggestion[ \t]*\r?\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)


def suggestion_of(body: str) -> str | None:
    """The replacement text of the first suggestion block in a comment, without its final line break."""
    match = _SUGGESTION_RE.search(body.replace("\r\n", "\n"))
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
    anchor = commit_sha
    if side == Comment.Side.LEFT:
        revision = pr.revisions.filter(head_sha=commit_sha).order_by("-number").first()
        anchor = revision.merge_base_sha if revision else pr.merge_base_sha
    lines = git.file_lines(pr.repository.path, anchor, path)
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
    _require(actor, pr.repository, Role.READ)
    body = body.replace("\r\n", "\n")
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
        _carry_thread(
            comment,
            old_head=fields["original_commit_sha"],
            new_head=pr.head_sha,
            old_base=revision.merge_base_sha if revision else pr.merge_base_sha,
            new_base=pr.merge_base_sha,
        )
    if not pending:
        _touch(pr)
        audit.record(actor, "pull_request.comment", pr, after={"comment": comment.pk, "path": path or None})
        _notify_comment(pr, comment, actor)
    return comment


@transaction.atomic
def edit_comment(comment: Comment, *, actor: User, body: str) -> Comment:
    """Change one's own comment."""
    _require(actor, comment.pull_request.repository, Role.READ)
    if comment.author_id != actor.pk:
        raise PermissionDenied("You can only edit your own comments.")
    body = body.replace("\r\n", "\n")
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
    _require(actor, repo, Role.READ)
    if comment.author_id != actor.pk and role_for(actor, repo) < Role.MAINTAIN:
        raise PermissionDenied("You can only delete your own comments.")
    audit.record(actor, "pull_request.delete_comment", comment.pull_request, before={"comment": comment.pk})
    comment.delete()


@transaction.atomic
def resolve_thread(thread: Comment, *, actor: User, resolved: bool = True) -> Comment:
    """Mark an inline thread resolved (or not): its author, the PR's author or a writer may."""
    pr = thread.pull_request
    _require(actor, pr.repository, Role.READ)
    thread = thread.reply_to or thread
    if actor.pk not in (thread.author_id, pr.author_id) and role_for(actor, pr.repository) < Role.WRITE:
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
    _require(actor, pr.repository, Role.READ)
    state = REVIEW_EVENTS.get(event)
    if state is None:
        raise ValidationError("event must be APPROVE, REQUEST_CHANGES or COMMENT.")
    if not pr.is_open:
        raise ValidationError("Only an open pull request can be reviewed.")
    if state != Review.State.COMMENTED and actor.pk == pr.author_id:
        verb = "approve" if state == Review.State.APPROVED else "request changes on"
        raise PermissionDenied(f"You cannot {verb} your own pull request.")
    head = _revision_head(pr, commit_sha)
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
    _touch(pr)
    audit.record(actor, f"pull_request.review.{state}", pr, after={"commit": head, "review": review.pk})
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
    _require(actor, pr.repository, Role.MAINTAIN)
    if not reason.strip():
        raise ValidationError("Say why the review is dismissed.")
    _dismiss(pr, Review.objects.filter(pk=review.pk), actor=actor, reason=reason.strip())
    audit.record(actor, "pull_request.dismiss_review", pr, after={"review": review.pk, "reason": reason})
    review.refresh_from_db()
    return review


@transaction.atomic
def override_approval_rules(pr: PullRequest, *, actor: User, reason: str) -> PullRequest:
    """An admin lets the pull request merge without its approvals; recorded and shown on the page."""
    _require(actor, pr.repository, Role.ADMIN)
    if not reason.strip():
        raise ValidationError("An override needs a reason.")
    _touch(pr, override_by=actor, override_reason=reason.strip()[:500], override_at=timezone.now())
    _event(pr, "override", actor, reason=reason.strip())
    audit.record(actor, "pull_request.override_approval_rules", pr, after={"reason": reason.strip()})
    return pr


# Writing to the head branch from the browser.


def _move_branch(repo: Repository, branch: str, new_sha: str, old_sha: str, *, actor: User, message: str) -> None:
    """Compare-and-swap a branch to a commit the portal wrote, and record it as a push (which follows up on it)."""
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


@transaction.atomic
def apply_suggestion(comment: Comment, *, actor: User) -> str:
    """Commit a comment's suggestion to the head branch (the suggester as author) and resolve its thread."""
    pr = comment.pull_request
    repo = pr.repository
    _require(actor, repo, Role.READ)
    if actor.pk != pr.author_id and role_for(actor, repo) < Role.WRITE:
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
    head = _branch_sha(repo, pr.head_branch)
    if head != pr.head_sha:
        raise MergeRefused("The branch changed since you looked; reload and try again.")
    start = comment.start_line or comment.line
    summary = f"Apply suggestion to {git.label(comment.path)}"
    new_sha = git.edit_lines(
        repo.path,
        head,
        comment.path,
        start,
        comment.line,
        replacement,
        message=f"{summary}\n\nSuggested in {pr.repository.full_name}#{pr.number} by {comment.author.username}.\n",
        author=_person(comment.author),
        committer=_person(actor),
    )
    _move_branch(repo, pr.head_branch, new_sha, head, actor=actor, message=f"portal: {summary}")
    Comment.objects.filter(pk=comment.pk).update(suggestion_applied_sha=new_sha)
    comment.suggestion_applied_sha = new_sha
    record_branch_update(
        repo, ref=f"refs/heads/{pr.head_branch}", old_sha=head, new_sha=new_sha, forced=False, pusher=actor
    )
    resolve_thread(comment, actor=actor)
    _event(pr, "suggestion_applied", actor, comment=comment.pk, commit=new_sha)
    audit.record(actor, "pull_request.apply_suggestion", pr, after={"comment": comment.pk, "commit": new_sha})
    return new_sha


# Merging.


def default_merge_message(pr: PullRequest, strategy: str) -> str:
    """What the merge dialog proposes: squash lists the commits, a merge commit names the pull request."""
    if strategy == MergeStrategy.SQUASH:
        path = pr.repository.path
        summaries = code.cached(
            ("squash-summaries", str(path), pr.merge_base_sha, pr.head_sha),
            lambda: [c.summary for c in git.commits_between(path, pr.merge_base_sha, pr.head_sha, limit=1000)],
        )
        lines = "\n".join(f"* {summary}" for summary in summaries)
        return f"{pr.title} (#{pr.number})\n\n{lines}\n"
    return f"Merge pull request #{pr.number} from {pr.head_branch}\n\n{pr.title}\n"


def _merged_commit(pr: PullRequest, strategy: str, base_sha: str, message: str, actor: User) -> str:
    path = pr.repository.path
    person = _person(actor)
    try:
        if strategy == MergeStrategy.FAST_FORWARD:
            if not git.is_ancestor(path, base_sha, pr.head_sha):
                raise MergeRefused(f"{pr.head_branch} is not a fast-forward of {pr.base_branch}; rebase it first.")
            return pr.head_sha
        if strategy == MergeStrategy.SQUASH:
            author = _person(pr.author)
            return git.squash_commit(path, base_sha, pr.head_sha, message=message, author=author, committer=person)
        if strategy == MergeStrategy.REBASE:
            return git.rebase_commits(path, base_sha, pr.head_sha, committer=person)
        return git.merge_commit(path, base_sha, pr.head_sha, message=message, author=person, committer=person)
    except git.MergeConflict as exc:
        raise MergeRefused(
            f"Conflicts in {', '.join(git.label(p) for p in exc.paths)} must be resolved first."
        ) from None


def merge_pull_request(
    pr: PullRequest,
    *,
    actor: User,
    strategy: str,
    head_sha: str,
    message: str = "",
    delete_branch: bool | None = None,
) -> PullRequest:
    """Merge exactly the head the user saw, if merge_blocker allows; the base moves by compare-and-swap."""
    repo = pr.repository
    _require(actor, repo, Role.READ)
    allowed = rules.review_settings(repo).allowed_strategies()
    if strategy not in allowed:
        raise ValidationError(f"{strategy!r} is not allowed here; use one of {', '.join(allowed)}.")
    if head_sha != pr.head_sha or _branch_sha(repo, pr.head_branch) != head_sha:
        raise StaleHead("The branch changed since you looked; review the new commits and try again.")
    reason = merge_blocker(pr, actor)
    if reason:
        raise MergeRefused(reason)
    base_ref = f"refs/heads/{pr.base_branch}"
    base_sha = _branch_sha(repo, pr.base_branch)
    new_sha = _merged_commit(pr, strategy, base_sha, message.strip() or default_merge_message(pr, strategy), actor)
    with transaction.atomic():
        # The database claims the merge, then the ref moves only if the base is still where the merge was built
        # on: a push that raced in keeps its commit, and this merge fails instead of overwriting it.
        try:
            _transition(
                pr,
                PullRequest.State.MERGED,
                merged_at=timezone.now(),
                merged_by=actor,
                merge_commit_sha=new_sha,
                merge_strategy=strategy,
            )
        except ValidationError as exc:
            raise MergeRefused(exc.messages[0]) from None
        try:
            git.update_ref(repo.path, base_ref, new_sha, base_sha, message=f"portal: merge pull request #{pr.number}")
        except git.GitError:
            raise MergeRefused(f"{pr.base_branch} moved while merging; try again.") from None
        update = repo_services.RefUpdate(ref=base_ref, old_sha=base_sha, new_sha=new_sha)
        repo_services.record_push(repo, actor=Principal(user=actor), protocol="web", updates=[update])
        _event(pr, "merged", actor, strategy=strategy, commit=new_sha)
        audit.record(actor, "pull_request.merge", pr, after={"strategy": strategy, "head": head_sha, "commit": new_sha})
        people = {pr.author_id, *pr.reviews.exclude(state=Review.State.PENDING).values_list("author_id", flat=True)}
        notifications.notify(
            Kind.MERGED,
            pr,
            actor=actor,
            recipients=User.objects.filter(pk__in=people),
            text=f"{actor.username} merged it",
        )
    if delete_branch if delete_branch is not None else rules.review_settings(repo).delete_branch_after_merge:
        try:
            delete_head_branch(pr, actor=actor)
        except PermissionDenied as exc:
            # The merge happened; a protected or default head branch simply stays, and the page says why.
            _event(pr, "branch_kept", actor, branch=pr.head_branch, reason=str(exc))
    return pr


def delete_head_branch(pr: PullRequest, *, actor: User) -> bool:
    """Delete a merged or closed pull request's branch, only if it still is where the pull request left it."""
    repo = pr.repository
    _require(actor, repo, Role.WRITE)
    if pr.is_open:
        raise ValidationError("Close or merge the pull request before deleting its branch.")
    ref = f"refs/heads/{pr.head_branch}"
    reason = rules.protection_blocker(Principal(user=actor), repo, ref, is_delete=True, forced=False)
    if reason or pr.head_branch == repo.default_branch:
        raise PermissionDenied(reason or "The default branch cannot be deleted.")
    try:
        git.delete_ref(repo.path, ref, pr.head_sha)
    except git.GitError:
        # New commits arrived after the merge: keeping the branch loses nothing.
        return False
    with transaction.atomic():
        update = repo_services.RefUpdate(ref=ref, old_sha=pr.head_sha, new_sha=git.ZERO_SHA)
        repo_services.record_push(repo, actor=Principal(user=actor), protocol="web", updates=[update])
        _event(pr, "branch_deleted", actor, branch=pr.head_branch)
    return True


# Commit statuses.


@transaction.atomic
def set_commit_status(
    repo: Repository,
    *,
    actor: User,
    sha: str,
    state: str,
    context: str = "default",
    target_url: str = "",
    description: str = "",
) -> CommitStatus:
    """Record what a CI says about a commit; the latest report per context wins."""
    _require(actor, repo, Role.WRITE)
    if state not in CommitStatus.State.values:
        raise ValidationError(f"state must be one of {', '.join(CommitStatus.State.values)}.")
    context = (context or "default").strip()[:255]
    if target_url and not target_url.startswith(("http://", "https://")):
        raise ValidationError("target_url must be an http(s) URL.")
    try:
        # A short sha is stored in full, so that it meets a required check on the head it names.
        sha = git.commit(repo.path, sha).sha
    except (git.GitError, KeyError, ValueError):
        raise ValidationError(f"{sha[:40]!r} is not a commit of {repo.full_name}.") from None
    status, _created = CommitStatus.objects.update_or_create(
        repository=repo,
        sha=sha,
        context=context,
        defaults={
            "state": state,
            "target_url": target_url,
            "description": description[:1000],
            "creator": actor,
            "updated": timezone.now(),
        },
    )
    audit.record(actor, "commit_status.set", repo, after={"sha": sha, "context": context, "state": state})
    return status


# Rules and settings.


def _check_patterns(*patterns: str) -> None:
    # Branch and repository names never hold whitespace, so such a pattern would silently match nothing.
    for pattern in patterns:
        if re.search(r"\s", pattern):
            raise ValidationError(f"{pattern!r} is not one pattern: use one rule per pattern, without spaces.")


def _require_rule_owner(actor: User, *, repository: Repository | None, organization: User | None) -> None:
    if repository is not None:
        _require(actor, repository, Role.ADMIN)
    elif organization is None or not is_org_owner(actor, organization):
        raise PermissionDenied("Only the organization's owners manage its rule templates.")


@transaction.atomic
def save_approval_rule(
    rule: ApprovalRule | None,
    *,
    actor: User,
    repository: Repository | None = None,
    organization: User | None = None,
    name: str,
    branch_pattern: str = "*",
    repository_pattern: str = "*",
    required_approvals: int = 1,
    users: Iterable[User] = (),
    teams: Iterable[Team] = (),
    exclude_committers: bool = False,
    dismissal: str = ApprovalRule.Dismissal.NEW_CODE,
) -> ApprovalRule:
    """Create or change an approval rule of a repository, or a template of an organization."""
    if rule is not None:
        repository, organization = rule.repository, rule.organization
    _require_rule_owner(actor, repository=repository, organization=organization)
    if not name.strip() or not branch_pattern.strip():
        raise ValidationError("A rule needs a name and a branch pattern.")
    _check_patterns(branch_pattern.strip(), repository_pattern.strip())
    if not 1 <= required_approvals <= 50:
        raise ValidationError("A rule needs between 1 and 50 approvals.")
    if dismissal not in ApprovalRule.Dismissal.values:
        raise ValidationError("dismissal must be new_code or always.")
    owner = repository.owner if repository is not None else organization
    teams = list(teams)
    if any(team.organization_id != owner.pk for team in teams):
        raise ValidationError(f"Pool teams must belong to {owner.username}.")
    before = None if rule is None else {"name": rule.name, "required": rule.required_approvals}
    rule = rule or ApprovalRule(repository=repository, organization=organization)
    rule.name, rule.branch_pattern, rule.repository_pattern = (
        name.strip()[:100],
        branch_pattern.strip(),
        repository_pattern.strip() or "*",
    )
    rule.required_approvals, rule.exclude_committers, rule.dismissal = required_approvals, exclude_committers, dismissal
    rule.save()
    rule.users.set(users)
    rule.teams.set(teams)
    audit.record(
        actor,
        "approval_rule.save",
        repository or organization,
        before=before,
        after={"rule": rule.pk, "name": rule.name, "required": required_approvals},
    )
    return rule


@transaction.atomic
def delete_approval_rule(rule: ApprovalRule, *, actor: User) -> None:
    """Remove an approval rule or template."""
    _require_rule_owner(actor, repository=rule.repository, organization=rule.organization)
    audit.record(actor, "approval_rule.delete", rule.repository or rule.organization, before={"name": rule.name})
    rule.delete()


@transaction.atomic
def save_branch_protection(
    protection: BranchProtection | None,
    *,
    actor: User,
    repository: Repository | None = None,
    branch_pattern: str,
    require_pull_request: bool = True,
    required_checks: Iterable[str] = (),
    require_up_to_date: bool = False,
    block_force_push: bool = True,
    block_deletion: bool = True,
    push_users: Iterable[User] = (),
    push_teams: Iterable[Team] = (),
    merge_users: Iterable[User] = (),
    merge_teams: Iterable[Team] = (),
) -> BranchProtection:
    """Create or change the protection of a branch pattern."""
    repository = protection.repository if protection is not None else repository
    _require(actor, repository, Role.ADMIN)
    branch_pattern = branch_pattern.strip()
    if not branch_pattern:
        raise ValidationError("A protection needs a branch pattern.")
    _check_patterns(branch_pattern)
    clash = BranchProtection.objects.filter(repository=repository, branch_pattern=branch_pattern)
    if protection is not None:
        clash = clash.exclude(pk=protection.pk)
    if clash.exists():
        raise ValidationError(f"{branch_pattern!r} is already protected; edit that protection.")
    teams = [*push_teams, *merge_teams]
    if any(team.organization_id != repository.owner_id for team in teams):
        raise ValidationError(f"Teams must belong to {repository.owner.username}.")
    protection = protection or BranchProtection(repository=repository)
    protection.branch_pattern = branch_pattern
    protection.require_pull_request, protection.require_up_to_date = require_pull_request, require_up_to_date
    protection.required_checks = [c.strip() for c in required_checks if c.strip()]
    protection.block_force_push, protection.block_deletion = block_force_push, block_deletion
    protection.save()
    protection.push_users.set(push_users)
    protection.push_teams.set(push_teams)
    protection.merge_users.set(merge_users)
    protection.merge_teams.set(merge_teams)
    audit.record(
        actor,
        "branch_protection.save",
        repository,
        after={"pattern": branch_pattern, "checks": protection.required_checks},
    )
    return protection


@transaction.atomic
def delete_branch_protection(protection: BranchProtection, *, actor: User) -> None:
    """Remove a branch protection."""
    _require(actor, protection.repository, Role.ADMIN)
    audit.record(
        actor, "branch_protection.delete", protection.repository, before={"pattern": protection.branch_pattern}
    )
    protection.delete()


@transaction.atomic
def update_review_settings(repo: Repository, *, actor: User, **values: bool) -> ReviewSettings:
    """Change which merge strategies a repository allows and how approvals count."""
    _require(actor, repo, Role.ADMIN)
    found = rules.review_settings(repo)
    known = {
        f.name
        for f in ReviewSettings._meta.fields
        if isinstance(f, type(ReviewSettings._meta.get_field("allow_merge")))
    }
    for name, value in values.items():
        if name not in known:
            raise ValidationError(f"Unknown setting {name!r}.")
        setattr(found, name, bool(value))
    if not found.allowed_strategies():
        raise ValidationError("Allow at least one merge strategy.")
    found.save()
    audit.record(actor, "review_settings.update", repo, after=values)
    return found
