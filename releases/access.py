"""Who may do what with builds: the repository's door (repos.access) plus these named checks, which the services
refuse on and pages use for their buttons."""

from django.core.exceptions import PermissionDenied

from portal.models import User
from repos.access import can_administer, check_role, role_for
from repos.models import Repository, Role


def can_run_builds(user: User | None, repo: Repository, *, role: int | None = None) -> bool:
    """Start a build by hand, rerun or stop one: writers, as in GitHub Actions."""
    return (role_for(user, repo) if role is None else role) >= Role.WRITE


def can_configure_builds(user: User | None, repo: Repository) -> bool:
    """Choose what a push builds and whether a newer build stops a running one: the repository's admins."""
    return can_administer(user, repo)


def require(check, user: User | None, repo: Repository, message: str) -> None:
    """Http404 when the repository is hidden from the user; PermissionDenied with message when check refuses."""
    check_role(role_for(user, repo), Role.READ)
    if not check(user, repo):
        raise PermissionDenied(message)


def can_manage_build_secrets(user: User | None, repo: Repository) -> bool:
    """See a repository's build variables and secrets' names, set and delete them: the repository's admins."""
    return can_administer(user, repo)


def can_configure_environments(user: User | None, repo: Repository) -> bool:
    """Create, change and delete a repository's environments, their targets, variables and secrets: its admins."""
    return can_administer(user, repo)


def can_deploy(user: User | None, repo: Repository, *, role: int | None = None) -> bool:
    """Start a deployment by hand: writers, who may already push what gets built."""
    return (role_for(user, repo) if role is None else role) >= Role.WRITE
