"""Deployments: requested, held while the environment's protection holds them, reviewed, stopped, recorded, rolled
back (AWS release semantics §3–4).

A deployment deploys the primary artifact of a successful build of its commit: never a rebuild. It is requested by
a writer (or by the portal, as an automatic rollback), and waits while the environment needs approvals it has not
got, while its wait timer runs or while a change freeze holds; the job (releases.deploy_job) checks these again
when it runs, then the artifact's bytes and provenance and the ref it was built from, and only then deploys.

Statuses follow GitHub's deployment statuses (waiting, queued, in_progress, success, failure, error, inactive):
a deployment's status goes inactive once a later one succeeds on its environment. A failed deployment that
reached any target rolls back by itself: a new deployment, with a new id, of the artifact of the environment's
last successful deployment, marked as a rollback and linked to the one it undoes. What hooks did is not undone.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from portal import audit
from portal.models import User
from portal.validators import field_error
from releases import access, batches, deploy_checks, environments, signals
from releases.models import (
    Build,
    BuildArtifact,
    Deployment,
    DeploymentReview,
    DeploymentStatus,
    Environment,
    EnvironmentTarget,
    PipelineActionRun,
    PipelineApproval,
)
from repos.access import can_administer, check_role, role_for
from repos.models import Repository, Role

# GitHub rejects a deployment nobody reviewed within 30 days.
APPROVAL_TIMEOUT = timedelta(days=30)
STATE_OF = {
    Deployment.Status.WAITING: DeploymentStatus.State.WAITING,
    Deployment.Status.QUEUED: DeploymentStatus.State.QUEUED,
    Deployment.Status.IN_PROGRESS: DeploymentStatus.State.IN_PROGRESS,
    Deployment.Status.SUCCEEDED: DeploymentStatus.State.SUCCESS,
    Deployment.Status.FAILED: DeploymentStatus.State.FAILURE,
    Deployment.Status.STOPPED: DeploymentStatus.State.ERROR,
}


def deployments_of(repository: Repository) -> QuerySet:
    return Deployment.objects.filter(repository=repository).select_related(
        "environment", "artifact__build", "creator", "rollback_of"
    )


def last_success(environment: Environment, *, before: Deployment | None = None) -> Deployment | None:
    """The environment's last successful deployment (before `before`, when given): its revision is the group's."""
    found = environment.deployments.filter(deployment_status=Deployment.Status.SUCCEEDED)
    if before is not None:
        found = found.filter(pk__lt=before.pk)
    return found.order_by("-deploy_ended", "-pk").select_related("artifact__build").first()


def artifact_of(repository: Repository, sha: str, *, field: str = "sha") -> BuildArtifact:
    """The primary artifact of the newest successful build of sha, or a field_error saying why there is none."""
    build = (
        Build.objects.filter(repository=repository, head_sha=sha, build_status=Build.BuildStatus.SUCCEEDED)
        .order_by("-created", "-pk")
        .first()
    )
    if build is None:
        raise field_error(f"{sha[:12]} has no successful build to deploy: a deployment never builds.", field)
    artifact = build.artifacts.filter(identifier="").first() or build.artifacts.first()
    if artifact is None:
        raise field_error(f"Build #{build.number} of {sha[:12]} made no artifact to deploy.", field)
    if artifact.expired:
        raise field_error(f"The artifact of build #{build.number} expired and was removed; build it again.", field)
    return artifact


def _snapshot(deployment: Deployment) -> dict:
    return {
        "id": deployment.pk,
        "environment": deployment.environment.name,
        "sha": deployment.sha,
        "artifact_digest": f"sha256:{deployment.artifact.sha256}",
        "status": deployment.deployment_status,
        "rollback_of": deployment.rollback_of_id,
    }


def add_status(deployment: Deployment, description: str = "", *, creator: User | None = None) -> DeploymentStatus:
    return DeploymentStatus.objects.create(
        deployment=deployment,
        state=STATE_OF[deployment.deployment_status],
        description=description[:500],
        creator=creator,
    )


def _set_status(deployment: Deployment, status: str, message: str = "", **changes) -> None:
    changes = {"deployment_status": status, "message": message[:5000], **changes}
    Deployment.objects.filter(pk=deployment.pk).update(**changes)
    for name, value in changes.items():
        setattr(deployment, name, value)


# Requesting.


@transaction.atomic
def request_deployment(
    repository: Repository,
    environment: Environment,
    *,
    actor: User | None,
    artifact: BuildArtifact | None = None,
    sha: str | None = None,
    description: str = "",
    rollback_of: Deployment | None = None,
    automatic: bool = False,
    pipeline_action: PipelineActionRun | None = None,
) -> Deployment:
    """Request a deployment of artifact (or of sha's successful build) to environment; it waits or is queued.

    A person must be allowed to deploy (a writer); an automatic rollback is the portal's own (actor None), and so
    is a pipeline's deployment (pipeline_action), which its execution's requester started by a push or by hand."""
    if not automatic and pipeline_action is None:
        access.require(access.can_deploy, actor, repository, "Only the repository's writers deploy.")
    if environment.repository_id != repository.pk:
        raise ValueError("The environment belongs to another repository.")
    if artifact is None:
        if not sha:
            raise field_error("Name the commit to deploy (sha or ref).", "sha")
        artifact = artifact_of(repository, sha)
    elif artifact.build.repository_id != repository.pk:
        raise ValueError("The artifact belongs to another repository.")
    if not environment.targets.exists():
        raise field_error(f"{environment.name} has no targets to deploy to.", "environment")
    build = artifact.build
    deployment = Deployment.objects.create(
        repository=repository,
        environment=environment,
        artifact=artifact,
        sha=build.head_sha,
        ref=build.ref,
        creator=actor,
        description=description[:5000],
        rollback_of=rollback_of,
        automatic=automatic,
        pipeline_action=pipeline_action,
        deployment_status=Deployment.Status.QUEUED,
    )
    audit.record(actor, "deployment.create", deployment, after=_snapshot(deployment))
    hold(deployment)
    return deployment


@dataclass(frozen=True)
class Hold:
    """What holds a deployment: its reason, and when to look again."""

    reason: str
    until: datetime
    # Waiting for reviews, which end it once `until` (the approval timeout) passes.
    review: bool = False


# How often a deployment held by another one running on its environment looks again.
BUSY_RETRY = timedelta(seconds=5)


def blocker(deployment: Deployment, now=None) -> Hold | None:
    """What holds the deployment now; None when nothing does. One deployment runs on an environment at a time, as
    in a CodeDeploy deployment group; beyond that an automatic rollback is held by nothing: the environment
    accepted its artifact before."""
    now = now or timezone.now()
    environment = deployment.environment
    running = (
        environment.deployments.filter(deployment_status=Deployment.Status.IN_PROGRESS)
        .exclude(pk=deployment.pk)
        .first()
    )
    if running is not None:
        return Hold(f"Waiting for deployment {running.pk}, which is running on {environment.name}.", now + BUSY_RETRY)
    if deployment.automatic:
        return None
    if environment.required_approvals and not approved_by_pipeline(deployment):
        missing = approvals_missing(deployment)
        if missing:
            return Hold(f"Waiting for review: {missing}", deployment.created + APPROVAL_TIMEOUT, review=True)
    if deployment.override_by_id is None:
        windows = environments.freeze_windows_of(environment)
        reason = deploy_checks.start_blocker(windows, environment.wait_timer, deployment.created, now)
        if reason:
            ready = deploy_checks.wait_until(environment.wait_timer, deployment.created)
            if now < ready:
                return Hold(reason, ready)
            # Frozen for over a year: look again tomorrow, in case the windows change.
            return Hold(reason, deploy_checks.next_open(windows, now) or now + timedelta(days=1))
    return None


def approved_by_pipeline(deployment: Deployment) -> bool:
    """Whether a pipeline requested the deployment after its approval for this environment passed: the
    environment's reviewers answered that approval, which is the deployment's review."""
    if deployment.pipeline_action_id is None:
        return False
    return PipelineApproval.objects.filter(
        execution_id=deployment.pipeline_action.execution_id,
        environment=deployment.environment,
        status=PipelineApproval.Status.APPROVED,
    ).exists()


def approvals_missing(deployment: Deployment) -> str | None:
    environment = deployment.environment
    pool = deploy_checks.RequiredApprovals(
        count=environment.required_approvals,
        user_ids=frozenset(environment.reviewer_users.values_list("pk", flat=True)),
        team_ids=frozenset(environment.reviewer_teams.values_list("pk", flat=True)),
    ).pool_user_ids()
    approvals = deployment.reviews.filter(state=DeploymentReview.State.APPROVED).values_list("user_id", flat=True)
    return deploy_checks.approvals_met(
        environment.required_approvals,
        pool,
        approvals,
        deployment.creator_id,
        environment.prevent_self_review,
    )


def hold(deployment: Deployment, now=None) -> bool:
    """Queue the deployment when nothing holds it (True), else mark it waiting with why and when to look again."""
    found = blocker(deployment, now)
    if found is None:
        changes = {"due_at": timezone.now(), "enqueued_at": timezone.now()}
        Deployment.objects.filter(pk=deployment.pk).update(**changes)
        if deployment.deployment_status != Deployment.Status.QUEUED or not deployment.statuses.exists():
            _set_status(deployment, Deployment.Status.QUEUED)
            add_status(deployment, "Queued")
        deployment.refresh_from_db()
        deployment.enqueue()
        return True
    was = deployment.deployment_status, deployment.message
    _set_status(deployment, Deployment.Status.WAITING, found.reason)
    if was != (Deployment.Status.WAITING, found.reason):
        add_status(deployment, found.reason)
    Deployment.objects.filter(pk=deployment.pk).update(due_at=found.until, enqueued_at=timezone.now())
    deployment.refresh_from_db()
    deployment.enqueue()
    return False


# Reviews, overrides and stops.


def can_review(user: User | None, deployment: Deployment) -> bool:
    environment = deployment.environment
    if user is None or not user.is_authenticated or not environment.required_approvals:
        return False
    return (
        user.pk
        in deploy_checks.RequiredApprovals(
            count=environment.required_approvals,
            user_ids=frozenset(environment.reviewer_users.values_list("pk", flat=True)),
            team_ids=frozenset(environment.reviewer_teams.values_list("pk", flat=True)),
        ).pool_user_ids()
    )


@transaction.atomic
def review(deployment: Deployment, *, actor: User, state: str, comment: str = "") -> DeploymentReview:
    """Approve or reject a waiting deployment as one of the environment's reviewers; a rejection ends it."""
    check_role(role_for(actor, deployment.repository), Role.READ)
    deployment = Deployment.objects.select_for_update().get(pk=deployment.pk)
    if not can_review(actor, deployment):
        raise PermissionDenied(f"Only the reviewers of {deployment.environment.name} review its deployments.")
    if deployment.deployment_status != Deployment.Status.WAITING:
        raise field_error("Only a waiting deployment is reviewed.", "state")
    if state not in DeploymentReview.State.values:
        raise field_error("A review is approved or rejected.", "state")
    row, _ = DeploymentReview.objects.update_or_create(
        deployment=deployment, user=actor, defaults={"state": state, "comment": comment[:5000]}
    )
    audit.record(actor, f"deployment.{state}", deployment, after={"comment": comment[:5000]})
    if state == DeploymentReview.State.REJECTED:
        end_without_running(deployment, Deployment.Status.FAILED, f"Rejected by {actor.username}: {comment}".strip())
    else:
        hold(deployment)
    return row


@transaction.atomic
def override(deployment: Deployment, *, actor: User) -> None:
    """Start a deployment held by its wait timer or a change freeze now: the repository's admins, audited."""
    access.require(can_administer, actor, deployment.repository, "Only the repository's admins override a freeze.")
    deployment = Deployment.objects.select_for_update().get(pk=deployment.pk)
    if deployment.deployment_status != Deployment.Status.WAITING:
        raise field_error("Only a waiting deployment can be started early.", "override")
    Deployment.objects.filter(pk=deployment.pk).update(override_by=actor)
    deployment.override_by = actor
    audit.record(actor, "deployment.override", deployment, before={"waiting": deployment.message})
    hold(deployment)


def end_without_running(deployment: Deployment, status: str, message: str) -> None:
    """End a deployment that never ran (rejected, stopped while waiting, timed out waiting)."""
    Deployment.objects.filter(pk=deployment.pk, state__in=[Deployment.State.QUEUED]).update(
        state=Deployment.State.CANCELED, finished_at=timezone.now()
    )
    _set_status(deployment, status, message, deploy_ended=timezone.now())
    add_status(deployment, message)
    signals.deployment_ended.send(Deployment, deployment=deployment)


@transaction.atomic
def stop(deployment: Deployment, *, actor: User) -> None:
    """Stop a deployment: at once when it has not started, else after the batch under way (what ran stays)."""
    access.require(access.can_deploy, actor, deployment.repository, "Only the repository's writers stop deployments.")
    deployment = Deployment.objects.select_for_update().get(pk=deployment.pk)
    if deployment.is_ended:
        return
    audit.record(actor, "deployment.stop", deployment, before=_snapshot(deployment))
    if deployment.deployment_status in (Deployment.Status.WAITING, Deployment.Status.QUEUED) and (
        deployment.state == Deployment.State.QUEUED
    ):
        end_without_running(deployment, Deployment.Status.STOPPED, f"Stopped by {actor.username}.")
        return
    Deployment.objects.filter(pk=deployment.pk).update(stop_requested=True)


# Rollbacks.


@transaction.atomic
def roll_back(deployment: Deployment, *, actor: User | None, automatic: bool = False) -> Deployment | None:
    """Deploy again the artifact of the environment's last successful deployment before this one, as a rollback
    of it; None when there is none (a first deployment has nothing to go back to)."""
    if not automatic:
        access.require(access.can_deploy, actor, deployment.repository, "Only the repository's writers roll back.")
        if not deployment.is_ended:
            raise field_error(
                f"Deployment {deployment.pk} is still {deployment.deployment_status}: stop it first.", "rollback"
            )
    previous = last_success(deployment.environment, before=deployment)
    if previous is None:
        return None
    return request_deployment(
        deployment.repository,
        deployment.environment,
        actor=actor,
        artifact=previous.artifact,
        description=f"Rollback of deployment {deployment.pk} to deployment {previous.pk}",
        rollback_of=deployment,
        automatic=automatic,
    )


# Recording, called by the job.


def mark_in_progress(deployment: Deployment) -> None:
    _set_status(deployment, Deployment.Status.IN_PROGRESS, deploy_started=timezone.now())
    add_status(deployment, "Deploying")


def record_plan(deployment: Deployment, *, previous: Deployment | None, config: dict, minimum: int) -> None:
    """What the deployment runs with: the configuration, its minimum and the environment's revision before it."""
    changes = {"config": config, "minimum_healthy": minimum, "previous": previous}
    Deployment.objects.filter(pk=deployment.pk).update(**changes)
    for name, value in changes.items():
        setattr(deployment, name, value)


@transaction.atomic
def record_end(deployment: Deployment, status: str, message: str, *, log_size: int = 0, reached: bool = False) -> None:
    """Record how a deployment ended; a failure that reached a target rolls back by itself."""
    before = _snapshot(deployment)
    _set_status(deployment, status, message, deploy_ended=timezone.now(), log_size=log_size)
    add_status(deployment, message or status)
    audit.record(None, "deployment.end", deployment, before=before, after=_snapshot(deployment))
    signals.deployment_ended.send(Deployment, deployment=deployment)
    if status == Deployment.Status.SUCCEEDED:
        for older in deployment.environment.deployments.filter(
            deployment_status=Deployment.Status.SUCCEEDED, pk__lt=deployment.pk
        ).exclude(statuses__state=DeploymentStatus.State.INACTIVE):
            add_inactive(older, f"Replaced by deployment {deployment.pk}")
        return
    if status == Deployment.Status.FAILED and reached and deployment.rollback_of_id is None:
        roll_back(deployment, actor=None, automatic=True)


def add_inactive(deployment: Deployment, description: str) -> None:
    DeploymentStatus.objects.create(
        deployment=deployment, state=DeploymentStatus.State.INACTIVE, description=description[:500]
    )


def record_lost(deployment: Deployment, error: str) -> None:
    """A deployment whose worker was lost (found by the reconciler): Failed, its running targets too, rolled back."""
    from releases import logs

    now = timezone.now()
    for target in deployment.targets.filter(status__in=["Pending", "InProgress"]):
        running = target.status == "InProgress"
        target.status = "Failed" if running else "Skipped"
        target.message = error if running else "Not deployed: the deployment ended."
        target.ended = now if running else None
        target.log_size = logs.store_left_over(target) if running else 0
        target.save(update_fields=["status", "message", "ended", "log_size"])
    _keep_lost_state(deployment)
    reached = deployment.targets.exclude(status="Skipped").exclude(status="Pending").exists()
    record_end(deployment, Deployment.Status.FAILED, error, log_size=logs.store_left_over(deployment), reached=reached)


def _keep_lost_state(deployment: Deployment) -> None:
    """CodeDeploy's bookkeeping (batches.Plan.group_after) as far as a lost deployment got: a target that
    succeeded went live on the new revision and is healthy, one cut off mid-deployment is unhealthy and keeps its
    revision, and the others are as they were."""
    for run in deployment.targets.filter(status__in=["Succeeded", "Failed"]).select_related("target"):
        row = run.target
        if row is None:
            continue
        if run.status == "Succeeded":
            row.health, row.revision = str(batches.Health.HEALTHY), deployment
        else:
            row.health = str(batches.Health.UNHEALTHY)
        row.last_deployment = deployment
        row.save(update_fields=["health", "revision", "last_deployment"])


def environment_state(environment: Environment) -> list[dict]:
    """Each target's current artifact, health and last deployment, as pages and the API show them."""
    rows = []
    for target in environment.targets.select_related("revision__artifact", "last_deployment"):
        revision = target.revision
        rows.append(
            {
                "target": target,
                "artifact_digest": f"sha256:{revision.artifact.sha256}" if revision else None,
                "revision": revision,
                "health": target.health,
                "check_healthy": target.check_healthy,
                "last_deployment": target.last_deployment,
            }
        )
    return rows


def set_group_state(environment: Environment, deployment: Deployment, group) -> None:
    """Keep CodeDeploy's bookkeeping after a deployment: each target's health and revision (batches.GroupState)."""
    by_name = {target.name: target for target in group.targets}
    attempted = set(deployment.targets.exclude(status__in=["Pending", "Skipped"]).values_list("name", flat=True))
    for row in EnvironmentTarget.objects.filter(environment=environment):
        state = by_name.get(row.name)
        if state is None:
            continue
        row.health = str(state.health)
        row.revision_id = int(state.revision) if state.revision else None
        if row.name in attempted:
            row.last_deployment = deployment
        row.save(update_fields=["health", "revision", "last_deployment"])
