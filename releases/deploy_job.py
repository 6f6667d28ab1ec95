"""The deployment job, run by a worker of the rq `deploys` queue.

It claims the row (portal/jobs.py: compare-and-swap, heartbeats, reconciled), looks again at what may hold the
deployment (approvals, the wait timer, a freeze: releases.deployments.blocker), then checks at the door, before
anything runs: the artifact's bytes against the sha256 the build stored, its signed provenance, and the ref it was
built from against the environment's rule. Then it drives releases.batches.Plan over the environment's targets:
each batch's targets deploy side by side (at most PORTAL_DEPLOY_PARALLEL at a time), each with its own live log,
and a failure stops later batches as CodeDeploy's arithmetic says. At the end the targets' health and revisions are
kept (CodeDeploy's bookkeeping) and a failure rolls back (releases.deployments.record_end).

Database writes happen on the job's own thread only; the threads deploying to targets touch files, sandboxes, ssh
connections and their logs, never the database.
"""

import tempfile
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from portal import jobs
from releases import batches, deploy_checks, deployments, environments, logs, secrets
from releases.local_target import EventResult, EventStatus, LocalTarget, TargetResult
from releases.masking import SecretMasker
from releases.models import Deployment, DeploymentTarget, Environment, EnvironmentTarget
from releases.sandbox import traversable_directory
from releases.ssh_deploy import SshDeployTarget
from releases.ssh_target import HealthResult
from releases.storage import artifact_storage

# Each local target's hooks run as a host uid of its own (the process limit counts every process of a uid), in a
# range above the builds' (releases.jobs), moved by PORTAL_SANDBOX_UID_OFFSET as theirs is.
TARGET_UID_BASE = 1_100_000
TARGET_UID_COUNT = 50_000
# Revisions a local target keeps: the live one and the ones before it, for inspection.
KEEP_REVISIONS = 3
WORKER_STOPPED = "the worker running the deployment was stopped (the portal shut down or restarted)"


def target_uid(target: EnvironmentTarget) -> int:
    return TARGET_UID_BASE + settings.PORTAL_SANDBOX_UID_OFFSET + target.pk % TARGET_UID_COUNT


def run_deployment(deployment_id: int) -> None:
    """rq entry point: run one queued deployment (a second delivery of the same one does nothing)."""
    deployment = (
        Deployment.objects.filter(pk=deployment_id)
        .select_related("repository__owner", "environment", "artifact__build", "creator")
        .first()
    )
    jobs.run_claimed(deployment, _run)


def _back_to_waiting(deployment: Deployment) -> None:
    """Give back a claimed row whose deployment is still held: queued again, its attempt not counted."""
    Deployment.objects.filter(pk=deployment.pk, state=Deployment.State.RUNNING, worker=deployment.worker).update(
        state=Deployment.State.QUEUED, attempts=F("attempts") - 1, started_at=None, heartbeat_at=None
    )
    deployment.refresh_from_db()
    deployments.hold(deployment)


def _run(deployment: Deployment) -> None:
    if deployment.is_ended:
        return
    if deployment.stop_requested:
        deployments.record_end(deployment, Deployment.Status.STOPPED, "Stopped before it started.")
        return
    with transaction.atomic():
        # The environment's row is the lock that lets one deployment at a time past this point.
        Environment.objects.select_for_update().filter(pk=deployment.environment_id).first()
        found = deployments.blocker(deployment)
        if found is None:
            deployments.mark_in_progress(deployment)
    if found is not None:
        if found.review and found.until <= timezone.now():
            deployments.record_end(deployment, Deployment.Status.FAILED, f"Nobody reviewed it in time. {found.reason}")
        else:
            _back_to_waiting(deployment)
        return
    traversable_directory(Path(settings.PORTAL_DEPLOYS_ROOT))
    log = logs.LogWriter(deployment)
    outcome = {"status": Deployment.Status.FAILED, "message": "", "reached": False}
    try:
        outcome = _deploy(deployment, log)
    except Exception as error:
        outcome = {"status": Deployment.Status.FAILED, "message": f"{type(error).__name__}: {error}", "reached": True}
        log.line(f"Failed: {outcome['message']}")
        raise
    finally:
        size = log.close()
        deployments.record_end(
            deployment, outcome["status"], outcome["message"], log_size=size, reached=outcome["reached"]
        )


def _fail(log: logs.LogWriter, message: str) -> dict:
    log.line(f"Refused: {message}")
    return {"status": Deployment.Status.FAILED, "message": message, "reached": False}


def _deploy(deployment: Deployment, log: logs.LogWriter) -> dict:
    environment = deployment.environment
    repository = deployment.repository
    artifact = deployment.artifact
    previous = deployments.last_success(environment, before=deployment)
    rows = list(environment.targets.all())
    config = environments.config_of(environment)
    try:
        plan = batches.Plan(
            tuple(
                batches.Target(row.name, batches.Health(row.health), str(row.revision_id) if row.revision_id else None)
                for row in rows
            ),
            config,
            str(deployment.pk),
            str(previous.pk) if previous else None,
        )
    except batches.DeploymentConfigError as error:
        deployments.record_plan(deployment, previous=previous, config=_config(config), minimum=0)
        return _fail(log, str(error))
    deployments.record_plan(deployment, previous=previous, config=_config(config), minimum=plan.minimum)
    what = f"rollback of deployment {deployment.rollback_of_id}" if deployment.rollback_of_id else "deployment"
    log.line(f"Deployment {deployment.pk} ({what}) of {repository.full_name} at {deployment.sha} to {environment.name}")
    log.line(f"Artifact {artifact.name}.zip sha256:{artifact.sha256} of build #{artifact.build.number}")

    with tempfile.TemporaryDirectory(dir=traversable_directory(Path(settings.PORTAL_DEPLOYS_ROOT) / "work")) as work:
        path = Path(work) / "artifact.zip"
        storage = artifact_storage()
        if not storage.exists(artifact.storage_name):
            return _fail(log, "The artifact's bytes are no longer in the store (expired or removed).")
        with storage.open(artifact.storage_name, "rb") as source, path.open("wb") as copy:
            while chunk := source.read(1024 * 1024):
                copy.write(chunk)
        try:
            statement = deploy_checks.check_artifact(path, artifact.sha256, artifact.provenance)
            log.line(f"Verified: the bytes are sha256:{artifact.sha256} and the portal's key signed their provenance")
            built = deploy_checks.check_ref(
                environments.ref_policy_of(environment), repository, statement, environment=environment.name
            )
            log.line(f"Verified: built from {built.described}, which {environment.name} takes")
        except deploy_checks.DeploymentRefused as refused:
            return _fail(log, refused.reason)

        by_name = {row.name: row for row in rows}
        runs = {}
        for position, target in enumerate(plan.targets):
            runs[target.name] = DeploymentTarget.objects.create(
                deployment=deployment,
                target=by_name[target.name],
                name=target.name,
                kind=by_name[target.name].kind,
                position=position,
                health_before=str(target.health),
                revision_before=str(target.revision_status(plan.group_revision)),
            )
        log.line(
            f"{config.name}: {len(rows)} targets, at least {plan.minimum} kept healthy; "
            f"order: {', '.join(target.name for target in plan.targets)}"
        )
        hook_variables, masker = _hook_variables(environment)
        stopped = ""
        with ThreadPoolExecutor(max_workers=settings.PORTAL_DEPLOY_PARALLEL, thread_name_prefix="deploy") as pool:
            while batch := plan.next_batch():
                stopped = _stop_reason(deployment)
                if stopped:
                    break
                number = len(plan.batches)
                log.line(f"Batch {number}: {', '.join(target.name for target in batch)}")
                futures = {}
                for target in batch:
                    run = runs[target.name]
                    run.batch, run.status = number, DeploymentTarget.Status.IN_PROGRESS
                    run.save(update_fields=["batch", "status"])
                    futures[
                        pool.submit(_deploy_target, deployment, run, by_name[target.name], path, hook_variables, masker)
                    ] = run
                pending = set(futures)
                while pending:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        run = futures[future]
                        outcome = future.result()
                        _record_target(run, outcome)
                        if outcome.health is not None:
                            _record_health(by_name[run.name], outcome.health)
                        result = outcome.result
                        log.line(f"  {run.name}: {run.status}{' — ' + run.message if run.message else ''}")
                        plan = plan.record(run.name, result.succeeded)
            # Old revisions go once every target is done, so no target waits for another's clean-up.
            for prune in [
                pool.submit(_prune_revisions, LocalTarget(repository.pk, environment.name, run.name))
                for run in runs.values()
                if run.kind == EnvironmentTarget.Kind.LOCAL and run.status == DeploymentTarget.Status.SUCCEEDED
            ]:
                prune.result()
    for run in runs.values():
        if run.status == DeploymentTarget.Status.PENDING:
            run.status, run.message = DeploymentTarget.Status.SKIPPED, "Not deployed: the deployment stopped before it."
            run.save(update_fields=["status", "message"])
    reached = any(run.status != DeploymentTarget.Status.SKIPPED for run in runs.values())
    deployments.set_group_state(environment, deployment, plan.group_after(stopped=bool(stopped)))
    if stopped:
        log.line(f"Stopped: {stopped}")
        status = Deployment.Status.STOPPED if deployment.stop_requested else Deployment.Status.FAILED
        return {"status": status, "message": stopped, "reached": reached}
    outcome = plan.outcome
    log.line(outcome.reason)
    if outcome.status == batches.Status.SUCCEEDED:
        return {"status": Deployment.Status.SUCCEEDED, "message": "", "reached": True}
    return {"status": Deployment.Status.FAILED, "message": outcome.reason, "reached": reached}


def _config(config: batches.DeploymentConfig) -> dict:
    return {"name": config.name, "type": str(config.type), "value": config.value}


def _stop_reason(deployment: Deployment) -> str:
    if jobs.worker_stopping.is_set():
        return WORKER_STOPPED
    if Deployment.objects.filter(pk=deployment.pk, stop_requested=True).exists():
        deployment.stop_requested = True
        return "Stopped by a person; the batches that ran stay as they are."
    return ""


def _hook_variables(environment) -> tuple[dict[str, str], SecretMasker]:
    """The environment's variables and secrets for its hooks, and a masker that hides the secrets in their logs."""
    values, hidden = {}, []
    for row in environment.variables.order_by("secret", "name"):
        value = secrets.decrypt(row.value) if row.secret else row.value
        values[row.name] = value
        if row.secret:
            hidden.append(value)
    return values, SecretMasker(hidden)


@dataclass
class TargetOutcome:
    """What a thread of the pool hands back: the target's result, its log's size, its health check, and when the
    thread took it (a target of a big batch waits for a free thread)."""

    result: TargetResult
    log_size: int
    health: HealthResult | None
    started: datetime


def _deploy_target(
    deployment: Deployment,
    run: DeploymentTarget,
    target: EnvironmentTarget,
    artifact_path: Path,
    variables: dict[str, str],
    masker: SecretMasker,
) -> TargetOutcome:
    """Deploy to one target, on a thread of the pool: its log, its hooks, then its health check."""
    started_at = timezone.now()
    log = logs.LogWriter(run)
    current = [None]

    def on_line(event: str, line: str) -> None:
        if event != current[0]:
            current[0] = event
            log.line(f"==> {event}")
        log.line(masker.mask(line))

    health = None
    try:
        environment = deployment.environment
        place, check = _place(target)
        options = dict(
            on_line=on_line,
            application_name=deployment.repository.full_name,
            deployment_group_id=str(environment.pk),
            bundle_commit=deployment.sha,
            variables=variables,
        )
        if target.kind == EnvironmentTarget.Kind.LOCAL:
            options["host_uid"] = target_uid(target)
        result = place.deploy(deployment.pk, artifact_path, deployment.artifact.sha256, **options)
        health_check = target.health_command or target.health_url
        if result.succeeded and health_check:
            started = time.monotonic()
            on_line("HealthCheck", f"[portal] Checking health: {health_check}")
            health = check(health_check)
            for line in health.detail.splitlines()[-10:]:
                on_line("HealthCheck", line)
            if not health.healthy:
                result.status = EventStatus.FAILED
                result.message = f"The health check failed after the deployment: {health.detail[-500:]}"
            result.events.append(
                EventResult(
                    "HealthCheck",
                    EventStatus.SUCCEEDED if health.healthy else EventStatus.FAILED,
                    round(time.monotonic() - started, 3),
                    result.message,
                )
            )
    except Exception as error:
        on_line("Deploy", f"[portal] {type(error).__name__}: {error}")
        result = TargetResult(revision=str(deployment.pk), status=EventStatus.FAILED, message=str(error))
    finally:
        size = log.close()
    return TargetOutcome(result, size, health, started_at)


def _place(target: EnvironmentTarget):
    """The target to deploy to, and its health check function (check -> HealthResult)."""
    environment = target.environment
    if target.kind == EnvironmentTarget.Kind.LOCAL:
        place = LocalTarget(environment.repository_id, environment.name, target.name)
        return place, lambda check: place.health(check, host_uid=target_uid(target))
    place = SshDeployTarget(
        host=target.host,
        port=target.port or 22,
        user=target.user,
        private_key=environments.deploy_key_of(target),
        host_key=target.host_key,
        repository_id=environment.repository_id,
        environment=environment.name,
        name=target.name,
    )
    return place, place.health


def _record_health(target: EnvironmentTarget, health) -> None:
    target.check_healthy, target.check_detail, target.checked_at = health.healthy, health.detail[-2000:], timezone.now()
    target.save(update_fields=["check_healthy", "check_detail", "checked_at"])


def check_health() -> dict[str, int]:
    """Run the health check of every target that has one and runs a revision (rq entry point, every few minutes
    on the cron scheduler): what a target's page shows between deployments."""
    counts = {"healthy": 0, "unhealthy": 0}
    targets = EnvironmentTarget.objects.exclude(revision=None).exclude(health_command="", health_url="")
    for target in targets.select_related("environment"):
        check = _place(target)[1]
        try:
            health = check(target.health_command or target.health_url)
        except Exception as error:
            health = HealthResult(healthy=False, detail=f"{type(error).__name__}: {error}")
        _record_health(target, health)
        counts["healthy" if health.healthy else "unhealthy"] += 1
    return counts


def _prune_revisions(place: LocalTarget) -> None:
    live = place.current_revision()
    names = sorted((entry.name for entry in place.revisions.iterdir() if entry.name.isdigit()), key=int)
    for name in names[:-KEEP_REVISIONS]:
        if name != live:
            place.remove_revision(name)


def _record_target(run: DeploymentTarget, outcome: TargetOutcome) -> None:
    result = outcome.result
    run.status = DeploymentTarget.Status.SUCCEEDED if result.succeeded else DeploymentTarget.Status.FAILED
    run.message = result.message[:5000]
    run.events = [
        {
            "event": event.event,
            "status": str(event.status),
            "duration": event.duration_seconds,
            "message": event.message,
        }
        for event in result.events
    ]
    run.started, run.ended = outcome.started, timezone.now()
    run.log_size = outcome.log_size
    run.save(update_fields=["status", "message", "events", "started", "ended", "log_size"])
