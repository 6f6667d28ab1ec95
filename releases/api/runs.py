"""Build endpoints in GitHub Actions' REST shapes: runs, their logs and artifacts, and starting a build by hand.

A build is a "workflow run" and the repository's buildspec its one "workflow". Words map as follows:
- status: QUEUED is queued, IN_PROGRESS in_progress, every end completed.
- conclusion (null until completed): SUCCEEDED is success, FAILED failure, TIMED_OUT timed_out, STOPPED cancelled,
  and FAULT (the portal, not the build, went wrong) failure too, since GitHub has no word for it; build_status
  keeps CodeBuild's exact word.
- event: push and pull_request as they are; a build started by hand is workflow_dispatch, and so is a rerun,
  which is a new run here (GitHub reruns in place with another run_attempt); `trigger` keeps the portal's word.
Where GitHub answers with a redirect to a download (logs, artifacts), the bytes come in the answer itself.
"""

import tempfile
import zipfile
from datetime import UTC, datetime
from typing import Annotated, Literal

from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from ninja import Field, Query, Schema, Status
from ninja.errors import HttpError
from pydantic import AfterValidator
from pydantic_core import PydanticCustomError

from portal.api import InputSchema, Message, UserOut, api_url, current_user, principal, user_out
from portal.api_pages import MAX_PAGE_SIZE, PageParams, link_header, paginate
from portal.api_scopes import READ_REPO, WRITE_REPO
from portal.models import User
from portal.validators import field_error
from releases import access, logs, services
from releases.api.router import router
from releases.models import Build, BuildArtifact
from releases.storage import artifact_storage
from repos import git
from repos.access import get_repo_for_principal
from repos.models import Repository, Visibility

RunStatus = Literal["queued", "in_progress", "completed"]
Conclusion = Literal["success", "failure", "cancelled", "timed_out"]
Event = Literal["push", "pull_request", "workflow_dispatch"]
StatusFilter = Literal["queued", "in_progress", "completed", "success", "failure", "cancelled", "timed_out"]

STATUSES = {Build.BuildStatus.QUEUED: "queued", Build.BuildStatus.IN_PROGRESS: "in_progress"}
CONCLUSIONS = {
    Build.BuildStatus.SUCCEEDED: "success",
    Build.BuildStatus.FAILED: "failure",
    Build.BuildStatus.FAULT: "failure",
    Build.BuildStatus.TIMED_OUT: "timed_out",
    Build.BuildStatus.STOPPED: "cancelled",
}
EVENTS = {
    Build.Trigger.PUSH: "push",
    Build.Trigger.PULL_REQUEST: "pull_request",
    Build.Trigger.MANUAL: "workflow_dispatch",
    Build.Trigger.RERUN: "workflow_dispatch",
}
# GitHub's page size when a list does not name one.
DEFAULT_PER_PAGE = 30
ZIP_TYPE = "application/zip"
ZIP_RESPONSE = {
    "200": {"description": "A zip file.", "content": {ZIP_TYPE: {"schema": {"type": "string", "format": "binary"}}}}
}
# A log is zipped in a temporary file, on disk once it is larger than this.
SPOOL_BYTES = 8 * 1024**2


# Schemas (GitHub's field names).


class Empty(Schema):
    pass


class RunPages(Schema):
    page: int = Field(1, ge=1, description="Page number, from 1; a page past the end is empty.")
    per_page: int = Field(DEFAULT_PER_PAGE, ge=1, le=MAX_PAGE_SIZE, description="Items per page.")


class RunFilters(Schema):
    branch: str = Field("", description="Only runs of this branch (or tag).")
    event: Event | None = Field(None, description="Only runs of this event.")
    status: StatusFilter | None = Field(None, description="Only runs with this status or conclusion.")
    head_sha: str = Field("", description="Only runs of this commit.")
    actor: str = Field("", description="Only runs started by this user.")


class MinimalRepository(Schema):
    id: int
    name: str
    full_name: str
    private: bool
    owner: UserOut
    html_url: str
    url: str


class PullRequestRepo(Schema):
    id: int
    url: str
    name: str


class PullRequestEnd(Schema):
    ref: str
    sha: str
    repo: PullRequestRepo


class RunPullRequest(Schema):
    id: int
    number: int
    url: str
    head: PullRequestEnd
    base: PullRequestEnd


class PhaseOut(Schema):
    name: str
    status: str
    started: datetime | None
    ended: datetime | None
    duration_in_seconds: float | None
    message: str


class RunOut(Schema):
    id: int
    name: str
    path: str
    run_number: int
    run_attempt: int
    event: str
    trigger: str
    status: RunStatus
    conclusion: Conclusion | None
    head_sha: str
    head_branch: str | None
    workflow_id: int
    html_url: str
    url: str
    logs_url: str
    artifacts_url: str
    cancel_url: str
    rerun_url: str
    workflow_url: str
    created_at: datetime
    updated_at: datetime
    run_started_at: datetime | None
    actor: UserOut | None
    triggering_actor: UserOut | None
    pull_requests: list[RunPullRequest]
    repository: MinimalRepository
    # CodeBuild's words.
    build_status: str
    phases: list[PhaseOut]
    buildspec_path: str
    message: str
    warnings: list[str]


class RunsOut(Schema):
    total_count: int
    workflow_runs: list[RunOut]


class ArtifactRun(Schema):
    id: int
    repository_id: int
    head_branch: str | None
    head_sha: str


class ArtifactOut(Schema):
    id: int
    name: str
    size_in_bytes: int
    url: str
    archive_download_url: str
    expired: bool
    digest: str
    files: list[str]
    created_at: datetime
    updated_at: datetime
    expires_at: datetime | None
    workflow_run: ArtifactRun


class ArtifactsOut(Schema):
    total_count: int
    artifacts: list[ArtifactOut]


class WorkflowOut(Schema):
    id: int
    name: str
    path: str
    state: str
    created_at: datetime
    updated_at: datetime
    url: str
    html_url: str


class WorkflowsOut(Schema):
    total_count: int
    workflows: list[WorkflowOut]


def _debug_logging_off(value: bool) -> bool:
    if value:
        raise PydanticCustomError("unsupported", "not supported: build logs have no debug mode")
    return value


class RerunIn(InputSchema):
    enable_debug_logging: Annotated[bool, AfterValidator(_debug_logging_off)] = False


def _input_value(value: str | int | float | bool) -> str:
    # GitHub sends booleans of boolean inputs as true/false; the build sees them as the shell would write them.
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class DispatchIn(InputSchema):
    ref: str = Field(description="The branch, tag or commit to build (a branch or tag name, refs/heads/…, a sha).")
    inputs: dict[str, str | int | float | bool] = Field(
        {}, description="Variables of the build, over the repository's and the buildspec's."
    )
    return_run_details: bool = Field(False, description="Answer 200 with the new run's id and addresses.")


class DispatchOut(Schema):
    workflow_run_id: int
    run_url: str
    html_url: str


# Shapes.


def _time(seconds: float | None) -> datetime | None:
    return datetime.fromtimestamp(seconds, UTC) if seconds is not None else None


def _head_branch(build: Build) -> str | None:
    # As GitHub does for a tag's run, the tag's name stands where the branch would.
    if build.head_branch:
        return build.head_branch
    if build.ref.startswith("refs/tags/"):
        return build.ref.removeprefix("refs/tags/")
    return None


def _repository_out(repository: Repository, viewer: User) -> dict:
    return {
        "id": repository.pk,
        "name": repository.name,
        "full_name": repository.full_name,
        "private": repository.visibility != Visibility.PUBLIC,
        "owner": user_out(repository.owner, viewer),
        "html_url": repository.web_url,
        "url": api_url(f"/repos/{repository.full_name}"),
    }


def _pull_requests(build: Build) -> list[dict]:
    pr = build.pull_request
    if pr is None:
        return []
    repository = build.repository
    repo = {"id": repository.pk, "url": api_url(f"/repos/{repository.full_name}"), "name": repository.name}
    return [
        {
            "id": pr.pk,
            "number": pr.number,
            "url": api_url(f"/repos/{repository.full_name}/pulls/{pr.number}"),
            "head": {"ref": pr.head_branch, "sha": pr.head_sha, "repo": repo},
            "base": {"ref": pr.base_branch, "sha": pr.base_sha, "repo": repo},
        }
    ]


def run_out(build: Build, viewer: User) -> dict:
    """A build as a GitHub Actions workflow run, with CodeBuild's status and phases besides."""
    repository = build.repository
    url = api_url(f"/repos/{repository.full_name}/actions/runs/{build.pk}")
    actor = user_out(build.initiator, viewer) if build.initiator_id else None
    return {
        "id": build.pk,
        "name": build.buildspec_path,
        "path": build.buildspec_path,
        "run_number": build.number,
        "run_attempt": 1,
        "event": EVENTS[build.trigger],
        "trigger": build.trigger,
        "status": STATUSES.get(build.build_status, "completed"),
        "conclusion": CONCLUSIONS.get(build.build_status),
        "head_sha": build.head_sha,
        "head_branch": _head_branch(build),
        "workflow_id": repository.pk,
        "html_url": build.web_url,
        "url": url,
        "logs_url": f"{url}/logs",
        "artifacts_url": f"{url}/artifacts",
        "cancel_url": f"{url}/cancel",
        "rerun_url": f"{url}/rerun",
        "workflow_url": api_url(f"/repos/{repository.full_name}/actions/workflows/{repository.pk}"),
        "created_at": build.created,
        "updated_at": max(t for t in (build.created, build.build_started, build.build_ended) if t is not None),
        "run_started_at": build.build_started,
        "actor": actor,
        "triggering_actor": actor,
        "pull_requests": _pull_requests(build),
        "repository": _repository_out(repository, viewer),
        "build_status": build.build_status,
        "phases": [
            {
                "name": phase["name"],
                "status": phase["status"],
                "started": _time(phase.get("started")),
                "ended": _time(phase.get("ended")),
                "duration_in_seconds": phase.get("duration"),
                "message": phase.get("message") or "",
            }
            for phase in build.phases
        ],
        "buildspec_path": build.buildspec_path,
        "message": build.message,
        "warnings": build.warnings,
    }


def artifact_out(artifact: BuildArtifact) -> dict:
    build = artifact.build
    url = api_url(f"/repos/{build.repository.full_name}/actions/artifacts/{artifact.pk}")
    return {
        "id": artifact.pk,
        "name": artifact.name,
        "size_in_bytes": artifact.size_in_bytes,
        "url": url,
        "archive_download_url": f"{url}/zip",
        "expired": artifact.expired,
        "digest": f"sha256:{artifact.sha256}",
        "files": artifact.files,
        "created_at": artifact.created,
        "updated_at": artifact.created,
        # Retention removes an artifact once its build is PORTAL_BUILD_KEEP_DAYS old, unless something (a deployment)
        # still uses it then: no date can be promised ahead.
        "expires_at": None,
        "workflow_run": {
            "id": build.pk,
            "repository_id": build.repository_id,
            "head_branch": _head_branch(build),
            "head_sha": build.head_sha,
        },
    }


# Lookups.


def _repo(request: HttpRequest, owner: str, repo: str) -> Repository:
    """The repository if the caller may read it (404 otherwise); the services decide who may change its builds."""
    return get_repo_for_principal(principal(request), owner, repo)


def _builds(repository: Repository) -> QuerySet[Build]:
    return Build.objects.filter(repository=repository).select_related("repository__owner", "initiator", "pull_request")


def _run(repository: Repository, run_id: int) -> Build:
    build = _builds(repository).filter(pk=run_id).first()
    if build is None:
        raise Http404(f"No run {run_id} in {repository.full_name}.")
    return build


def _artifacts(repository: Repository) -> QuerySet[BuildArtifact]:
    return BuildArtifact.objects.filter(build__repository=repository).select_related("build__repository__owner")


def _page(request: HttpRequest, response: HttpResponse, items: QuerySet, pages: RunPages) -> tuple[list, int]:
    """One page of items with GitHub's Link header; and the total, which GitHub gives in the body."""
    found = paginate(items, response, PageParams(page=pages.page, limit=pages.per_page))
    total = int(response["X-Total-Count"])
    link = link_header(request, pages.page, pages.per_page, total, size_param="per_page")
    if link:
        response["Link"] = link
    return found, total


def _artifact_page(request: HttpRequest, response: HttpResponse, items: QuerySet, pages: RunPages) -> dict:
    found, total = _page(request, response, items, pages)
    return {"total_count": total, "artifacts": [artifact_out(artifact) for artifact in found]}


# Runs.


@router.get(
    "/repos/{owner}/{repo}/actions/runs",
    scope=READ_REPO,
    response=RunsOut,
    summary="List a repository's builds as workflow runs, newest first",
    description=(
        "GitHub Actions' shape, with CodeBuild's `build_status` and `phases` on each run. A status filter takes a"
        " status (queued, in_progress, completed) or a conclusion (success, failure, cancelled, timed_out);"
        " `failure` includes builds that ended FAULT. Pages follow `page` and `per_page` (30 by default), with a"
        " `Link` header."
    ),
)
def list_runs(
    request: HttpRequest,
    response: HttpResponse,
    pages: Query[RunPages],
    filters: Query[RunFilters],
    owner: str,
    repo: str,
):
    repository = _repo(request, owner, repo)
    builds = _builds(repository)
    branch, status = filters.branch, filters.status
    if branch:
        builds = builds.filter(Q(head_branch=branch) | Q(head_branch="", ref=f"refs/tags/{branch}"))
    if filters.event:
        builds = builds.filter(trigger__in=[trigger for trigger, name in EVENTS.items() if name == filters.event])
    if status in ("queued", "in_progress"):
        builds = builds.filter(build_status__in=[s for s, name in STATUSES.items() if name == status])
    elif status == "completed":
        builds = builds.filter(build_status__in=Build.ENDED)
    elif status:
        builds = builds.filter(build_status__in=[s for s, name in CONCLUSIONS.items() if name == status])
    if filters.head_sha:
        builds = builds.filter(head_sha=filters.head_sha.lower())
    if filters.actor:
        builds = builds.filter(initiator__username__iexact=filters.actor)
    found, total = _page(request, response, builds, pages)
    viewer = current_user(request)
    return {"total_count": total, "workflow_runs": [run_out(build, viewer) for build in found]}


@router.get(
    "/repos/{owner}/{repo}/actions/runs/{run_id}",
    scope=READ_REPO,
    response=RunOut,
    summary="Get a build as a workflow run",
)
def get_run(request: HttpRequest, owner: str, repo: str, run_id: int):
    return run_out(_run(_repo(request, owner, repo), run_id), current_user(request))


@router.get(
    "/repos/{owner}/{repo}/actions/runs/{run_id}/logs",
    scope=READ_REPO,
    response={404: Message, 410: Message},
    openapi_extra={"responses": ZIP_RESPONSE},
    summary="Download a build's log, zipped",
    description=(
        "A zip holding the log as one text file (GitHub answers with a redirect to such a zip; this is the zip"
        " itself). While the build runs, the log so far. 404 before a worker has started the build."
    ),
)
def download_run_logs(request: HttpRequest, owner: str, repo: str, run_id: int):
    build = _run(_repo(request, owner, repo), run_id)
    if not build.log_path:
        raise Http404(f"Run {run_id} has no log yet.")
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)
    written = 0
    with zipfile.ZipFile(spool, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open(f"build-{build.number}.txt", "w") as entry:
            # Read by offset as the log's viewers do, so that a long log is never held whole in memory.
            offset = 0
            while True:
                chunk = logs.read(build, offset)
                if not chunk.data:
                    break
                entry.write(chunk.data)
                written += len(chunk.data)
                offset = chunk.next_offset
    if not written and build.is_ended:
        spool.close()
        raise HttpError(410, f"The log of run {run_id} is no longer kept.")
    spool.seek(0)
    name = f"{build.repository.name}-build-{build.number}-logs.zip"
    return FileResponse(spool, as_attachment=True, filename=name, content_type=ZIP_TYPE)


@router.post(
    "/repos/{owner}/{repo}/actions/runs/{run_id}/cancel",
    scope=WRITE_REPO,
    response={202: Empty},
    summary="Stop a build",
    description=(
        "Writers only. A queued build ends STOPPED at once; a running one is asked to stop and ends STOPPED soon"
        " after (its whole process tree ends). 409 when it has already ended."
    ),
)
def cancel_run(request: HttpRequest, owner: str, repo: str, run_id: int):
    build = _run(_repo(request, owner, repo), run_id)
    services.cancel_build(build, actor=current_user(request))
    return Status(202, {})


@router.post(
    "/repos/{owner}/{repo}/actions/runs/{run_id}/rerun",
    scope=WRITE_REPO,
    response={201: RunOut},
    summary="Build an ended build's commit again",
    description=(
        "Writers only. A new run of the same commit, ref and start variables (GitHub reruns in place and answers"
        " with an empty body; here the new run is answered). 409 while the build has not ended."
    ),
)
def rerun_run(request: HttpRequest, owner: str, repo: str, run_id: int, payload: RerunIn | None = None):
    build = _run(_repo(request, owner, repo), run_id)
    actor = current_user(request)
    rerun = services.rerun_build(build, actor=actor)
    return Status(201, run_out(_run(build.repository, rerun.pk), actor))


# Artifacts.


@router.get(
    "/repos/{owner}/{repo}/actions/runs/{run_id}/artifacts",
    scope=READ_REPO,
    response=ArtifactsOut,
    summary="List a build's artifacts",
    description="`digest` is the sha256 of the bytes `archive_download_url` answers with.",
)
def list_run_artifacts(
    request: HttpRequest,
    response: HttpResponse,
    pages: Query[RunPages],
    owner: str,
    repo: str,
    run_id: int,
    name: str = Query("", description="Only the artifacts of this name."),
):
    build = _run(_repo(request, owner, repo), run_id)
    artifacts = _artifacts(build.repository).filter(build=build).order_by("identifier", "id")
    if name:
        artifacts = artifacts.filter(name=name)
    return _artifact_page(request, response, artifacts, pages)


@router.get(
    "/repos/{owner}/{repo}/actions/artifacts",
    scope=READ_REPO,
    response=ArtifactsOut,
    summary="List a repository's artifacts, newest first",
)
def list_artifacts(
    request: HttpRequest,
    response: HttpResponse,
    pages: Query[RunPages],
    owner: str,
    repo: str,
    name: str = Query("", description="Only the artifacts of this name."),
):
    artifacts = _artifacts(_repo(request, owner, repo)).order_by("-created", "-id")
    if name:
        artifacts = artifacts.filter(name=name)
    return _artifact_page(request, response, artifacts, pages)


def _artifact(request: HttpRequest, owner: str, repo: str, artifact_id: int) -> BuildArtifact:
    repository = _repo(request, owner, repo)
    artifact = _artifacts(repository).filter(pk=artifact_id).first()
    if artifact is None:
        raise Http404(f"No artifact {artifact_id} in {repository.full_name}.")
    return artifact


@router.get(
    "/repos/{owner}/{repo}/actions/artifacts/{artifact_id}",
    scope=READ_REPO,
    response=ArtifactOut,
    summary="Get an artifact",
)
def get_artifact(request: HttpRequest, owner: str, repo: str, artifact_id: int):
    artifact = _artifact(request, owner, repo, artifact_id)
    return artifact_out(artifact)


@router.get(
    "/repos/{owner}/{repo}/actions/artifacts/{artifact_id}/zip",
    scope=READ_REPO,
    response={404: Message, 410: Message},
    openapi_extra={"responses": ZIP_RESPONSE},
    summary="Download an artifact",
    description=(
        "The stored zip itself, whose sha256 is the artifact's digest (GitHub answers with a redirect to it)."
        " 410 when it is no longer kept."
    ),
)
def download_artifact(request: HttpRequest, owner: str, repo: str, artifact_id: int):
    artifact = _artifact(request, owner, repo, artifact_id)
    storage = artifact_storage()
    if not storage.exists(artifact.storage_name):
        raise HttpError(410, f"Artifact {artifact_id} is no longer kept.")
    return FileResponse(
        storage.open(artifact.storage_name, "rb"),
        as_attachment=True,
        filename=f"{artifact.name}.zip",
        content_type=ZIP_TYPE,
    )


# The one workflow: the buildspec.


def _workflow_out(repository: Repository) -> dict:
    settings = services.build_settings(repository)
    path = settings.buildspec_path
    return {
        "id": repository.pk,
        "name": path,
        "path": path,
        "state": "active",
        "created_at": repository.created,
        "updated_at": settings.updated if settings.pk else repository.created,
        "url": api_url(f"/repos/{repository.full_name}/actions/workflows/{repository.pk}"),
        "html_url": f"{repository.web_url}/blob/{repository.default_branch}/{path}",
    }


@router.get(
    "/repos/{owner}/{repo}/actions/workflows",
    scope=READ_REPO,
    response=WorkflowsOut,
    summary="List the repository's workflows: its buildspec",
    description="One workflow, whose id is the repository's and whose path is the buildspec's, from the build settings.",
)
def list_workflows(request: HttpRequest, owner: str, repo: str):
    return {"total_count": 1, "workflows": [_workflow_out(_repo(request, owner, repo))]}


def _workflow_path(repository: Repository, workflow_id: str) -> str:
    """The buildspec's path, when workflow_id names the one workflow: by its id, its path or its file name."""
    path = services.build_settings(repository).buildspec_path
    if workflow_id not in (str(repository.pk), path, path.rsplit("/", 1)[-1]):
        raise Http404(f"No workflow {workflow_id!r} in {repository.full_name}: its buildspec is {path}.")
    return path


def _ref_to_build(repository: Repository, ref: str) -> tuple[str, str]:
    """The commit a dispatch's ref names and the ref a build of it records (refs/heads/…, refs/tags/…, or the sha
    itself); 422 naming ref when it names nothing in the repository."""
    name = ref.strip()
    try:
        if name.startswith(("refs/heads/", "refs/tags/")):
            # A full ref name means that ref, even when a branch and a tag share the short name.
            target = git.ref_target(repository.path, name)
            if target is not None:
                return git.resolve_commit(repository.path, target).sha, name
        else:
            found = git.resolve_commit(repository.path, name)
            prefixes = {"branch": "refs/heads/", "tag": "refs/tags/"}
            return found.sha, (prefixes[found.kind] + found.name) if found.kind in prefixes else found.sha
    except git.GitError:
        pass
    raise field_error(f"{ref!r} is not a branch, tag or commit of {repository.full_name}.", "ref")


@router.post(
    "/repos/{owner}/{repo}/actions/workflows/{path:workflow_id}/dispatches",
    scope=WRITE_REPO,
    response={204: None, 200: DispatchOut},
    summary="Start a build by hand, with variables",
    description=(
        "Writers only. `workflow_id` is the workflow's id, the buildspec's path (URL-encoded) or its file name."
        " `inputs` become variables of the build, over the repository's and the buildspec's (they are kept on"
        " the build: no secrets). 204, or 200 with the new run's id and addresses when `return_run_details` is"
        " true. 422 naming `ref` when it names no branch, tag or commit holding the buildspec, naming `inputs`"
        " when a name is not a variable's."
    ),
)
def dispatch_workflow(request: HttpRequest, owner: str, repo: str, workflow_id: str, payload: DispatchIn):
    repository = _repo(request, owner, repo)
    actor = current_user(request)
    # Whether the caller may start builds at all is answered before whether this request could start one.
    access.require(access.can_run_builds, actor, repository, "Only writers start builds by hand.")
    path = _workflow_path(repository, workflow_id)
    sha, ref = _ref_to_build(repository, payload.ref)
    if not services.has_buildspec(repository, sha, path):
        raise field_error(f"{payload.ref!r} has no {path}.", "ref")
    variables = {name: _input_value(value) for name, value in payload.inputs.items()}
    try:
        build = services.start_build(
            repository, sha=sha, ref=ref, trigger=Build.Trigger.MANUAL, initiator=actor, variables=variables
        )
    except ValidationError as error:
        # The commit was resolved above: what the service refuses is a variable's name.
        raise field_error(" ".join(error.messages), "inputs") from None
    if not payload.return_run_details:
        return Status(204, None)
    return Status(
        200,
        {
            "workflow_run_id": build.pk,
            "run_url": api_url(f"/repos/{repository.full_name}/actions/runs/{build.pk}"),
            "html_url": build.web_url,
        },
    )


# After the dispatches route, which this one's path would match too.
@router.get(
    "/repos/{owner}/{repo}/actions/workflows/{path:workflow_id}",
    scope=READ_REPO,
    response=WorkflowOut,
    summary="Get the workflow: the buildspec",
    description="`workflow_id` is the workflow's id, the buildspec's path (URL-encoded) or its file name.",
)
def get_workflow(request: HttpRequest, owner: str, repo: str, workflow_id: str):
    repository = _repo(request, owner, repo)
    _workflow_path(repository, workflow_id)
    return _workflow_out(repository)
