"""Who may see and act on a pull request: the repository's door (repos.access) plus the author's own rights."""

from django.http import Http404

from portal.access import is_org_owner
from portal.models import User
from repos.access import can_administer, check_role, get_repo_for_user, role_for
from repos.models import Repository, Role
from reviews.models import Comment, PullRequest, Webhook


def check_pull_role(user: User | None, pr: PullRequest, need: int, *, or_author: bool = False) -> None:
    """Http404 when the repository is hidden from the user; PermissionDenied when they lack role need on it,
    which the pull request's author, with or_author, does not need."""
    role = role_for(user, pr.repository)
    check_role(role, Role.READ)
    if or_author and is_pull_author(user, pr):
        return
    check_role(role, need)


def get_pull(repo: Repository, number: int) -> PullRequest:
    """Pull request number of a repository the caller may already see; Http404 when there is none."""
    pr = (
        PullRequest.objects.filter(repository=repo, number=number)
        .select_related("author", "merged_by", "override_by")
        .first()
    )
    if pr is None:
        raise Http404("Pull request not found")
    pr.repository = repo
    return pr


def get_pull_for_user(
    user: User | None, owner: str, name: str, number: int, *, need: int = Role.READ, or_author: bool = False
) -> PullRequest:
    """A pull request of owner/name that the user may act on with role need (or as its author, with or_author)."""
    pr = get_pull(get_repo_for_user(user, owner, name), number)
    check_pull_role(user, pr, need, or_author=or_author)
    return pr


# Who may do what on a pull request. Services refuse on these and pages show their buttons by them, so a rule is
# written once. Each takes the user's role on the repository when the caller already has it (a page asks many
# times), and reads it otherwise; none of them decides whether the repository may be seen at all (check_pull_role).


def _role(user: User | None, pr: PullRequest, role: int | None) -> int:
    return role_for(user, pr.repository) if role is None else role


def is_pull_author(user: User | None, pr: PullRequest) -> bool:
    return user is not None and user.is_authenticated and user.pk == pr.author_id


def can_edit_pull(user: User | None, pr: PullRequest, *, role: int | None = None) -> bool:
    """Edit, close or reopen a pull request and ask for its reviews: its author or a writer."""
    return is_pull_author(user, pr) or _role(user, pr, role) >= Role.WRITE


def can_merge(user: User | None, pr: PullRequest, *, role: int | None = None) -> bool:
    """Offer the merge (the merge gate then says whether it may happen now): a writer."""
    return _role(user, pr, role) >= Role.WRITE


def can_give_verdict(user: User | None, pr: PullRequest) -> bool:
    """Approve or request changes: anyone who may read it but its author."""
    return user is not None and user.is_authenticated and not is_pull_author(user, pr)


def can_dismiss_review(user: User | None, pr: PullRequest, *, role: int | None = None) -> bool:
    """Dismiss an approval or a change request: a maintainer."""
    return _role(user, pr, role) >= Role.MAINTAIN


def can_override_rules(user: User | None, pr: PullRequest, *, role: int | None = None) -> bool:
    """Let a pull request merge without its approvals: an admin."""
    return _role(user, pr, role) >= Role.ADMIN


def can_edit_comment(user: User | None, comment: Comment) -> bool:
    """Change a comment: its author alone."""
    return user is not None and user.is_authenticated and user.pk == comment.author_id


def can_delete_comment(user: User | None, comment: Comment, *, role: int | None = None) -> bool:
    """Delete a comment: its author or a maintainer."""
    return can_edit_comment(user, comment) or _role(user, comment.pull_request, role) >= Role.MAINTAIN


def can_resolve_thread(user: User | None, thread: Comment, *, role: int | None = None) -> bool:
    """Resolve an inline thread or open it again: the thread's author, the pull request's author or a writer."""
    if user is None or not user.is_authenticated:
        return False
    root = thread.reply_to if thread.reply_to_id else thread
    pr = root.pull_request
    return user.pk in (root.author_id, pr.author_id) or _role(user, pr, role) >= Role.WRITE


def can_apply_suggestion(user: User | None, pr: PullRequest, *, role: int | None = None) -> bool:
    """Commit a suggested change to the head branch: the pull request's author or a writer."""
    return can_edit_pull(user, pr, role=role)


def can_manage_webhooks(user: User | None, hook: Webhook) -> bool:
    """A repository's hooks are its administrators'; an organization's, its owners'."""
    if hook.repository_id is not None:
        return can_administer(user, hook.repository)
    return is_org_owner(user, hook.organization)
