"""How reviews follows what repos announces; connected in ReviewsConfig.ready()."""

from functools import partial
from urllib.parse import quote

from portal.api import user_out
from portal.models import User
from repos.access import Principal
from repos.models import Repository
from repos.services import RefUpdate
from reviews import webhook_payloads as payloads
from reviews import webhooks
from reviews.models import Comment, CommitStatus, PullRequest, Review, Webhook
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


# Webhooks: each event becomes a delivery row for every hook that wants it, in the transaction of the change; the
# sending is a job enqueued after the commit.


def hook_push(sender, *, repository: Repository, updates: list[RefUpdate], pusher: User | None, **kwargs) -> list[str]:
    """Gitea's order: a created ref's create event, then its push; a deleted ref's delete event alone."""
    hooks = webhooks.hooks_for(repository)
    for update in updates if hooks else ():
        kind, name = payloads.split_ref(update.ref)
        events = []
        if update.is_create:
            events.append(
                ("create", partial(payloads.ref_event, repository, update.ref, update.new_sha, pusher, created=True))
            )
        if update.is_delete:
            events.append(
                ("delete", partial(payloads.ref_event, repository, update.ref, update.old_sha, pusher, created=False))
            )
        else:
            events.append(
                ("push", partial(payloads.push_event, repository, update.ref, update.old_sha, update.new_sha, pusher))
            )
        for event, build in events:
            webhooks.announce(repository, event, build, branch=name if kind == "branch" else None, hooks=hooks)
    return []


def hook_repository_created(sender, *, repository: Repository, actor: User | None, **kwargs) -> None:
    webhooks.announce(repository, "repository", lambda: payloads.repository_event(repository, "created", actor))


def hook_repository_renamed(sender, *, repository: Repository, actor: User | None, old_name: str, **kwargs) -> None:
    webhooks.announce(
        repository,
        "repository",
        lambda: payloads.repository_event(repository, "renamed", actor, repository={"name": {"from": old_name}}),
    )


def hook_repository_transferred(
    sender, *, repository: Repository, actor: User | None, old_owner: User, **kwargs
) -> None:
    # The old organization's hooks hear that it left; the new owner's that it came.
    hooks = webhooks.hooks_for(repository) + list(Webhook.objects.filter(active=True, organization=old_owner))
    changes = {"owner": {"from": {"user": user_out(old_owner, None)}}}
    webhooks.announce(
        repository,
        "repository",
        partial(payloads.repository_event, repository, "transferred", actor, **changes),
        hooks=hooks,
    )


def hook_repository_deleted(sender, *, repository: Repository, actor: User | None, **kwargs) -> None:
    # The repository's own hooks go with it: its organization's hear of it.
    hooks = [hook for hook in webhooks.hooks_for(repository) if hook.organization_id is not None]
    webhooks.announce(
        repository, "repository", lambda: payloads.repository_event(repository, "deleted", actor), hooks=hooks
    )


def _pull_action(action: str):
    def receiver(sender, *, pull_request: PullRequest, actor: User | None, **kwargs) -> None:
        extra = {}
        if action == "edited":
            extra["changes"] = payloads.edited_changes(kwargs.get("before", {}), kwargs.get("after", {}))
        if action == "synchronized":
            extra["commit_id"] = pull_request.head_sha
        name = "closed" if action == "merged" else action
        webhooks.announce(
            pull_request.repository,
            "pull_request",
            lambda: payloads.pull_request_event(pull_request, name, actor, **extra),
        )

    receiver.__name__ = f"hook_pull_request_{action}"
    return receiver


PULL_REQUEST_RECEIVERS = {
    action: _pull_action(action) for action in ("opened", "edited", "synchronized", "closed", "reopened", "merged")
}


def hook_review_submitted(sender, *, review: Review, pull_request: PullRequest, actor: User | None, **kwargs) -> None:
    webhooks.announce(
        pull_request.repository, "pull_request_review", lambda: payloads.review_event(review, pull_request, actor)
    )


def hook_review_dismissed(sender, *, review: Review, pull_request: PullRequest, actor: User | None, **kwargs) -> None:
    webhooks.announce(
        pull_request.repository,
        "pull_request_review",
        lambda: payloads.review_event(review, pull_request, actor, dismissed=True),
    )


def hook_comment_created(sender, *, comment: Comment, pull_request: PullRequest, actor: User | None, **kwargs) -> None:
    webhooks.announce(
        pull_request.repository, "pull_request_comment", lambda: payloads.comment_event(comment, pull_request, actor)
    )


def hook_status_set(sender, *, status: CommitStatus, repository: Repository, actor: User | None, **kwargs) -> None:
    webhooks.announce(repository, "status", lambda: payloads.status_event(status, actor))
