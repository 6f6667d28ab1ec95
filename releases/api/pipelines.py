"""Pipelines in CodePipeline's words: a repository's pipelines with their stages (GetPipeline and GetPipelineState
in one), their executions (ListPipelineExecutions, GetPipelineExecution with each action's attempt and each
approval's answers), and the changes people ask for: start, stop, retry a stage, roll a stage back, disable or enable
a transition, and answer an approval (PutApprovalResult: Approved or Rejected, with a summary).

An execution's `id` is its number in its pipeline. Stage and action statuses are the rules' own
(releases.pipeline_rules): a stage waiting for an approval is InProgress. Every change goes through
releases.pipelines, which refuses what the rules refuse (409) and lets only the repository's writers start, stop,
retry, roll back and change transitions; an approval is answered by the reviewers of the environment it guards,
never by the execution's requester."""

from datetime import datetime
from typing import Literal

from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from ninja import Field, Query, Schema, Status

from portal.api import InputSchema, UserOut, api_url, current_user, user_out
from portal.api_scopes import READ_REPO, WRITE_REPO
from portal.models import User
from portal.validators import field_error
from releases import pipelines
from releases.api.deployments import Pages, _commit, _page, _repo
from releases.api.router import router
from releases.models import Pipeline, PipelineActionRun, PipelineApproval, PipelineExecution
from releases.pipeline_rules import PipelineRuleError, RetryMode, StopMode
from repos import git
from repos.models import Repository

TAGS = ["pipelines"]
PIPELINES = "/repos/{owner}/{repo}/pipelines"
PIPELINE = PIPELINES + "/{pipeline_name}"
EXECUTIONS = PIPELINE + "/executions"
EXECUTION = EXECUTIONS + "/{execution_id}"


# Requests.


class StartIn(InputSchema):
    sha: str | None = Field(None, description="The commit to run (instead of ref).")
    ref: str | None = Field(None, description="A branch, tag or commit whose commit runs.")


class StopIn(InputSchema):
    abandon: bool = Field(False, description="Abandon the actions in progress rather than let them finish.")
    reason: str = Field("", max_length=1000)


class RetryIn(InputSchema):
    stage: str | None = Field(None, description="The stage the execution ended in (by default, that one).")
    mode: Literal["FAILED_ACTIONS", "ALL_ACTIONS"] = "FAILED_ACTIONS"


class RollbackIn(InputSchema):
    target_execution_id: int = Field(description="An earlier execution that succeeded in the stage.")


class TransitionIn(InputSchema):
    enabled: bool
    reason: str = Field("", max_length=1000)


class ApprovalIn(InputSchema):
    status: Literal["Approved", "Rejected"]
    summary: str = Field("", max_length=5000)
    stage: str | None = Field(None, description="The approval's stage: by default, the one approval pending.")
    action: str | None = Field(None, description="The approval's action: by default, the stage's one pending.")


# Answers.


class PipelineErrorOut(Schema):
    message: str
    line: int | None
    key: str
    sha: str = Field(description="The commit whose pipeline.yml was refused.")


class ActionOut(Schema):
    name: str
    type: str
    run_order: int
    environment: str | None


class LatestExecutionOut(Schema):
    id: int
    status: str


class TransitionOut(Schema):
    enabled: bool
    reason: str
    disabled_at: datetime | None


class StageOut(Schema):
    name: str
    actions: list[ActionOut]
    transition: TransitionOut = Field(description="The transition into the stage.")
    latest_execution: LatestExecutionOut | None = Field(description="The execution that entered it last.")


class PipelineOut(Schema):
    name: str
    url: str
    version: int = Field(description="The structure's version: 0 before a pipeline.yml was accepted.")
    execution_mode: str = Field(description="SUPERSEDED or QUEUED.")
    source_branch: str
    from_file: bool = Field(description="Read from pipeline.yml; false for the default pipeline.")
    source_sha: str = Field(description="The commit the structure was read from.")
    stages: list[StageOut]
    error: PipelineErrorOut | None = Field(description="The last pipeline.yml refused, while no good one followed.")
    updated_at: datetime


class StageStatusOut(Schema):
    name: str
    status: str = Field(description="InProgress, Stopping, Stopped, Succeeded, Superseded or Failed.")


class ExecutionOut(Schema):
    id: int
    url: str
    pipeline: str
    status: str = Field(description="InProgress, Stopping, Stopped, Succeeded, Superseded or Failed.")
    reason: str = Field(description="Why it ended as it did.")
    source_sha: str
    artifact_digest: str | None = Field(description="sha256:… of the artifact its deploys install.")
    build_id: int | None
    trigger: str = Field(description="push, manual or rollback.")
    requester: UserOut | None
    rollback_of: int | None
    created_at: datetime
    ended_at: datetime | None
    stages: list[StageStatusOut] = Field(description="The stages it entered, in order.")


class ActionRunOut(Schema):
    stage: str
    name: str
    type: str
    status: str = Field(description="InProgress, Succeeded, Failed or Abandoned.")
    attempt: int
    build_id: int | None
    deployment_id: int | None
    message: str
    started_at: datetime
    ended_at: datetime | None


class AnswerOut(Schema):
    user: UserOut
    status: str
    summary: str
    created_at: datetime


class ApprovalOut(Schema):
    stage: str
    action: str
    attempt: int
    environment: str
    status: str = Field(description="Pending, Approved, Rejected, TimedOut or Abandoned.")
    custom_data: str
    review_url: str
    missing: str | None = Field(description="What it still needs while pending, in words.")
    created_at: datetime
    deadline: datetime
    ended_at: datetime | None
    answers: list[AnswerOut]


class ExecutionDetailOut(ExecutionOut):
    actions: list[ActionRunOut] = Field(description="Every attempt of every action, in the order they started.")
    approvals: list[ApprovalOut]


# Shapes.


def _spec(pipeline: Pipeline):
    return pipelines.spec_of(pipeline) if pipeline.version else None


def _state(pipeline: Pipeline):
    return pipelines.rules_of(pipeline) if pipeline.version else None


def pipeline_out(pipeline: Pipeline) -> dict:
    """A pipeline's structure, each stage's inbound transition and the execution that entered it last."""
    repository = pipeline.repository
    state = _state(pipeline)
    stages = []
    for stage in state.spec.stages if state is not None else ():
        entered = [
            (run.entry, execution) for execution in state.executions if (run := execution.run(stage.name)) is not None
        ]
        latest = max(entered, key=lambda item: item[0])[1] if entered else None
        disabled = state.transition_disabled(stage.name)
        stages.append(
            {
                "name": stage.name,
                "actions": [
                    {
                        "name": action.name,
                        "type": str(action.type),
                        "run_order": action.run_order,
                        "environment": action.environment,
                    }
                    for action in stage.actions
                ],
                "transition": {
                    "enabled": disabled is None,
                    "reason": disabled.reason if disabled else "",
                    "disabled_at": disabled.disabled_at if disabled else None,
                },
                "latest_execution": (
                    {"id": latest.id, "status": str(latest.stage_status(stage.name))} if latest else None
                ),
            }
        )
    error = None
    if pipeline.error:
        error = {
            "message": pipeline.error,
            "line": pipeline.error_line,
            "key": pipeline.error_key,
            "sha": pipeline.error_sha,
        }
    return {
        "name": pipeline.name,
        "url": api_url(f"/repos/{repository.full_name}/pipelines/{pipeline.name}"),
        "version": pipeline.version,
        "execution_mode": str(state.spec.execution_mode) if state is not None else "",
        "source_branch": pipeline.source_branch,
        "from_file": pipeline.from_file,
        "source_sha": pipeline.source_sha,
        "stages": stages,
        "error": error,
        "updated_at": pipeline.updated,
    }


def execution_out(execution: PipelineExecution, state, viewer: User) -> dict:
    """An execution with the status of each stage it entered, as the rules' state has it."""
    pipeline = execution.pipeline
    try:
        runs = state.execution(execution.number).stage_runs if state is not None else ()
    except PipelineRuleError:
        runs = ()
    return {
        "id": execution.number,
        "url": api_url(
            f"/repos/{pipeline.repository.full_name}/pipelines/{pipeline.name}/executions/{execution.number}"
        ),
        "pipeline": pipeline.name,
        "status": execution.status,
        "reason": execution.reason,
        "source_sha": execution.source_sha,
        "artifact_digest": f"sha256:{execution.artifact_sha256}" if execution.artifact_sha256 else None,
        "build_id": execution.build_id,
        "trigger": execution.trigger,
        "requester": user_out(execution.requester, viewer) if execution.requester_id else None,
        "rollback_of": execution.rollback_of.number if execution.rollback_of_id else None,
        "created_at": execution.created,
        "ended_at": execution.ended,
        "stages": [{"name": run.stage, "status": str(run.status)} for run in runs],
    }


def _action_out(run: PipelineActionRun) -> dict:
    return {
        "stage": run.stage,
        "name": run.action,
        "type": run.type,
        "status": run.status,
        "attempt": run.attempt,
        "build_id": run.build_id,
        "deployment_id": run.deployment_id,
        "message": run.message,
        "started_at": run.started,
        "ended_at": run.ended,
    }


def approval_out(approval: PipelineApproval, viewer: User) -> dict:
    return {
        "stage": approval.stage,
        "action": approval.action,
        "attempt": approval.attempt,
        "environment": approval.environment_name,
        "status": approval.status,
        "custom_data": approval.custom_data,
        "review_url": approval.review_url,
        "missing": pipelines.approvals_missing(approval) if approval.is_pending else None,
        "created_at": approval.created,
        "deadline": approval.deadline,
        "ended_at": approval.ended,
        "answers": [
            {
                "user": user_out(answer.user, viewer),
                "status": answer.status,
                "summary": answer.summary,
                "created_at": answer.created,
            }
            for answer in approval.answers.select_related("user")
        ],
    }


def execution_detail_out(execution: PipelineExecution, viewer: User) -> dict:
    """An execution with every attempt of its actions and its approvals with their answers."""
    execution = _execution(execution.pipeline, execution.number)
    runs = execution.action_runs.order_by("started", "id")
    approvals = execution.approvals.select_related("environment", "execution__pipeline__repository")
    return execution_out(execution, _state(execution.pipeline), viewer) | {
        "actions": [_action_out(run) for run in runs],
        "approvals": [approval_out(approval, viewer) for approval in approvals.order_by("created", "id")],
    }


# Lookups.


def _pipeline(repository: Repository, name: str) -> Pipeline:
    pipeline = Pipeline.objects.select_related("repository__owner").filter(repository=repository, name=name).first()
    if pipeline is None:
        raise Http404(f"No pipeline {name!r} in {repository.full_name}.")
    return pipeline


def _execution(pipeline: Pipeline, number: int) -> PipelineExecution:
    execution = pipelines.executions_of(pipeline).filter(number=number).first()
    if execution is None:
        raise Http404(f"No execution {number} of pipeline {pipeline.name}.")
    execution.pipeline = pipeline
    return execution


def _stage(pipeline: Pipeline, name: str) -> str:
    spec = _spec(pipeline)
    if spec is None or name not in spec.stage_names:
        raise Http404(f"Pipeline {pipeline.name} has no stage {name!r}.")
    return name


def _writer(request: HttpRequest, repository: Repository, what: str) -> User:
    """The caller, if one of the repository's writers (asked before anything about the request)."""
    actor = current_user(request)
    pipelines.require_writer(actor, repository, what)
    return actor


def _pending_approval(execution: PipelineExecution, payload: ApprovalIn) -> PipelineApproval:
    """The approval the answer is for: the one its stage and action name, else the one pending."""
    approvals = execution.approvals.select_related("environment", "execution__pipeline__repository")
    if payload.stage is not None:
        approvals = approvals.filter(stage=payload.stage)
        if not approvals.exists():
            raise field_error(f"Execution {execution.number} has no approval in stage {payload.stage!r}.", "stage")
    if payload.action is not None:
        approvals = approvals.filter(action=payload.action)
        if not approvals.exists():
            raise field_error(f"Execution {execution.number} has no approval action {payload.action!r}.", "action")
    if payload.stage is not None and payload.action is not None:
        return approvals.order_by("-attempt").first()
    pending = list(approvals.filter(status=PipelineApproval.Status.PENDING))
    if not pending:
        raise ValidationError(f"Execution {execution.number} has no approval pending.", code="conflict")
    if len(pending) > 1:
        names = ", ".join(f"{approval.stage}.{approval.action}" for approval in pending)
        raise field_error(f"Several approvals are pending ({names}): name the stage and action.", "stage")
    return pending[0]


# Pipelines.


@router.get(
    PIPELINES,
    scope=READ_REPO,
    response=list[PipelineOut],
    tags=TAGS,
    summary="List a repository's pipelines",
    description=(
        "Each pipeline's structure (stages and their actions), each stage's inbound transition and the execution"
        " that entered it last, and the last pipeline.yml refused (message, line, key) while no good one followed."
        " By name; pages follow `page` and `per_page`, with a `Link` header."
    ),
)
def list_pipelines(request: HttpRequest, response: HttpResponse, pages: Query[Pages], owner: str, repo: str):
    repository = _repo(request, owner, repo)
    found = Pipeline.objects.filter(repository=repository).select_related("repository__owner").order_by("name")
    return [pipeline_out(pipeline) for pipeline in _page(request, response, found, pages)[0]]


@router.get(PIPELINE, scope=READ_REPO, response=PipelineOut, tags=TAGS, summary="Get a pipeline")
def get_pipeline(request: HttpRequest, owner: str, repo: str, pipeline_name: str):
    return pipeline_out(_pipeline(_repo(request, owner, repo), pipeline_name))


@router.post(
    PIPELINE + "/transitions/{stage_name}",
    scope=WRITE_REPO,
    response=PipelineOut,
    tags=TAGS,
    summary="Disable or enable the transition into a stage",
    description=(
        "Writers only (CodePipeline's DisableStageTransition and EnableStageTransition). A disabled transition holds"
        " the latest execution in front of the stage; newer ones supersede it there."
    ),
)
def set_transition(
    request: HttpRequest, owner: str, repo: str, pipeline_name: str, stage_name: str, payload: TransitionIn
):
    repository = _repo(request, owner, repo)
    actor = _writer(request, repository, "disable or enable transitions")
    pipeline = _pipeline(repository, pipeline_name)
    stage = _stage(pipeline, stage_name)
    pipelines.set_transition(pipeline, stage, actor=actor, enabled=payload.enabled, reason=payload.reason)
    return pipeline_out(_pipeline(repository, pipeline_name))


@router.post(
    PIPELINE + "/stages/{stage_name}/rollback",
    scope=WRITE_REPO,
    response={201: ExecutionDetailOut},
    tags=TAGS,
    summary="Roll a stage back to an earlier execution's artifact",
    description=(
        "Writers only (RollbackStage). A new execution, marked as the rollback of `target_execution_id`, runs the"
        " stage again with that execution's artifact, never a rebuild. 409 when the rules refuse it (the target did"
        " not succeed in the stage, or the stage is busy)."
    ),
)
def rollback_stage(
    request: HttpRequest, owner: str, repo: str, pipeline_name: str, stage_name: str, payload: RollbackIn
):
    repository = _repo(request, owner, repo)
    actor = _writer(request, repository, "roll pipeline stages back")
    pipeline = _pipeline(repository, pipeline_name)
    stage = _stage(pipeline, stage_name)
    target = pipelines.executions_of(pipeline).filter(number=payload.target_execution_id).first()
    if target is None:
        raise field_error(
            f"Pipeline {pipeline.name} has no execution {payload.target_execution_id}.", "target_execution_id"
        )
    execution = pipelines.rollback_stage(pipeline, stage, target, actor=actor)
    return Status(201, execution_detail_out(execution, actor))


# Executions.


@router.get(
    EXECUTIONS,
    scope=READ_REPO,
    response=list[ExecutionOut],
    tags=TAGS,
    summary="List a pipeline's executions, newest first",
    description=(
        "Each with its status, source commit, artifact digest and the status of each stage it entered (a stage"
        " waiting for an approval is InProgress). Pages follow `page` and `per_page`, with a `Link` header."
    ),
)
def list_executions(
    request: HttpRequest, response: HttpResponse, pages: Query[Pages], owner: str, repo: str, pipeline_name: str
):
    pipeline = _pipeline(_repo(request, owner, repo), pipeline_name)
    found, _total = _page(request, response, pipelines.executions_of(pipeline).order_by("-number"), pages)
    state, viewer = _state(pipeline), current_user(request)
    for execution in found:
        execution.pipeline = pipeline
    return [execution_out(execution, state, viewer) for execution in found]


@router.post(
    EXECUTIONS,
    scope=WRITE_REPO,
    response={201: ExecutionDetailOut},
    tags=TAGS,
    summary="Start an execution",
    description=(
        "Writers only (StartPipelineExecution). `sha` or `ref` names the commit, by default the head of the"
        " pipeline's source branch; its build is followed if it has one, else started. 422 naming `ref` or `sha`"
        " when the commit is unknown."
    ),
)
def start_execution(request: HttpRequest, owner: str, repo: str, pipeline_name: str, payload: StartIn):
    repository = _repo(request, owner, repo)
    actor = _writer(request, repository, "start pipelines")
    pipeline = _pipeline(repository, pipeline_name)
    if payload.sha is not None and payload.ref is not None:
        raise field_error("Name the commit with ref or sha, not both.", "ref")
    if payload.sha is not None:
        sha = _commit(repository, payload.sha, "sha")
    elif payload.ref is not None:
        sha = _commit(repository, payload.ref, "ref")
    else:
        try:
            sha = git.branch_sha(repository.path, pipeline.source_branch)
        except git.RefNotFound:
            raise field_error(
                f"The source branch {pipeline.source_branch} does not exist: name a ref or sha.", "ref"
            ) from None
    execution = pipelines.start_execution(
        repository, pipeline.name, sha, requester=actor, trigger=PipelineExecution.Trigger.MANUAL
    )
    return Status(201, execution_detail_out(execution, actor))


@router.get(
    EXECUTION,
    scope=READ_REPO,
    response=ExecutionDetailOut,
    tags=TAGS,
    summary="Get an execution",
    description="With each attempt of each action (its build or deployment, timings) and each approval's answers.",
)
def get_execution(request: HttpRequest, owner: str, repo: str, pipeline_name: str, execution_id: int):
    pipeline = _pipeline(_repo(request, owner, repo), pipeline_name)
    return execution_detail_out(_execution(pipeline, execution_id), current_user(request))


@router.post(
    EXECUTION + "/stop",
    scope=WRITE_REPO,
    response={202: ExecutionDetailOut},
    tags=TAGS,
    summary="Stop an execution",
    description=(
        "Writers only (StopPipelineExecution). It is Stopping while the actions in progress finish, or Stopped at"
        " once when `abandon` is true. 409 when it has already ended."
    ),
)
def stop_execution(request: HttpRequest, owner: str, repo: str, pipeline_name: str, execution_id: int, payload: StopIn):
    repository = _repo(request, owner, repo)
    actor = _writer(request, repository, "stop pipeline executions")
    execution = _execution(_pipeline(repository, pipeline_name), execution_id)
    mode = StopMode.ABANDON if payload.abandon else StopMode.WAIT
    execution = pipelines.stop(execution, actor=actor, mode=mode, reason=payload.reason)
    return Status(202, execution_detail_out(execution, actor))


@router.post(
    EXECUTION + "/retry",
    scope=WRITE_REPO,
    response=ExecutionDetailOut,
    tags=TAGS,
    summary="Retry the stage a failed or stopped execution ended in",
    description=(
        "Writers only (RetryStageExecution): its failed actions (FAILED_ACTIONS) or all of them (ALL_ACTIONS), as"
        " new attempts. 409 when there is nothing to retry."
    ),
)
def retry_execution(
    request: HttpRequest, owner: str, repo: str, pipeline_name: str, execution_id: int, payload: RetryIn
):
    repository = _repo(request, owner, repo)
    actor = _writer(request, repository, "retry pipeline stages")
    pipeline = _pipeline(repository, pipeline_name)
    execution = _execution(pipeline, execution_id)
    stage = _stage(pipeline, payload.stage) if payload.stage is not None else None
    execution = pipelines.retry(execution, actor=actor, stage=stage, mode=RetryMode(payload.mode))
    return execution_detail_out(execution, actor)


@router.post(
    EXECUTION + "/approvals",
    scope=WRITE_REPO,
    response=ApprovalOut,
    tags=TAGS,
    summary="Approve or reject a pending approval",
    description=(
        "PutApprovalResult: `status` Approved or Rejected, with a `summary`. Without `stage` and `action`, the one"
        " approval pending. The reviewers of the environment it guards answer (the repository's writers when it"
        " names none); the execution's requester never approves. Any rejection fails the execution; enough"
        " approvals let it go on. 403 for someone who may not answer, 409 when the approval no longer takes"
        " answers."
    ),
)
def answer_approval(
    request: HttpRequest, owner: str, repo: str, pipeline_name: str, execution_id: int, payload: ApprovalIn
):
    repository = _repo(request, owner, repo)
    actor = current_user(request)
    execution = _execution(_pipeline(repository, pipeline_name), execution_id)
    approval = _pending_approval(execution, payload)
    if not pipelines.can_answer_approval(actor, approval):
        raise PermissionDenied(f"Only the reviewers of {approval.environment_name} answer this approval.")
    approval = pipelines.answer_approval(
        execution, approval.stage, approval.action, user=actor, status=payload.status, summary=payload.summary
    )
    approval.refresh_from_db()
    return approval_out(approval, actor)
