"""Pull request pages: the lists, opening one, its conversation, commits and files, and the actions on them.

HTTP only: the access door decides who sees what, reviews.services makes every change, reviews.rules says what
blocks a merge, and repos.code renders and caches the diffs. The helpers below only gather what a page shows."""

from collections.abc import Callable
from urllib.parse import unquote_to_bytes, urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.gzip import gzip_page
from django.views.decorators.http import require_POST

from portal.models import User
from repos import code, git
from repos.access import get_repo_for_user
from repos.models import Repository, Role
from reviews import forms, pages, services
from reviews.access import get_pull_for_user
from reviews.models import (
    Comment,
    PullRequest,
    Review,
)

PAGE_SIZE = 50
DASHBOARD_TABS = {"review": "Needs my review", "mine": "Mine", "involved": "Involved"}
# What the services refuse once the door has let the user in (a rule, a race, a protected branch): each is shown
# as a message above the page. A role the user lacks is the door's business: a 403 before any of this.
MISTAKES = (ValidationError, PermissionDenied, services.MergeRefused)
# Comments are the user's own to change, or a maintainer's: a refusal there is about the role, so it stays a 403.
COMMENT_MISTAKES = (ValidationError, services.MergeRefused)
STATES = ("open", "merged", "closed", "all")
# The query of the files page that a comment posted there returns to.
_FILES_QUERY = ("rev", "from", "to", "view", "w")


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
    page = Paginator(pulls.for_list().order_by("-number"), PAGE_SIZE).get_page(request.GET.get("page"))
    page.object_list = pages.with_list_details(list(page.object_list))
    context = {
        **pages.repo_context(request, repo),
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
    visible = _filtered(PullRequest.objects.visible_to(request.user), request.GET)
    if state != "all":
        visible = visible.filter(state=state)
    counts = {key: _dashboard_tab(visible, key, request.user).count() for key in DASHBOARD_TABS}
    pulls = _dashboard_tab(visible, tab, request.user).for_list().order_by("-updated", "-id")
    page = Paginator(pulls, PAGE_SIZE).get_page(request.GET.get("page"))
    page.object_list = pages.with_list_details(list(page.object_list))
    context = {
        "page": page,
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
        return pulls.authored_by(user)
    if tab == "involved":
        return pulls.involving(user)
    return pulls.awaiting_review_by(user)


def _filtered(pulls, query: QueryDict):
    if author := query.get("author", "").strip():
        pulls = pulls.opened_by_name(author)
    if reviewer := query.get("reviewer", "").strip():
        pulls = pulls.with_reviewer_named(reviewer)
    if repo := query.get("repo", "").strip():
        pulls = pulls.in_repository_named(repo)
    return pulls


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
    context = {**pages.repo_context(request, repo), **preview, "form": form}
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
    prefix = pages.repo_prefix(repo)
    options = code.DiffOptions.from_query(request.GET)
    commits = code.compare_commits(repo.path, merge_base, head_sha, prefix=prefix)
    # The compare page serves the lazy batches of this diff: it is the same diff, named by the same shas.
    page_url = f"{prefix}/compare/{base_sha}...{head_sha}?{pages.options_query(options)}"
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
    context = pages.pull_context(request, pr, "conversation")
    context["revisions"] = pages.revisions_with_links(pr)
    context.update(pages.timeline_context(request, pr, context))
    context.update(pages.sidebar_context(request, pr, context))
    return render(request, "reviews/conversation.html", context)


def commits(request: HttpRequest, owner: str, name: str, number: int) -> HttpResponse:
    pr = get_pull_for_user(request.user, owner, name, number)
    context = pages.pull_context(request, pr, "commits")
    context["revisions"] = pages.revisions_with_links(pr)
    _count, rows = code.compare_commits(pr.repository.path, pr.merge_base_sha, pr.head_sha, prefix=context["prefix"])
    context["commit_rows"] = code.safe(rows)
    return render(request, "reviews/commits.html", context)


# A big diff is megabytes of repetitive HTML: compressed, it crosses a network ten times faster. (Django masks the
# CSRF token anew in each response, which keeps compression from leaking it.)
@gzip_page
def files(request: HttpRequest, owner: str, name: str, number: int) -> HttpResponse:
    pr = get_pull_for_user(request.user, owner, name, number)
    context = pages.pull_context(request, pr, "files")
    context.update(pages.files_context(request, pr, context))
    return render(request, "reviews/files.html", context)


@gzip_page
def files_fragment(request: HttpRequest, owner: str, name: str, number: int) -> HttpResponse:
    """Lazy batches (and single large files) of a diff the files page showed, named by its two shas."""
    pr = get_pull_for_user(request.user, owner, name, number)
    old, new = request.GET.get("old", ""), request.GET.get("new", "")
    known = {pr.head_sha, pr.merge_base_sha}
    for revision in pr.revisions.values_list("head_sha", "merge_base_sha"):
        known.update(revision)
    wanted = code.fragment_range(request.GET)
    if wanted is None or old not in known or new not in known:
        raise Http404("No such diff.")
    options = code.DiffOptions.from_query(request.GET)
    html = code.diff_fragment(
        pr.repository.path,
        old,
        new,
        options,
        wanted[0],
        prefix=pages.repo_prefix(pr.repository),
        page_url=pages.diff_url(pr, old, new, options),
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
        return _invalid(request, form, pages.detail_url(pr))
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
        return _invalid(request, form, pages.detail_url(pr))
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
    form = forms.SuggestionForm(request.POST)
    if not form.is_valid():
        return _invalid(request, form, back)
    done = lambda sha: f"Committed the suggestion to {pr.head_branch} as {sha[:7]}."  # noqa: E731
    return _act(request, back, done, services.apply_suggestion, comment, actor=request.user, message=form.message())


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
    return redirect(f"{pages.detail_url(pr)}#review-{found.pk}")


@login_required
@require_POST
def merge(request: HttpRequest, owner: str, name: str, number: int) -> HttpResponse:
    pr = get_pull_for_user(request.user, owner, name, number, need=Role.WRITE)
    form = forms.MergeForm(request.POST)
    if not form.is_valid():
        return _invalid(request, form, f"{pages.detail_url(pr)}#merge")
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
        message=data["message"],
        delete_branch=data["delete_branch"],
    )


@login_required
@require_POST
def override(request: HttpRequest, owner: str, name: str, number: int) -> HttpResponse:
    pr = get_pull_for_user(request.user, owner, name, number, need=Role.ADMIN)
    form = forms.ReasonForm(request.POST)
    if not form.is_valid():
        return _invalid(request, form, f"{pages.detail_url(pr)}#merge")
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
        return _invalid(request, form, pages.detail_url(pr))
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
    return redirect(pages.detail_url(to) if isinstance(to, PullRequest) else to)


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
        url = pages.detail_url(pr)
    else:
        url = reverse("reviews:files", args=[pr.repository.owner.username, pr.repository.name, pr.number])
        query = QueryDict(request.POST.get("query", ""))
        kept = {key: query[key] for key in _FILES_QUERY if query.get(key, "").isalnum()}
        if kept:
            url += "?" + urlencode(kept)
    return f"{url}#{anchor}" if anchor else url
