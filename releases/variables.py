"""Build variables and secrets of a repository or of an organization: setting them, and what a build gets.

A secret's value is stored encrypted (releases.secrets), is never shown again, and is decrypted only by the build
worker for the build's sandbox; the rq job carries nothing but the build's id. Names follow GitHub's rules
(letters, digits and _, not starting with a digit), are unique within their place whatever their case, and may
not take the CODEBUILD_ prefix, which names the portal's own variables.

Who gets secrets (the two ways a build's code could carry them off are a branch anybody may push to and a pull
request by somebody who may not push at all):
- a build of a branch that the repository's secret_branches names (Gitea's branch filter syntax), or, when that
  is empty, of a protected branch; a manual build or a rerun likewise, its starter being a writer and its commit
  being on that branch;
- never a build of a tag (a tag is not a branch that anyone protects or names);
- never a build of a pull request whose author, or whoever started the build, lacks write access."""

from collections.abc import Callable

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from portal import audit
from portal.access import is_org_owner
from portal.models import User
from portal.validators import field_error
from releases import access, runner, secrets
from releases.buildspec import RESERVED_PREFIX, VARIABLE_NAME
from releases.models import Build, BuildVariable
from releases.services import build_settings
from repos import git
from repos.models import Repository
from reviews.models import BranchProtection
from reviews.webhooks import branch_matches

# GitHub's limit on a secret's size; variables get the same.
MAX_VALUE_BYTES = 48 * 1024
MAX_NAME_LENGTH = 255

WITHHELD_PULL_REQUEST = "pull request from someone without write access"
WITHHELD_BRANCH = "branch not allowed to receive secrets"
WITHHELD_TAG = "tag builds never receive secrets"
WITHHELD_STARTER = "started by someone without write access"
WITHHELD_NOT_ON_BRANCH = "commit not on the branch allowed to receive secrets"


def _place(repository: Repository | None, organization: User | None) -> dict:
    if (repository is None) == (organization is None):
        raise ValueError("A build variable belongs to a repository or to an organization.")
    return {"repository": repository} if repository is not None else {"organization": organization}


def can_manage(user: User | None, *, repository: Repository | None = None, organization: User | None = None) -> bool:
    """Repository admins manage its variables and secrets; an organization's owners manage the organization's."""
    if repository is not None:
        return access.can_manage_build_secrets(user, repository)
    return organization is not None and is_org_owner(user, organization)


def _require(actor: User | None, place: dict) -> None:
    if "repository" in place:
        access.require(
            access.can_manage_build_secrets,
            actor,
            place["repository"],
            "Only the repository's admins manage its build secrets and variables.",
        )
    elif not can_manage(actor, **place):
        raise PermissionDenied("Only the organization's owners manage its build secrets and variables.")


def variables_of(*, secret: bool, repository: Repository | None = None, organization: User | None = None) -> QuerySet:
    """The variables (or the secrets) of one place, by name."""
    return BuildVariable.objects.filter(secret=secret, **_place(repository, organization)).order_by("name")


def find_variable(
    name: str, *, secret: bool, repository: Repository | None = None, organization: User | None = None
) -> BuildVariable | None:
    """The variable or secret of that name (whatever its case) in one place, or None."""
    return (
        variables_of(secret=secret, repository=repository, organization=organization).filter(name__iexact=name).first()
    )


def clean_name(name: str, field: str = "name") -> str:
    name = name.strip()
    if not VARIABLE_NAME.match(name) or len(name) > MAX_NAME_LENGTH:
        raise field_error(
            "A name is letters, digits and underscores, not starting with a digit "
            f"(at most {MAX_NAME_LENGTH} characters).",
            field,
        )
    if name.upper().startswith(RESERVED_PREFIX):
        raise field_error(f"Names starting with {RESERVED_PREFIX} are the portal's own.", field)
    return name


def clean_value(value: str, field: str) -> str:
    if value == "":
        raise field_error("A value is required.", field)
    if len(value.encode("utf-8")) > MAX_VALUE_BYTES:
        raise field_error(f"A value is at most {MAX_VALUE_BYTES // 1024} KB.", field)
    return value


def _kind(secret: bool) -> str:
    return "build_secret" if secret else "build_variable"


def _describe(row: BuildVariable) -> dict:
    # What audit events say of a variable or secret: where and what name, never the value.
    place = row.repository.full_name if row.repository_id else row.organization.username
    return {"name": row.name, "place": place}


@transaction.atomic
def set_build_variable(
    *,
    actor: User,
    name: str,
    value: str,
    secret: bool,
    repository: Repository | None = None,
    organization: User | None = None,
    new_name: str | None = None,
    name_field: str = "name",
    value_field: str = "value",
) -> tuple[BuildVariable, bool]:
    """Create a variable or secret, or give an existing one (named whatever the case) a new value and, for a
    variable, a new name; returns it and whether it was created. Audited without the value.

    name_field and value_field are what a refusal names (the API's path parameter, its body's field)."""
    place = _place(repository, organization)
    _require(actor, place)
    name = clean_name(name, name_field)
    value = clean_value(value, value_field)
    row = find_variable(name, secret=secret, **place)
    created = row is None
    target_name = clean_name(new_name, "name") if new_name else (name if created else row.name)
    clash = find_variable(target_name, secret=secret, **place)
    if clash is not None and clash != row:
        kind = "secret" if secret else "variable"
        raise field_error(f"There is already a {kind} named {clash.name}.", "name")
    now = timezone.now()
    before = None if created else _describe(row)
    if created:
        row = BuildVariable(secret=secret, created=now, **place)
    row.name = target_name
    row.value = secrets.encrypt(value) if secret else value
    row.updated = now
    row.save()
    audit.record(
        actor, f"{_kind(secret)}.{'create' if created else 'update'}", row, before=before, after=_describe(row)
    )
    return row, created


@transaction.atomic
def delete_build_variable(row: BuildVariable, *, actor: User) -> None:
    """Remove a variable or secret; builds queued after this no longer get it."""
    place = {"repository": row.repository} if row.repository_id else {"organization": row.organization}
    _require(actor, place)
    before = _describe(row)
    audit.record(actor, f"{_kind(row.secret)}.delete", row, before=before)
    row.delete()


# What a build gets.


def _merged(repository: Repository, *, secret: bool) -> dict[str, BuildVariable]:
    """The organization's rows overridden by the repository's of the same name, whatever its case."""
    place = Q(repository=repository)
    if repository.owner.is_organization:
        place |= Q(organization=repository.owner)
    by_name: dict[str, BuildVariable] = {}
    # The organization's rows first, so that the repository's replace them.
    for row in sorted(
        BuildVariable.objects.filter(place, secret=secret), key=lambda row: row.repository_id is not None
    ):
        by_name[row.name.upper()] = row
    return {row.name: row for row in by_name.values()}


def _is_writer(user: User | None, repository: Repository) -> bool:
    return user is not None and access.can_run_builds(user, repository)


def secrets_withheld_because(build: Build) -> str | None:
    """Why the build gets no secrets, or None when it may have them."""
    repository = build.repository
    pull_request = build.pull_request if build.pull_request_id is not None else None
    by_hand = build.trigger in (Build.Trigger.MANUAL, Build.Trigger.RERUN)
    if build.trigger == Build.Trigger.PULL_REQUEST or pull_request is not None:
        if pull_request is None or not _is_writer(pull_request.author, repository):
            return WITHHELD_PULL_REQUEST
    if build.initiator_id is not None and not _is_writer(build.initiator, repository):
        return WITHHELD_PULL_REQUEST if pull_request is not None else WITHHELD_STARTER
    if by_hand and build.initiator_id is None:
        return WITHHELD_STARTER
    if not build.head_branch:
        return WITHHELD_TAG if build.ref.startswith("refs/tags/") else WITHHELD_BRANCH
    allowed = build_settings(repository).secret_branches.strip()
    if allowed and not branch_matches(allowed, build.head_branch):
        return WITHHELD_BRANCH
    if not allowed and not BranchProtection.objects.filter(repository=repository).matching(build.head_branch):
        return WITHHELD_BRANCH
    # A build started by hand names its branch and its commit apart: the commit must be on that branch, or any
    # commit could be built with an allowed branch's secrets.
    if by_hand and pull_request is None and not _on_branch(repository, build.head_sha, build.head_branch):
        return WITHHELD_NOT_ON_BRANCH
    return None


def _on_branch(repository: Repository, sha: str, branch: str) -> bool:
    try:
        return git.is_ancestor(repository.path, sha, git.branch_sha(repository.path, branch))
    except (git.GitError, KeyError, ValueError):
        return False


def for_build(build: Build, on_line: Callable[[str], None]) -> tuple[dict[str, str], dict[str, str]]:
    """The variables and secrets a build runs with (organization's < repository's); records on the build which
    secrets it got (names only) or why none, and says so in its log."""
    repository = build.repository
    variables = {name: row.value for name, row in _merged(repository, secret=False).items()}
    rows = _merged(repository, secret=True)
    reason = secrets_withheld_because(build) if rows else None
    given: dict[str, str] = {}
    if reason is None:
        for name, row in rows.items():
            try:
                given[name] = secrets.decrypt(row.value)
            except secrets.SecretUnreadable as error:
                on_line(f"{runner.PREFIX}Warning: secret {name} is not set: {error}")
    Build.objects.filter(pk=build.pk).update(secret_names=sorted(given), secrets_withheld=reason or "")
    build.secret_names, build.secrets_withheld = sorted(given), reason or ""
    if reason is not None:
        on_line(f"{runner.PREFIX}Secrets withheld ({reason}): {', '.join(sorted(rows))}")
    elif given:
        on_line(f"{runner.PREFIX}Secrets given: {', '.join(sorted(given))}")
    elif rows:
        on_line(f"{runner.PREFIX}No secrets given: none could be decrypted")
    else:
        on_line(f"{runner.PREFIX}No secrets: none are set for this repository or its organization")
    return variables, given
