"""Merging a pull request by the strategy asked for, exactly at the head the user saw."""

from allauth.account.models import EmailAddress
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from portal import audit
from portal.models import User
from repos import code, git
from repos import services as repo_services
from repos.access import Principal
from repos.models import Role
from reviews import notifications, rules, signals
from reviews.models import MergeStrategy, PullRequest, Review
from reviews.rules import merge_blocker
from reviews.services._base import (
    Kind,
    MergeRefused,
    StaleHead,
    existing_branch_sha,
    person_of,
    plain_text,
    record_event,
    require_role,
    transition,
)


def default_merge_message(pr: PullRequest, strategy: str, *, actor: User | None = None) -> str:
    """What the merge dialog proposes: squash lists the commits and credits their other authors, a merge commit
    names the pull request."""
    if strategy == MergeStrategy.SQUASH:
        path = pr.repository.path
        commits = code.cached(
            ("squash-commits", str(path), pr.merge_base_sha, pr.head_sha),
            lambda: [
                (c.summary, c.author.name, c.author.email)
                for c in git.commits_between(path, pr.merge_base_sha, pr.head_sha, limit=1000)
            ],
        )
        lines = "\n".join(f"* {summary}" for summary, _name, _email in commits)
        trailers = "\n".join(_co_authors(pr, [(name, email) for _summary, name, email in commits], actor))
        return f"{pr.title} (#{pr.number})\n\n{lines}\n" + (f"\n{trailers}\n" if trailers else "")
    return f"Merge pull request #{pr.number} from {pr.head_branch}\n\n{pr.title}\n"


def _co_authors(pr: PullRequest, authors: list[tuple[str, str]], actor: User | None) -> list[str]:
    """Co-authored-by trailers for the authors of a squash's commits, once each, but for the people already on it:
    the pull request's author (the squash's author) and whoever merges (its committer)."""
    people = [pr.author] + ([actor] if actor is not None else [])
    known = {person_of(user).email.lower() for user in people}
    known |= {email.lower() for email in EmailAddress.objects.filter(user__in=people).values_list("email", flat=True)}
    trailers: dict[str, str] = {}
    for name, email in authors:
        if email and email.lower() not in known and email.lower() not in trailers:
            trailers[email.lower()] = f"Co-authored-by: {name} <{email}>"
    return list(trailers.values())


def _message_for(pr: PullRequest, strategy: str, message: str, actor: User | None = None) -> str:
    """The message given, or the strategy's default when none is, or when it is another strategy's default (a form
    without its script keeps the first strategy's text when another one is chosen)."""
    text = plain_text(message).strip()
    default = default_merge_message(pr, strategy, actor=actor)
    others = [
        default_merge_message(pr, other, actor=actor).strip() for other in (MergeStrategy.MERGE, MergeStrategy.SQUASH)
    ]
    if not text or (text in others and text != default.strip()):
        return default
    return text


def _merged_commit(pr: PullRequest, strategy: str, base_sha: str, message: str, actor: User) -> str:
    path = pr.repository.path
    person = person_of(actor)
    try:
        if strategy == MergeStrategy.FAST_FORWARD:
            if not git.is_ancestor(path, base_sha, pr.head_sha):
                raise MergeRefused(f"{pr.head_branch} is not a fast-forward of {pr.base_branch}; rebase it first.")
            return pr.head_sha
        if strategy == MergeStrategy.SQUASH:
            author = person_of(pr.author)
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
    head_sha: str | None,
    message: str = "",
    delete_branch: bool | None = None,
) -> PullRequest:
    """Merge exactly the head the user saw, if merge_blocker allows; the base moves by compare-and-swap.

    Without head_sha (Gitea's clients may leave head_commit_id out) nobody said which head they looked at, so the
    merge is of the head the pull request has now, and only if every approval the rules count was given on that
    very head: an approval of an earlier head, even of the same patch, does not count, so a push that lands just
    before the merge cannot ride on approvals of what came before it."""
    repo = pr.repository
    require_role(actor, repo, Role.READ)
    allowed = rules.review_settings(repo).allowed_strategies()
    if strategy not in allowed:
        raise ValidationError(f"{strategy!r} is not allowed here; use one of {', '.join(allowed)}.")
    exact_head = head_sha is None
    if exact_head:
        head_sha = pr.head_sha
    if head_sha != pr.head_sha or existing_branch_sha(repo, pr.head_branch) != head_sha:
        raise StaleHead("The branch changed since you looked; review the new commits and try again.")
    reason = merge_blocker(pr, actor, exact_head=exact_head)
    if reason:
        raise MergeRefused(reason)
    base_ref = f"refs/heads/{pr.base_branch}"
    base_sha = existing_branch_sha(repo, pr.base_branch)
    new_sha = _merged_commit(pr, strategy, base_sha, _message_for(pr, strategy, message, actor), actor)
    with transaction.atomic():
        # The database claims the merge, then the ref moves only if the base is still where the merge was built
        # on: a push that raced in keeps its commit, and this merge fails instead of overwriting it.
        try:
            transition(
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
        record_event(pr, "merged", actor, strategy=strategy, commit=new_sha)
        audit.record(actor, "pull_request.merge", pr, after={"strategy": strategy, "head": head_sha, "commit": new_sha})
        signals.pull_request_merged.send(PullRequest, pull_request=pr, actor=actor, by_push=False)
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
            record_event(pr, "branch_kept", actor, branch=pr.head_branch, reason=str(exc))
    return pr


def delete_head_branch(pr: PullRequest, *, actor: User) -> bool:
    """Delete a merged or closed pull request's branch, only if it still is where the pull request left it."""
    repo = pr.repository
    require_role(actor, repo, Role.WRITE)
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
        record_event(pr, "branch_deleted", actor, branch=pr.head_branch)
    return True
