"""How reviews follows what repos announces; connected in ReviewsConfig.ready()."""

from urllib.parse import quote

from portal.models import User
from repos.access import Principal
from repos.models import Repository
from repos.services import RefUpdate
from reviews.rules import protection_blocker
from reviews.services import record_branch_update


def refuse_protected_update(sender, *, repository: Repository, principal: Principal, update: RefUpdate, **kwargs):
    """Branch protection's reason to refuse one ref update of a push, or None."""
    return protection_blocker(principal, repository, update.ref, is_delete=update.is_delete, forced=update.forced)


def follow_pushed_branches(
    sender, *, repository: Repository, updates: list[RefUpdate], pusher: User | None, **kwargs
) -> list[str]:
    """Follow the pushed branches' pull requests, and answer where to see them or to open one."""
    lines: list[str] = []
    for update in updates:
        if not update.ref.startswith("refs/heads/"):
            continue
        branch = update.ref.removeprefix("refs/heads/")
        pulls = record_branch_update(
            repository,
            ref=update.ref,
            old_sha=update.old_sha,
            new_sha=update.new_sha,
            forced=update.forced,
            pusher=pusher,
        )
        if update.is_delete:
            continue
        for pr in pulls:
            lines += ["", f"View pull request #{pr.number} for {branch!r}:", f"  {pr.web_url}"]
        if not pulls and update.is_create and branch != repository.default_branch:
            lines += [
                "",
                f"Create a pull request for {branch!r}:",
                f"  {repository.web_url}/pulls/new?head={quote(branch)}",
            ]
    return lines
