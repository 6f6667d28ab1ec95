"""What every service of pull requests shares: the errors, the role checks, the record of events."""

from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from portal.models import User
from repos import code, git
from repos.access import check_role, role_for
from repos.models import Repository, Role
from reviews.access import can_edit_pull, check_pull_role
from reviews.models import Event, Notification, PullRequest

Kind = Notification.Kind


class MergeRefused(Exception):
    """The merge did not happen; the message says why, in words fit for the page."""


class StaleHead(MergeRefused):
    """The head the user saw is not the head now."""


def require_role(actor: User | None, repo: Repository, need: Role) -> None:
    check_role(role_for(actor, repo), need)


def require_pull_editor(actor: User, pr: PullRequest) -> None:
    """Http404 when the repository is hidden; PermissionDenied unless the actor may edit the pull request."""
    check_pull_role(actor, pr, Role.READ)
    if not can_edit_pull(actor, pr):
        raise PermissionDenied("Only the author or someone with write access can change this pull request.")


def record_event(pr: PullRequest, kind: str, actor: User | None, **data) -> Event:
    return Event.objects.create(pull_request=pr, actor=actor, kind=kind, data=data)


def touch(pr: PullRequest, **fields) -> None:
    fields["updated"] = timezone.now()
    PullRequest.objects.filter(pk=pr.pk).update(**fields)
    for name, value in fields.items():
        setattr(pr, name, value)


def existing_branch_sha(repo: Repository, branch: str) -> str:
    try:
        return git.branch_sha(repo.path, branch)
    except git.RefNotFound:
        raise ValidationError(f"There is no branch {branch!r} in {repo.full_name}.") from None


def old_side_path(repo: Repository, old_sha: str, new_sha: str, path: str) -> str:
    """The name a file of the new side had on the old side of a diff: its old name when the diff renames it."""

    def renames() -> dict[str, str]:
        return {f.new_path: f.old_path for f in git.diff(repo.path, old_sha, new_sha) if f.status == "renamed"}

    if not old_sha or not new_sha or old_sha == new_sha:
        return path
    return code.cached(("renames", str(repo.path), old_sha, new_sha), renames).get(path, path)


def person_of(user: User) -> "git.Person":
    return git.Person(name=user.display_name, email=user.email or f"{user.username}@users.noreply")


def transition(pr: PullRequest, new: str, **fields) -> None:
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


def plain_text(text: str) -> str:
    """Text with git's and Markdown's line breaks: browsers send a textarea's as CRLF, and some clients CR alone."""
    return text.replace("\r\n", "\n").replace("\r", "\n")
