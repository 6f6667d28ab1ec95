"""What the SSH server, the OpenSSH `serv` command and smart HTTP share: parsing a git command,
and the environment that lets git's hooks call back into the portal for this one push."""

import secrets
import shlex
from dataclasses import dataclass

from django.conf import settings

from portal.models import AccessToken
from repos import git
from repos.access import Principal, get_repo_for_principal
from repos.models import PushSession, Repository, Role

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
    if not name or not owner.isascii() or not name.isascii():
        raise CommandRefused(f"Not a repository path: {path[:80]!r}. Use /owner/repo.git.")
    return owner, name


def resolve(principal: Principal, command: GitCommand) -> Repository:
    """The repository the command may run on, through the access door (Http404/PermissionDenied)."""
    return get_repo_for_principal(principal, command.owner, command.name, need=SERVICE_ROLES[command.service])


def git_environment(principal: Principal, repo: Repository, *, protocol: str, service: str) -> dict[str, str]:
    """The environment to run a git service in; for pushes it carries a one-push secret for the hooks."""
    env = git.base_environment()
    if service == "git-receive-pack":
        secret = secrets.token_urlsafe(32)
        session = PushSession.objects.create(
            repository=repo,
            user=principal.user,
            deploy_key=principal.deploy_key,
            secret_hash=AccessToken.hash(secret),
            protocol=protocol,
        )
        env |= {
            "PORTAL_HOOK_URL": f"{settings.PORTAL_INTERNAL_URL}/-/internal/hooks",
            "PORTAL_PUSH_ID": str(session.pk),
            "PORTAL_PUSH_SECRET": secret,
        }
    return env
