"""What webhooks send: Gitea's payloads (which follow GitHub's), built from the API's own shapes, and Slack's.

Each event has the names Gitea puts in its headers: X-Gitea-Event (also sent as X-GitHub-Event) and
X-Gitea-Event-Type. A payload is built when the event happens, so a retry sends what was true then."""

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings

from portal.api import user_out
from portal.models import User
from repos import git
from repos.api import repository_json
from repos.models import Repository, Role
from reviews.api.pulls import pull_out
from reviews.api.reviews import REVIEW_STATES, review_out
from reviews.api.statuses import status_out
from reviews.models import Comment, CommitStatus, PullRequest, Review

# The events a hook may ask for, in the order the settings page lists them.
EVENTS = {
    "push": "Push: commits pushed to a branch or tag",
    "create": "Create: a branch or tag created",
    "delete": "Delete: a branch or tag deleted",
    "pull_request": "Pull request: opened, edited, synchronized, closed, reopened, merged",
    "pull_request_review": "Pull request review: approved, changes requested, commented, dismissed",
    "pull_request_comment": "Pull request comment: a comment on a pull request",
    "status": "Status: a commit status set",
    "repository": "Repository: created, renamed, transferred, deleted",
}
# Gitea's finer event names, taken as the event that holds them.
EVENT_ALIASES = {
    "pull_request_sync": "pull_request",
    "pull_request_review_approved": "pull_request_review",
    "pull_request_review_rejected": "pull_request_review",
    "pull_request_review_comment": "pull_request_review",
    "issue_comment": "pull_request_comment",
}
# Commits a push payload lists at most, as Gitea does; total_commits counts up to PUSH_COMMITS_COUNTED.
PUSH_COMMITS = 20
PUSH_COMMITS_COUNTED = 1000


@dataclass(frozen=True)
class Event:
    """One event, ready for every hook that wants it."""

    name: str  # one of EVENTS
    gitea_event: str  # X-Gitea-Event and X-GitHub-Event
    gitea_event_type: str  # X-Gitea-Event-Type
    action: str
    repository: Repository
    payload: dict

    def json(self) -> str:
        return json.dumps(self.payload, default=_json_value, ensure_ascii=False)


def _json_value(value):
    if isinstance(value, datetime):
        # RFC 3339 to the second, as Gitea writes times.
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _user(user: User | None) -> dict | None:
    return user_out(user, None) if user is not None else None


def _repository(repo: Repository) -> dict:
    # As Gitea's payloads do, the repository as its administrators see it.
    return repository_json(repo, None, Role.ADMIN)


def _base(repo: Repository, sender: User | None) -> dict:
    payload = {"repository": _repository(repo), "sender": _user(sender or repo.owner)}
    if repo.owner.is_organization:
        payload["organization"] = _user(repo.owner)
    return payload


def _person(signature: git.Signature) -> dict:
    return {"name": signature.name, "email": signature.email, "username": ""}


def payload_commit(repo: Repository, commit: git.Commit, *, files: bool = True) -> dict:
    """A commit as push payloads list it, with the paths it added, removed and modified."""
    added, removed, modified = [], [], []
    if files:
        for changed in git.diff(repo.path, git.parent_for_diff(repo.path, commit.sha), commit.sha):
            if changed.status == "added":
                added.append(changed.new_path)
            elif changed.status == "deleted":
                removed.append(changed.old_path)
            elif changed.status == "renamed":
                removed.append(changed.old_path)
                added.append(changed.new_path)
            else:
                modified.append(changed.new_path)
    return {
        "id": commit.sha,
        "message": commit.message,
        "url": f"{repo.web_url}/commit/{commit.sha}",
        "author": _person(commit.author),
        "committer": _person(commit.committer),
        "verification": None,
        "timestamp": commit.committer.when,
        "added": added,
        "removed": removed,
        "modified": modified,
    }


def split_ref(ref: str) -> tuple[str, str]:
    """("branch", "main") for refs/heads/main, ("tag", "v1") for refs/tags/v1, ("", ref) otherwise."""
    for prefix, kind in (("refs/heads/", "branch"), ("refs/tags/", "tag")):
        if ref.startswith(prefix):
            return kind, ref.removeprefix(prefix)
    return "", ref


def _pushed_commits(repo: Repository, ref: str, old_sha: str, new_sha: str) -> tuple[list[git.Commit], int]:
    """The commits a ref update brought, newest first (at most PUSH_COMMITS), and how many there are.

    For a new branch, those its repository's default branch does not have."""
    if old_sha.strip("0") == "":
        default = git.ref_target(repo.path, f"refs/heads/{repo.default_branch}")
        old_sha = default if default and ref != f"refs/heads/{repo.default_branch}" else ""
    if old_sha:
        found = git.commits_between(repo.path, old_sha, new_sha, limit=PUSH_COMMITS_COUNTED)[::-1]
    else:
        found = git.log(repo.path, new_sha, limit=PUSH_COMMITS)
    return found[:PUSH_COMMITS], len(found)


def push_event(repo: Repository, ref: str, old_sha: str, new_sha: str, pusher: User | None) -> Event:
    commits, total = _pushed_commits(repo, ref, old_sha, new_sha)
    listed = [payload_commit(repo, commit) for commit in commits]
    compare = "" if old_sha.strip("0") == "" else f"{repo.web_url}/compare/{old_sha}...{new_sha}"
    payload = {
        "ref": ref,
        "before": old_sha,
        "after": new_sha,
        "compare_url": compare,
        "commits": listed,
        "total_commits": total,
        "head_commit": listed[0] if listed else None,
        "pusher": _user(pusher or repo.owner),
    } | _base(repo, pusher)
    return Event("push", "push", "push", "", repo, payload)


def ref_event(repo: Repository, ref: str, sha: str, sender: User | None, *, created: bool) -> Event:
    """A branch or tag created (with the sha it points at) or deleted."""
    kind, name = split_ref(ref)
    payload = (
        {"ref": name, "ref_type": kind or "ref"}
        | ({"sha": sha} if created else {"pusher_type": "user"})
        | _base(repo, sender)
    )
    event = "create" if created else "delete"
    return Event(event, event, event, "", repo, payload)


def _pull_payload(pr: PullRequest, action: str, sender: User | None, **extra) -> dict:
    return (
        {
            "action": action,
            "number": pr.number,
            "pull_request": pull_out(pr, None),
            "requested_reviewer": None,
            "commit_id": "",
            "review": None,
        }
        | extra
        | _base(pr.repository, sender)
    )


def pull_request_event(pr: PullRequest, action: str, sender: User | None, **extra) -> Event:
    """opened, edited, synchronized, closed (merged or not) or reopened, as Gitea names them."""
    return Event(
        "pull_request",
        "pull_request",
        "pull_request",
        action,
        pr.repository,
        _pull_payload(pr, action, sender, **extra),
    )


def edited_changes(before: dict, after: dict) -> dict:
    changes = {}
    if before.get("title") != after.get("title"):
        changes["title"] = {"from": before.get("title")}
    if before.get("base") != after.get("base"):
        changes["base"] = {"ref": {"from": before.get("base")}}
    return changes


# Gitea's event and event type for each kind of review.
REVIEW_EVENTS = {
    Review.State.APPROVED: ("pull_request_approved", "pull_request_review_approved"),
    Review.State.CHANGES_REQUESTED: ("pull_request_rejected", "pull_request_review_rejected"),
    Review.State.COMMENTED: ("pull_request_comment", "pull_request_review_comment"),
}


def review_event(review: Review, pr: PullRequest, sender: User | None, *, dismissed: bool = False) -> Event:
    """A submitted review as Gitea sends it (action "reviewed"); a dismissal as GitHub does (action "dismissed")."""
    if dismissed:
        gitea_event = gitea_type = "pull_request_review"
        action = "dismissed"
    else:
        gitea_event, gitea_type = REVIEW_EVENTS.get(review.state, REVIEW_EVENTS[Review.State.COMMENTED])
        action = "reviewed"
    detail = {"type": gitea_type, "content": review.body, "state": REVIEW_STATES[review.state]}
    payload = _pull_payload(pr, action, sender, commit_id=review.commit_sha, review=detail)
    payload["review_detail"] = review_out(review, pr, None)
    return Event("pull_request_review", gitea_event, gitea_type, action, pr.repository, payload)


def comment_event(comment: Comment, pr: PullRequest, sender: User | None) -> Event:
    """A comment on a pull request: Gitea's issue_comment payload, with is_pull set."""
    repo = pr.repository
    issue = {
        "id": pr.pk,
        "url": f"{settings.PORTAL_BASE_URL}/api/v1/repos/{repo.full_name}/issues/{pr.number}",
        "html_url": pr.web_url,
        "number": pr.number,
        "user": _user(pr.author),
        "title": pr.title,
        "body": pr.description,
        "state": "open" if pr.is_open else "closed",
        "created_at": pr.created,
        "updated_at": pr.updated,
        "pull_request": {"merged": pr.state == PullRequest.State.MERGED, "html_url": pr.web_url},
    }
    thread = comment.reply_to or comment
    detail = {
        "id": comment.pk,
        "html_url": f"{pr.web_url}#comment-{comment.pk}",
        "pull_request_url": pr.web_url,
        "issue_url": "",
        "user": _user(comment.author),
        "original_author": "",
        "original_author_id": 0,
        "body": comment.body,
        "path": thread.path,
        "line": thread.line,
        "in_reply_to": comment.reply_to_id,
        "created_at": comment.created,
        "updated_at": comment.edited or comment.created,
    }
    payload = {
        "action": "created",
        "issue": issue,
        "pull_request": pull_out(pr, None),
        "comment": detail,
        "is_pull": True,
    } | _base(repo, sender)
    return Event("pull_request_comment", "issue_comment", "pull_request_comment", "created", repo, payload)


def status_event(status: CommitStatus, sender: User | None) -> Event:
    repo = status.repository
    try:
        commit = payload_commit(repo, git.commit(repo.path, status.sha), files=False)
    except (git.GitError, KeyError, ValueError):
        commit = None
    shape = status_out(status, None)
    payload = {
        "id": status.pk,
        "sha": status.sha,
        "context": status.context,
        "description": status.description,
        "target_url": status.target_url,
        "state": status.state,
        "commit": commit,
        "created_at": shape["created_at"],
        "updated_at": shape["updated_at"],
    } | _base(repo, sender)
    return Event("status", "status", "status", status.state, repo, payload)


def repository_event(repo: Repository, action: str, sender: User | None, **changes) -> Event:
    """created, deleted (Gitea's actions), renamed or transferred (GitHub's)."""
    payload = {"action": action} | _base(repo, sender)
    if changes:
        payload["changes"] = changes
    return Event("repository", "repository", "repository", action, repo, payload)


def test_event(repo: Repository, sender: User) -> Event:
    """What a hook's test button sends, as Gitea does: a push of the default branch's last commit."""
    sha = git.ref_target(repo.path, f"refs/heads/{repo.default_branch}")
    if sha is None:
        payload = {"ref": f"refs/heads/{repo.default_branch}", "before": git.ZERO_SHA, "after": git.ZERO_SHA}
        commits = []
    else:
        commits = [payload_commit(repo, git.commit(repo.path, sha))]
        payload = {"ref": f"refs/heads/{repo.default_branch}", "before": sha, "after": sha}
    payload |= {
        "compare_url": "",
        "commits": commits,
        "total_commits": len(commits),
        "head_commit": commits[0] if commits else None,
        "pusher": _user(sender),
    } | _base(repo, sender)
    return Event("push", "push", "push", "", repo, payload)


# Slack: one message per event, with links in Slack's <url|text> markup.


def _link(url: str, text: str) -> str:
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return f"<{url}|{escaped}>" if url else escaped


def slack_text(event: Event) -> tuple[str, list[dict]]:
    """The message's text and its attachments."""
    p = event.payload
    repo = p["repository"]
    where = _link(repo["html_url"], repo["full_name"])
    sender = (p.get("sender") or {}).get("login", "someone")
    if event.name == "push":
        _, name = split_ref(p["ref"])
        count = p["total_commits"]
        text = f"[{where}:{name}] {count} new commit{'' if count == 1 else 's'} pushed by {sender}"
        lines = [
            f"{_link(c['url'], c['id'][:10])}: {c['message'].splitlines()[0] if c['message'] else ''} - "
            f"{c['author']['name']}"
            for c in p["commits"]
        ]
        return text, [{"color": "", "text": "\n".join(lines)}] if lines else []
    if event.name in ("create", "delete"):
        verb = "created" if event.name == "create" else "deleted"
        return f"[{where}] {p['ref_type']} {p['ref']} {verb} by {sender}", []
    if event.name in ("pull_request", "pull_request_review"):
        pr = p["pull_request"]
        title = _link(pr["html_url"], f"#{pr['number']} {pr['title']}")
        action = event.action
        if action == "closed" and pr.get("merged"):
            action = "merged"
        if event.name == "pull_request_review" and action == "reviewed":
            action = {"pull_request_approved": "approved", "pull_request_rejected": "requested changes on"}.get(
                event.gitea_event, "reviewed"
            )
        return f"[{where}] Pull request {action}: {title} by {sender}", []
    if event.name == "pull_request_comment":
        pr = p["pull_request"]
        title = _link(p["comment"]["html_url"], f"#{pr['number']} {pr['title']}")
        return f"[{where}] New comment on pull request {title} by {sender}", [{"text": p["comment"]["body"][:1000]}]
    if event.name == "status":
        return f"[{where}] {p['context']} is {p['state']} on {p['sha'][:10]}: {p['description']}", []
    return f"[{where}] Repository {event.action} by {sender}", []


def slack_body(event: Event, options: dict) -> str:
    text, attachments = slack_text(event)
    color = options.get("color", "")
    message = {
        "channel": options.get("channel", ""),
        "username": options.get("username", "") or "portal",
        "icon_url": options.get("icon_url", ""),
        "text": text,
        "attachments": [attachment | {"color": attachment.get("color") or color} for attachment in attachments],
    }
    return json.dumps(message, ensure_ascii=False)
