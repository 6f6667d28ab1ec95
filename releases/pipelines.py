"""Pipelines made real: a push to the source branch starts an execution, builds run, deployments go out, approvals
wait for the environment's reviewers (AWS release semantics §5).

The state of a pipeline's executions lives on its row, as releases.pipeline_rules keeps it (`Pipeline.state`, the
rules' `to_json()`): that state alone decides which execution runs in which stage, what starts next, what is
superseded, stopped, retried or rolled back. The rows beside it (PipelineExecution, PipelineActionRun,
PipelineApproval) mirror it for pages and the API, and hold what the rules do not know: who asked, the build and
the deployment an action follows, the artifact chosen, the answers of the reviewers.

Every change takes the same path: lock the pipeline's row (select_for_update) in a transaction, rebuild the rules'
state, apply one rule, then `_apply` the step: create the rows of executions it started, mirror every execution
it changed, and carry out each action it started, in the same transaction:

- a build action follows the build of the execution's commit: one build per commit, never two (a queued, running
  or successful build of the commit is followed, else one is started);
- a deploy action requests a deployment of the execution's artifact (the one its build action chose, digest
  checked), marked as the pipeline's, so that an approval the pipeline passed is its review;
- an approval action opens a PipelineApproval, answered by the environment's reviewers (answer_approval);
- an invoke action calls its webhook from a job (PipelineInvocation, releases.pipeline_job), after the commit.

An action whose result is known at once (a build that already succeeded, a refusal) is finished in the same
transaction, which may start more: `_apply` loops until nothing new is known. Builds and deployments are jobs of
their own (started by their services, enqueued after the commit); their end is announced (releases.signals) from
inside the transaction that records it, and the actions following them finish in that same transaction, so no end
is lost between two commits. A sweep on the cron scheduler moves pipelines on with time (approvals that time out)
and finishes any action whose build or deployment ended without it hearing (releases.pipeline_job).

So a pipeline has no job row of its own: nothing of it waits in Redis. Redis emptied loses the builds' and the
deployments' deliveries, which the job reconciler puts back from their rows; their ends then move the pipeline.

Who answers an approval is the guarded environment's protection: its reviewers and required approvals (one
approval from the repository's writers when it names none). The execution's requester, whoever pushed or merged
its commit or started it, never counts, whatever the environment says of self-review; any rejection fails it.
"""

import logging
from datetime import datetime

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from portal import audit
from portal.models import User
from releases import access, deploy_checks, deployments, environments, pipeline_rules, services
from releases.models import (
    Build,
    BuildArtifact,
    Deployment,
    Pipeline,
    PipelineActionRun,
    PipelineApproval,
    PipelineApprovalAnswer,
    PipelineExecution,
    PipelineInvocation,
)
from releases.pipeline_rules import PipelineRuleError, RetryMode, Step, StopMode
from releases.pipelinespec import (
    DEFAULT_PIPELINE_NAME,
    MAX_PIPELINE_BYTES,
    ActionType,
    PipelineSpec,
    PipelineSpecError,
    default_pipeline_yaml,
    parse_pipeline,
)
from repos import git
from repos.access import check_role, role_for
from repos.models import Repository, Role

log = logging.getLogger(__name__)

PIPELINE_FILE = "pipeline.yml"
DEFAULT_FILENAME = "default pipeline"
# The builds a build action follows rather than start another of the same commit.
FOLLOWED_BUILDS = (Build.BuildStatus.QUEUED, Build.BuildStatus.IN_PROGRESS, Build.BuildStatus.SUCCEEDED)
RUNNING = (PipelineExecution.Status.IN_PROGRESS, PipelineExecution.Status.STOPPING)
DEFAULT_ENVIRONMENTS = tuple(environments.DEFAULT_ENVIRONMENTS)


def _conflict(error: PipelineRuleError | str) -> ValidationError:
    return ValidationError(str(error), code="conflict")


# The structure: pipeline.yml at a commit, or the default pipeline.


def read_structure(repository: Repository, sha: str) -> tuple[bytes | None, bool]:
    """The pipeline.yml at the commit (its bytes, True); (None, False) when the commit holds none."""
    try:
        entry = git.entry(repository.path, sha, PIPELINE_FILE)
    except (git.PathNotFound, git.GitError, KeyError, ValueError):
        return None, False
    if entry.kind != "blob":
        return None, False
    data, _size = git.read_blob(repository.path, entry.sha, limit=MAX_PIPELINE_BYTES + 1)
    return data, True


def spec_of(pipeline: Pipeline) -> PipelineSpec:
    """The structure the pipeline runs now."""
    return parse_pipeline(pipeline.source, filename=PIPELINE_FILE if pipeline.from_file else DEFAULT_FILENAME)


def rules_of(pipeline: Pipeline) -> pipeline_rules.Pipeline:
    """The rules' state of the pipeline, with its current structure."""
    spec = spec_of(pipeline)
    if not pipeline.state:
        return pipeline_rules.Pipeline(spec, pipeline.version)
    return pipeline_rules.Pipeline.from_json(pipeline.state, spec)


def _locked(pipeline: Pipeline) -> Pipeline:
    return Pipeline.objects.select_for_update().select_related("repository__owner").get(pk=pipeline.pk)


def runs_default_pipeline(repository: Repository, sha: str) -> bool:
    """Whether a commit without pipeline.yml runs the default pipeline: it holds a buildspec, and the repository has
    the environments the default pipeline deploys to (dev and uat, as environments.ensure_default_environments
    gives them). Until then a push only builds, and deployments are requested by hand."""
    names = {name.lower() for name in environments.environments_of(repository).values_list("name", flat=True)}
    if not names.issuperset(DEFAULT_ENVIRONMENTS):
        return False
    return services.has_buildspec(repository, sha, services.build_settings(repository).buildspec_path)


@transaction.atomic
def pipeline_for(repository: Repository, sha: str, *, branch: str | None = None) -> Pipeline | None:
    """The pipeline commit `sha` defines, with the structure it holds recorded (a new version when it changed).

    The structure is the commit's pipeline.yml, or the default pipeline when it has none and the repository is
    ready for it (runs_default_pipeline). Given the pushed branch, a structure whose source is another
    branch is not this push's: None. A pipeline.yml refused is recorded on the pipeline of that branch (the default
    branch's is `release`), with its file, line and key, and the structure it had is kept: such a pipeline comes
    back with `error_sha == sha`, and no execution starts."""
    data, from_file = read_structure(repository, sha)
    if not from_file:
        if not runs_default_pipeline(repository, sha):
            return None
        data = default_pipeline_yaml(repository.default_branch, DEFAULT_ENVIRONMENTS).encode()
    filename = PIPELINE_FILE if from_file else DEFAULT_FILENAME
    try:
        spec = parse_pipeline(data, filename=filename)
    except PipelineSpecError as error:
        return _record_error(repository, sha, branch, error)
    if branch is not None and spec.source_branch != branch:
        return None
    Pipeline.objects.get_or_create(repository=repository, name=spec.name)
    pipeline = Pipeline.objects.select_for_update().get(repository=repository, name=spec.name)
    source = data.decode()
    changed = pipeline.version == 0 or spec_of(pipeline) != spec
    before = {"version": pipeline.version, "source_sha": pipeline.source_sha, "error": pipeline.error}
    now = timezone.now()
    if changed:
        version = pipeline.version + 1
        if pipeline.state:
            step = rules_of(pipeline).change_structure(spec, version, now=now)
            _apply(pipeline, step, actor=None, now=now)
        else:
            pipeline.state = pipeline_rules.Pipeline(spec, version).to_json()
        pipeline.version = version
    pipeline.source, pipeline.from_file, pipeline.source_sha = source, from_file, sha
    pipeline.source_branch = spec.source_branch
    pipeline.error, pipeline.error_line, pipeline.error_key, pipeline.error_sha = "", None, "", ""
    pipeline.updated = now
    pipeline.save()
    if changed:
        after = {"version": pipeline.version, "source_sha": sha, "from_file": from_file}
        audit.record(None, "pipeline.structure", pipeline, before=before, after=after)
    return pipeline


def _record_error(repository: Repository, sha: str, branch: str | None, error: PipelineSpecError) -> Pipeline | None:
    found = Pipeline.objects.filter(repository=repository, source_branch=branch).first() if branch else None
    if found is None:
        if branch is not None and branch != repository.default_branch:
            return None
        Pipeline.objects.get_or_create(
            repository=repository,
            name=DEFAULT_PIPELINE_NAME,
            defaults={"source_branch": repository.default_branch},
        )
        found = Pipeline.objects.get(repository=repository, name=DEFAULT_PIPELINE_NAME)
    pipeline = _locked(found)
    pipeline.error, pipeline.error_line, pipeline.error_key = str(error), error.line, error.path
    pipeline.error_sha, pipeline.updated = sha, timezone.now()
    pipeline.save(update_fields=["error", "error_line", "error_key", "error_sha", "updated"])
    audit.record(
        None,
        "pipeline.refused",
        pipeline,
        after={"sha": sha, "file": error.filename, "line": error.line, "key": error.path, "error": error.message},
    )
    return pipeline


# Applying a step of the rules: rows, mirrors, actions.


def _apply(pipeline: Pipeline, step: Step, *, actor: User | None, now: datetime, **started) -> pipeline_rules.Pipeline:
    """Record a step on the locked pipeline: the executions it started (with `started`'s requester and trigger
    for one it was asked to start), the mirrored rows, the actions it started carried out; then the same for what
    those actions finished at once. Saves the pipeline's state and returns it."""
    old = {item["id"]: item for item in (pipeline.state or {}).get("executions", [])}
    while True:
        state = step.pipeline
        for effect in step.effects:
            if isinstance(effect, pipeline_rules.ExecutionStarted):
                _create_execution(pipeline, state.execution(effect.execution_id), effect, actor=actor, **started)
        rows = _mirror(pipeline, state, old)
        for effect in step.effects:
            if isinstance(effect, pipeline_rules.ExecutionEnded):
                row = rows.get(effect.execution_id) or _execution_row(pipeline, effect.execution_id)
                audit.record(
                    actor,
                    "pipeline.execution_end",
                    row,
                    after={"status": str(effect.status), "reason": effect.reason},
                )
        pipeline.state = state.to_json()
        old = {item["id"]: item for item in pipeline.state["executions"]}
        finished = []
        for start in step.starts:
            result = _start(pipeline, state, start, now)
            if result is not None:
                finished.append((start, result))
        if not finished:
            break
        effects: list = []
        for start, (succeeded, summary) in finished:
            next_step = state.action_finished(
                start.execution_id,
                start.stage,
                start.action,
                succeeded=succeeded,
                summary=summary,
                attempt=start.attempt,
                now=now,
            )
            state = next_step.pipeline
            effects += next_step.effects
        step = Step(state, tuple(effects))
        started = {}
    pipeline.updated = now
    pipeline.save(update_fields=["state", "updated"])
    return state


def _execution_row(pipeline: Pipeline, number: int) -> PipelineExecution:
    return PipelineExecution.objects.get(pipeline=pipeline, number=number)


def _create_execution(
    pipeline: Pipeline,
    execution: pipeline_rules.Execution,
    effect: pipeline_rules.ExecutionStarted,
    *,
    actor: User | None,
    requester: User | None = None,
    trigger: str | None = None,
) -> PipelineExecution:
    rollback_of = None
    if effect.rollback_of is not None:
        rollback_of = _execution_row(pipeline, effect.rollback_of)
        trigger = PipelineExecution.Trigger.ROLLBACK
    row = PipelineExecution.objects.create(
        pipeline=pipeline,
        number=execution.id,
        source_sha=execution.source_sha,
        trigger=trigger or PipelineExecution.Trigger.PUSH,
        requester=requester,
        structure_version=execution.structure_version,
        rollback_of=rollback_of,
        build=rollback_of.build if rollback_of is not None else None,
        artifact=rollback_of.artifact if rollback_of is not None else None,
        artifact_sha256=rollback_of.artifact_sha256 if rollback_of is not None else "",
        created=execution.started_at,
    )
    audit.record(
        actor,
        "pipeline.execution_start",
        row,
        after={
            "pipeline": pipeline.name,
            "number": row.number,
            "sha": row.source_sha,
            "trigger": row.trigger,
            "rollback_of": effect.rollback_of,
        },
    )
    return row


def _mirror(pipeline: Pipeline, state: pipeline_rules.Pipeline, old: dict[int, dict]) -> dict[int, PipelineExecution]:
    """Bring the rows of every execution the step changed in line with the rules' state."""
    now_json = {item["id"]: item for item in state.to_json()["executions"]}
    changed = [execution for execution in state.executions if old.get(execution.id) != now_json[execution.id]]
    rows = {
        row.number: row
        for row in PipelineExecution.objects.filter(pipeline=pipeline, number__in=[item.id for item in changed])
    }
    types = {(stage.name, action.name): str(action.type) for stage in state.spec.stages for action in stage.actions}
    for execution in changed:
        row = rows[execution.id]
        if (row.status, row.reason, row.ended) != (execution.status, execution.reason, execution.ended_at):
            row.status, row.reason, row.ended = str(execution.status), execution.reason, execution.ended_at
            row.save(update_fields=["status", "reason", "ended"])
        for run in execution.stage_runs:
            for action in run.actions:
                status = str(action.status)
                action_row, created = PipelineActionRun.objects.get_or_create(
                    execution=row,
                    stage=run.stage,
                    action=action.name,
                    attempt=action.attempt,
                    defaults={
                        "type": types.get((run.stage, action.name), ""),
                        "status": status,
                        "started": action.started_at,
                        "ended": action.ended_at,
                        "message": action.summary,
                    },
                )
                if not created and (action_row.status, action_row.ended, action_row.message) != (
                    status,
                    action.ended_at,
                    action.summary,
                ):
                    action_row.status, action_row.ended, action_row.message = status, action.ended_at, action.summary
                    action_row.save(update_fields=["status", "ended", "message"])
                if action_row.status != PipelineActionRun.Status.IN_PROGRESS:
                    _end_approval(action_row)
    return rows


def _end_approval(action_row: PipelineActionRun) -> None:
    """An approval whose action ended without an answer ending it: timed out, or abandoned by a stop."""
    if action_row.type != ActionType.APPROVAL:
        return
    status = {
        PipelineActionRun.Status.FAILED: PipelineApproval.Status.TIMED_OUT,
        PipelineActionRun.Status.ABANDONED: PipelineApproval.Status.ABANDONED,
    }.get(action_row.status)
    if status is None:
        return
    approval = PipelineApproval.objects.filter(action_run=action_row, status=PipelineApproval.Status.PENDING).first()
    if approval is None:
        return
    approval.status, approval.ended = status, action_row.ended or timezone.now()
    approval.save(update_fields=["status", "ended"])
    audit.record(None, f"pipeline.approval_{status.lower()}", approval.execution, after={"approval": approval.pk})


def _start(
    pipeline: Pipeline, state: pipeline_rules.Pipeline, start: pipeline_rules.StartAction, now: datetime
) -> tuple[bool, str] | None:
    """Carry out an action the rules started: None while it runs on, or (succeeded, summary) when it is known at
    once. A refusal by the service it calls (no environment, no targets, no artifact) fails the action, with why."""
    execution = _execution_row(pipeline, start.execution_id)
    action_row = PipelineActionRun.objects.get(
        execution=execution, stage=start.stage, action=start.action, attempt=start.attempt
    )
    action = state.spec.stage(start.stage).action(start.action)
    try:
        with transaction.atomic():
            if start.type == ActionType.BUILD:
                return _start_build(pipeline, execution, action_row)
            if start.type == ActionType.DEPLOY:
                return _start_deploy(pipeline, execution, action_row, action, start)
            if start.type == ActionType.APPROVAL:
                return _start_approval(pipeline, execution, action_row, action, start)
            return _start_invoke(action_row, action)
    except (ValidationError, PermissionDenied) as error:
        message = " ".join(error.messages) if isinstance(error, ValidationError) else str(error)
        return False, message


def _start_build(
    pipeline: Pipeline, execution: PipelineExecution, action_row: PipelineActionRun
) -> tuple[bool, str] | None:
    repository = pipeline.repository
    sha = execution.source_sha
    builds = Build.objects.filter(repository=repository, head_sha=sha, build_status__in=FOLLOWED_BUILDS)
    # The commit's build named by the source branch, whose provenance an environment taking only that branch
    # accepts; else any build of the commit (a pull request's, whose head a fast-forward merge made the branch's).
    ref = f"refs/heads/{pipeline.source_branch}"
    build = builds.filter(ref=ref).order_by("-created", "-pk").first() or builds.order_by("-created", "-pk").first()
    if build is None:
        path = services.build_settings(repository).buildspec_path
        if not services.has_buildspec(repository, sha, path):
            return False, f"{sha[:12]} has no {path} to build."
        manual = execution.trigger != PipelineExecution.Trigger.PUSH
        # The pipeline supersedes its own executions: its build leaves the branch's other queued builds alone, as
        # a later execution may follow one of them.
        build = services.start_build(
            repository,
            sha=sha,
            ref=ref,
            trigger=Build.Trigger.MANUAL if manual else Build.Trigger.PUSH,
            initiator=execution.requester,
            supersede=False,
        )
    action_row.build = build
    action_row.save(update_fields=["build"])
    execution.build = build
    execution.save(update_fields=["build"])
    if build.is_ended:
        return _build_result(execution, build)
    return None


def _build_result(execution: PipelineExecution, build: Build) -> tuple[bool, str]:
    """How a build action ends with its build: the artifact a successful one made becomes the execution's."""
    if build.build_status != Build.BuildStatus.SUCCEEDED:
        status = build.build_status.lower().replace("_", " ")
        return False, f"Build #{build.number} {status}" + (f": {build.message}" if build.message else ".")
    artifact = build.artifacts.filter(identifier="").first() or build.artifacts.first()
    if artifact is None:
        return False, f"Build #{build.number} made no artifact to deploy."
    execution.artifact, execution.artifact_sha256 = artifact, artifact.sha256
    execution.save(update_fields=["artifact", "artifact_sha256"])
    return True, f"Build #{build.number} succeeded: sha256:{artifact.sha256}"


def _start_deploy(
    pipeline: Pipeline,
    execution: PipelineExecution,
    action_row: PipelineActionRun,
    action,
    start: pipeline_rules.StartAction,
) -> tuple[bool, str] | None:
    repository = pipeline.repository
    environment = environments.find_environment(repository, action.environment)
    if environment is None:
        return False, f"There is no environment named {action.environment} to deploy to."
    source = execution if start.artifact_of == execution.number else _execution_row(pipeline, start.artifact_of)
    artifact = source.artifact
    if artifact is None:
        return False, f"Execution {source.number} has no build artifact to deploy."
    # The bytes a deploy installs are the ones the build action chose: the deployment's door checks the bytes
    # against this digest again.
    if BuildArtifact.objects.filter(pk=artifact.pk).values_list("sha256", flat=True).first() != source.artifact_sha256:
        return False, f"The artifact of execution {source.number} is not the one its build chose."
    deployment = deployments.request_deployment(
        repository,
        environment,
        actor=execution.requester,
        artifact=artifact,
        description=f"Pipeline {pipeline.name}, execution {execution.number}: {start.stage}.{start.action}",
        pipeline_action=action_row,
    )
    action_row.deployment = deployment
    action_row.save(update_fields=["deployment"])
    return _deployment_result(deployment) if deployment.is_ended else None


def _deployment_result(deployment: Deployment) -> tuple[bool, str]:
    what = f"Deployment {deployment.pk} to {deployment.environment.name}"
    if deployment.deployment_status == Deployment.Status.SUCCEEDED:
        return True, f"{what} succeeded (sha256:{deployment.artifact.sha256})."
    status = deployment.deployment_status.lower()
    return False, f"{what} {status}" + (f": {deployment.message}" if deployment.message else ".")


def _start_approval(
    pipeline: Pipeline,
    execution: PipelineExecution,
    action_row: PipelineActionRun,
    action,
    start: pipeline_rules.StartAction,
) -> None:
    approval = PipelineApproval.objects.create(
        execution=execution,
        action_run=action_row,
        stage=start.stage,
        action=start.action,
        attempt=start.attempt,
        environment=environments.find_environment(pipeline.repository, action.environment),
        environment_name=action.environment,
        custom_data=action.custom_data,
        review_url=action.review_url,
        remind_hours=action.remind_hours,
        deadline=start.deadline,
    )
    audit.record(
        None,
        "pipeline.approval_request",
        execution,
        after={
            "approval": approval.pk,
            "stage": start.stage,
            "action": start.action,
            "environment": action.environment,
        },
    )
    _notify_approvers(approval)
    return None


def _notify_approvers(approval: PipelineApproval) -> None:
    """Ask the approvers, in the portal and by email (releases.approvals); a failure to notify never holds the
    pipeline: the approval stays answerable from its page."""
    from releases import approvals

    _safely(f"notifying the approvers of {approval}", lambda: approvals.notify_approvers(approval))


def _start_invoke(action_row: PipelineActionRun, action) -> None:
    invocation = PipelineInvocation.objects.create(action_run=action_row, url=action.url, secret_name=action.secret)
    invocation.enqueue()
    return None


# Changes asked by people (and by pushes).


@transaction.atomic
def start_execution(
    repository: Repository, name: str, sha: str, *, requester: User | None, trigger: str
) -> PipelineExecution:
    """Start an execution of the pipeline for a commit: on a push to its source branch, or by hand (writers)."""
    if trigger == PipelineExecution.Trigger.MANUAL:
        access.require(access.can_deploy, requester, repository, "Only the repository's writers start pipelines.")
    if not git.is_sha(sha):
        raise ValidationError(f"{sha[:40]!r} is not a full commit id.")
    found = Pipeline.objects.filter(repository=repository, name=name).first()
    if found is None or found.version == 0:
        raise ValidationError(f"{repository.full_name} has no pipeline named {name}.")
    pipeline = _locked(found)
    now = timezone.now()
    step = rules_of(pipeline).start_execution(sha, now=now)
    _apply(pipeline, step, actor=requester, now=now, requester=requester, trigger=trigger)
    return _execution_row(pipeline, step.execution_id)


def start_for_push(repository: Repository, branch: str, sha: str, *, pusher: User | None) -> list[str]:
    """Start the execution a push of branch to sha starts, if its pipeline's source is that branch; lines to print
    to whoever pushed."""
    pipeline = pipeline_for(repository, sha, branch=branch)
    if pipeline is None:
        return []
    if pipeline.error_sha == sha:
        return ["", f"Pipeline {pipeline.name} did not start: {pipeline.error}"]
    execution = start_execution(
        repository, pipeline.name, sha, requester=pusher, trigger=PipelineExecution.Trigger.PUSH
    )
    return ["", f"Pipeline {pipeline.name}: execution {execution.number} of {sha[:12]}."]


def _change(execution: PipelineExecution, actor: User | None, verb: str, change, **details) -> PipelineExecution:
    """Apply one rule to an execution's locked pipeline, audited; a refusal of the rules is a conflict."""
    pipeline = _locked(execution.pipeline)
    now = timezone.now()
    try:
        step = change(rules_of(pipeline), now)
    except PipelineRuleError as error:
        raise _conflict(error) from None
    _apply(pipeline, step, actor=actor, now=now)
    audit.record(actor, f"pipeline.{verb}", execution, after={"number": execution.number} | details)
    execution.refresh_from_db()
    return execution


def require_writer(actor: User | None, repository: Repository, what: str) -> None:
    """Only the repository's writers change its pipelines (releases.access.can_deploy)."""
    access.require(access.can_deploy, actor, repository, f"Only the repository's writers {what}.")


@transaction.atomic
def stop(
    execution: PipelineExecution, *, actor: User, mode: str = StopMode.WAIT, reason: str = ""
) -> PipelineExecution:
    """Stop an execution: let its actions in progress finish ("wait"), or abandon them ("abandon")."""
    require_writer(actor, execution.pipeline.repository, "stop pipeline executions")
    why = reason or f"Stopped by {actor.username} ({StopMode(mode)})."
    return _change(
        execution,
        actor,
        "stop",
        lambda state, now: state.stop(execution.number, mode=StopMode(mode), now=now, reason=why),
        mode=str(mode),
        reason=why,
    )


@transaction.atomic
def retry(
    execution: PipelineExecution, *, actor: User, stage: str | None = None, mode: str = RetryMode.FAILED_ACTIONS
) -> PipelineExecution:
    """Retry the stage a failed or stopped execution ended in: its failed actions, or all of them."""
    require_writer(actor, execution.pipeline.repository, "retry pipeline stages")
    return _change(
        execution,
        actor,
        "retry",
        lambda state, now: state.retry(execution.number, stage, mode=RetryMode(mode), now=now),
        stage=stage,
        mode=str(mode),
    )


@transaction.atomic
def set_transition(pipeline: Pipeline, stage: str, *, actor: User, enabled: bool, reason: str = "") -> Pipeline:
    """Disable or enable the transition into a stage; a disabled one holds the latest execution in front of it."""
    require_writer(actor, pipeline.repository, "disable or enable transitions")
    pipeline = _locked(pipeline)
    now = timezone.now()
    try:
        step = rules_of(pipeline).set_transition(stage, enabled=enabled, now=now, reason=reason)
    except PipelineRuleError as error:
        raise _conflict(error) from None
    _apply(pipeline, step, actor=actor, now=now)
    verb = "enable_transition" if enabled else "disable_transition"
    audit.record(actor, f"pipeline.{verb}", pipeline, after={"stage": stage, "reason": reason})
    return pipeline


@transaction.atomic
def rollback_stage(pipeline: Pipeline, stage: str, target: PipelineExecution, *, actor: User) -> PipelineExecution:
    """Roll a stage back to what an earlier successful execution ran there: a new execution, marked as a rollback,
    deploys that execution's artifact again in that stage only."""
    require_writer(actor, pipeline.repository, "roll pipeline stages back")
    if target.pipeline_id != pipeline.pk:
        raise ValidationError("The execution to roll back to is another pipeline's.")
    pipeline = _locked(pipeline)
    now = timezone.now()
    try:
        step = rules_of(pipeline).rollback(stage, target.number, now=now)
    except PipelineRuleError as error:
        raise _conflict(error) from None
    _apply(pipeline, step, actor=actor, now=now, requester=actor, trigger=PipelineExecution.Trigger.ROLLBACK)
    execution = _execution_row(pipeline, step.execution_id)
    audit.record(actor, "pipeline.rollback", execution, after={"stage": stage, "to": target.number})
    return execution


# Approvals.


def approval_rule(approval: PipelineApproval) -> tuple[int, frozenset[int] | None]:
    """How many approvals it needs, and from whom: the environment's reviewers and required approvals; an
    environment without reviewers takes one approval from any of the repository's writers (None)."""
    environment = approval.environment
    if environment is None or not environment.required_approvals:
        return 1, None
    pool = deploy_checks.RequiredApprovals(
        count=environment.required_approvals,
        user_ids=frozenset(environment.reviewer_users.values_list("pk", flat=True)),
        team_ids=frozenset(environment.reviewer_teams.values_list("pk", flat=True)),
    ).pool_user_ids()
    return environment.required_approvals, pool


def can_answer_approval(user: User | None, approval: PipelineApproval) -> bool:
    """Answer an approval: one of the environment's reviewers (the repository's writers when it names none)."""
    if user is None or not user.is_authenticated:
        return False
    _count, pool = approval_rule(approval)
    if pool is None:
        return access.can_deploy(user, approval.execution.pipeline.repository)
    return user.pk in pool


def approvals_missing(approval: PipelineApproval) -> str | None:
    """What the approval still needs, in words; None once enough reviewers other than the requester approved."""
    count, pool = approval_rule(approval)
    approved = list(
        approval.answers.filter(status=PipelineApprovalAnswer.Status.APPROVED).values_list("user_id", flat=True)
    )
    if pool is None:
        repository = approval.execution.pipeline.repository
        pool = frozenset(
            user.pk for user in User.objects.filter(pk__in=approved) if access.can_deploy(user, repository)
        )
    # The requester never counts, whatever the environment says of self-review: the approval is the release's
    # four-eyes check.
    return deploy_checks.approvals_met(count, pool, approved, approval.execution.requester_id, True)


@transaction.atomic
def answer_approval(
    execution: PipelineExecution, stage: str, action: str, *, user: User, status: str, summary: str = ""
) -> PipelineApproval:
    """Approve or reject a pending approval as one of its reviewers (PutApprovalResult): any rejection fails the
    action and the execution; enough approvals from others than the requester let it go on."""
    repository = execution.pipeline.repository
    check_role(role_for(user, repository), Role.READ)
    if status not in PipelineApprovalAnswer.Status.values:
        raise ValidationError("An approval's answer is Approved or Rejected.", code="invalid")
    pipeline = _locked(execution.pipeline)
    approval = (
        PipelineApproval.objects.filter(execution=execution, stage=stage, action=action)
        .select_related("environment", "execution__pipeline__repository")
        .order_by("-attempt")
        .first()
    )
    if approval is None:
        raise ValidationError(f"Execution {execution.number} has no approval {stage}.{action}.", code="not_found")
    if not can_answer_approval(user, approval):
        raise PermissionDenied(f"Only the reviewers of {approval.environment_name} answer this approval.")
    if approval.status != PipelineApproval.Status.PENDING:
        raise _conflict(f"The approval is {approval.get_status_display().lower()}: it no longer takes answers.")
    # Past its deadline an approval has failed, even before the sweep records it.
    if approval.deadline <= timezone.now():
        raise _conflict(
            f"The approval timed out at {approval.deadline:%Y-%m-%d %H:%M} UTC: it no longer takes answers."
        )
    requester = approval.execution.requester_id
    if status == PipelineApprovalAnswer.Status.APPROVED and user.pk == requester:
        raise PermissionDenied("You requested this release: another reviewer approves it.")
    summary = summary[:5000]
    PipelineApprovalAnswer.objects.update_or_create(
        approval=approval, user=user, defaults={"status": status, "summary": summary, "created": timezone.now()}
    )
    audit.record(
        user,
        f"pipeline.approval_{status.lower()}",
        execution,
        after={"approval": approval.pk, "stage": stage, "action": action, "summary": summary},
    )
    now = timezone.now()
    if status == PipelineApprovalAnswer.Status.REJECTED:
        decision, words = False, f"Rejected by {user.username}" + (f": {summary}" if summary else ".")
    elif approvals_missing(approval) is None:
        decision, words = True, f"Approved by {user.username}" + (f": {summary}" if summary else ".")
    else:
        return approval
    approval.status = status
    approval.ended = now
    approval.save(update_fields=["status", "ended"])
    try:
        step = rules_of(pipeline).answer_approval(
            execution.number, stage, action, approved=decision, summary=words, now=now
        )
    except PipelineRuleError as error:
        raise _conflict(error) from None
    _apply(pipeline, step, actor=user, now=now)
    return approval


# Ends of builds and deployments, and the sweep.


def _finish(run: PipelineActionRun, succeeded: bool, summary: str, now: datetime) -> None:
    pipeline = _locked(run.execution.pipeline)
    try:
        step = rules_of(pipeline).action_finished(
            run.execution.number,
            run.stage,
            run.action,
            succeeded=succeeded,
            summary=summary,
            attempt=run.attempt,
            now=now,
        )
    except PipelineRuleError:
        # The action is no longer followed (abandoned by a stop, or an earlier attempt): its end does not count.
        return
    _apply(pipeline, step, actor=None, now=now)


def finish_action(run: PipelineActionRun, *, succeeded: bool, summary: str) -> None:
    """Finish an action that runs outside the pipeline's transactions (an invoke action's call), unless it no
    longer runs."""
    with transaction.atomic():
        _lock_pipelines_of(run.execution.pipeline.repository_id)
        run.refresh_from_db()
        if run.status == PipelineActionRun.Status.IN_PROGRESS:
            _finish(run, succeeded, summary, timezone.now())


def _lock_pipelines_of(repository_id: int) -> bool:
    """Lock the repository's pipelines, in one order, before reading which actions follow a run: an action that
    started following it in a transaction not yet committed is then seen."""
    return bool(list(Pipeline.objects.select_for_update().filter(repository_id=repository_id).order_by("pk")))


def _safely(what: str, work) -> None:
    """Run work in a savepoint: a pipeline that cannot move on must not undo the end of the build or deployment
    that announced it (the sweep tries again)."""
    try:
        with transaction.atomic():
            work()
    except Exception:
        log.exception("pipelines could not follow %s", what)


def build_ended(sender, *, build: Build, **kwargs) -> None:
    """Finish the build actions following a build that ended (releases.signals.build_ended)."""

    def work() -> None:
        if not _lock_pipelines_of(build.repository_id):
            return
        runs = PipelineActionRun.objects.filter(build=build, status=PipelineActionRun.Status.IN_PROGRESS)
        for run in runs.select_related("execution__pipeline"):
            _finish(run, *_build_result(run.execution, build), timezone.now())

    _safely(f"build {build.pk}", work)


def deployment_ended(sender, *, deployment: Deployment, **kwargs) -> None:
    """Finish the deploy action a deployment that ended follows (releases.signals.deployment_ended)."""

    def work() -> None:
        if deployment.pipeline_action_id is None or not _lock_pipelines_of(deployment.repository_id):
            return
        runs = PipelineActionRun.objects.filter(deployment=deployment, status=PipelineActionRun.Status.IN_PROGRESS)
        for run in runs.select_related("execution__pipeline"):
            _finish(run, *_deployment_result(deployment), timezone.now())

    _safely(f"deployment {deployment.pk}", work)


@transaction.atomic
def advance(pipeline: Pipeline, *, now: datetime | None = None) -> Pipeline:
    """Move a pipeline on with time: approvals past their timeout fail, and what follows moves."""
    pipeline = _locked(pipeline)
    now = now or timezone.now()
    state = rules_of(pipeline)
    step = state.advance(now=now)
    if step.pipeline != state or step.effects:
        _apply(pipeline, step, actor=None, now=now)
    return pipeline


def sweep(now: datetime | None = None) -> dict[str, int]:
    """Move every pipeline with executions under way on with time, and finish the actions whose build or
    deployment ended without them hearing (an end announced while the pipeline could not move). The counts."""
    counts = {"advanced": 0, "finished": 0}
    running = PipelineExecution.objects.filter(status__in=RUNNING).values_list("pipeline_id", flat=True)
    for pipeline in Pipeline.objects.filter(pk__in=running.distinct()):
        advance(pipeline, now=now)
        counts["advanced"] += 1
    missed = PipelineActionRun.objects.filter(status=PipelineActionRun.Status.IN_PROGRESS).filter(
        Q(build__build_status__in=Build.ENDED) | Q(deployment__deployment_status__in=Deployment.ENDED)
    )
    for run in missed.select_related("execution__pipeline", "build", "deployment__environment"):
        with transaction.atomic():
            _lock_pipelines_of(run.execution.pipeline.repository_id)
            if run.build is not None and run.type == ActionType.BUILD:
                _finish(run, *_build_result(run.execution, run.build), now or timezone.now())
            elif run.deployment is not None:
                _finish(run, *_deployment_result(run.deployment), now or timezone.now())
        counts["finished"] += 1
    return counts


def executions_of(pipeline: Pipeline):
    """A pipeline's executions, newest first."""
    return pipeline.executions.select_related("requester", "build", "artifact", "rollback_of")
