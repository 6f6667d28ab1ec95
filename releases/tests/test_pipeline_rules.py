"""CodePipeline's execution rules driven as the pipeline job drives them: superseding and queueing, runOrder, stop,
retry, transitions, rollback and approvals, with every step checked to hold at most one execution per stage."""

import json
from datetime import UTC, datetime, timedelta

import pytest

from releases.pipeline_rules import (
    AbandonAction,
    ExecutionEnded,
    ExecutionStarted,
    Pipeline,
    PipelineRuleError,
    StartAction,
    Status,
    StopMode,
)
from releases.pipelinespec import RetryMode, default_pipeline, default_pipeline_yaml, parse_pipeline

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

PARALLEL = """\
version: 1
source: {branch: main}
stages:
  - name: Build
    actions:
      - {name: Build, type: build}
  - name: Deploy-dev
    actions:
      - {name: Web, type: deploy, environment: dev-web}
      - {name: Worker, type: deploy, environment: dev-worker}
      - {name: Smoke, type: invoke, run_order: 2, url: 'https://ci.example.com/smoke', secret: SMOKE}
"""


class Driver:
    """Drives a pipeline as the job would: each change at the driver's clock, its effects kept, and after every step
    a check that no stage holds two executions (§5: each stage holds one execution at a time)."""

    def __init__(self, spec, version: int = 1):
        self.pipeline = Pipeline(spec, version=version)
        self.now = T0
        self.effects: list = []

    def __call__(self, change: str, *args, **kwargs):
        step = getattr(self.pipeline, change)(*args, now=self.now, **kwargs)
        self.pipeline = step.pipeline
        self.effects.extend(step.effects)
        for stage in self.pipeline.spec.stage_names:
            holding = [
                execution.id
                for execution in self.pipeline.executions
                if execution.current is not None and execution.current.stage == stage and execution.current.holds_lock
            ]
            assert len(holding) <= 1, f"{stage} holds executions {holding}"
        return step

    def push(self, sha: str) -> int:
        return self("start_execution", sha).execution_id

    def finish(self, execution_id: int, stage: str, action: str, succeeded: bool = True):
        return self("action_finished", execution_id, stage, action, succeeded=succeeded)

    def status(self, execution_id: int) -> Status:
        return self.pipeline.execution(execution_id).status

    def where(self, execution_id: int) -> tuple[str, Status] | str:
        """The stage an execution runs in with its status there, or 'waiting for <stage>'."""
        execution = self.pipeline.execution(execution_id)
        if execution.waiting_for is not None:
            return f"waiting for {execution.waiting_for}"
        return (execution.current.stage, execution.current.status)

    def tick(self, **delta):
        self.now += timedelta(**delta)


def starts(step) -> list[tuple[int, str, str]]:
    return [(start.execution_id, start.stage, start.action) for start in step.starts]


def ended(effects) -> list[tuple[int, Status]]:
    return [(effect.execution_id, effect.status) for effect in effects if isinstance(effect, ExecutionEnded)]


def through_dev(run: Driver, execution_id: int) -> None:
    run.finish(execution_id, "Build", "Build")
    run.finish(execution_id, "Deploy-dev", "Deploy")


@pytest.fixture
def run():
    return Driver(default_pipeline("main", ("dev", "uat")))


def test_a_push_starts_an_execution_that_builds_its_commit(run):
    step = run("start_execution", "a" * 40)

    assert step.effects[0] == ExecutionStarted(1, "a" * 40)
    (start,) = step.starts
    assert (start.execution_id, start.stage, start.action, start.type) == (1, "Build", "Build", "build")
    assert (start.source_sha, start.artifact_of, start.attempt) == ("a" * 40, 1, 1)
    execution = run.pipeline.execution(1)
    assert execution.stage_status("Source") == Status.SUCCEEDED
    assert execution.stage_status("Build") == Status.IN_PROGRESS
    assert execution.stage_status("Deploy-dev") is None


def test_three_quick_pushes_supersede_the_middle_one(run):
    first = run.push("a1")
    second = run.push("b2")
    assert run.where(second) == "waiting for Build"

    step = run("start_execution", "c3")
    third = step.execution_id

    # The newer waiting execution overtakes the older one in front of Build; the first keeps building.
    assert ended(step.effects) == [(second, Status.SUPERSEDED)]
    assert run.status(second) == Status.SUPERSEDED
    assert "Superseded by execution 3 in front of Build" in run.pipeline.execution(second).reason
    assert starts(step) == []
    assert run.where(first) == ("Build", Status.IN_PROGRESS)

    step = run.finish(first, "Build", "Build")
    assert starts(step) == [(first, "Deploy-dev", "Deploy"), (third, "Build", "Build")]

    run.finish(first, "Deploy-dev", "Deploy")
    run.finish(third, "Build", "Build")
    run.finish(third, "Deploy-dev", "Deploy")
    assert run.where(first) == ("Approval", Status.IN_PROGRESS)
    assert run.where(third) == "waiting for Approval"

    run("answer_approval", first, "Approval", "Approve", approved=True, summary="ok")
    assert run.where(first) == ("Deploy-uat", Status.IN_PROGRESS)
    assert run.where(third) == ("Approval", Status.IN_PROGRESS)
    run.finish(first, "Deploy-uat", "Deploy")
    assert run.status(first) == Status.SUCCEEDED
    # The superseded execution never ran a stage after the source.
    assert [stage_run.stage for stage_run in run.pipeline.execution(second).stage_runs] == ["Source"]
    assert not any(start.execution_id == second for start in run.effects if isinstance(start, StartAction))


def test_queued_mode_runs_executions_first_in_first_out():
    run = Driver(parse_pipeline(default_pipeline_yaml_queued()))
    ids = [run.push(sha) for sha in ("a1", "b2", "c3")]

    builds = [start.execution_id for start in run.effects if isinstance(start, StartAction) and start.stage == "Build"]
    assert builds == [1]
    for execution_id in ids:
        run.finish(execution_id, "Build", "Build")

    builds = [start.execution_id for start in run.effects if isinstance(start, StartAction) and start.stage == "Build"]
    assert builds == [1, 2, 3]
    assert [run.status(execution_id) for execution_id in ids] == [Status.IN_PROGRESS] * 3
    assert run.where(1) == ("Deploy-dev", Status.IN_PROGRESS)
    assert run.pipeline.waiting("Deploy-dev") == (run.pipeline.execution(2), run.pipeline.execution(3))
    run.finish(1, "Deploy-dev", "Deploy")
    assert run.where(2) == ("Deploy-dev", Status.IN_PROGRESS)
    assert run.where(3) == "waiting for Deploy-dev"


def default_pipeline_yaml_queued() -> str:
    return default_pipeline_yaml("main").replace("execution_mode: SUPERSEDED", "execution_mode: QUEUED")


def test_equal_run_orders_run_together_and_a_higher_one_after_them():
    run = Driver(parse_pipeline(PARALLEL))
    run.push("a1")

    step = run.finish(1, "Build", "Build")
    assert starts(step) == [(1, "Deploy-dev", "Web"), (1, "Deploy-dev", "Worker")]

    assert starts(run.finish(1, "Deploy-dev", "Web")) == []
    assert starts(run.finish(1, "Deploy-dev", "Worker")) == [(1, "Deploy-dev", "Smoke")]
    run.finish(1, "Deploy-dev", "Smoke")
    assert run.status(1) == Status.SUCCEEDED


def test_a_failure_in_a_group_starts_no_later_action_and_fails_the_stage():
    run = Driver(parse_pipeline(PARALLEL))
    run.push("a1")
    run.finish(1, "Build", "Build")
    run.finish(1, "Deploy-dev", "Web", succeeded=False)
    step = run.finish(1, "Deploy-dev", "Worker")

    assert starts(step) == []
    assert run.status(1) == Status.FAILED
    assert run.where(1) == ("Deploy-dev", Status.FAILED)
    assert "Web failed in Deploy-dev" in run.pipeline.execution(1).reason


def test_retry_of_failed_actions_leaves_actions_in_progress_running():
    run = Driver(parse_pipeline(PARALLEL))
    run.push("a1")
    run.finish(1, "Build", "Build")
    step = run.finish(1, "Deploy-dev", "Web", succeeded=False)

    # The stage failed at once, but it stays locked while Worker still runs.
    assert ended(step.effects) == [(1, Status.FAILED)]
    assert run.pipeline.holder("Deploy-dev").id == 1
    assert "Worker in progress" in run.pipeline.retry_blocker(1, "Deploy-dev", RetryMode.ALL_ACTIONS)
    with pytest.raises(PipelineRuleError, match="needs every action to have ended"):
        run("retry", 1, "Deploy-dev", mode=RetryMode.ALL_ACTIONS)

    step = run("retry", 1, "Deploy-dev", mode=RetryMode.FAILED_ACTIONS)

    assert [(start.action, start.attempt) for start in step.starts] == [("Web", 2)]
    assert run.status(1) == Status.IN_PROGRESS
    assert run.pipeline.execution(1).current.action("Worker").status == Status.IN_PROGRESS
    run.finish(1, "Deploy-dev", "Worker")
    assert starts(run.finish(1, "Deploy-dev", "Web")) == [(1, "Deploy-dev", "Smoke")]


def test_retry_of_the_whole_stage_starts_again_from_the_first_run_order():
    run = Driver(parse_pipeline(PARALLEL))
    run.push("a1")
    run.finish(1, "Build", "Build")
    run.finish(1, "Deploy-dev", "Web")
    run.finish(1, "Deploy-dev", "Worker")
    run.finish(1, "Deploy-dev", "Smoke", succeeded=False)
    assert run.pipeline.retry_blocker(1, "Deploy-dev", RetryMode.ALL_ACTIONS) is None

    step = run("retry", 1, "Deploy-dev", mode=RetryMode.ALL_ACTIONS)

    assert [(start.action, start.attempt) for start in step.starts] == [("Web", 2), ("Worker", 2)]
    # A report from the earlier attempt no longer counts.
    with pytest.raises(PipelineRuleError, match="attempt 2, not 1"):
        run("action_finished", 1, "Deploy-dev", "Web", succeeded=True, attempt=1)


def test_retry_is_refused_once_another_execution_entered_the_stage(run):
    run.push("a1")
    run.finish(1, "Build", "Build", succeeded=False)
    assert run.pipeline.retry_blocker(1) is None
    run.push("b2")

    assert run.where(2) == ("Build", Status.IN_PROGRESS)
    assert (
        run.pipeline.retry_blocker(1, "Build")
        == "Execution 2 entered Build since, so execution 1 can no longer retry it."
    )
    with pytest.raises(PipelineRuleError, match="Execution 2 entered Build since"):
        run("retry", 1, "Build")


def test_retry_is_refused_after_the_structure_changed(run):
    run.push("a1")
    run.finish(1, "Build", "Build", succeeded=False)

    run("change_structure", default_pipeline("main", ("dev", "qa")), 2)

    assert "structure changed since execution 1 ran (version 1, now 2)" in run.pipeline.retry_blocker(1)
    with pytest.raises(PipelineRuleError, match="structure changed"):
        run("retry", 1)


def test_retry_is_refused_for_an_execution_that_did_not_fail_there(run):
    run.push("a1")

    assert "only a failed or stopped execution" in run.pipeline.retry_blocker(1)
    run.finish(1, "Build", "Build", succeeded=False)
    assert "did not fail or stop in Deploy-dev" in run.pipeline.retry_blocker(1, "Deploy-dev")


def test_a_change_of_structure_lets_running_actions_finish_and_stops_the_execution(run):
    run.push("a1")
    run.push("b2")

    step = run("change_structure", default_pipeline("main", ("dev", "qa")), 2)
    assert ended(step.effects) == [(2, Status.STOPPED)]
    assert run.status(1) == Status.STOPPING

    step = run.finish(1, "Build", "Build")
    assert ended(step.effects) == [(1, Status.STOPPED)]
    assert starts(step) == []
    assert run.push("c3") == 3
    assert run.pipeline.execution(3).structure_version == 2


def test_stop_and_wait_lets_the_running_action_finish_then_frees_the_stage(run):
    run.push("a1")
    run.push("b2")

    step = run("stop", 1, mode=StopMode.WAIT)

    assert step.effects == ()
    assert run.status(1) == Status.STOPPING
    assert run.where(1) == ("Build", Status.STOPPING)
    assert run.where(2) == "waiting for Build"

    step = run.finish(1, "Build", "Build")

    # The build's result is kept, no later stage starts, and the next execution enters the freed stage.
    assert ended(step.effects) == [(1, Status.STOPPED)]
    assert starts(step) == [(2, "Build", "Build")]
    assert run.pipeline.execution(1).current.action("Build").status == Status.SUCCEEDED
    assert run.pipeline.execution(1).stage_status("Deploy-dev") is None


def test_stop_and_abandon_abandons_running_actions_at_once(run):
    run.push("a1")

    step = run("stop", 1, mode=StopMode.ABANDON, reason="Wrong commit.")

    assert AbandonAction(1, "Build", "Build") in step.effects
    assert ended(step.effects) == [(1, Status.STOPPED)]
    assert run.pipeline.execution(1).current.action("Build").status == Status.ABANDONED
    assert run.pipeline.execution(1).reason == "Wrong commit."
    assert run.pipeline.holder("Build") is None
    with pytest.raises(PipelineRuleError, match="not in progress"):
        run.finish(1, "Build", "Build")
    # Retry is available after a stop: the abandoned action runs again.
    step = run("retry", 1, "Build")
    assert [(start.action, start.attempt) for start in step.starts] == [("Build", 2)]


def test_a_stop_and_wait_can_become_an_abandon(run):
    run.push("a1")
    run("stop", 1, mode=StopMode.WAIT)

    assert "already stopping" in run.pipeline.stop_blocker(1, StopMode.WAIT)
    step = run("stop", 1, mode=StopMode.ABANDON)

    assert ended(step.effects) == [(1, Status.STOPPED)]
    assert "only an execution in progress" in run.pipeline.stop_blocker(1, StopMode.ABANDON)


def test_stopping_a_waiting_execution_takes_it_out_of_the_queue(run):
    run.push("a1")
    run.push("b2")

    step = run("stop", 2, mode=StopMode.WAIT)

    assert ended(step.effects) == [(2, Status.STOPPED)]
    assert run.pipeline.waiting("Build") == ()


def test_a_disabled_transition_holds_the_latest_execution_and_newer_ones_supersede_it(run):
    run("set_transition", "Deploy-dev", enabled=False, reason="dev is being rebuilt")
    run.push("a1")
    step = run.finish(1, "Build", "Build")

    assert starts(step) == []
    assert run.where(1) == "waiting for Deploy-dev"

    run.push("b2")
    step = run.finish(2, "Build", "Build")

    assert ended(step.effects) == [(1, Status.SUPERSEDED)]
    assert run.where(2) == "waiting for Deploy-dev"

    run.tick(days=30)
    step = run("set_transition", "Deploy-dev", enabled=True)

    assert starts(step) == [(2, "Deploy-dev", "Deploy")]


def test_a_transition_reenabled_after_30_days_does_not_let_the_held_execution_go_on(run):
    run("set_transition", "Deploy-dev", enabled=False)
    run.push("a1")
    run.finish(1, "Build", "Build")

    run.tick(days=30, seconds=1)
    step = run("set_transition", "Deploy-dev", enabled=True)

    assert starts(step) == []
    assert ended(step.effects) == [(1, Status.STOPPED)]
    assert "disabled for more than 30 days" in run.pipeline.execution(1).reason
    assert run.pipeline.execution(1).stage_status("Deploy-dev") is None
    # The transition is enabled again: the next execution goes through.
    run.push("b2")
    assert starts(run.finish(2, "Build", "Build")) == [(2, "Deploy-dev", "Deploy")]


def test_the_source_stage_has_no_transition(run):
    with pytest.raises(PipelineRuleError, match="no transition leads into it"):
        run("set_transition", "Source", enabled=False)


def failed_after_a_success(run: Driver) -> None:
    """Execution 1 deploys to dev; execution 2's deploy to dev fails."""
    run.push("a1")
    through_dev(run, 1)
    run.push("b2")
    run.finish(2, "Build", "Build")
    run.finish(2, "Deploy-dev", "Deploy", succeeded=False)


def test_a_stage_rolls_back_to_an_earlier_successful_execution(run):
    failed_after_a_success(run)

    step = run("rollback", "Deploy-dev", 1)

    rollback = step.execution_id
    assert step.effects[0] == ExecutionStarted(rollback, "a1", rollback_of=1)
    (start,) = step.starts
    assert (start.execution_id, start.stage, start.source_sha, start.artifact_of) == (rollback, "Deploy-dev", "a1", 1)
    step = run.finish(rollback, "Deploy-dev", "Deploy")
    # A rollback runs the stage it rolls back, and only that one.
    assert ended(step.effects) == [(rollback, Status.SUCCEEDED)]
    assert [stage_run.stage for stage_run in run.pipeline.execution(rollback).stage_runs] == ["Deploy-dev"]


def test_a_rollback_is_refused_for_the_source_stage_a_failed_target_or_a_rollback(run):
    failed_after_a_success(run)

    assert "source stage" in run.pipeline.rollback_blocker("Source", 1)
    assert run.pipeline.rollback_blocker("Deploy-dev", 2) == "Execution 2 did not succeed in Deploy-dev."
    assert run.pipeline.rollback_blocker("Approval", 2) == "Execution 2 did not succeed in Approval."
    rollback = run("rollback", "Deploy-dev", 1).execution_id
    # While the rollback runs the stage, no other rollback may.
    assert f"running execution {rollback}" in run.pipeline.rollback_blocker("Deploy-dev", 1)
    run.finish(rollback, "Deploy-dev", "Deploy")
    assert "itself a rollback: roll back to execution 1" in run.pipeline.rollback_blocker("Deploy-dev", rollback)
    with pytest.raises(PipelineRuleError, match="source stage"):
        run("rollback", "Source", 1)


def test_a_rollback_is_refused_to_an_execution_of_an_earlier_structure(run):
    failed_after_a_success(run)

    run("change_structure", default_pipeline("main", ("dev", "uat")), 2)

    assert "earlier structure of the pipeline (version 1, now 2)" in run.pipeline.rollback_blocker("Deploy-dev", 1)


def test_a_stage_that_rolls_back_on_failure_starts_a_rollback_by_itself():
    spec = parse_pipeline(
        default_pipeline_yaml_queued().replace(
            "        environment: 'dev'\n", "        environment: 'dev'\n    on_failure: {result: ROLLBACK}\n"
        )
    )
    run = Driver(spec)
    run.push("a1")
    through_dev(run, 1)
    run.push("b2")
    run.push("c3")
    run.finish(2, "Build", "Build")
    run.finish(3, "Build", "Build")
    assert run.where(3) == "waiting for Deploy-dev"

    step = run.finish(2, "Deploy-dev", "Deploy", succeeded=False)

    # The rollback takes the stage before execution 3, which waits in front of it.
    (started,) = [effect for effect in step.effects if isinstance(effect, ExecutionStarted)]
    assert started.rollback_of == 1
    assert starts(step) == [(started.execution_id, "Deploy-dev", "Deploy")]
    assert run.where(3) == "waiting for Deploy-dev"
    assert starts(run.finish(started.execution_id, "Deploy-dev", "Deploy")) == [(3, "Deploy-dev", "Deploy")]


def test_a_stage_that_retries_on_failure_retries_once():
    spec = parse_pipeline(
        default_pipeline_yaml_queued().replace(
            "        type: build\n", "        type: build\n    on_failure: {result: RETRY, retry_mode: ALL_ACTIONS}\n"
        )
    )
    run = Driver(spec)
    run.push("a1")

    step = run.finish(1, "Build", "Build", succeeded=False)
    assert [(start.action, start.attempt) for start in step.starts] == [("Build", 2)]
    assert ended(step.effects) == []

    step = run.finish(1, "Build", "Build", succeeded=False)
    assert step.starts == ()
    assert ended(step.effects) == [(1, Status.FAILED)]


def test_a_pending_approval_keeps_its_stage_locked(run):
    run.push("a1")
    through_dev(run, 1)
    run.push("b2")
    through_dev(run, 2)

    assert run.where(1) == ("Approval", Status.IN_PROGRESS)
    assert run.pipeline.execution(1).stage_status("Approval") == Status.IN_PROGRESS
    assert run.where(2) == "waiting for Approval"
    run.tick(days=3)
    assert run("advance").starts == ()
    assert run.where(2) == "waiting for Approval"


def test_a_rejection_fails_the_stage_and_frees_it(run):
    run.push("a1")
    through_dev(run, 1)
    run.push("b2")
    through_dev(run, 2)

    step = run("answer_approval", 1, "Approval", "Approve", approved=False, summary="Not this week.")

    assert ended(step.effects) == [(1, Status.FAILED)]
    assert run.where(1) == ("Approval", Status.FAILED)
    assert run.pipeline.execution(1).reason == "Approve failed in Approval: Not this week."
    assert starts(step) == [(2, "Approval", "Approve")]
    with pytest.raises(PipelineRuleError, match="not in progress"):
        run("answer_approval", 1, "Approval", "Approve", approved=True, summary="Changed my mind.")


def test_an_approval_nobody_answers_fails_at_its_timeout(run):
    run.push("a1")
    through_dev(run, 1)
    (approval,) = [start for start in run.effects if isinstance(start, StartAction) and start.type == "approval"]
    assert approval.deadline == run.now + timedelta(days=7)

    run.now = approval.deadline - timedelta(seconds=1)
    assert ended(run("advance").effects) == []
    run.now = approval.deadline
    step = run("advance")

    assert ended(step.effects) == [(1, Status.FAILED)]
    assert "No answer within 7 days" in run.pipeline.execution(1).reason


def test_only_an_approval_takes_an_answer(run):
    run.push("a1")

    with pytest.raises(PipelineRuleError, match="not an approval"):
        run("answer_approval", 1, "Build", "Build", approved=True, summary="")


def test_the_state_is_stored_as_json_and_rebuilt(run):
    run.push("a1")
    through_dev(run, 1)
    run.push("b2")
    run("set_transition", "Deploy-dev", enabled=False)
    run.finish(2, "Build", "Build", succeeded=False)

    stored = json.loads(json.dumps(run.pipeline.to_json()))
    rebuilt = Pipeline.from_json(stored, run.pipeline.spec)

    assert rebuilt == run.pipeline
    later = run.now + timedelta(days=7)
    assert rebuilt.advance(now=later) == run.pipeline.advance(now=later)
    assert rebuilt.retry(2, now=later).starts == (StartAction(2, "Build", "Build", "build", 2, "b2", 2),)
