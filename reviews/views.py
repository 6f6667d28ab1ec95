"""Pull request pages: the lists, opening one, its conversation, commits and files, and the actions on them.

HTTP only: the access door decides who sees what, reviews.services makes every change, reviews.rules says what
blocks a merge, and repos.code renders and caches the diffs. The helpers below only gather what a page shows."""

import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import unquote_to_bytes, urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.safestring import SafeString
from django.views.decorators.http import require_POST

from portal.models import User
from repos import code, git
from repos import render as code_render
from repos.access import check_role, get_repo_for_user, role_for, visible_repositories
from repos.browse_views import _fragment_range
from repos.models import Repository, Role
from reviews import forms, rules, services
from reviews.models import (
    Comment,
    MergeStrategy,
    PullRequest,
    Review,
    ReviewRequest,
    Revision,
)

PAGE_SIZE = 50
DASHBOARD_TABS = {"review": "Needs my review", "mine": "Mine", "involved": "Involved"}
# What the services refuse once the door has let the user in (a rule, a race, a protected branch): each is shown
# as a message above the page. A role the user lacks is the door's business: a 403 before any of this.
MISTAKES = (ValidationError, PermissionDenied, services.MergeRefused)
# Comments are the user's own to change, or a maintainer's: a refusal there is about the role, so it stays a 403.
COMMENT_MISTAKES = (ValidationError, services.MergeRefused)
STATES = ("open", "merged", "closed", "all")
# A thread shows this many lines of code above the line it is on (a range shows itself, up to RANGE_LINES).
CONTEXT_LINES = 3
RANGE_LINES = 12
_SUGGESTION = re.compile(r"^```suggestion[ \t]*\r?\n.*?^```[ \t]*$\n?", re.DOTALL | re.MULTILINE)
# The query of the files page that a comment posted there returns to.
_FILES_QUERY = ("rev", "from", "to", "view", "w")


def get_pull_for_user(
    user: User | None, owner: str, name: str, number: int, *, need: int = Role.READ, or_author: bool = False
) -> PullRequest:
    """A pull request of owner/name: 404 when the repository is hidden from the user, PermissionDenied when they
    lack the role need (which its author, with or_author, does not need)."""
    repo = get_repo_for_user(user, owner, name)
    pulls = PullRequest.objects.select_related("author", "merged_by", "override_by")
    pr = get_object_or_404(pulls, repository=repo, number=number)
    pr.repository = repo
    if need > Role.READ and not (or_author and user.pk == pr.author_id):
        check_role(role_for(user, repo), need)
    return pr


# Lists.


def pull_list(request: HttpRequest, owner: str, name: str) -> HttpResponse:
    repo = get_repo_for_user(request.user, owner, name)
    state = request.GET.get("state", "open")
    if state not in STATES:
        raise Http404("No such state.")
    pulls = _filtered(PullRequest.objects.filter(repository=repo), request.GET)
    counts = dict(pulls.order_by().values_list("state").annotate(n=Count("id")))
    if state != "all":
        pulls = pulls.filter(state=state)
    page = Paginator(_with_counts(pulls).order_by("-number"), PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        **_repo_context(request, repo),
        "page": page,
        "state": state,
        "counts": {**{s: counts.get(s, 0) for s in STATES[:3]}, "all": sum(counts.values())},
        "author": request.GET.get("author", ""),
        "reviewer": request.GET.get("reviewer", ""),
        "filter_query": _query(request.GET, ("author", "reviewer")),
    }
    return render(request, "reviews/list.html", context)


@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    tab = request.GET.get("tab", "review")
    state = request.GET.get("state", "open")
    if tab not in DASHBOARD_TABS or state not in STATES:
        raise Http404("No such tab.")
    visible = PullRequest.objects.filter(repository__in=visible_repositories(request.user).values("pk"))
    visible = _filtered(visible, request.GET)
    if state != "all":
        visible = visible.filter(state=state)
    counts = {key: _dashboard_tab(visible, key, request.user).count() for key in DASHBOARD_TABS}
    pulls = _with_counts(_dashboard_tab(visible, tab, request.user)).order_by("-updated", "-id")
    context = {
        "page": Paginator(pulls, PAGE_SIZE).get_page(request.GET.get("page")),
        "tab": tab,
        "tabs": [(key, label, counts[key]) for key, label in DASHBOARD_TABS.items()],
        "state": state,
        "states": STATES,
        "author": request.GET.get("author", ""),
        "repo_name": request.GET.get("repo", ""),
        "filter_query": _query(request.GET, ("state", "author", "repo")),
    }
    return render(request, "reviews/dashboard.html", context)


def _dashboard_tab(pulls, tab: str, user: User):
    if tab == "mine":
        return pulls.filter(author=user)
    if tab == "involved":
        published = Q(comments__review__isnull=True) | Q(comments__review__submitted_at__isnull=False)
        commented = PullRequest.objects.filter(Q(comments__author=user) & published).values("pk")
        reviewed = Review.objects.filter(author=user, submitted_at__isnull=False).values("pull_request")
        return pulls.filter(Q(pk__in=commented) | Q(pk__in=reviewed))
    # A team request stays after a member reviews; that member has done their part.
    direct = ReviewRequest.objects.filter(user=user).values("pull_request")
    via_team = ReviewRequest.objects.filter(team__members=user).values("pull_request")
    reviewed = Review.objects.filter(author=user, submitted_at__isnull=False).values("pull_request")
    asked = Q(pk__in=direct) | (Q(pk__in=via_team) & ~Q(pk__in=reviewed))
    return pulls.filter(asked).exclude(author=user)


def _filtered(pulls, query: QueryDict):
    if author := query.get("author", "").strip():
        pulls = pulls.filter(author__username__iexact=author)
    if reviewer := query.get("reviewer", "").strip():
        asked = ReviewRequest.objects.filter(user__username__iexact=reviewer).values("pull_request")
        reviewed = Review.objects.filter(author__username__iexact=reviewer, submitted_at__isnull=False)
        pulls = pulls.filter(Q(pk__in=asked) | Q(pk__in=reviewed.values("pull_request")))
    if repo := query.get("repo", "").strip():
        owner, _slash, name = repo.partition("/")
        pulls = pulls.filter(repository__owner__username__iexact=owner, repository__name__iexact=name)
    return pulls


def _with_counts(pulls):
    """The rows of a list, with what each shows: repository, author and published comment count."""
    published = Q(comments__review__isnull=True) | Q(comments__review__submitted_at__isnull=False)
    return pulls.select_related("repository__owner", "author").annotate(
        comment_count=Count("comments", filter=published, distinct=True)
    )


def _query(query: QueryDict, keys: tuple[str, ...]) -> str:
    """The given filters of a list as a query string ending in '&', for links that change one more parameter."""
    kept = {key: query[key] for key in keys if query.get(key)}
    return urlencode(kept) + "&" if kept else ""


# Opening.


@login_required
def pull_new(request: HttpRequest, owner: str, name: str) -> HttpResponse:
    repo = get_repo_for_user(request.user, owner, name)
    branch_names = [branch.name for branch in git.branches(repo.path)]
    source = request.POST if request.method == "POST" else request.GET
    base, head = source.get("base") or repo.default_branch, source.get("head", "")
    preview = _preview(request, repo, base, head, branch_names)
    initial = {"base": base, "head": head, "title": preview.get("default_title", "")}
    form = forms.NewPullRequestForm(request.POST or None, repo=repo, branch_names=branch_names, initial=initial)
    if form.is_bound and form.is_valid():
        data = form.cleaned_data
        try:
            pr = services.open_pull_request(
                repo,
                actor=request.user,
                title=data["title"],
                base=data["base"],
                head=data["head"],
                description=data["description"],
                draft=data["draft"],
                reviewers=data["reviewers"],
                teams=data["teams"],
            )
        except MISTAKES as exc:
            form.add_error(None, _message(exc))
        else:
            messages.success(request, f"Opened pull request #{pr.number}.")
            return redirect("reviews:detail", owner, name, pr.number)
    context = {**_repo_context(request, repo), **preview, "form": form}
    return render(request, "reviews/new.html", context, status=400 if form.is_bound else 200)


def _preview(request: HttpRequest, repo: Repository, base: str, head: str, branch_names: list[str]) -> dict:
    """What the new pull request would merge: its commits and the diff, as the compare page shows them."""
    preview: dict = {"base": base, "head": head, "branch_names": branch_names}
    if base not in branch_names or head not in branch_names or base == head:
        return preview
    base_sha, head_sha = git.branch_sha(repo.path, base), git.branch_sha(repo.path, head)
    merge_base = git.merge_base(repo.path, base_sha, head_sha)
    if merge_base is None:
        return {**preview, "unrelated": True}
    prefix = _prefix(repo)
    options = code.DiffOptions.from_query(request.GET)
    commits = code.compare_commits(repo.path, merge_base, head_sha, prefix=prefix)
    # The compare page serves the lazy batches of this diff: it is the same diff, named by the same shas.
    page_url = f"{prefix}/compare/{base_sha}...{head_sha}?{_options_query(options)}"
    existing = PullRequest.objects.open().filter(repository=repo, base_branch=base, head_branch=head).first()
    title = git.commit(repo.path, head_sha).summary if commits[0] == 1 else head.replace("-", " ").capitalize()
    return {
        **preview,
        "default_title": title,
        "toolbar_query": urlencode({"base": base, "head": head}) + "&",
        "merge_base": merge_base,
        "commits": commits,
        "diff": code.diff_page(repo.path, merge_base, head_sha, options, prefix=prefix, page_url=page_url),
        "options": options,
        "existing": existing,
        "nothing": merge_base == head_sha,
    }


# The pull request's pages.


def conversation(request: HttpRequest, owner: str, name: str, number: int) -> HttpResponse:
    pr = get_pull_for_user(request.user, owner, name, number)
    context = _pull_context(request, pr, "conversation")
    context["revisions"] = _revisions_with_links(pr)
    context.update(_timeline_context(request, pr, context))
    context.update(_sidebar_context(request, pr, context))
    return render(request, "reviews/conversation.html", context)


def commits(request: HttpRequest, owner: str, name: str, number: int) -> HttpResponse:
    pr = get_pull_for_user(request.user, owner, name, number)
    context = _pull_context(request, pr, "commits")
    context["revisions"] = _revisions_with_links(pr)
    _count, rows = code.compare_commits(pr.repository.path, pr.merge_base_sha, pr.head_sha, prefix=context["prefix"])
    context["commit_rows"] = code.safe(rows)
    return render(request, "reviews/commits.html", context)


def files(request: HttpRequest, owner: str, name: str, number: int) -> HttpResponse:
    pr = get_pull_for_user(request.user, owner, name, number)
    context = _pull_context(request, pr, "files")
    context.update(_files_context(request, pr, context))
    return render(request, "reviews/files.html", context)


def files_fragment(request: HttpRequest, owner: str, name: str, number: int) -> HttpResponse:
    """Lazy batches (and single large files) of a diff the files page showed, named by its two shas."""
    pr = get_pull_for_user(request.user, owner, name, number)
    old, new = request.GET.get("old", ""), request.GET.get("new", "")
    known = {pr.head_sha, pr.merge_base_sha}
    for revision in pr.revisions.values_list("head_sha", "merge_base_sha"):
        known.update(revision)
    wanted = _fragment_range(request)
    if wanted is None or old not in known or new not in known:
        raise Http404("No such diff.")
    options = code.DiffOptions.from_query(request.GET)
    html = code.diff_fragment(
        pr.repository.path,
        old,
        new,
        options,
        wanted[0],
        prefix=_prefix(pr.repository),
        page_url=_diff_url(pr, old, new, options),
        expand=wanted[1],
    )
    return HttpResponse(html)


# Actions. Each one: the door, one service call, a message, and back to the page it came from.


@login_required
@require_POST
def edit(request: HttpRequest, owner: str, name: str, number: int) -> HttpResponse:
    pr = get_pull_for_user(request.user, owner, name, number, need=Role.WRITE, or_author=True)
    form = forms.EditForm(request.POST)
    if not form.is_valid():
        return _invalid(request, form, _detail_url(pr))
    return _act(request, pr, "Saved.", services.update_pull_request, pr, actor=request.user, **form.changes())


@login_required
@require_POST
def close(request: HttpRequest, owner: str, name: str, number: int) -> HttpResponse:
    pr = get_pull_for_user(request.user, owner, name, number, need=Role.WRITE, or_author=True)
    return _act(request, pr, "Closed the pull request.", services.close_pull_request, pr, actor=request.user)


@login_required
@require_POST
def reopen(request: HttpRequest, owner: str, name: str, number: int) -> HttpResponse:
    pr = get_pull_for_user(request.user, owner, name, number, need=Role.WRITE, or_author=True)
    return _act(request, pr, "Reopened the pull request.", services.reopen_pull_request, pr, actor=request.user)


@login_required
@require_POST
def reviewers(request: HttpRequest, owner: str, name: str, number: int) -> HttpResponse:
    pr = get_pull_for_user(request.user, owner, name, number, need=Role.WRITE, or_author=True)
    form = forms.ReviewersForm(request.POST, repo=pr.repository)
    if not form.is_valid():
        return _invalid(request, form, _detail_url(pr))
    data = form.cleaned_data
    if data["remove_user"] or data["remove_team"]:
        user, team = data["remove_user"], data["remove_team"]
        done = "Withdrew the review request."
        return _act(request, pr, done, services.remove_review_request, pr, actor=request.user, user=user, team=team)
    return _act(
        request,
        pr,
        lambda asked: f"Asked {_names(asked) or 'nobody new'} for a review.",
        services.request_review,
        pr,
        actor=request.user,
        users=data["users"],
        teams=data["teams"],
    )


@login_required
@require_POST
def comment_add(request: HttpRequest, owner: str, name: str, number: int) -> HttpResponse:
    pr = get_pull_for_user(request.user, owner, name, number)
    form = forms.CommentForm(request.POST)
    if not form.is_valid():
        return _invalid(request, form, _back(request, pr))
    data = form.cleaned_data
    reply_to = _comment_for(pr, request.user, data["reply_to"]) if data["reply_to"] else None
    try:
        comment = services.add_comment(
            pr,
            actor=request.user,
            body=data["body"],
            path=_repo_path(data["path"]),
            line=data["line"],
            start_line=data["start_line"],
            side=data["side"] or Comment.Side.RIGHT,
            commit_sha=data["commit_sha"] or None,
            reply_to=reply_to,
            pending=data["pending"],
        )
    except MISTAKES as exc:
        messages.error(request, _message(exc))
        return redirect(_back(request, pr))
    return redirect(_back(request, pr, f"comment-{comment.pk}"))


@login_required
@require_POST
def comment_edit(request: HttpRequest, owner: str, name: str, number: int, comment_id: int) -> HttpResponse:
    pr = get_pull_for_user(request.user, owner, name, number)
    comment = _comment_for(pr, request.user, comment_id)
    back = _back(request, pr, f"comment-{comment.pk}")
    form = forms.BodyForm(request.POST)
    if not form.is_valid():
        return _invalid(request, form, back)
    body = form.cleaned_data["body"]
    return _act(
        request, back, "", services.edit_comment, comment, refusals=COMMENT_MISTAKES, actor=request.user, body=body
    )


@login_required
@require_POST
def comment_delete(request: HttpRequest, owner: str, name: str, number: int, comment_id: int) -> HttpResponse:
    pr = get_pull_for_user(request.user, owner, name, number)
    comment = _comment_for(pr, request.user, comment_id)
    done, back = "Deleted the comment.", _back(request, pr)
    return _act(request, back, done, services.delete_comment, comment, refusals=COMMENT_MISTAKES, actor=request.user)


@login_required
@require_POST
def comment_resolve(request: HttpRequest, owner: str, name: str, number: int, comment_id: int) -> HttpResponse:
    pr = get_pull_for_user(request.user, owner, name, number)
    comment = _comment_for(pr, request.user, comment_id)
    back = _back(request, pr, f"comment-{comment.reply_to_id or comment.pk}")
    resolved = request.POST.get("resolved", "1") != "0"
    return _act(
        request,
        back,
        "",
        services.resolve_thread,
        comment,
        refusals=COMMENT_MISTAKES,
        actor=request.user,
        resolved=resolved,
    )


@login_required
@require_POST
def comment_apply(request: HttpRequest, owner: str, name: str, number: int, comment_id: int) -> HttpResponse:
    pr = get_pull_for_user(request.user, owner, name, number, need=Role.WRITE, or_author=True)
    comment = _comment_for(pr, request.user, comment_id)
    back = _back(request, pr, f"comment-{comment.pk}")
    done = lambda sha: f"Committed the suggestion to {pr.head_branch} as {sha[:7]}."  # noqa: E731
    return _act(request, back, done, services.apply_suggestion, comment, actor=request.user)


@login_required
@require_POST
def review(request: HttpRequest, owner: str, name: str, number: int) -> HttpResponse:
    pr = get_pull_for_user(request.user, owner, name, number)
    form = forms.ReviewForm(request.POST)
    if not form.is_valid():
        return _invalid(request, form, _back(request, pr, "review-changes"))
    data = form.cleaned_data
    try:
        found = services.submit_review(
            pr, actor=request.user, event=data["event"], body=data["body"], commit_sha=data["commit_sha"] or None
        )
    except MISTAKES as exc:
        messages.error(request, _message(exc))
        return redirect(_back(request, pr, "review-changes"))
    messages.success(request, "Submitted your review.")
    return redirect(f"{_detail_url(pr)}#review-{found.pk}")


@login_required
@require_POST
def merge(request: HttpRequest, owner: str, name: str, number: int) -> HttpResponse:
    pr = get_pull_for_user(request.user, owner, name, number, need=Role.WRITE)
    form = forms.MergeForm(request.POST)
    if not form.is_valid():
        return _invalid(request, form, f"{_detail_url(pr)}#merge")
    data = form.cleaned_data
    return _act(
        request,
        pr,
        lambda merged: f"Merged {merged.head_branch} into {merged.base_branch}.",
        services.merge_pull_request,
        pr,
        actor=request.user,
        strategy=data["strategy"],
        head_sha=data["head_sha"],
        message=_merge_message(pr, data["strategy"], data["message"]),
        delete_branch=data["delete_branch"],
    )


@login_required
@require_POST
def override(request: HttpRequest, owner: str, name: str, number: int) -> HttpResponse:
    pr = get_pull_for_user(request.user, owner, name, number, need=Role.ADMIN)
    form = forms.ReasonForm(request.POST)
    if not form.is_valid():
        return _invalid(request, form, f"{_detail_url(pr)}#merge")
    reason = form.cleaned_data["reason"]
    done = "Overrode the approval rules."
    return _act(request, pr, done, services.override_approval_rules, pr, actor=request.user, reason=reason)


@login_required
@require_POST
def dismiss(request: HttpRequest, owner: str, name: str, number: int, review_id: int) -> HttpResponse:
    pr = get_pull_for_user(request.user, owner, name, number, need=Role.MAINTAIN)
    found = get_object_or_404(Review.objects.select_related("author"), pk=review_id, pull_request=pr)
    form = forms.ReasonForm(request.POST)
    if not form.is_valid() or found.submitted_at is None:
        return _invalid(request, form, _detail_url(pr))
    done = f"Dismissed the review of {found.author.username}."
    reason = form.cleaned_data["reason"]
    return _act(request, pr, done, services.dismiss_review, found, actor=request.user, reason=reason)


@login_required
@require_POST
def delete_branch(request: HttpRequest, owner: str, name: str, number: int) -> HttpResponse:
    pr = get_pull_for_user(request.user, owner, name, number, need=Role.WRITE)
    done = lambda deleted: (  # noqa: E731
        f"Deleted the branch {pr.head_branch}."
        if deleted
        else f"Kept {pr.head_branch}: it has commits the pull request does not."
    )
    return _act(request, pr, done, services.delete_head_branch, pr, actor=request.user)


# Helpers of the actions.


def _message(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return " ".join(exc.messages)
    return str(exc) or "You cannot do that here."


def _act(
    request: HttpRequest,
    to: PullRequest | str,
    success: str | Callable[[object], str],
    service: Callable[..., object],
    *args: object,
    refusals: tuple[type[Exception], ...] = MISTAKES,
    **kwargs: object,
) -> HttpResponse:
    """Call one service; its refusal becomes an error message, and the user goes back to the page either way."""
    try:
        result = service(*args, **kwargs)
    except refusals as exc:
        messages.error(request, _message(exc))
    else:
        text = success(result) if callable(success) else success
        if text:
            messages.success(request, text)
    return redirect(_detail_url(to) if isinstance(to, PullRequest) else to)


def _invalid(request: HttpRequest, form, to: str) -> HttpResponse:
    errors = [f"{'' if field == '__all__' else field + ': '}{e}" for field, errs in form.errors.items() for e in errs]
    messages.error(request, " ".join(errors))
    return redirect(to)


def _names(users: list[User]) -> str:
    return ", ".join(user.username for user in users)


def _comment_for(pr: PullRequest, user: User, comment_id: int) -> Comment:
    """A comment of the pull request that the user can see: someone else's pending comment does not exist."""
    comment = get_object_or_404(
        Comment.objects.select_related("review", "author", "pull_request__repository"), pk=comment_id, pull_request=pr
    )
    if comment.is_pending and comment.review.author_id != user.pk:
        raise Http404("No such comment.")
    comment.pull_request = pr
    return comment


def _repo_path(quoted: str) -> str:
    """A file path as the diff's markup names it (quoted by repos.code.quote_path), back to git's bytes."""
    return git.decode_path(unquote_to_bytes(quoted)) if quoted else ""


def _back(request: HttpRequest, pr: PullRequest, anchor: str = "") -> str:
    """The page a form came from (the conversation, or the files page with its revision and options)."""
    if request.POST.get("next") != "files":
        url = _detail_url(pr)
    else:
        url = reverse("reviews:files", args=[pr.repository.owner.username, pr.repository.name, pr.number])
        query = QueryDict(request.POST.get("query", ""))
        kept = {key: query[key] for key in _FILES_QUERY if query.get(key, "").isalnum()}
        if kept:
            url += "?" + urlencode(kept)
    return f"{url}#{anchor}" if anchor else url


def _merge_message(pr: PullRequest, strategy: str, message: str) -> str:
    """The message typed, or "" (the service's default for the strategy) when it is another strategy's default.

    Without the page's script the text area keeps the first strategy's default when another is chosen."""
    text = message.strip()
    for other in (MergeStrategy.MERGE, MergeStrategy.SQUASH):
        if other != strategy and text and text == services.default_merge_message(pr, other).strip():
            return ""
    return message


# What the pages show.


def _prefix(repo: Repository) -> str:
    return f"/{repo.owner.username}/{repo.name}"


def _detail_url(pr: PullRequest) -> str:
    return reverse("reviews:detail", args=[pr.repository.owner.username, pr.repository.name, pr.number])


def _options_query(options: code.DiffOptions) -> str:
    return ("view=split&" if options.view == "split" else "") + ("w=1&" if options.ignore_whitespace else "")


def _diff_url(pr: PullRequest, old: str, new: str, options: code.DiffOptions) -> str:
    """Where the lazy batches of a diff load from, ready for one more parameter: named by shas, so a push while
    the page is open cannot mix two diffs."""
    url = reverse("reviews:files_fragment", args=[pr.repository.owner.username, pr.repository.name, pr.number])
    return f"{url}?old={old}&new={new}&{_options_query(options)}"


def _diff(pr: PullRequest, old: str, new: str, options: code.DiffOptions) -> code.DiffPage:
    """The first view of a diff of the pull request, cached by its shas (the conversation warms the files page)."""
    page_url = _diff_url(pr, old, new, options)
    return code.diff_page(pr.repository.path, old, new, options, prefix=_prefix(pr.repository), page_url=page_url)


def _repo_context(request: HttpRequest, repo: Repository) -> dict:
    role = role_for(request.user, repo)
    return {"repo": repo, "prefix": _prefix(repo), "tab": "pulls", "role": role, "is_admin": role >= Role.ADMIN}


def _pull_context(request: HttpRequest, pr: PullRequest, page: str) -> dict:
    """What every page of a pull request shows: its header, its tabs and what the user may do."""
    repo = pr.repository
    context = _repo_context(request, repo)
    role = context["role"]
    user = request.user
    is_author = user.is_authenticated and user.pk == pr.author_id
    commit_count, _rows = code.compare_commits(repo.path, pr.merge_base_sha, pr.head_sha, prefix=context["prefix"])
    return {
        **context,
        "pr": pr,
        "page": page,
        "commit_count": commit_count,
        "file_count": _diff(pr, pr.merge_base_sha, pr.head_sha, code.DiffOptions()).file_count,
        "can": {
            "comment": user.is_authenticated,
            "edit": is_author or role >= Role.WRITE,
            "write": role >= Role.WRITE,
            "maintain": role >= Role.MAINTAIN,
            "admin": role >= Role.ADMIN,
        },
        "is_author": is_author,
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
    prefix = _prefix(pr.repository)
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
    can = context["can"]
    me = user.pk if user.is_authenticated else None
    for comment in comments:
        comment.pending = comment.review is not None and comment.review.state == Review.State.PENDING
        comment.mine = comment.author_id == me
        comment.can_delete = comment.mine or can["maintain"]
        comment.suggestion = None
        if comment.reply_to_id:
            replies[comment.reply_to_id].append(comment)
        else:
            roots.append(comment)
    for root in roots:
        root.replies_shown = replies.get(root.pk, [])
        root.can_resolve = bool(me) and (me in (root.author_id, pr.author_id) or can["write"])
        if root.path:
            _describe_inline(pr, root, context)
    for comment in comments:
        # A suggestion is shown as the change it proposes, so its block is left out of the text around it.
        body = _SUGGESTION.sub("", comment.body, count=1) if comment.suggestion else comment.body
        comment.body_html = _markdown(body, pr)
    return roots


def _describe_inline(pr: PullRequest, thread: Comment, context: dict) -> None:
    repo = pr.repository
    thread.quoted_path = code.quote_path(thread.path)
    thread.path_label = git.label(thread.path)
    thread.line_range = (
        f"{thread.original_start_line}–{thread.original_line}" if thread.original_start_line else thread.original_line
    )
    sha = thread.original_commit_sha if thread.side == Comment.Side.RIGHT else thread.original_base_sha
    last = thread.original_line or 0
    first = (
        max(thread.original_start_line, last - RANGE_LINES + 1) if thread.original_start_line else last - CONTEXT_LINES
    )
    marked_from = thread.original_start_line or last
    thread.context_lines = [(n, text, n >= marked_from) for n, text in _lines(repo, sha, thread.path, first, last)]
    replacement = services.suggestion_of(thread.body)
    if replacement is not None and thread.side == Comment.Side.RIGHT:
        # The lines the suggestion would replace now, or where it was written once they changed.
        if thread.outdated:
            sha, start, end = thread.original_commit_sha, thread.original_start_line, thread.original_line
        else:
            sha, start, end = thread.commit_sha, thread.start_line, thread.line
        old = [text for _n, text in _lines(repo, sha, thread.path, start or end, end)]
        thread.suggestion = {"old": old, "new": replacement.split("\n") if replacement else []}
        thread.can_apply = (
            pr.is_open
            and not thread.outdated
            and not thread.suggestion_applied_sha
            and not thread.pending
            and thread.commit_sha == pr.head_sha
            and (context["is_author"] or context["can"]["write"])
        )


@dataclass
class Item:
    """One entry of the conversation's timeline."""

    kind: str  # event, revision, review, thread
    when: datetime
    obj: object


def _timeline_context(request: HttpRequest, pr: PullRequest, context: dict) -> dict:
    roots = _threads(pr, _visible_comments(pr, request.user), context, request.user)
    submitted = list(pr.reviews.filter(submitted_at__isnull=False).select_related("author"))
    by_review: dict[int, list[Comment]] = defaultdict(list)
    items = [Item("event", e.created, e) for e in pr.events.select_related("actor").exclude(kind="pushed")]
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


def _revisions_with_links(pr: PullRequest) -> list[Revision]:
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


def _sidebar_context(request: HttpRequest, pr: PullRequest, context: dict) -> dict:
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
                (value, MergeStrategy(value).label, services.default_merge_message(pr, value))
                for value in settings.allowed_strategies()
            ],
            "delete_branch": settings.delete_branch_after_merge,
        }
    return {
        "reviewer_rows": _reviewer_rows(pr, context["revisions"]),
        "team_requests": pr.review_requests.filter(team__isnull=False).select_related("team__organization"),
        "rule_statuses": statuses,
        "checks": sorted(checks.values(), key=lambda status: status.context),
        "expected_checks": expected,
        "blocker": blocker,
        "conflicts": rules.conflicts(pr) if pr.is_open else [],
        "merge_form": merge_form,
        "can_override": context["can"]["admin"] and pr.is_open and pr.override_at is None and bool(blocker or statuses),
    }


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


def _files_context(request: HttpRequest, pr: PullRequest, context: dict) -> dict:
    options = code.DiffOptions.from_query(request.GET)
    revisions = _revisions_with_links(pr)
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
        "back_query": span.query + _options_query(options),
    }
