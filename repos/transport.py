"""What the SSH server, the OpenSSH `serv` command and smart HTTP share: parsing a git command,
and the environment that lets git's hooks call back into the portal for this one push."""

import re
import shlex
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import Http404

from portal.models import RevokedKeyFingerprint, SshKey
from repos import git, services
from repos.access import Principal, get_repo_for_principal
from repos.models import Repository, Role

# Which role each service needs. Anything not listed here is refused.
SERVICE_ROLES = {
    "git-upload-pack": Role.READ,
    "git-upload-archive": Role.READ,
    "git-receive-pack": Role.WRITE,
}


class CommandRefused(Exception):
    """A command the portal will not run; the message is shown to the client as it is."""


@dataclass(frozen=True)
class GitCommand:
    service: str
    owner: str
    name: str


def parse_command(command: str | None) -> GitCommand:
    """Parse `git-upload-pack '/owner/repo.git'` (or the scp form without a slash), refusing anything else."""
    if not command:
        raise CommandRefused("Interactive shells are not available; use git over SSH.")
    try:
        words = shlex.split(command)
    except ValueError:
        raise CommandRefused("Malformed command.")
    if not words:
        raise CommandRefused("Interactive shells are not available; use git over SSH.")
    service = words[0]
    if service.startswith("git ") or service == "git" and len(words) > 1:
        service = "git-" + words[1]
        words = [service, *words[2:]]
    if service not in SERVICE_ROLES:
        raise CommandRefused(
            f"Unknown command {service[:40]!r}: only git-upload-pack, git-receive-pack and git-upload-archive are allowed."
        )
    if len(words) != 2:
        raise CommandRefused(f"{service} takes exactly one repository path.")
    path = words[1]
    owner, name = parse_repo_path(path)
    return GitCommand(service=service, owner=owner, name=name)


def parse_repo_path(path: str) -> tuple[str, str]:
    """Split `/owner/repo.git` into owner and name, refusing options, `..` and extra segments."""
    if path.startswith("-"):
        raise CommandRefused("Repository paths cannot start with '-'.")
    stripped = path.strip("/").removesuffix("/")
    if stripped.startswith("~"):
        raise CommandRefused("Home-relative paths are not supported: use /owner/repo.git.")
    parts = stripped.split("/")
    if len(parts) != 2 or any(p in ("", ".", "..") or p.startswith("-") for p in parts):
        raise CommandRefused(f"Not a repository path: {path[:80]!r}. Use /owner/repo.git.")
    owner, name = parts
    name = name.removesuffix(".git")
    # No name holds a control character (PostgreSQL refuses a NUL in a query's text).
    if not name or not (owner + name).isascii() or not (owner + name).isprintable():
        raise CommandRefused(f"Not a repository path: {path[:80]!r}. Use /owner/repo.git.")
    return owner, name


def resolve(principal: Principal, command: GitCommand) -> Repository:
    """The repository the command may run on, through the access door (Http404/PermissionDenied)."""
    return get_repo_for_principal(principal, command.owner, command.name, need=SERVICE_ROLES[command.service])


def hook_environment() -> dict[str, str]:
    """Where git's hooks reach the portal: the unix socket `serve` binds, or PORTAL_INTERNAL_URL when set."""
    if settings.PORTAL_INTERNAL_URL:
        return {"PORTAL_HOOK_URL": f"{settings.PORTAL_INTERNAL_URL}/-/internal/hooks"}
    # Over the socket the URL only names the request: its host is the public one, which the portal allows.
    host = urlsplit(settings.PORTAL_BASE_URL).netloc or "localhost"
    return {
        "PORTAL_HOOK_URL": f"http://{host}/-/internal/hooks",
        "PORTAL_HOOK_SOCKET": str(settings.PORTAL_INTERNAL_SOCKET),
    }


def git_environment(principal: Principal, repo: Repository, *, protocol: str, service: str) -> dict[str, str]:
    """The environment to run a git service in; for pushes it carries a one-push secret for the hooks.

    Whoever runs git for a push must call end_push(env) once git has exited."""
    env = git.base_environment()
    if service == "git-receive-pack":
        session, secret = services.start_push_session(principal, repo, protocol=protocol)
        env |= hook_environment() | {"PORTAL_PUSH_ID": str(session.pk), "PORTAL_PUSH_SECRET": secret}
    return env


def end_push(env: dict[str, str]) -> None:
    """Delete the push session of a git process that has exited (nothing to do for fetches)."""
    push_id = env.get("PORTAL_PUSH_ID")
    if push_id is not None:
        services.end_push_session(int(push_id))


# What the embedded SSH server and OpenSSH's `serv` command share, so both refuse and allow alike.

NOT_FOUND_MESSAGE = "Repository not found or you do not have access."

# GIT_PROTOCOL is colon-separated `key` or `key=value` fields such as `version=2`; anything else is
# dropped, so a client cannot smuggle odd bytes into git's environment.
_GIT_PROTOCOL_FIELD = r"[a-z][a-z0-9-]{0,31}(?:=[A-Za-z0-9._-]{1,64})?"
_GIT_PROTOCOL_RE = re.compile(rf"{_GIT_PROTOCOL_FIELD}(?::{_GIT_PROTOCOL_FIELD}){{0,7}}")


@dataclass(frozen=True)
class GitInvocation:
    """A git service ready to run: argv and environment, for the repository it was resolved to."""

    argv: list[str]
    env: dict[str, str]
    repository: Repository
    service: str


def safe_git_protocol(value: str | None) -> str | None:
    """The client's GIT_PROTOCOL if it has the expected shape (such as `version=2`), else None."""
    if value and len(value) <= 256 and _GIT_PROTOCOL_RE.fullmatch(value):
        return value
    return None


def ssh_key_principal(*, fingerprint: str | None = None, key_id: int | None = None) -> tuple[SshKey, Principal] | None:
    """The registered key and who it speaks for, or None for an unknown, revoked or deactivated user's key."""
    # A revoked fingerprint is refused even if a row for it still exists (say, restored from a backup).
    keys = SshKey.objects.select_related("user", "repository").exclude(
        fingerprint__in=RevokedKeyFingerprint.objects.values("fingerprint")
    )
    if fingerprint is not None:
        key = keys.filter(fingerprint=fingerprint).first()
    elif key_id is not None:
        key = keys.filter(pk=key_id).first()
    else:
        key = None
    if key is None:
        return None
    if key.repository_id is not None:
        return key, Principal(deploy_key=key)
    if key.user is None or not key.user.is_active or key.user.is_organization:
        return None
    return key, Principal(user=key.user)


def prepare_git_command(
    principal: Principal, command: str | None, *, protocol: str, git_protocol: str | None = None
) -> GitInvocation:
    """Parse and authorize a client's command, raising CommandRefused with the line to show it."""
    parsed = parse_command(command)
    try:
        repo = resolve(principal, parsed)
    except Http404:
        # The same words for a missing repository and one the principal may not see, so the
        # answer does not reveal which private repositories exist.
        raise CommandRefused(NOT_FOUND_MESSAGE)
    except PermissionDenied as exc:
        raise CommandRefused(str(exc) or "You do not have access to do this.")
    env = git_environment(principal, repo, protocol=protocol, service=parsed.service)
    safe = safe_git_protocol(git_protocol)
    if safe is not None:
        env["GIT_PROTOCOL"] = safe
    return GitInvocation(
        argv=git.service_command(parsed.service, repo.path), env=env, repository=repo, service=parsed.service
    )
