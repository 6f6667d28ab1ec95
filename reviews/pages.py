"""What the pull request pages show: the conversation's timeline, the sidebar, threads with their code, the diffs.

Reads only: gathered for reviews.views, which stays HTTP only."""

import re
import shlex
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from django.http import Http404, HttpRequest, QueryDict
from django.urls import reverse
from django.utils.safestring import SafeString

from portal.models import User
from repos import code, git
from repos import render as code_render
from repos.access import can_administer, role_for
from repos.models import Repository
from reviews import access, rules, services
from reviews.models import (
    Comment,
    CommitStatus,
    MergeStrategy,
    PullRequest,
    Review,
    Revision,
)

# A thread shows this many lines of code above the line it is on (a range shows itself, up to RANGE_LINES).
CONTEXT_LINES = 3
RANGE_LINES = 12
_SUGGESTION = re.compile(r"^```suggestion[ \t]*\r?\n.*?^```[ \t]*$\n?", re.DOTALL | re.MULTILINE)


def repo_prefix(repo: Repository) -> str:
    return f"/{repo.owner.username}/{repo.name}"


def detail_url(pr: PullRequest) -> str:
    return reverse("reviews:detail", args=[pr.repository.owner.username, pr.repository.name, pr.number])


def options_query(options: code.DiffOptions) -> str:
    return ("view=split&" if options.view == "split" else "") + ("w=1&" if options.ignore_whitespace else "")


def diff_url(pr: PullRequest, old: str, new: str, options: code.DiffOptions) -> str:
    """Where the lazy batches of a diff load from, ready for one more parameter: named by shas, so a push while
    the page is open cannot mix two diffs."""
    url = reverse("reviews:files_fragment", args=[pr.repository.owner.username, pr.repository.name, pr.number])
    return f"{url}?old={old}&new={new}&{options_query(options)}"


def _diff(pr: PullRequest, old: str, new: str, options: code.DiffOptions) -> code.DiffPage:
    """The first view of a diff of the pull request, cached by its shas."""
    page_url = diff_url(pr, old, new, options)
    return code.diff_page(pr.repository.path, old, new, options, prefix=repo_prefix(pr.repository), page_url=page_url)


def repo_context(request: HttpRequest, repo: Repository) -> dict:
    role = role_for(request.user, repo)
    is_admin = can_administer(request.user, repo, role=role)
    return {"repo": repo, "prefix": repo_prefix(repo), "tab": "pulls", "role": role, "is_admin": is_admin}


REVIEW_STATES = {
    Review.State.CHANGES_REQUESTED: "Changes requested",
    Review.State.APPROVED: "Approved",
    "required": "Review required",
}
CHECK_ICONS = {"success": "✓", "failure": "✗", "warning": "!", "pending": "●"}


def with_list_details(rows: list[PullRequest]) -> list[PullRequest]:
    """The rows of a list with their review state and combined checks: two queries for the whole page."""
    ids = [row.pk for row in rows]
    latest: dict[tuple[int, int], str | None] = {}
    verdicts = Review.objects.filter(
        pull_request_id__in=ids, state__in=[Review.State.APPROVED, Review.State.CHANGES_REQUESTED]
    ).order_by("submitted_at", "id")
    # Each reviewer's latest verdict counts, unless it was dismissed (as reviews.rules.latest_verdicts has it).
    for pr_id, author_id, state, dismissed in verdicts.values_list(
        "pull_request_id", "author_id", "state", "dismissed_at"
    ):
        latest[(pr_id, author_id)] = state if dismissed is None else None
    states: dict[int, set[str]] = defaultdict(set)
    for (pr_id, _author_id), state in latest.items():
        if state:
            states[pr_id].add(state)
    statuses: dict[tuple[int, str], list[str]] = defaultdict(list)
    heads = {row.head_sha for row in rows}
    found = CommitStatus.objects.filter(repository_id__in={row.repository_id for row in rows}, sha__in=heads)
    for repo_id, sha, state in found.values_list("repository_id", "sha", "state"):
        statuses[(repo_id, sha)].append(state)
    for row in rows:
        verdict = states.get(row.pk, set())
        if Review.State.CHANGES_REQUESTED in verdict:
            row.review_state = Review.State.CHANGES_REQUESTED
        elif Review.State.APPROVED in verdict:
            row.review_state = Review.State.APPROVED
        else:
            row.review_state = "required" if row.is_open else ""
        row.review_label = REVIEW_STATES.get(row.review_state, "")
        row.checks = _combined(statuses.get((row.repository_id, row.head_sha), []))
    return rows


def _combined(states: list[str]) -> dict | None:
    """One icon for a commit's statuses, by their combined state."""
    if not states:
        return None
    state = CommitStatus.combined(states)
    passed = states.count(CommitStatus.State.SUCCESS)
    return {"state": state, "icon": CHECK_ICONS[state], "title": f"{passed} of {len(states)} checks passed"}


def pull_context(request: HttpRequest, pr: PullRequest, page: str) -> dict:
    """What every page of a pull request shows: its header, its tabs and what the user may do."""
    repo = pr.repository
    context = repo_context(request, repo)
    role = context["role"]
    user = request.user
    commit_count, _rows = code.compare_commits(repo.path, pr.merge_base_sha, pr.head_sha, prefix=context["prefix"])
    return {
        **context,
        "pr": pr,
        "page": page,
        "commit_count": commit_count,
        "file_count": code.changed_file_count(repo.path, pr.merge_base_sha, pr.head_sha),
        "can": {
            "comment": user.is_authenticated,
            "edit": access.can_edit_pull(user, pr, role=role),
            "merge": access.can_merge(user, pr, role=role),
            "dismiss_review": access.can_dismiss_review(user, pr, role=role),
            "override": access.can_override_rules(user, pr, role=role),
            "give_verdict": access.can_give_verdict(user, pr),
        },
        "description_html": _markdown(pr.description, pr),
        "head_exists": _branch_at(repo, pr.head_branch),
    }


def _branch_at(repo: Repository, branch: str) -> str | None:
    try:
        return git.branch_sha(repo.path, branch)
    except git.RefNotFound:
        return None


def _markdown(text: str, pr: PullRequest) -> SafeString:
    """Sanitized Markdown, relative links resolved against the head; cached by the text, which names the result."""
    if not text.strip():
        return SafeString("")
    prefix = repo_prefix(pr.repository)
    link_base, image_base = f"{prefix}/blob/{pr.head_sha}/", f"{prefix}/raw/{pr.head_sha}/"
    html = code.cached(
        ("review-markdown", text, link_base, image_base),
        lambda: code_render.render_markdown(text, link_base=link_base, image_base=image_base),
    )
    return code.safe(html)


def _lines(repo: Repository, sha: str, path: str, first: int, last: int) -> list[tuple[int, str]]:
    """Lines first..last of a file at a commit, numbered; cached, since a sha names them for good."""

    def compute() -> list[tuple[int, str]]:
        found = git.file_lines(repo.path, sha, path) or []
        return [(n, found[n - 1]) for n in range(max(first, 1), min(last, len(found)) + 1)]

    if not sha or not path or not last:
        return []
    return code.cached(("review-lines", str(repo.path), sha, path, first, last), compute)


def _visible_comments(pr: PullRequest, user: User) -> list[Comment]:
    """Every comment the user may read: pending ones only when they are the user's own."""
    found = pr.comments.select_related("author", "review", "resolved_by")
    me = user.pk if user.is_authenticated else None
    return [c for c in found if c.review is None or c.review.state != Review.State.PENDING or c.review.author_id == me]


def _threads(pr: PullRequest, comments: list[Comment], context: dict, user: User) -> list[Comment]:
    """The roots among the comments, each with its replies and what the page shows and allows about it."""
    replies: dict[int, list[Comment]] = defaultdict(list)
    roots = []
    role = context["role"]
    for comment in comments:
        comment.pending = comment.review is not None and comment.review.state == Review.State.PENDING
        comment.can_edit = access.can_edit_comment(user, comment)
        comment.can_delete = access.can_delete_comment(user, comment, role=role)
        comment.suggestion = None
        if comment.reply_to_id:
            replies[comment.reply_to_id].append(comment)
        else:
            roots.append(comment)
    for root in roots:
        root.replies_shown = replies.get(root.pk, [])
        root.can_resolve = access.can_resolve_thread(user, root, role=role)
        if root.path:
            _describe_inline(pr, root, context, user)
    for comment in comments:
        # A suggestion is shown as the change it proposes, so its block is left out of the text around it.
        body = _SUGGESTION.sub("", comment.body, count=1) if comment.suggestion else comment.body
        comment.body_html = _markdown(body, pr)
    return roots


def _describe_inline(pr: PullRequest, thread: Comment, context: dict, user: User) -> None:
    repo = pr.repository
    thread.quoted_path = code.quote_path(thread.path)
    thread.path_label = git.label(thread.path)
    thread.line_range = (
        f"{thread.original_start_line}–{thread.original_line}" if thread.original_start_line else thread.original_line
    )
    sha, path = thread.original_commit_sha, thread.path
    if thread.side == Comment.Side.LEFT:
        sha = thread.original_base_sha
        path = services.old_side_path(repo, sha, thread.original_commit_sha, thread.path)
    last = thread.original_line or 0
    first = (
        max(thread.original_start_line, last - RANGE_LINES + 1) if thread.original_start_line else last - CONTEXT_LINES
    )
    marked_from = thread.original_start_line or last
    thread.context_lines = [(n, text, n >= marked_from) for n, text in _lines(repo, sha, path, first, last)]
    replacement = services.suggestion_of(thread.body)
    if replacement is not None and thread.side == Comment.Side.RIGHT:
        # The lines the suggestion would replace now, or where it was written once they changed.
        if thread.outdated:
            sha, start, end = thread.original_commit_sha, thread.original_start_line, thread.original_line
        else:
            sha, start, end = thread.commit_sha, thread.start_line, thread.line
        old = [text for _n, text in _lines(repo, sha, thread.path, start or end, end)]
        thread.suggestion = {
            "old": old,
            "new": replacement.split("\n") if replacement else [],
            "message": services.suggestion_message(thread),
        }
        thread.can_apply = (
            pr.is_open
            and not thread.outdated
            and not thread.suggestion_applied_sha
            and not thread.pending
            and thread.commit_sha == pr.head_sha
            and access.can_apply_suggestion(user, pr, role=context["role"])
        )


@dataclass
class Item:
    """One entry of the conversation's timeline."""

    kind: str  # event, revision, review, thread
    when: datetime
    obj: object


def timeline_context(request: HttpRequest, pr: PullRequest, context: dict) -> dict:
    roots = _threads(pr, _visible_comments(pr, request.user), context, request.user)
    submitted = list(pr.reviews.filter(submitted_at__isnull=False).select_related("author"))
    by_review: dict[int, list[Comment]] = defaultdict(list)
    items = [Item("event", e.created, e) for e in pr.events.select_related("actor")]
    for root in roots:
        if root.review_id and not root.pending:
            by_review[root.review_id].append(root)
        else:
            items.append(Item("thread", root.created, root))
    numbers = {revision.head_sha: revision.number for revision in context["revisions"]}
    for found in submitted:
        found.revision_number = numbers.get(found.commit_sha)
        found.threads = by_review.get(found.pk, [])
        found.body_html = _markdown(found.body, pr)
        items.append(Item("review", found.submitted_at, found))
    for revision in context["revisions"]:
        if revision.pushed:
            items.append(Item("revision", revision.created, revision))
    items.sort(key=lambda item: item.when)
    pending = [c for c in roots if c.pending] + [r for root in roots for r in root.replies_shown if r.pending]
    return {"timeline": items, "pending_count": len(pending)}


def revisions_with_links(pr: PullRequest) -> list[Revision]:
    """The revisions, each with the commits its push added and the links to its diff and to the one before."""
    revisions = list(pr.revisions.select_related("pusher"))
    files_url = reverse("reviews:files", args=[pr.repository.owner.username, pr.repository.name, pr.number])
    previous = None
    for revision in revisions:
        revision.files_url = f"{files_url}?rev={revision.number}"
        revision.pushed = previous is not None and previous.head_sha != revision.head_sha
        revision.added = 0
        if revision.pushed:
            revision.interdiff_url = f"{files_url}?from={previous.number}&to={revision.number}"
            revision.added = _added_commits(pr.repository, previous.head_sha, revision.head_sha)
        previous = revision
    return revisions


def _added_commits(repo: Repository, old: str, new: str) -> int:
    return code.cached(
        ("review-added", str(repo.path), old, new), lambda: len(git.commits_between(repo.path, old, new))
    )


def sidebar_context(request: HttpRequest, pr: PullRequest, context: dict) -> dict:
    repo = pr.repository
    user = request.user if request.user.is_authenticated else None
    blocker = rules.merge_blocker(pr, user)
    checks = rules.check_states(repo, pr.head_sha)
    expected = [c for c in rules.required_checks(repo, pr.base_branch) if c not in checks]
    settings = rules.review_settings(repo)
    statuses = rules.approval_status(pr) if pr.is_open else []
    merge_form = None
    if pr.is_open and user is not None and blocker is None:
        merge_form = {
            "strategies": [
                (value, MergeStrategy(value).label, services.default_merge_message(pr, value, actor=user))
                for value in settings.allowed_strategies()
            ],
            "delete_branch": settings.delete_branch_after_merge,
        }
    conflicts = rules.conflicts(pr) if pr.is_open else []
    return {
        "reviewer_rows": _reviewer_rows(pr, context["revisions"]),
        "team_requests": pr.review_requests.filter(team__isnull=False).select_related("team__organization"),
        "rule_statuses": statuses,
        "checks": sorted(checks.values(), key=lambda status: status.context),
        "expected_checks": expected,
        "blocker": blocker,
        "conflicts": conflicts,
        "conflict_steps": conflict_steps(pr, conflicts) if conflicts and context["can"]["edit"] else "",
        "merge_form": merge_form,
        "can_override": (
            context["can"]["override"]
            and pr.is_open
            and pr.override_at is None
            and bool(blocker or statuses)
            and rules.override_blocker(pr) is None
        ),
    }


def conflict_steps(pr: PullRequest, conflicts: list[str]) -> str:
    """The commands that resolve a pull request's conflicts in a clone, as GitHub's "Use the command line" gives
    them: every name quoted for the shell, since branch and file names may hold anything git allows."""
    repo = pr.repository
    head, base = shlex.quote(pr.head_branch), shlex.quote(f"origin/{pr.base_branch}")
    paths = " ".join(shlex.quote(path) for path in conflicts)
    return "\n".join(
        [
            f"# In a clone of the repository (git clone {shlex.quote(repo.http_url)}):",
            "git fetch origin",
            f"git checkout {head}",
            f"git merge {base}",
            "# Fix the conflicts in the files above, then:",
            f"git add -- {paths}",
            "git commit",
            f"git push origin {head}",
        ]
    )


@dataclass
class ReviewerRow:
    user: User
    review: Review | None
    requested: bool
    stale: bool


def _reviewer_rows(pr: PullRequest, revisions: list[Revision]) -> list[ReviewerRow]:
    """Each requested or actual reviewer with their latest verdict (or comment), stale when it saw other code."""
    current = revisions[-1] if revisions else None
    same_patch = {pr.head_sha}
    if current is not None and current.patch_id:
        same_patch |= {r.head_sha for r in revisions if r.patch_id == current.patch_id}
    latest: dict[int, Review] = {}
    verdicts = (Review.State.APPROVED, Review.State.CHANGES_REQUESTED)
    for found in pr.reviews.filter(submitted_at__isnull=False).select_related("author").order_by("submitted_at", "id"):
        kept = latest.get(found.author_id)
        if found.state in verdicts or kept is None or kept.state not in verdicts:
            latest[found.author_id] = found
    requested = {r.user_id: r.user for r in pr.review_requests.filter(user__isnull=False).select_related("user")}
    rows = [
        ReviewerRow(
            user=found.author,
            review=found,
            requested=found.author_id in requested,
            stale=found.state == Review.State.APPROVED
            and not found.is_dismissed
            and found.commit_sha not in same_patch,
        )
        for found in latest.values()
    ]
    rows += [
        ReviewerRow(user=u, review=None, requested=True, stale=False) for pk, u in requested.items() if pk not in latest
    ]
    return sorted(rows, key=lambda row: row.user.username.lower())


@dataclass
class Span:
    """Which diff the files page shows: the whole pull request, one revision, or the change between two."""

    old: str
    new: str
    mode: str  # current, revision, interdiff
    query: str  # the query naming it, ending in '&' (empty for the whole pull request)
    number: int = 0
    from_number: int = 0


def _span(pr: PullRequest, revisions: list[Revision], query: QueryDict) -> Span:
    by_number = {r.number: r for r in revisions}

    def pick(key: str) -> Revision:
        try:
            return by_number[int(query[key])]
        except (KeyError, ValueError):
            raise Http404("No such revision.") from None

    if revisions and ("from" in query or "to" in query):
        first, last = pick("from"), (pick("to") if "to" in query else revisions[-1])
        return Span(
            first.head_sha,
            last.head_sha,
            "interdiff",
            f"from={first.number}&to={last.number}&",
            number=last.number,
            from_number=first.number,
        )
    if revisions and "rev" in query:
        revision = pick("rev")
        return Span(revision.merge_base_sha, revision.head_sha, "revision", f"rev={revision.number}&", revision.number)
    return Span(pr.merge_base_sha, pr.head_sha, "current", "", revisions[-1].number if revisions else 0)


def _anchor(thread: Comment, span: Span) -> int | None:
    """The line a thread sits on in the diff shown, or None when it is not on that diff's lines."""
    if thread.side == Comment.Side.RIGHT:
        if thread.commit_sha == span.new:
            return thread.line
        if thread.original_commit_sha == span.new:
            return thread.original_line
    elif span.mode != "interdiff":
        if thread.commit_sha == span.old:
            return thread.line
        if thread.original_base_sha == span.old:
            return thread.original_line
    return None


def files_context(request: HttpRequest, pr: PullRequest, context: dict) -> dict:
    options = code.DiffOptions.from_query(request.GET)
    revisions = revisions_with_links(pr)
    span = _span(pr, revisions, request.GET)
    threads = [t for t in _threads(pr, _visible_comments(pr, request.user), context, request.user) if t.path]
    for thread in threads:
        thread.anchor_line = _anchor(thread, span)
    since = None
    if request.user.is_authenticated and revisions:
        mine = pr.reviews.filter(author=request.user, submitted_at__isnull=False).order_by("-submitted_at").first()
        seen = mine and max((r.number for r in revisions if r.head_sha == mine.commit_sha), default=None)
        if seen and seen < revisions[-1].number:
            since = f"?from={seen}&to={revisions[-1].number}"
    pending = 0
    if request.user.is_authenticated:
        pending = Comment.objects.filter(review__pull_request=pr, review__author=request.user, review__state="pending")
        pending = pending.count()
    return {
        "options": options,
        "diff": _diff(pr, span.old, span.new, options),
        "span": span,
        "revisions": revisions,
        "threads": threads,
        "since_url": since,
        "pending_count": pending,
        "toolbar_query": span.query,
        "back_query": span.query + options_query(options),
    }
