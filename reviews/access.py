"""Who may see and act on a pull request: the repository's door (repos.access) plus the author's own rights."""

from django.http import Http404

from portal.models import User
from repos.access import check_role, get_repo_for_user, role_for
from repos.models import Repository, Role
from reviews.models import PullRequest


def check_pull_role(user: User | None, pr: PullRequest, need: int, *, or_author: bool = False) -> None:
    """Http404 when the repository is hidden from the user; PermissionDenied when they lack role need on it,
    which the pull request's author, with or_author, does not need."""
    role = role_for(user, pr.repository)
    check_role(role, Role.READ)
    if or_author and user is not None and user.pk == pr.author_id:
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
