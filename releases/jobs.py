"""The build job, run by a worker of the rq `builds` queue.

The worker checks out the exact sha into a fresh workspace under PORTAL_BUILDS_ROOT/<id> (from the repository's git
directory, or fetched over HTTP on a machine without it: releases/source.py), reads the buildspec from the commit
(never through the workspace, where it could be a link), and hands both to the sandboxed runner: only
the sandbox runs the repository's code. The log goes to PORTAL_BUILDS_ROOT/logs/<id>.log line by line as the build
prints it, and from there to where viewers read it (releases/logs.py). Artifacts go to the artifact store
(releases/storage.py) once by sha256; the cache of cache.paths stays under cache/<repository id>; the rest of the
build's directory is removed at the end.

Each build runs as a host uid of its own, BUILD_UID_BASE plus its id modulo BUILD_UID_COUNT: the process limit
counts every process of a uid (and files a build leaves are its uid's), so two builds running at once must not
share one. The range starts well above the uids a system hands out (useradd stops at 60000) and the
first subordinate-uid ranges (from 100000, 65536 per user); 50000 builds would have to run at once for two to
meet. PORTAL_SANDBOX_UID_OFFSET moves the range, for a second portal on the same host."""

import hashlib
import time
from pathlib import Path

from django.conf import settings

from portal import jobs
from releases import logs, provenance, runner, services, source, variables
from releases.buildspec import MAX_BUILDSPEC_BYTES, BuildspecError, parse_buildspec
from releases.models import Build, BuildArtifact
from releases.sandbox import (
    BuildDirectory,
    Limits,
    prepare_build_directory,
    remove_build_directory,
    traversable_directory,
)
from releases.storage import artifact_storage, store_artifact
from repos import git

BUILD_UID_BASE = 1_000_000
BUILD_UID_COUNT = 50_000
# Seconds between two looks at the row for a stop request.
STOP_POLL_SECONDS = 1.0


def host_uid(build: Build) -> int:
    return BUILD_UID_BASE + settings.PORTAL_SANDBOX_UID_OFFSET + build.pk % BUILD_UID_COUNT


def run_build(build_id: int) -> None:
    """rq entry point: run one queued build (a second delivery of the same build does nothing)."""
    build = Build.objects.filter(pk=build_id).select_related("repository__owner", "initiator").first()
    jobs.run_claimed(build, _run)


# Why a build ends when its worker is told to stop (the portal shutting down or restarting) while it runs.
WORKER_STOPPED = "the worker running the build was stopped (the portal shut down or restarted); run it again"


def _stop_check(build: Build):
    last = [0.0, False]

    def should_stop() -> bool:
        if jobs.worker_stopping.is_set():
            return True
        now = time.monotonic()
        if not last[1] and now - last[0] >= STOP_POLL_SECONDS:
            last[0] = now
            last[1] = Build.objects.filter(pk=build.pk, stop_requested=True).exists()
        return last[1]

    return should_stop


def _context(build: Build) -> runner.BuildContext:
    webhook_event = {Build.Trigger.PUSH: "PUSH", Build.Trigger.PULL_REQUEST: "PULL_REQUEST_UPDATED"}
    pull_request = build.pull_request
    if build.head_branch:
        trigger = f"branch/{build.head_branch}"
    elif build.ref.startswith("refs/tags/"):
        trigger = f"tag/{build.ref.removeprefix('refs/tags/')}"
    else:
        trigger = ""
    return runner.BuildContext(
        build_id=f"{build.repository.full_name}:{build.number}",
        build_number=build.number,
        source_version=f"pr/{pull_request.number}" if pull_request is not None else build.ref,
        resolved_source_version=build.head_sha,
        initiator=build.initiator.username if build.initiator is not None else "",
        source_repo_url=build.repository.http_url,
        webhook_trigger=trigger,
        webhook_event=webhook_event.get(build.trigger, ""),
        webhook_head_ref=f"refs/heads/{build.head_branch}" if build.head_branch else "",
        webhook_base_ref=f"refs/heads/{pull_request.base_branch}" if pull_request is not None else "",
        webhook_actor=build.initiator.username if build.initiator is not None else "",
    )


def sweep_left_overs(root: Path, current: Build) -> None:
    """Remove what builds that no longer run left on this machine: the directory of a build whose worker was
    killed, and local copies of logs the store holds. Each worker sweeps its own disk before it builds, so a build
    worker on another machine cleans up after itself too."""
    directories = {int(entry.name): entry for entry in root.iterdir() if entry.name.isdigit()}
    local_logs = {
        int(entry.name.removesuffix(".log")): entry
        for entry in (root / "logs").iterdir()
        if entry.name.endswith(".log") and entry.name.removesuffix(".log").isdigit()
    }
    builds = Build.objects.in_bulk({*directories, *local_logs} - {current.pk})
    storage = artifact_storage()
    for build_id, directory in directories.items():
        build = builds.get(build_id)
        if build_id != current.pk and (build is None or build.state not in (Build.State.QUEUED, Build.State.RUNNING)):
            remove_build_directory(BuildDirectory(directory))
    for build_id, path in local_logs.items():
        build = builds.get(build_id)
        # Kept while the store lacks it (a build whose worker was killed before storing it, or the store was away).
        if build is None or (build.is_ended and storage.exists(logs.stored_name(build))):
            path.unlink(missing_ok=True)


def _run(build: Build) -> None:
    root = traversable_directory(Path(settings.PORTAL_BUILDS_ROOT))
    traversable_directory(root / "logs")
    sweep_left_overs(root, build)
    log = logs.LogWriter(build)
    Build.objects.filter(pk=build.pk).update(log_path=log.name)
    services.mark_in_progress(build)
    directory = prepare_build_directory(traversable_directory(root / str(build.pk)))
    outcome: dict = {"status": Build.BuildStatus.FAULT, "message": ""}
    try:
        log.line(f"{runner.PREFIX}Entering phase DOWNLOAD_SOURCE: {build.head_sha}")
        repository = build.repository
        try:
            with source.git_directory(build, directory.root, on_line=log.line) as git_dir:
                git.export_tree(git_dir, build.head_sha, directory.workspace)
                blob = git.entry(git_dir, build.head_sha, build.buildspec_path)
                text, _size = git.read_blob(git_dir, blob.sha, limit=MAX_BUILDSPEC_BYTES + 1)
        except source.SourceUnavailable as error:
            log.line(f"{runner.PREFIX}Phase context status code: CLIENT_ERROR Message: {error}")
            outcome = {"status": Build.BuildStatus.FAULT, "message": str(error)}
            return
        try:
            spec = parse_buildspec(text, filename=build.buildspec_path)
        except BuildspecError as error:
            log.line(f"{runner.PREFIX}Phase context status code: YAML_FILE_ERROR Message: {error}")
            outcome = {"status": Build.BuildStatus.FAILED, "message": f"YAML_FILE_ERROR: {error}"}
            return
        build_settings = services.build_settings(repository)
        repository_variables, secrets = variables.for_build(build, log.line)
        result = runner.run_build(
            spec,
            directory,
            context=_context(build),
            limits=Limits(timeout_seconds=build_settings.timeout_minutes * 60),
            network=build_settings.network,
            host_uid=host_uid(build),
            repository_variables=repository_variables,
            secrets=secrets,
            start_variables=build.start_variables,
            on_line=log.line,
            should_stop=_stop_check(build),
            artifacts_dir=directory.root / "artifacts",
            cache_dir=traversable_directory(root / "cache") / str(repository.pk),
            default_artifact_name=f"{repository.name}-{build.number}",
        )
        for artifact in result.artifacts:
            store_artifact(artifact.path, BuildArtifact(sha256=artifact.sha256).storage_name)
        status, message = str(result.status), result.message
        if status == Build.BuildStatus.STOPPED and not Build.objects.filter(pk=build.pk, stop_requested=True).exists():
            # Nobody stopped it: the portal did, and the build did not fail on its own. FAULT, as a build whose
            # worker was lost ends, not STOPPED, which says that someone chose to stop it.
            status, message = Build.BuildStatus.FAULT, WORKER_STOPPED
            log.line(f"{runner.PREFIX}Build recorded FAULT: {message}")
        outcome = {
            "status": status,
            "message": message,
            "result": result,
            "warnings": [str(warning) for warning in spec.warnings],
            "inputs": provenance.BuildInputs(
                buildspec_sha256=hashlib.sha256(text).hexdigest(),
                network=build_settings.network,
                timeout_minutes=build_settings.timeout_minutes,
            ),
        }
    except Exception as error:
        log.line(f"{runner.PREFIX}Phase context status code: FAULT Message: {type(error).__name__}: {error}")
        outcome = {"status": Build.BuildStatus.FAULT, "message": f"{type(error).__name__}: {error}"}
        raise
    finally:
        remove_build_directory(directory)
        services.record_result(build, log_size=log.close(), log_sha256=log.digest.hexdigest(), **outcome)
