"""Opening, editing, closing and reopening pull requests, and following their branches: one revision per push."""

from collections.abc import Iterable

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from portal import audit
from portal.models import Team, User
from repos import git
from repos.access import role_for
from repos.models import Repository, Role, next_number
from reviews import notifications, rules, signals
from reviews.models import ApprovalRule, Comment, PullRequest, Review, ReviewRequest, Revision
from reviews.services._base import (
    Kind,
    existing_branch_sha,
    old_side_path,
    plain_text,
    record_event,
    require_pull_editor,
    require_role,
    touch,
    transition,
)


def _reviewers(pr: PullRequest, users: Iterable[User], teams: Iterable[Team], actor: User) -> list[User]:
    """Add review requests; returns the users who were newly asked (team members included)."""
    asked: list[User] = []
    for user in users:
        if user.is_organization:
            continue
        if user.pk == pr.author_id:
            raise ValidationError(f"{user.username} is the author and can't review their own pull request.")
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
    require_role(actor, repo, Role.READ)
    title = title.strip()
    if not title:
        raise ValidationError("A pull request needs a title.")
    if base == head:
        raise ValidationError("The base and head branches must differ.")
    base_sha, head_sha = existing_branch_sha(repo, base), existing_branch_sha(repo, head)
    if PullRequest.objects.open().filter(repository=repo, base_branch=base, head_branch=head).exists():
        raise ValidationError(f"A pull request from {head} into {base} is already open.")
    merge_base = git.merge_base(repo.path, base_sha, head_sha)
    if merge_base is None:
        raise ValidationError(f"{head} and {base} have no history in common.")
    if merge_base == head_sha:
        raise ValidationError(f"{base} already contains everything in {head}.")
    number = next_number(PullRequest.objects.filter(repository=repo))
    pr = PullRequest.objects.create(
        repository=repo,
        number=number,
        title=title[:255],
        description=plain_text(description),
        author=actor,
        base_branch=base,
        head_branch=head,
        head_sha=head_sha,
        base_sha=base_sha,
        merge_base_sha=merge_base,
        draft=draft,
    )
    _new_revision(pr, head_sha=head_sha, base_sha=base_sha, merge_base=merge_base, pusher=actor, forced=False)
    record_event(pr, "opened", actor)
    asked = _reviewers(pr, reviewers, teams, actor)
    for user in asked:
        record_event(pr, "review_requested", actor, reviewer=user.username)
    audit.record(actor, "pull_request.open", pr, after={"base": base, "head": head, "head_sha": head_sha})
    signals.pull_request_opened.send(PullRequest, pull_request=pr, actor=actor)
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
    require_pull_editor(actor, pr)
    before = {"title": pr.title, "base": pr.base_branch, "draft": pr.draft}
    old_description = pr.description
    changes: dict = {}
    if title is not None and title.strip() != pr.title:
        if not title.strip():
            raise ValidationError("A pull request needs a title.")
        changes["title"] = title.strip()[:255]
        record_event(pr, "renamed", actor, old=pr.title, new=changes["title"])
    if description is not None and plain_text(description) != pr.description:
        changes["description"] = plain_text(description)
    if draft is not None and draft != pr.draft:
        changes["draft"] = draft
        record_event(pr, "draft" if draft else "ready", actor)
    if base is not None and base != pr.base_branch:
        if not pr.is_open:
            raise ValidationError("Only an open pull request can change its base.")
        if base == pr.head_branch:
            raise ValidationError("The base and head branches must differ.")
        base_sha = existing_branch_sha(pr.repository, base)
        merge_base = git.merge_base(pr.repository.path, base_sha, pr.head_sha)
        if merge_base is None:
            raise ValidationError(f"{pr.head_branch} and {base} have no history in common.")
        record_event(pr, "retargeted", actor, old=pr.base_branch, new=base)
        changes.update(base_branch=base, base_sha=base_sha, merge_base_sha=merge_base)
        touch(pr, **changes)
        changes = {}
        dismiss_reviews(
            pr, pr.reviews.filter(state=Review.State.APPROVED), actor=actor, reason=f"the base changed to {base}"
        )
        _new_revision(pr, head_sha=pr.head_sha, base_sha=base_sha, merge_base=merge_base, pusher=actor, forced=False)
    if changes:
        touch(pr, **changes)
    after = {"title": pr.title, "base": pr.base_branch, "draft": pr.draft}
    audit.record(actor, "pull_request.update", pr, before=before, after=after)
    if after != before or pr.description != old_description:
        signals.pull_request_edited.send(PullRequest, pull_request=pr, actor=actor, before=before, after=after)
    return pr


@transaction.atomic
def request_review(
    pr: PullRequest, *, actor: User, users: Iterable[User] = (), teams: Iterable[Team] = ()
) -> list[User]:
    """Ask users or teams to review; returns who was newly asked."""
    require_pull_editor(actor, pr)
    asked = _reviewers(pr, users, teams, actor)
    for user in asked:
        record_event(pr, "review_requested", actor, reviewer=user.username)
    audit.record(actor, "pull_request.request_review", pr, after={"users": [u.username for u in asked]})
    _notify_requested(pr, asked, actor)
    return asked


@transaction.atomic
def remove_review_request(pr: PullRequest, *, actor: User, user: User | None = None, team: Team | None = None) -> None:
    """Withdraw a review request of a user or a team."""
    require_pull_editor(actor, pr)
    pr.review_requests.filter(user=user, team=team).delete()
    audit.record(actor, "pull_request.remove_review_request", pr, after={"user": user and user.username})


@transaction.atomic
def close_pull_request(pr: PullRequest, *, actor: User) -> PullRequest:
    """Close without merging."""
    require_pull_editor(actor, pr)
    transition(pr, PullRequest.State.CLOSED, closed_at=timezone.now())
    record_event(pr, "closed", actor)
    audit.record(actor, "pull_request.close", pr)
    signals.pull_request_closed.send(PullRequest, pull_request=pr, actor=actor)
    return pr


@transaction.atomic
def reopen_pull_request(pr: PullRequest, *, actor: User) -> PullRequest:
    """Reopen a closed pull request, catching up with its head branch."""
    require_pull_editor(actor, pr)
    head_sha = existing_branch_sha(pr.repository, pr.head_branch)
    existing_branch_sha(pr.repository, pr.base_branch)
    if (
        PullRequest.objects.open()
        .filter(repository=pr.repository, base_branch=pr.base_branch, head_branch=pr.head_branch)
        .exists()
    ):
        raise ValidationError(f"Another pull request from {pr.head_branch} into {pr.base_branch} is open.")
    transition(pr, PullRequest.State.OPEN, closed_at=None)
    record_event(pr, "reopened", actor)
    if head_sha != pr.head_sha:
        _add_revision(pr, head_sha=head_sha, pusher=actor, forced=False)
    audit.record(actor, "pull_request.reopen", pr)
    signals.pull_request_reopened.send(PullRequest, pull_request=pr, actor=actor)
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


def dismiss_reviews(pr: PullRequest, reviews, *, actor: User | None, reason: str) -> list[Review]:
    dismissed = list(reviews.filter(dismissed_at__isnull=True, submitted_at__isnull=False).select_related("author"))
    if dismissed:
        Review.objects.filter(pk__in=[r.pk for r in dismissed]).update(
            dismissed_at=timezone.now(), dismissed_reason=reason[:300]
        )
        record_event(pr, "approvals_dismissed", actor, reviewers=[r.author.username for r in dismissed], reason=reason)
        for review in dismissed:
            review.dismissed_reason = reason[:300]
            signals.review_dismissed.send(Review, review=review, pull_request=pr, actor=actor, reason=reason)
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
    touch(pr, head_sha=head_sha, base_sha=base_sha, merge_base_sha=merge_base)
    same_patch = set(pr.revisions.filter(patch_id=revision.patch_id).values_list("head_sha", flat=True))
    dismissals = {rule.dismissal for rule in rules.approval_rules_for(repo, pr.base_branch)}
    stale = pr.reviews.filter(state=Review.State.APPROVED).exclude(commit_sha=head_sha)
    if ApprovalRule.Dismissal.ALWAYS not in dismissals:
        stale = stale.exclude(commit_sha__in=same_patch)
    # Only when every rule keeps them do approvals of older code stay on the page; they count toward none either way.
    if dismissals != {ApprovalRule.Dismissal.NEVER}:
        dismiss_reviews(pr, stale, actor=None, reason=f"new code was pushed (revision {revision.number})")
    for thread in pr.comments.filter(reply_to=None, outdated=False).exclude(path=""):
        carry_thread(thread, old_head=old_head, new_head=head_sha, old_base=old_base, new_base=merge_base)
    signals.pull_request_synchronized.send(PullRequest, pull_request=pr, actor=pusher, revision=revision)
    return revision


def carry_thread(thread: Comment, *, old_head: str, new_head: str, old_base: str, new_base: str) -> None:
    """Move an inline thread to the same lines of a new revision, or mark it outdated when they changed."""
    new_anchor = new_head if thread.side == Comment.Side.RIGHT else new_base
    if thread.commit_sha == new_anchor:
        return
    repo = thread.pull_request.repository
    path = thread.path
    if thread.side == Comment.Side.LEFT:
        # The old side of a renamed file is the file under its old name, on both bases.
        path = old_side_path(repo, old_base, old_head, thread.path)
        if old_side_path(repo, new_base, new_head, thread.path) != path:
            Comment.objects.filter(pk=thread.pk).update(outdated=True)
            return
    ranges = git.changed_ranges(repo.path, thread.commit_sha, new_anchor, path)
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
                record_event(pr, "head_deleted", pusher)
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
    transition(pr, PullRequest.State.MERGED, merged_at=timezone.now(), merged_by=pusher, merge_commit_sha=base_sha)
    record_event(pr, "merged", pusher, commit=base_sha, by_push=True)
    audit.record(pusher, "pull_request.merged_by_push", pr, after={"commit": base_sha})
    signals.pull_request_merged.send(PullRequest, pull_request=pr, actor=pusher, by_push=True)
