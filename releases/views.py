"""Build pages: the Builds tab, a build with its live log, its downloads, the actions on it, the status badge and
the build settings.

HTTP only: the repository's door (repos.access) and releases.access decide who sees and does what, releases.services
makes every change, releases.logs reads the log wherever it is, releases.log_html renders it and releases.log_poll
answers the page that follows it."""

import json
from functools import partial

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.utils.http import urlencode
from django.views.decorators.http import require_GET, require_POST

from releases import access, environments, log_html, log_poll, logs, services
from releases.forms import BuildSettingsForm, RunBuildForm
from releases.models import Build, BuildArtifact
from releases.storage import artifact_storage
from releases.templatetags.build_tags import seconds
from repos import git
from repos.access import can_administer, get_repo_for_user, role_for
from repos.models import Repository, Role, Visibility

PAGE_SIZE = 30
FILTERS = ("branch", "status", "trigger")
# How long a badge may be kept by a browser or a proxy: a README shows a status a minute late at most.
BADGE_MAX_AGE = 60
# A test report lists failures first, then what did not run, then what passed (each in the report's order).
CASE_ORDER = {"FAILED": 0, "ERROR": 0, "UNKNOWN": 1, "SKIPPED": 2, "SUCCEEDED": 3}


def _context(request: HttpRequest, repo: Repository, **more) -> dict:
    role = role_for(request.user, repo)
    return {
        "repo": repo,
        "prefix": f"/{repo.owner.username}/{repo.name}",
        "tab": "builds",
        "role": role,
        "is_admin": can_administer(request.user, repo, role=role),
        "can_run": access.can_run_builds(request.user, repo, role=role),
        **more,
    }


def _build(repo: Repository, number: int) -> Build:
    found = Build.objects.select_related("repository__owner", "initiator", "pull_request")
    return get_object_or_404(found, repository=repo, number=number)


@require_GET
def build_list(request: HttpRequest, owner: str, name: str) -> HttpResponse:
    repo = get_repo_for_user(request.user, owner, name)
    chosen = {key: request.GET.get(key, "").strip() for key in FILTERS}
    builds = Build.objects.filter(repository=repo).select_related("initiator", "pull_request")
    if chosen["branch"]:
        builds = builds.filter(head_branch=chosen["branch"])
    if chosen["status"]:
        builds = builds.filter(build_status=chosen["status"])
    if chosen["trigger"]:
        builds = builds.filter(trigger=chosen["trigger"])
    page = Paginator(builds.order_by("-number"), PAGE_SIZE).get_page(request.GET.get("page"))
    kept = {key: value for key, value in chosen.items() if value}
    context = _context(
        request,
        repo,
        page=page,
        chosen=chosen,
        filter_query=urlencode(kept) + "&" if kept else "",
        statuses=Build.BuildStatus.choices,
        triggers=Build.Trigger.choices,
        branches=[branch.name for branch in git.branches(repo.path)],
        run_form=RunBuildForm(initial={"ref": repo.default_branch}),
    )
    return render(request, "releases/list.html", context)


def _log_piece(build: Build, offset: int, line: int) -> dict:
    """The build's log from offset (releases.log_poll), each phase's header with how long the phase took."""
    durations = {phase["name"]: seconds(phase["duration"]) for phase in build.phases}
    render = partial(log_html.render_lines, durations=durations)
    return log_poll.piece(build, offset, line, build.build_status, render)


@require_GET
def build_detail(request: HttpRequest, owner: str, name: str, number: int) -> HttpResponse:
    repo = get_repo_for_user(request.user, owner, name)
    build = _build(repo, number)
    for report in build.reports:
        report["sorted_cases"] = sorted(report["cases"], key=lambda case: CASE_ORDER.get(case["status"], 1))
        report["counts"] = _counts(case["status"] for case in report["cases"])
    context = _context(
        request,
        repo,
        build=build,
        artifacts=list(build.artifacts.all()),
        log=_log_piece(build, 0, 0),
        can_stop=not build.is_ended,
        can_deploy=access.can_deploy(request.user, repo),
        environments=list(environments.environments_of(repo)),
    )
    return render(request, "releases/detail.html", context)


def _counts(statuses) -> list[tuple[str, int]]:
    counts: dict[str, int] = {}
    for status in statuses:
        counts[status] = counts.get(status, 0) + 1
    return sorted(counts.items(), key=lambda item: (CASE_ORDER.get(item[0], 1), item[0]))


@require_GET
def build_log(request: HttpRequest, owner: str, name: str, number: int) -> JsonResponse:
    """The log after ?offset=<bytes> (numbered after ?line=<lines already shown>), for the page that follows it:
    {"offset", "line", "html", "ended", "status", "more"}.

    Viewers poll by byte offset about twice a second rather than hold a connection open: each answer is one
    indexed row and one GETRANGE on Redis (or a seek in the stored log), so it takes a thread of the web server
    for a millisecond or two and none while the viewer waits. Fifty people watching a build cost a hundred short
    requests a second, and the pages of everyone else keep their threads; a long-lived stream would pin one
    gunicorn thread per viewer for the whole build."""
    repo = get_repo_for_user(request.user, owner, name)
    build = _build(repo, number)
    return log_poll.answer(request, partial(_log_piece, build))


@require_GET
def build_log_text(request: HttpRequest, owner: str, name: str, number: int) -> StreamingHttpResponse:
    repo = get_repo_for_user(request.user, owner, name)
    build = _build(repo, number)

    def pieces():
        offset = 0
        while True:
            chunk = logs.read(build, offset)
            if not chunk.data:
                return
            yield chunk.data
            offset = chunk.next_offset

    response = StreamingHttpResponse(pieces(), content_type="text/plain; charset=utf-8")
    filename = f"{repo.name}-build-{build.number}.log"
    response["Content-Disposition"] = f'inline; filename="{filename}"'
    response["Cache-Control"] = "private, no-cache"
    return response


def _artifact(request: HttpRequest, owner: str, name: str, number: int, artifact_id: int) -> BuildArtifact:
    repo = get_repo_for_user(request.user, owner, name)
    return get_object_or_404(BuildArtifact, pk=artifact_id, build=_build(repo, number))


@require_GET
def artifact_download(
    request: HttpRequest, owner: str, name: str, number: int, artifact_id: int, filename: str
) -> FileResponse:
    artifact = _artifact(request, owner, name, number, artifact_id)
    storage = artifact_storage()
    if filename != artifact.name or not storage.exists(artifact.storage_name):
        raise Http404("No such artifact.")
    response = FileResponse(
        storage.open(artifact.storage_name, "rb"),
        as_attachment=True,
        filename=f"{artifact.name}.zip",
        content_type="application/zip",
    )
    # The name is the content's digest: the bytes under it never change.
    response["ETag"] = f'"{artifact.sha256}"'
    response["Digest"] = f"sha-256={artifact.sha256}"
    return response


@require_GET
def artifact_provenance(request: HttpRequest, owner: str, name: str, number: int, artifact_id: int) -> HttpResponse:
    artifact = _artifact(request, owner, name, number, artifact_id)
    if artifact.provenance is None:
        raise Http404("This artifact's provenance is not signed yet.")
    response = HttpResponse(json.dumps(artifact.provenance, indent=2), content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="{artifact.name}.provenance.json"'
    return response


def _refused(request: HttpRequest, error: ValidationError) -> None:
    messages.error(request, " ".join(error.messages))


@require_POST
def build_run(request: HttpRequest, owner: str, name: str) -> HttpResponse:
    repo = get_repo_for_user(request.user, owner, name)
    access.require(access.can_run_builds, request.user, repo, "Only writers start builds.")
    form = RunBuildForm(request.POST)
    if form.is_valid():
        try:
            ref = git.resolve_commit(repo.path, form.cleaned_data["ref"].strip())
        except git.RefNotFound:
            form.add_error("ref", "No branch, tag or commit of this repository has this name.")
        else:
            full_ref = {"branch": f"refs/heads/{ref.name}", "tag": f"refs/tags/{ref.name}"}.get(ref.kind, ref.sha)
            try:
                build = services.start_build(
                    repo,
                    sha=ref.sha,
                    ref=full_ref,
                    trigger=Build.Trigger.MANUAL,
                    initiator=request.user,
                    variables=form.cleaned_data["variables"],
                )
            except ValidationError as error:
                form.add_error("variables", error)
            else:
                messages.success(request, f"Build #{build.number} queued.")
                return redirect("builds:detail", owner, name, build.number)
    context = _context(request, repo, run_form=form)
    return render(request, "releases/run.html", context, status=400)


@require_POST
def build_stop(request: HttpRequest, owner: str, name: str, number: int) -> HttpResponse:
    repo = get_repo_for_user(request.user, owner, name)
    build = _build(repo, number)
    access.require(access.can_run_builds, request.user, repo, "Only writers stop builds.")
    try:
        services.cancel_build(build, actor=request.user)
    except ValidationError as error:
        _refused(request, error)
    else:
        messages.success(request, f"Build #{build.number} is stopping.")
    return redirect("builds:detail", owner, name, build.number)


@require_POST
def build_rerun(request: HttpRequest, owner: str, name: str, number: int) -> HttpResponse:
    repo = get_repo_for_user(request.user, owner, name)
    build = _build(repo, number)
    try:
        again = services.rerun_build(build, actor=request.user)
    except ValidationError as error:
        _refused(request, error)
        return redirect("builds:detail", owner, name, build.number)
    messages.success(request, f"Build #{again.number} queued: a rerun of #{build.number}.")
    return redirect("builds:detail", owner, name, again.number)


BADGES = {
    Build.BuildStatus.SUCCEEDED: ("passing", "success"),
    Build.BuildStatus.FAILED: ("failing", "failure"),
    Build.BuildStatus.TIMED_OUT: ("timed out", "failure"),
    Build.BuildStatus.FAULT: ("error", "error"),
}


@require_GET
def badge(request: HttpRequest, owner: str, name: str) -> HttpResponse:
    """The status of the latest ended build of ?branch= (the default branch when absent), as an SVG badge. A
    stopped build says nothing about the branch (a newer push superseded it), so the one before it counts."""
    repo = get_repo_for_user(request.user, owner, name)
    branch = request.GET.get("branch") or repo.default_branch
    latest = (
        Build.objects.filter(repository=repo, head_branch=branch, build_status__in=BADGES).order_by("-number").first()
    )
    message, state = BADGES[latest.build_status] if latest is not None else ("no builds", "none")
    label = "build"
    # Text widths at 11px Verdana, about 7 pixels a character: good enough for a badge.
    label_width, message_width = 10 + 7 * len(label), 10 + 7 * len(message)
    svg = render_to_string(
        "releases/badge.svg",
        {
            "label": label,
            "message": message,
            "state": state,
            "label_width": label_width,
            "message_width": message_width,
            "width": label_width + message_width,
            "label_x": label_width / 2,
            "message_x": label_width + message_width / 2,
        },
    )
    response = HttpResponse(svg, content_type="image/svg+xml; charset=utf-8")
    scope = "public" if repo.visibility == Visibility.PUBLIC else "private"
    response["Cache-Control"] = f"{scope}, max-age={BADGE_MAX_AGE}"
    return response


def build_settings(request: HttpRequest, owner: str, name: str) -> HttpResponse:
    repo = get_repo_for_user(request.user, owner, name, need=Role.ADMIN)
    current = services.build_settings(repo)
    initial = {field: getattr(current, field) for field in services.SETTINGS_FIELDS}
    form = BuildSettingsForm(request.POST if request.method == "POST" else None, initial=initial)
    if form.is_bound and form.is_valid():
        try:
            services.save_build_settings(repo, actor=request.user, **form.cleaned_data)
        except ValidationError as error:
            field = (getattr(error, "params", None) or {}).get("field")
            form.add_error(field if field in form.fields else None, error.messages)
        else:
            messages.success(request, "Build settings saved.")
            return redirect("builds:settings", owner, name)
    context = {"repo": repo, "active": "builds", "form": form, "is_admin": True}
    return render(request, "releases/settings.html", context, status=400 if form.errors else 200)
