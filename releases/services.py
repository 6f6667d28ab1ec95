"""Every change to a build: started, stopped, ended; each audited in its transaction, with its commit status.

A build's commit status (context `build`) goes pending when it is queued and final when it ends, linking the
build's page. reviews' set_commit_status needs someone with write access to the repository: the status is set in
the name of whoever started the build when they have it, else in the repository owner's (a push by a deploy key,
a pull request by a reader)."""

from collections.abc import Mapping

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from portal import audit
from portal.models import User
from portal.validators import field_error
from releases import access, provenance, signals
from releases.buildspec import RESERVED_PREFIX, VARIABLE_NAME
from releases.models import MAX_TIMEOUT_MINUTES, Build, BuildArtifact, BuildSettings, PipelineActionRun
from releases.runner import BuildResult
from repos import git
from repos.models import Repository, next_number
from reviews.models import CommitStatus, PullRequest
from reviews.services import set_commit_status
from reviews.webhooks import branch_matches

BUILDSPEC_PATH = "buildspec.yml"
STATUS_CONTEXT = "build"
# What each end of a build says on its commit.
COMMIT_STATES = {
    Build.BuildStatus.SUCCEEDED: CommitStatus.State.SUCCESS,
    Build.BuildStatus.FAILED: CommitStatus.State.FAILURE,
    Build.BuildStatus.TIMED_OUT: CommitStatus.State.FAILURE,
    Build.BuildStatus.FAULT: CommitStatus.State.ERROR,
    Build.BuildStatus.STOPPED: CommitStatus.State.ERROR,
}
# The triggers whose newer build of a branch cancels the older one still queued.
SUPERSEDING_TRIGGERS = (Build.Trigger.PUSH, Build.Trigger.PULL_REQUEST)


def has_buildspec(repository: Repository, sha: str, path: str = BUILDSPEC_PATH) -> bool:
    """Whether the commit holds a buildspec file at path."""
    try:
        return git.entry(repository.path, sha, path).kind == "blob"
    except (git.PathNotFound, git.GitError, KeyError, ValueError):
        return False


def build_settings(repository: Repository) -> BuildSettings:
    """The repository's build settings, or the defaults (unsaved) when it has none."""
    return BuildSettings.objects.filter(repository=repository).first() or BuildSettings(repository=repository)


SETTINGS_FIELDS = (
    "branch_filter",
    "build_tags",
    "stop_running",
    "buildspec_path",
    "network",
    "timeout_minutes",
    "secret_branches",
)


def _clean_buildspec_path(path: str) -> str:
    path = path.strip().strip("/")
    parts = path.split("/")
    if not path or any(part in ("", ".", "..") for part in parts) or "\\" in path or "\0" in path:
        raise field_error(
            "The buildspec path must be a file's path inside the repository, such as buildspec.yml.", "buildspec_path"
        )
    return path


@transaction.atomic
def save_build_settings(repository: Repository, *, actor: User, **changes) -> BuildSettings:
    """Change how the repository builds (the fields of BuildSettings named in SETTINGS_FIELDS; the others keep
    their value); admins only, audited."""
    access.require(access.can_configure_builds, actor, repository, "Only the repository's admins change its builds.")
    unknown = sorted(set(changes) - set(SETTINGS_FIELDS))
    if unknown:
        raise field_error(f"{unknown[0]} is not a build setting.", unknown[0])
    current = build_settings(repository)
    before = {name: getattr(current, name) for name in SETTINGS_FIELDS}
    after = before | changes
    after["branch_filter"] = after["branch_filter"].strip()
    after["secret_branches"] = after["secret_branches"].strip()
    after["buildspec_path"] = _clean_buildspec_path(after["buildspec_path"])
    if not 1 <= after["timeout_minutes"] <= MAX_TIMEOUT_MINUTES:
        raise field_error(f"The time limit is from 1 to {MAX_TIMEOUT_MINUTES} minutes.", "timeout_minutes")
    saved, _created = BuildSettings.objects.update_or_create(
        repository=repository, defaults=after | {"updated": timezone.now()}
    )
    audit.record(actor, "build_settings.update", repository, before=before, after=after)
    return saved


def builds_push_of(repository: Repository, ref: str, settings: BuildSettings | None = None) -> bool:
    """Whether a push of ref starts a build: a branch the filter matches, or a tag when tags are built."""
    settings = settings or build_settings(repository)
    if ref.startswith("refs/heads/"):
        return branch_matches(settings.branch_filter, ref.removeprefix("refs/heads/"))
    return ref.startswith("refs/tags/") and settings.build_tags


def build_of(repository: Repository, sha: str) -> Build | None:
    """A build of this commit that is queued, running or ended other than stopped: its status is on the commit."""
    builds = Build.objects.filter(repository=repository, head_sha=sha).exclude(build_status=Build.BuildStatus.STOPPED)
    return builds.first()


def _status_actor(build: Build) -> User:
    initiator = build.initiator
    if initiator is not None and access.can_run_builds(initiator, build.repository):
        return initiator
    return build.repository.owner


def _post_status(build: Build, description: str, *, known_commit: bool = True) -> None:
    """Post the build's commit status. The first post, when the build is queued, checks that head_sha is a commit of
    the repository; the later ones need not, and a worker without the repository's git directory could not."""
    state = COMMIT_STATES.get(build.build_status, CommitStatus.State.PENDING)
    set_commit_status(
        build.repository,
        actor=_status_actor(build),
        sha=build.head_sha,
        state=state,
        context=STATUS_CONTEXT,
        target_url=build.web_url,
        description=description,
        known_commit=known_commit,
    )


def _snapshot(build: Build) -> dict:
    return {"number": build.number, "sha": build.head_sha, "ref": build.ref, "build_status": build.build_status}


@transaction.atomic
def start_build(
    repository: Repository,
    *,
    sha: str,
    ref: str,
    trigger: str,
    initiator: User | None,
    pull_request: PullRequest | None = None,
    variables: Mapping[str, str] | None = None,
    supersede: bool = True,
) -> Build:
    """Queue a build of sha (a commit of repository, named by ref); its commit status goes pending.

    A build started by hand (manual, rerun) needs write access; variables override the repository's and the
    buildspec's, and are kept on the build, so they must hold no secret. A push's build stops the older builds of
    its branch still queued, unless supersede is false (a pipeline's build, releases.pipelines)."""
    if trigger in (Build.Trigger.MANUAL, Build.Trigger.RERUN):
        access.require(access.can_run_builds, initiator, repository, "Only writers start builds by hand.")
    if not git.is_sha(sha):
        raise ValidationError(f"{sha[:40]!r} is not a full commit id.")
    for name in variables or {}:
        if not VARIABLE_NAME.match(name) or name.startswith(RESERVED_PREFIX):
            raise ValidationError(f"{name!r} is not a variable a build may be given.")
    number = next_number(Build.objects.filter(repository=repository))
    if pull_request is not None:
        head_branch = pull_request.head_branch
    else:
        head_branch = ref.removeprefix("refs/heads/") if ref.startswith("refs/heads/") else ""
    build = Build.objects.create(
        repository=repository,
        number=number,
        head_sha=sha,
        ref=ref,
        head_branch=head_branch,
        trigger=trigger,
        initiator=initiator,
        pull_request=pull_request,
        buildspec_path=build_settings(repository).buildspec_path,
        start_variables=dict(variables or {}),
    )
    audit.record(initiator, "build.start", build, after=_snapshot(build) | {"trigger": trigger})
    if supersede and trigger in SUPERSEDING_TRIGGERS and build.head_branch:
        _supersede(build)
    _post_status(build, "Build queued", known_commit=False)
    build.enqueue()
    return build


def _supersede(build: Build) -> None:
    """Stop the older builds of the new build's branch still queued, and the running ones when the repository
    says so. A build a pipeline execution waits for is left to run: the pipeline supersedes its own executions,
    between stages, and stopping the build would fail the execution that holds the stage."""
    states = [Build.State.QUEUED]
    if build_settings(build.repository).stop_running:
        states.append(Build.State.RUNNING)
    older = Build.objects.filter(
        repository=build.repository,
        head_branch=build.head_branch,
        trigger__in=SUPERSEDING_TRIGGERS,
        state__in=states,
        stop_requested=False,
        pk__lt=build.pk,
    ).exclude(pipeline_action_runs__status=PipelineActionRun.Status.IN_PROGRESS)
    for old in older:
        try:
            cancel_build(old, actor=None, reason=f"superseded by build #{build.number}")
        except ValidationError:
            # It ended meanwhile: nothing left to stop.
            continue


def _stop_queued(build: Build, *, actor: User | None, reason: str) -> bool:
    """Stop a build no worker has claimed: a delivery still in Redis then finds nothing to claim."""
    before = _snapshot(build)
    now = timezone.now()
    if not build._transition(
        [Build.State.QUEUED],
        state=Build.State.CANCELED,
        finished_at=now,
        build_status=Build.BuildStatus.STOPPED,
        build_ended=now,
        message=f"Stopped: {reason}",
    ):
        return False
    audit.record(actor, "build.stop", build, before=before, after=_snapshot(build) | {"reason": reason})
    _post_status(build, f"Build stopped: {reason}")
    signals.build_ended.send(Build, build=build)
    return True


@transaction.atomic
def cancel_build(build: Build, *, actor: User | None, reason: str = "") -> Build:
    """Stop a build: at once while it is queued; a running one is asked to stop and ends STOPPED soon after.

    actor None is the portal itself (a newer push); anyone else needs write access to the repository."""
    if actor is not None:
        access.require(access.can_run_builds, actor, build.repository, "Only writers stop builds.")
    reason = reason or (f"stopped by {actor.username}" if actor is not None else "stopped")
    if _stop_queued(build, actor=actor, reason=reason):
        return build
    build.refresh_from_db()
    if build.state != Build.State.RUNNING or build.is_ended:
        raise ValidationError(f"Build #{build.number} has already ended.", code="conflict")
    Build.objects.filter(pk=build.pk).update(stop_requested=True)
    build.stop_requested = True
    audit.record(actor, "build.stop_requested", build, before=_snapshot(build), after={"reason": reason})
    return build


def rerun_build(build: Build, *, actor: User) -> Build:
    """Start a new build of what an ended build built: the same commit, ref, pull request and start variables."""
    access.require(access.can_run_builds, actor, build.repository, "Only writers rerun builds.")
    if not build.is_ended:
        raise ValidationError(f"Build #{build.number} has not ended: stop it or let it end first.", code="conflict")
    return start_build(
        build.repository,
        sha=build.head_sha,
        ref=build.ref,
        trigger=Build.Trigger.RERUN,
        initiator=actor,
        pull_request=build.pull_request,
        variables=build.start_variables,
    )


@transaction.atomic
def mark_in_progress(build: Build) -> None:
    now = timezone.now()
    Build.objects.filter(pk=build.pk).update(build_status=Build.BuildStatus.IN_PROGRESS, build_started=now)
    build.build_status, build.build_started = Build.BuildStatus.IN_PROGRESS, now
    _post_status(build, "Build in progress")


def _phase_rows(result: BuildResult) -> list[dict]:
    return [
        {
            "name": phase.name.upper(),
            "status": str(phase.status),
            "started": phase.started_at,
            "ended": phase.ended_at,
            "duration": round(phase.duration_seconds, 3),
            "message": phase.message,
        }
        for phase in result.phases
    ]


def _report_rows(result: BuildResult) -> list[dict]:
    return [
        {
            "group": report.group,
            "files": list(report.files),
            "errors": list(report.errors),
            "cases": [
                {
                    "suite": case.suite,
                    "classname": case.classname,
                    "name": case.name,
                    "status": str(case.status),
                    "duration": case.duration_seconds,
                    "message": case.message,
                    "details": case.details,
                    "file": case.file,
                }
                for case in report.test_cases
            ],
        }
        for report in result.reports
    ]


@transaction.atomic
def record_result(
    build: Build,
    *,
    status: str,
    message: str = "",
    result: BuildResult | None = None,
    warnings: list[str] | None = None,
    log_size: int = 0,
    log_sha256: str = "",
    inputs: provenance.BuildInputs | None = None,
) -> Build:
    """Record how a build ended (with the runner's result when it ran: phases, exported variables, test reports,
    the artifacts it stored, each with its signed provenance when the job gave the inputs it ran with) and post its
    final commit status."""
    if status not in Build.ENDED:
        raise ValueError(f"{status} is not how a build ends.")
    before = _snapshot(build)
    changes = {
        "build_status": status,
        "message": message[:5000],
        "phases": _phase_rows(result) if result is not None else [],
        "exported_variables": dict(result.exported_variables) if result is not None else {},
        "reports": _report_rows(result) if result is not None else [],
        "warnings": warnings or [],
        "log_size": log_size,
        "build_ended": timezone.now(),
    }
    Build.objects.filter(pk=build.pk).update(**changes)
    for name, value in changes.items():
        setattr(build, name, value)
    BuildArtifact.objects.bulk_create(
        BuildArtifact(
            build=build,
            identifier=artifact.identifier or "",
            name=artifact.name,
            sha256=artifact.sha256,
            size_in_bytes=artifact.size_in_bytes,
            files=list(artifact.files),
            provenance=provenance.attest(
                build, name=artifact.name, sha256=artifact.sha256, inputs=inputs, log_sha256=log_sha256
            )
            if inputs is not None
            else None,
        )
        for artifact in (result.artifacts if result is not None else ())
    )
    audit.record(None, "build.end", build, before=before, after=_snapshot(build))
    description = f"Build {status.lower().replace('_', ' ')}" + (f": {message}" if message else "")
    _post_status(build, description[:1000])
    signals.build_ended.send(Build, build=build)
    return build
