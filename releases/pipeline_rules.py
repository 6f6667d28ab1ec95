"""CodePipeline's execution rules: which execution runs in which stage, which actions start, when an execution is
superseded, stopped, retried or rolled back, and what an approval nobody answers does.

Pure functions and frozen values, with no database and no I/O, so the pipeline job, the pages and the tests share
one reading of the rules. The rules are CodePipeline's, as the release semantics reference states them (AWS release
semantics §5); each method names the point it follows.

A job drives a pipeline with `Pipeline`. Every change is a method that returns a `Step`: the new pipeline and the
effects the job carries out (`StartAction`, `AbandonAction`) or records (`ExecutionStarted`, `ExecutionEnded`):

    step = pipeline.start_execution("3f2a…", now=now)       # a push to the source branch
    for effect in step.effects: ...                           # StartAction(execution 1, Build, Build)
    step = step.pipeline.action_finished(1, "Build", "Build", succeeded=True, now=now)

Each step also moves every execution as far as the rules let it, so the job never has to ask twice; `advance(now=…)`
does only that, for the passing of time (an approval's timeout). A refused change raises `PipelineRuleError` with
the reason to show as it is; the `*_blocker` methods give the same reason to a page that draws a button.

The state is stored as JSON: `pipeline.to_json()` is a dict of plain values (the structure version, the last
execution and stage entry numbered, the disabled transitions, and every execution with its stage runs and actions,
times as ISO 8601), and `Pipeline.from_json(data, spec)` rebuilds it equal to what was stored, given the pipeline's
structure of that version, which is stored beside it (the pipeline.yml it was read from). Executions are numbered
by the pipeline (1, 2, …) in the order they start; ended ones stay, as retry and rollback look back at them.
"""

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from releases.pipelinespec import ActionType, ExecutionMode, FailureResult, PipelineSpec, RetryMode, Stage

# A transition disabled for longer than this no longer lets the execution it held go on (§5, "Transitions").
HOLD_LIMIT = timedelta(days=30)


class Status(StrEnum):
    """CodePipeline's statuses: of executions, of an execution's run of a stage, and of actions (Abandoned)."""

    IN_PROGRESS = "InProgress"
    STOPPING = "Stopping"
    STOPPED = "Stopped"
    SUCCEEDED = "Succeeded"
    SUPERSEDED = "Superseded"
    FAILED = "Failed"
    ABANDONED = "Abandoned"


ENDED = (Status.STOPPED, Status.SUCCEEDED, Status.SUPERSEDED, Status.FAILED)


class StopMode(StrEnum):
    """Stop and wait lets in-progress actions finish; stop and abandon marks them Abandoned (§5, "Stopping")."""

    WAIT = "wait"
    ABANDON = "abandon"


class PipelineRuleError(ValueError):
    """A change the rules refuse, with the reason to show."""


@dataclass(frozen=True)
class ActionRun:
    """An action's latest run in an execution's run of a stage. `deadline` is when a pending approval fails."""

    name: str
    status: Status
    attempt: int
    started_at: datetime
    ended_at: datetime | None = None
    deadline: datetime | None = None
    summary: str = ""


@dataclass(frozen=True)
class StageRun:
    """An execution's run of a stage. `entry` orders every entry into every stage, so the rules can tell whether
    another execution entered the stage since."""

    stage: str
    status: Status
    entry: int
    started_at: datetime
    attempt: int = 1
    actions: tuple[ActionRun, ...] = ()
    ended_at: datetime | None = None
    auto_retried: bool = False
    rollback_started: bool = False

    def action(self, name: str) -> ActionRun | None:
        for action in self.actions:
            if action.name == name:
                return action
        return None

    @property
    def running(self) -> tuple[ActionRun, ...]:
        return tuple(action for action in self.actions if action.status == Status.IN_PROGRESS)

    @property
    def holds_lock(self) -> bool:
        """A stage is locked while an execution runs in it, and until the actions of a failed run have ended."""
        return self.status in (Status.IN_PROGRESS, Status.STOPPING) or bool(self.running)


@dataclass(frozen=True)
class Execution:
    """One run of the pipeline for a commit. `waiting_for` is the stage it waits in front of; a rollback
    (`rollback_of`, the execution whose artifact it deploys again) runs only the stage it rolls back."""

    id: int
    source_sha: str
    structure_version: int
    status: Status
    started_at: datetime
    stage_runs: tuple[StageRun, ...] = ()
    waiting_for: str | None = None
    rollback_of: int | None = None
    ended_at: datetime | None = None
    reason: str = ""

    @property
    def current(self) -> StageRun | None:
        """The run of the stage the execution entered last."""
        return self.stage_runs[-1] if self.stage_runs else None

    @property
    def artifact_of(self) -> int:
        """The execution whose build artifact this one deploys: its own, or a rollback's target's."""
        return self.rollback_of if self.rollback_of is not None else self.id

    def run(self, stage: str) -> StageRun | None:
        for run in self.stage_runs:
            if run.stage == stage:
                return run
        return None

    def stage_status(self, stage: str) -> Status | None:
        """The stage's status in this execution; None for a stage it has not entered. A pending approval's stage is
        InProgress."""
        run = self.run(stage)
        return run.status if run is not None else None


@dataclass(frozen=True)
class DisabledTransition:
    """The transition into `stage`, disabled since `disabled_at`."""

    stage: str
    disabled_at: datetime
    reason: str = ""


# Effects: what a step asks the job to do or to record.


@dataclass(frozen=True)
class StartAction:
    """Start an action: build `source_sha`, deploy the build artifact of execution `artifact_of`, ask for an approval
    that fails at `deadline`, or call a webhook."""

    execution_id: int
    stage: str
    action: str
    type: ActionType
    attempt: int
    source_sha: str
    artifact_of: int
    deadline: datetime | None = None


@dataclass(frozen=True)
class AbandonAction:
    """Stop following an action: its result no longer counts (an approval's link no longer answers it)."""

    execution_id: int
    stage: str
    action: str


@dataclass(frozen=True)
class ExecutionStarted:
    execution_id: int
    source_sha: str
    rollback_of: int | None = None


@dataclass(frozen=True)
class ExecutionEnded:
    execution_id: int
    status: Status
    reason: str


@dataclass(frozen=True)
class Step:
    pipeline: "Pipeline"
    effects: tuple = ()

    @property
    def starts(self) -> tuple[StartAction, ...]:
        return tuple(effect for effect in self.effects if isinstance(effect, StartAction))

    @property
    def execution_id(self) -> int | None:
        """The execution a start or a rollback created."""
        for effect in self.effects:
            if isinstance(effect, ExecutionStarted):
                return effect.execution_id
        return None


@dataclass(frozen=True)
class Pipeline:
    """A pipeline's state: its structure (of `version`), its executions and its disabled transitions.

    `last_execution` numbers executions as they start; `last_entry` numbers every entry of an execution into a
    stage, in order.
    """

    spec: PipelineSpec
    version: int = 1
    executions: tuple[Execution, ...] = ()
    disabled: tuple[DisabledTransition, ...] = ()
    last_execution: int = 0
    last_entry: int = 0

    # Reading the state.

    def execution(self, execution_id: int) -> Execution:
        for execution in self.executions:
            if execution.id == execution_id:
                return execution
        raise PipelineRuleError(f"There is no execution {execution_id}.")

    def holder(self, stage: str) -> Execution | None:
        """The execution the stage is locked by, if any: each stage holds one execution at a time (§5, "SUPERSEDED
        mode")."""
        for execution in self.executions:
            run = execution.current
            if run is not None and run.stage == stage and run.holds_lock:
                return execution
        return None

    def waiting(self, stage: str) -> tuple[Execution, ...]:
        """The executions waiting in front of the stage, oldest first."""
        return tuple(
            execution
            for execution in sorted(self.executions, key=lambda execution: execution.id)
            if execution.waiting_for == stage and execution.status == Status.IN_PROGRESS
        )

    def transition_disabled(self, stage: str) -> DisabledTransition | None:
        for transition in self.disabled:
            if transition.stage == stage:
                return transition
        return None

    # Changes.

    def start_execution(self, source_sha: str, *, now: datetime) -> Step:
        """A push to the source branch (or a start by hand) starts an execution.

        The source stage's only action is the push itself, so it succeeds at once with the commit; the execution
        then waits in front of the second stage like any other.
        """
        number = self.last_execution + 1
        entry = self.last_entry + 1
        source = self.spec.stages[0]
        run = StageRun(
            stage=source.name,
            status=Status.SUCCEEDED,
            entry=entry,
            started_at=now,
            ended_at=now,
            actions=tuple(
                ActionRun(action.name, Status.SUCCEEDED, 1, started_at=now, ended_at=now) for action in source.actions
            ),
        )
        execution = Execution(
            id=number,
            source_sha=source_sha,
            structure_version=self.version,
            status=Status.IN_PROGRESS,
            started_at=now,
            stage_runs=(run,),
            waiting_for=self.spec.stages[1].name,
        )
        pipeline = replace(self, executions=(*self.executions, execution), last_execution=number, last_entry=entry)
        return pipeline._settle(now, [ExecutionStarted(number, source_sha)])

    def action_finished(
        self,
        execution_id: int,
        stage: str,
        action: str,
        *,
        succeeded: bool,
        now: datetime,
        summary: str = "",
        attempt: int | None = None,
    ) -> Step:
        """An action in progress ended; refused for one that is not in progress (abandoned, or of an earlier
        attempt)."""
        execution = self.execution(execution_id)
        run = execution.current
        action_run = run.action(action) if run is not None and run.stage == stage else None
        if action_run is None or action_run.status != Status.IN_PROGRESS:
            raise PipelineRuleError(f"{stage}.{action} is not in progress in execution {execution_id}.")
        if attempt is not None and attempt != action_run.attempt:
            raise PipelineRuleError(
                f"{stage}.{action} of execution {execution_id} is at attempt {action_run.attempt}, not {attempt}."
            )
        ended = replace(
            action_run,
            status=Status.SUCCEEDED if succeeded else Status.FAILED,
            ended_at=now,
            summary=summary,
        )
        pipeline = self._put(replace(execution, stage_runs=_with_run(execution, _with_action(run, ended))))
        return pipeline._settle(now, [])

    def answer_approval(
        self, execution_id: int, stage: str, action: str, *, approved: bool, summary: str, now: datetime
    ) -> Step:
        """The approval's answer: Approved resumes the pipeline, Rejected fails the action and the stage (§5, "Manual
        approval"). Counting N answers of M reviewers is the caller's; this takes the decision."""
        if self._spec_action(stage, action).type != ActionType.APPROVAL:
            raise PipelineRuleError(f"{stage}.{action} is not an approval.")
        return self.action_finished(execution_id, stage, action, succeeded=approved, summary=summary, now=now)

    def advance(self, *, now: datetime) -> Step:
        """Move everything as far as the rules let it at `now`: fail approvals past their timeout, start actions,
        move executions between stages."""
        return self._settle(now, [])

    def stop_blocker(self, execution_id: int, mode: StopMode) -> str | None:
        execution = self.execution(execution_id)
        if execution.status == Status.STOPPING and mode == StopMode.ABANDON:
            return None
        if execution.status == Status.STOPPING:
            return f"Execution {execution_id} is already stopping: it can still be stopped by abandoning its actions."
        if execution.status != Status.IN_PROGRESS:
            return f"Execution {execution_id} is {execution.status}: only an execution in progress can be stopped."
        return None

    def stop(self, execution_id: int, *, mode: StopMode, now: datetime, reason: str = "") -> Step:
        """Stop an execution (§5, "Stopping"). Waiting: it leaves the queue, Stopped. In a stage: "wait" lets the
        actions in progress finish and starts no other (Stopping, then Stopped); "abandon" marks them Abandoned at
        once. Either way the stage unlocks once nothing runs, and Retry becomes available. A stop and wait can be
        turned into an abandon while the execution is Stopping."""
        mode = StopMode(mode)
        if blocker := self.stop_blocker(execution_id, mode):
            raise PipelineRuleError(blocker)
        execution = self.execution(execution_id)
        why = reason or f"Stopped ({mode})."
        if execution.waiting_for is not None:
            stopped = replace(execution, status=Status.STOPPED, waiting_for=None, ended_at=now, reason=why)
            return self._put(stopped)._settle(now, [ExecutionEnded(execution_id, Status.STOPPED, why)])
        run = execution.current
        effects: list = []
        if mode == StopMode.WAIT:
            run = replace(run, status=Status.STOPPING)
            execution = replace(execution, status=Status.STOPPING, reason=why)
        else:
            actions = []
            for action in run.actions:
                if action.status == Status.IN_PROGRESS:
                    action = replace(action, status=Status.ABANDONED, ended_at=now)
                    effects.append(AbandonAction(execution_id, run.stage, action.name))
                actions.append(action)
            run = replace(run, status=Status.STOPPED, actions=tuple(actions), ended_at=now)
            execution = replace(execution, status=Status.STOPPED, ended_at=now, reason=why)
            effects.append(ExecutionEnded(execution_id, Status.STOPPED, why))
        execution = replace(execution, stage_runs=_with_run(execution, run))
        return self._put(execution)._settle(now, effects)

    def retry_blocker(self, execution_id: int, stage: str | None = None, mode: RetryMode = RetryMode.FAILED_ACTIONS):
        """Why the stage of a failed or stopped execution cannot be retried now, or None (§5, "Retry").

        A failed execution can be retried until another execution enters that stage, and never once the pipeline's
        structure changed. Retrying failed actions lets actions in progress go on; retrying the whole stage needs
        every action to have ended.
        """
        execution = self.execution(execution_id)
        if execution.status not in (Status.FAILED, Status.STOPPED):
            return f"Execution {execution_id} is {execution.status}: only a failed or stopped execution is retried."
        run = execution.current
        stage = stage or (run.stage if run is not None else None)
        if run is None or run.stage != stage or run.status not in (Status.FAILED, Status.STOPPED):
            return f"Execution {execution_id} did not fail or stop in {stage}: there is nothing to retry there."
        if execution.structure_version != self.version:
            return (
                f"The pipeline's structure changed since execution {execution_id} ran (version "
                f"{execution.structure_version}, now {self.version}): start a new execution."
            )
        for other in self.executions:
            other_run = other.run(stage)
            if other.id != execution_id and other_run is not None and other_run.entry > run.entry:
                return (
                    f"Execution {other.id} entered {stage} since, so execution {execution_id} can no longer retry it."
                )
        if RetryMode(mode) == RetryMode.ALL_ACTIONS and run.running:
            names = ", ".join(action.name for action in run.running)
            return f"Retrying the whole of {stage} needs every action to have ended: {names} in progress."
        return None

    def retry(
        self, execution_id: int, stage: str | None = None, *, mode: RetryMode = RetryMode.FAILED_ACTIONS, now: datetime
    ) -> Step:
        """Retry the stage an execution failed or stopped in: its failed (and abandoned) actions, or all of them
        from the first runOrder. Either way the outputs of its earlier successful actions are overwritten (§5,
        "Retry")."""
        mode = RetryMode(mode)
        if blocker := self.retry_blocker(execution_id, stage, mode):
            raise PipelineRuleError(blocker)
        execution = self.execution(execution_id)
        execution = replace(execution, stage_runs=_with_run(execution, _retried(execution.current, mode)))
        execution = replace(execution, status=Status.IN_PROGRESS, ended_at=None, reason="")
        return self._put(execution)._settle(now, [])

    def set_transition(self, stage: str, *, enabled: bool, now: datetime, reason: str = "") -> Step:
        """Disable or enable the transition into a stage (§5, "Transitions").

        A disabled transition holds the latest execution in front of the stage; newer ones still supersede it.
        Enabled again, it lets the held execution go on, unless it was disabled for more than 30 days: then the
        executions it held are stopped, and a new push (or a start by hand) runs the stage again.
        """
        index = self._stage_index(stage)
        if index == 0:
            raise PipelineRuleError(f"{stage} is the source stage: no transition leads into it.")
        current = self.transition_disabled(stage)
        if not enabled:
            if current is not None:
                return self._settle(now, [])
            disabled = (*self.disabled, DisabledTransition(stage, now, reason))
            return replace(self, disabled=disabled)._settle(now, [])
        if current is None:
            return self._settle(now, [])
        pipeline = replace(self, disabled=tuple(item for item in self.disabled if item.stage != stage))
        effects: list = []
        if now - current.disabled_at > HOLD_LIMIT:
            why = (
                f"Held in front of {stage} by a transition disabled for more than {HOLD_LIMIT.days} days "
                f"(since {current.disabled_at:%Y-%m-%d}): it does not go on."
            )
            for execution in pipeline.waiting(stage):
                stopped = replace(execution, status=Status.STOPPED, waiting_for=None, ended_at=now, reason=why)
                pipeline = pipeline._put(stopped)
                effects.append(ExecutionEnded(execution.id, Status.STOPPED, why))
        return pipeline._settle(now, effects)

    def rollback_blocker(self, stage: str, target_id: int) -> str | None:
        """Why the stage cannot be rolled back to that execution now, or None (§5, "Stage rollback").

        Not the source stage; the target succeeded in the stage, under the current structure, and is not itself a
        rollback; and the stage is not running, since it holds one execution at a time.
        """
        index = self._stage_index(stage)
        if index == 0:
            return f"{stage} is the source stage: it cannot be rolled back."
        try:
            target = self.execution(target_id)
        except PipelineRuleError as error:
            return str(error)
        if target.rollback_of is not None:
            return f"Execution {target_id} is itself a rollback: roll back to execution {target.rollback_of} instead."
        if target.structure_version != self.version:
            return (
                f"Execution {target_id} ran an earlier structure of the pipeline (version {target.structure_version}, "
                f"now {self.version})."
            )
        run = target.run(stage)
        if run is None or run.status != Status.SUCCEEDED:
            return f"Execution {target_id} did not succeed in {stage}."
        holder = self.holder(stage)
        if holder is not None:
            return f"{stage} is running execution {holder.id}: roll it back once that has ended."
        return None

    def rollback(self, stage: str, target_id: int, *, now: datetime) -> Step:
        """Roll a stage back to what an earlier execution ran there: a new execution marked as a rollback, with the
        target's commit and artifact, runs that stage only (§5, "Stage rollback")."""
        if blocker := self.rollback_blocker(stage, target_id):
            raise PipelineRuleError(blocker)
        pipeline, effect = self._start_rollback(stage, self.execution(target_id), now)
        return pipeline._settle(now, [effect])

    def change_structure(self, spec: PipelineSpec, version: int, *, now: datetime) -> Step:
        """A new pipeline.yml: executions under way are stopped (their running actions finish, as in a stop and
        wait), and none of them can be retried, as their structure is gone (§5, "Retry"). New executions follow
        the new structure."""
        if version <= self.version:
            raise PipelineRuleError(f"The new structure's version must be above {self.version}, not {version}.")
        pipeline = replace(
            self,
            spec=spec,
            version=version,
            disabled=tuple(item for item in self.disabled if item.stage in spec.stage_names[1:]),
        )
        why = f"The pipeline's structure changed (version {version})."
        effects: list = []
        for execution in pipeline.executions:
            if execution.status != Status.IN_PROGRESS:
                continue
            if execution.waiting_for is not None:
                execution = replace(execution, status=Status.STOPPED, waiting_for=None, ended_at=now, reason=why)
                effects.append(ExecutionEnded(execution.id, Status.STOPPED, why))
            else:
                run = replace(execution.current, status=Status.STOPPING)
                execution = replace(execution, status=Status.STOPPING, reason=why, stage_runs=_with_run(execution, run))
            pipeline = pipeline._put(execution)
        return pipeline._settle(now, effects)

    # Storage.

    def to_json(self) -> dict:
        return {
            "version": self.version,
            "last_execution": self.last_execution,
            "last_entry": self.last_entry,
            "disabled": [
                {"stage": item.stage, "disabled_at": item.disabled_at.isoformat(), "reason": item.reason}
                for item in self.disabled
            ],
            "executions": [_execution_json(execution) for execution in self.executions],
        }

    @classmethod
    def from_json(cls, data: dict, spec: PipelineSpec) -> "Pipeline":
        """The state `to_json` gave, with the structure of its version."""
        return cls(
            spec=spec,
            version=data["version"],
            last_execution=data["last_execution"],
            last_entry=data["last_entry"],
            disabled=tuple(
                DisabledTransition(item["stage"], datetime.fromisoformat(item["disabled_at"]), item["reason"])
                for item in data["disabled"]
            ),
            executions=tuple(_execution_from_json(item) for item in data["executions"]),
        )

    # The rules that move executions.

    def _settle(self, now: datetime, effects: list) -> Step:
        """Apply the rules until nothing changes: approvals time out, stages run their actions group by group,
        executions leave a stage, supersede each other and enter the next."""
        pipeline = self._expire_approvals(now, effects)
        while True:
            before = pipeline
            for execution in before.executions:
                pipeline = pipeline._progress(pipeline.execution(execution.id), now, effects)
            for stage in reversed(pipeline.spec.stages[1:]):
                pipeline = pipeline._enter(stage.name, now, effects)
            if pipeline == before:
                return Step(pipeline, tuple(effects))

    def _expire_approvals(self, now: datetime, effects: list) -> "Pipeline":
        """An approval with no answer by its timeout fails (§5, "Manual approval")."""
        pipeline = self
        for execution in self.executions:
            run = execution.current
            if run is None:
                continue
            for action in run.running:
                if action.deadline is not None and now >= action.deadline:
                    minutes = int((action.deadline - action.started_at).total_seconds() // 60)
                    expired = replace(
                        action,
                        status=Status.FAILED,
                        ended_at=now,
                        summary=f"No answer within {_duration(minutes)}: the approval timed out.",
                    )
                    run = _with_action(run, expired)
            if run is not execution.current:
                pipeline = pipeline._put(replace(execution, stage_runs=_with_run(execution, run)))
        return pipeline

    def _progress(self, execution: Execution, now: datetime, effects: list) -> "Pipeline":
        """One execution's run of its current stage, moved on by the results recorded so far."""
        run = execution.current
        if run is None or execution.waiting_for is not None:
            return self
        if run.status == Status.STOPPING and not run.running:
            run = replace(run, status=Status.STOPPED, ended_at=now)
            execution = replace(execution, status=Status.STOPPED, ended_at=now)
            effects.append(ExecutionEnded(execution.id, Status.STOPPED, execution.reason))
            return self._put(replace(execution, stage_runs=_with_run(execution, run)))
        if run.status == Status.FAILED:
            return self._after_failure(execution, now, effects)
        if run.status != Status.IN_PROGRESS:
            return self
        stage = self.spec.stage(run.stage)
        failed = [action for action in run.actions if action.status == Status.FAILED]
        if failed:
            return self._failed(execution, stage, failed, now, effects)
        for run_order in stage.run_orders:
            group = stage.group(run_order)
            if all(_succeeded(run, action.name) for action in group):
                continue
            # Equal runOrder values run in parallel, a higher value only once the lower ones all succeeded (§5).
            for action in group:
                if run.action(action.name) is None:
                    deadline = None
                    if action.type == ActionType.APPROVAL:
                        deadline = now + timedelta(minutes=action.timeout_minutes)
                    run = replace(
                        run,
                        actions=(
                            *run.actions,
                            ActionRun(action.name, Status.IN_PROGRESS, run.attempt, started_at=now, deadline=deadline),
                        ),
                    )
                    effects.append(
                        StartAction(
                            execution.id,
                            stage.name,
                            action.name,
                            action.type,
                            run.attempt,
                            execution.source_sha,
                            execution.artifact_of,
                            deadline,
                        )
                    )
            return self._put(replace(execution, stage_runs=_with_run(execution, run)))
        run = replace(run, status=Status.SUCCEEDED, ended_at=now)
        execution = replace(execution, stage_runs=_with_run(execution, run))
        index = self.spec.index(stage.name)
        if execution.rollback_of is not None or index == len(self.spec.stages) - 1:
            why = f"Rolled {stage.name} back." if execution.rollback_of is not None else "Every stage succeeded."
            execution = replace(execution, status=Status.SUCCEEDED, ended_at=now, reason=why)
            effects.append(ExecutionEnded(execution.id, Status.SUCCEEDED, why))
        else:
            execution = replace(execution, waiting_for=self.spec.stages[index + 1].name)
        return self._put(execution)

    def _failed(self, execution: Execution, stage: Stage, failed: list, now: datetime, effects: list) -> "Pipeline":
        """An action failed: the stage and the execution fail, unless the stage retries itself on failure (§5,
        "Automatic on-failure behaviour"), which it does once per run of the stage, so that a stage that always
        fails does not run forever. Actions still in progress go on; the stage stays locked until they end, so that
        it never runs two executions' actions."""
        run = execution.current
        on_failure = stage.on_failure
        if on_failure is not None and on_failure.result == FailureResult.RETRY and not run.auto_retried:
            if on_failure.retry_mode == RetryMode.ALL_ACTIONS and run.running:
                return self
            run = replace(_retried(run, on_failure.retry_mode), auto_retried=True)
            return self._put(replace(execution, stage_runs=_with_run(execution, run)))
        names = ", ".join(action.name for action in failed)
        summaries = "; ".join(action.summary for action in failed if action.summary)
        why = f"{names} failed in {stage.name}" + (f": {summaries}" if summaries else ".")
        run = replace(run, status=Status.FAILED, ended_at=now)
        execution = replace(
            execution, status=Status.FAILED, ended_at=now, reason=why, stage_runs=_with_run(execution, run)
        )
        effects.append(ExecutionEnded(execution.id, Status.FAILED, why))
        # A rollback on failure takes the stage before any execution waiting in front of it can enter.
        return self._put(execution)._after_failure(execution, now, effects)

    def _after_failure(self, execution: Execution, now: datetime, effects: list) -> "Pipeline":
        """A stage whose result on failure is ROLLBACK rolls back, once its actions ended, to the latest execution
        that succeeded in it and may be a rollback's target; with none, the failure stands."""
        run = execution.current
        if (
            run.rollback_started
            or run.running
            or execution.rollback_of is not None
            or execution.structure_version != self.version
        ):
            return self
        on_failure = self.spec.stage(run.stage).on_failure
        if on_failure is None or on_failure.result != FailureResult.ROLLBACK:
            return self
        pipeline = self._put(replace(execution, stage_runs=_with_run(execution, replace(run, rollback_started=True))))
        targets = [
            other
            for other in pipeline.executions
            if other.run(run.stage) is not None and pipeline.rollback_blocker(run.stage, other.id) is None
        ]
        if not targets:
            return pipeline
        target = max(targets, key=lambda other: other.run(run.stage).entry)
        pipeline, effect = pipeline._start_rollback(run.stage, target, now)
        effects.append(effect)
        return pipeline

    def _enter(self, stage: str, now: datetime, effects: list) -> "Pipeline":
        """Executions waiting in front of a stage: in SUPERSEDED mode the newest overtakes the older ones, which are
        Superseded, even behind a disabled transition; in QUEUED mode they enter first in, first out. One enters
        when the stage is free and its transition enabled (§5, "SUPERSEDED mode", "Other modes")."""
        waiting = self.waiting(stage)
        if not waiting:
            return self
        pipeline = self
        if self.spec.execution_mode == ExecutionMode.SUPERSEDED and len(waiting) > 1:
            newest = waiting[-1]
            for older in waiting[:-1]:
                why = f"Superseded by execution {newest.id} in front of {stage}."
                superseded = replace(older, status=Status.SUPERSEDED, waiting_for=None, ended_at=now, reason=why)
                pipeline = pipeline._put(superseded)
                effects.append(ExecutionEnded(older.id, Status.SUPERSEDED, why))
            waiting = (newest,)
        if pipeline.transition_disabled(stage) is not None or pipeline.holder(stage) is not None:
            return pipeline
        entering = waiting[0]
        entry = pipeline.last_entry + 1
        run = StageRun(stage=stage, status=Status.IN_PROGRESS, entry=entry, started_at=now)
        entered = replace(entering, waiting_for=None, stage_runs=(*entering.stage_runs, run))
        return replace(pipeline._put(entered), last_entry=entry)

    # Helpers.

    def _start_rollback(self, stage: str, target: Execution, now: datetime) -> tuple["Pipeline", ExecutionStarted]:
        number = self.last_execution + 1
        entry = self.last_entry + 1
        execution = Execution(
            id=number,
            source_sha=target.source_sha,
            structure_version=self.version,
            status=Status.IN_PROGRESS,
            started_at=now,
            stage_runs=(StageRun(stage=stage, status=Status.IN_PROGRESS, entry=entry, started_at=now),),
            rollback_of=target.id,
        )
        pipeline = replace(self, executions=(*self.executions, execution), last_execution=number, last_entry=entry)
        return pipeline, ExecutionStarted(number, target.source_sha, rollback_of=target.id)

    def _put(self, execution: Execution) -> "Pipeline":
        return replace(
            self,
            executions=tuple(execution if other.id == execution.id else other for other in self.executions),
        )

    def _stage_index(self, stage: str) -> int:
        try:
            return self.spec.index(stage)
        except ValueError:
            raise PipelineRuleError(f"The pipeline {self.spec.name} has no stage {stage!r}.") from None

    def _spec_action(self, stage: str, action: str):
        self._stage_index(stage)
        try:
            return self.spec.stage(stage).action(action)
        except KeyError:
            raise PipelineRuleError(f"{stage} has no action {action!r}.") from None


def _succeeded(run: StageRun, name: str) -> bool:
    action = run.action(name)
    return action is not None and action.status == Status.SUCCEEDED


def _retried(run: StageRun, mode: RetryMode) -> StageRun:
    """The run again from its failed (and abandoned) actions, in-progress ones going on, or from the first
    runOrder with no action left."""
    if mode == RetryMode.ALL_ACTIONS:
        actions: tuple[ActionRun, ...] = ()
    else:
        actions = tuple(action for action in run.actions if action.status not in (Status.FAILED, Status.ABANDONED))
    return replace(run, status=Status.IN_PROGRESS, attempt=run.attempt + 1, actions=actions, ended_at=None)


def _with_action(run: StageRun, action: ActionRun) -> StageRun:
    return replace(run, actions=tuple(action if other.name == action.name else other for other in run.actions))


def _with_run(execution: Execution, run: StageRun) -> tuple[StageRun, ...]:
    """The execution's stage runs with its current one replaced."""
    return (*execution.stage_runs[:-1], run)


def _duration(minutes: int) -> str:
    if minutes % (24 * 60) == 0:
        days = minutes // (24 * 60)
        return f"{days} day" + ("s" if days != 1 else "")
    return f"{minutes} minutes"


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value is not None else None


def _execution_json(execution: Execution) -> dict:
    return {
        "id": execution.id,
        "source_sha": execution.source_sha,
        "structure_version": execution.structure_version,
        "status": str(execution.status),
        "started_at": _time(execution.started_at),
        "ended_at": _time(execution.ended_at),
        "waiting_for": execution.waiting_for,
        "rollback_of": execution.rollback_of,
        "reason": execution.reason,
        "stage_runs": [
            {
                "stage": run.stage,
                "status": str(run.status),
                "entry": run.entry,
                "attempt": run.attempt,
                "started_at": _time(run.started_at),
                "ended_at": _time(run.ended_at),
                "auto_retried": run.auto_retried,
                "rollback_started": run.rollback_started,
                "actions": [
                    {
                        "name": action.name,
                        "status": str(action.status),
                        "attempt": action.attempt,
                        "started_at": _time(action.started_at),
                        "ended_at": _time(action.ended_at),
                        "deadline": _time(action.deadline),
                        "summary": action.summary,
                    }
                    for action in run.actions
                ],
            }
            for run in execution.stage_runs
        ],
    }


def _execution_from_json(data: dict) -> Execution:
    return Execution(
        id=data["id"],
        source_sha=data["source_sha"],
        structure_version=data["structure_version"],
        status=Status(data["status"]),
        started_at=_parse_time(data["started_at"]),
        ended_at=_parse_time(data["ended_at"]),
        waiting_for=data["waiting_for"],
        rollback_of=data["rollback_of"],
        reason=data["reason"],
        stage_runs=tuple(
            StageRun(
                stage=run["stage"],
                status=Status(run["status"]),
                entry=run["entry"],
                attempt=run["attempt"],
                started_at=_parse_time(run["started_at"]),
                ended_at=_parse_time(run["ended_at"]),
                auto_retried=run["auto_retried"],
                rollback_started=run["rollback_started"],
                actions=tuple(
                    ActionRun(
                        name=action["name"],
                        status=Status(action["status"]),
                        attempt=action["attempt"],
                        started_at=_parse_time(action["started_at"]),
                        ended_at=_parse_time(action["ended_at"]),
                        deadline=_parse_time(action["deadline"]),
                        summary=action["summary"],
                    )
                    for action in run["actions"]
                ),
            )
            for run in data["stage_runs"]
        ),
    )
