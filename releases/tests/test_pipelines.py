"""Pipelines end to end: pushes through the real push service, real builds and deployments on real rq workers,
local targets, approvals answered by the environment's reviewers."""

import hashlib
import hmac
import json
from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from portal.models import AuditEvent
from releases import pipelines
from releases.models import (
    Build,
    Deployment,
    Pipeline,
    PipelineActionRun,
    PipelineApproval,
    PipelineExecution,
)
from releases.tests.deploying import deployed_version, latest, release, release_files, set_targets
from releases.tests.test_builds import push_files
from repos import git

pytestmark = pytest.mark.usefixtures("transactional_db")


def actions(execution: PipelineExecution) -> list[tuple[str, str, int, str]]:
    return list(execution.action_runs.order_by("started", "id").values_list("stage", "action", "attempt", "status"))


def stage_status(execution: PipelineExecution, stage: str) -> str | None:
    state = pipelines.rules_of(execution.pipeline)
    return state.execution(execution.number).stage_status(stage)


def test_a_push_builds_once_deploys_to_dev_and_waits_at_the_approval(private_repo, bob, environments_of_release, drive):
    sha = push_files(private_repo, bob, "main", release_files("v1"))
    execution = latest(private_repo)
    assert (execution.number, execution.source_sha, execution.trigger) == (1, sha, "push")
    assert execution.requester == bob
    assert actions(execution) == [("Source", "Source", 1, "Succeeded"), ("Build", "Build", 1, "InProgress")]

    drive()

    execution.refresh_from_db()
    assert execution.status == "InProgress"
    assert actions(execution) == [
        ("Source", "Source", 1, "Succeeded"),
        ("Build", "Build", 1, "Succeeded"),
        ("Deploy-dev", "Deploy", 1, "Succeeded"),
        ("Approval", "Approve", 1, "InProgress"),
    ]
    assert stage_status(execution, "Approval") == "InProgress"
    # One build of the commit: the push's own, which the pipeline followed.
    build = Build.objects.get(repository=private_repo, head_sha=sha)
    assert execution.build == build and execution.artifact.build == build
    assert execution.artifact_sha256 == execution.artifact.sha256
    dev_run = execution.action_runs.get(stage="Deploy-dev")
    assert dev_run.deployment.deployment_status == "Succeeded"
    assert dev_run.deployment.pipeline_action == dev_run
    assert dev_run.deployment.artifact == execution.artifact
    assert deployed_version(private_repo, "dev") == "v1"
    approval = execution.approvals.get()
    assert (approval.stage, approval.action, approval.environment_name, approval.status) == (
        "Approval",
        "Approve",
        "uat",
        "Pending",
    )
    assert approval.deadline - approval.created > timedelta(days=6, hours=23)
    assert not Deployment.objects.filter(environment__name="uat").exists()


def test_a_reviewer_other_than_the_pusher_approves_and_uat_gets_the_same_bytes(
    private_repo, alice, bob, carol, environments_of_release, drive
):
    push_files(private_repo, bob, "main", release_files("v1"))
    drive()
    execution = latest(private_repo)

    # bob pushed (and is no reviewer of uat), carol only reads: neither answers.
    for outsider in (bob, carol):
        with pytest.raises(PermissionDenied):
            pipelines.answer_approval(
                execution, "Approval", "Approve", user=outsider, status="Approved", summary="mine"
            )
    approval = pipelines.answer_approval(
        execution, "Approval", "Approve", user=alice, status="Approved", summary="Release notes checked."
    )
    assert approval.status == "Approved"
    drive()

    execution.refresh_from_db()
    assert execution.status == "Succeeded", execution.reason
    dev = execution.action_runs.get(stage="Deploy-dev").deployment
    uat = execution.action_runs.get(stage="Deploy-uat").deployment
    # The approval was uat's review: its deployment did not wait for another one.
    assert uat.deployment_status == "Succeeded" and not uat.reviews.exists()
    assert uat.artifact == dev.artifact and uat.artifact.sha256 == execution.artifact_sha256
    assert deployed_version(private_repo, "uat") == "v1"
    answer = approval.answers.get()
    assert (answer.user, answer.status, answer.summary) == (alice, "Approved", "Release notes checked.")
    assert AuditEvent.objects.filter(action="pipeline.approval_approved", actor=alice).exists()
    # Answered once, the approval takes no more answers.
    with pytest.raises(ValidationError):
        pipelines.answer_approval(execution, "Approval", "Approve", user=alice, status="Rejected")


def test_a_rejection_ends_the_execution_failed(private_repo, alice, bob, environments_of_release, drive):
    push_files(private_repo, bob, "main", release_files("v1"))
    drive()
    execution = latest(private_repo)

    pipelines.answer_approval(execution, "Approval", "Approve", user=alice, status="Rejected", summary="Not yet.")
    drive()

    execution.refresh_from_db()
    assert execution.status == "Failed"
    assert "Rejected by alice: Not yet." in execution.reason
    assert execution.approvals.get().status == "Rejected"
    assert ("Approval", "Approve", 1, "Failed") in actions(execution)
    assert not Deployment.objects.filter(environment__name="uat").exists()
    assert AuditEvent.objects.filter(action="pipeline.approval_rejected", actor=alice).exists()


def test_two_of_three_reviewers_approve_and_the_pushers_own_never_counts(private_repo, alice, bob, carol, drive):
    set_targets(private_repo, "dev", ["a"], alice)
    reviewers = [{"type": "User", "id": person.pk} for person in (alice, bob, carol)]
    # Even where the environment lets a requester review their own deployment, a pipeline's requester never counts.
    set_targets(private_repo, "uat", ["a"], alice, required_approvals=2, reviewers=reviewers, prevent_self_review=False)
    push_files(private_repo, bob, "main", release_files("v1"))
    drive()
    execution = latest(private_repo)

    with pytest.raises(PermissionDenied):
        pipelines.answer_approval(execution, "Approval", "Approve", user=bob, status="Approved")
    approval = pipelines.answer_approval(execution, "Approval", "Approve", user=alice, status="Approved")
    assert approval.status == "Pending"
    assert pipelines.approvals_missing(approval).startswith("1 more approval needed")
    drive()
    assert not Deployment.objects.filter(environment__name="uat").exists()

    approval = pipelines.answer_approval(execution, "Approval", "Approve", user=carol, status="Approved", summary="ok")
    assert approval.status == "Approved"
    drive()
    execution.refresh_from_db()
    assert execution.status == "Succeeded", execution.reason
    assert list(approval.answers.values_list("user__username", "status")) == [
        ("alice", "Approved"),
        ("carol", "Approved"),
    ]


def test_a_merged_pull_request_starts_an_execution_its_merger_requested(private_repo, alice, bob, drive):
    from reviews import services as review_services

    set_targets(private_repo, "dev", ["a"], alice)
    set_targets(
        private_repo,
        "uat",
        ["a"],
        alice,
        required_approvals=1,
        reviewers=[{"type": "User", "id": alice.pk}, {"type": "User", "id": bob.pk}],
    )
    git.update_ref(private_repo.path, "refs/heads/feature", git.branch_sha(private_repo.path, "main"), git.ZERO_SHA)
    push_files(private_repo, bob, "feature", release_files("v1"))
    assert not Pipeline.objects.exists()
    pr = review_services.open_pull_request(private_repo, actor=bob, title="Release v1", base="main", head="feature")
    review_services.merge_pull_request(pr, actor=alice, strategy="merge", head_sha=pr.head_sha)
    pr.refresh_from_db()

    execution = latest(private_repo)
    assert (execution.source_sha, execution.requester, execution.trigger) == (pr.merge_commit_sha, alice, "push")
    drive()
    # alice merged: her approval does not count, bob's (who opened the pull request) does.
    with pytest.raises(PermissionDenied):
        pipelines.answer_approval(execution, "Approval", "Approve", user=alice, status="Approved")
    pipelines.answer_approval(execution, "Approval", "Approve", user=bob, status="Approved")
    drive()
    execution.refresh_from_db()
    assert execution.status == "Succeeded", execution.reason
    assert deployed_version(private_repo, "uat") == "v1"


def test_a_disabled_transition_holds_the_latest_execution_and_newer_ones_supersede_it(
    private_repo, alice, bob, environments_of_release, drive
):
    push_files(private_repo, bob, "main", release_files("v1"))
    pipeline = release(private_repo)
    with pytest.raises(PermissionDenied):
        pipelines.set_transition(pipeline, "Deploy-dev", actor=_person("carol"), enabled=False)
    pipelines.set_transition(pipeline, "Deploy-dev", actor=alice, enabled=False, reason="dev is being rebuilt")
    drive()
    push_files(private_repo, bob, "main", release_files("v2"))
    drive()

    one, two = pipeline.executions.order_by("number")
    state = pipelines.rules_of(release(private_repo))
    assert state.execution(2).waiting_for == "Deploy-dev"
    one.refresh_from_db()
    assert one.status == "Superseded" and "in front of Deploy-dev" in one.reason
    assert not Deployment.objects.exists()

    pipelines.set_transition(pipeline, "Deploy-dev", actor=alice, enabled=True)
    drive()
    two.refresh_from_db()
    assert stage_status(two, "Approval") == "InProgress"
    assert deployed_version(private_repo, "dev") == "v2"
    assert AuditEvent.objects.filter(action="pipeline.disable_transition", actor=alice).exists()


def test_redis_emptied_mid_pipeline_loses_no_execution(
    private_repo, bob, environments_of_release, drive, run_builds, rq_queues
):
    from portal import jobs

    push_files(private_repo, bob, "main", release_files("v1"))
    rq_queues["default"].connection.flushdb()
    drive()
    execution = latest(private_repo)
    assert actions(execution)[-1] == ("Build", "Build", 1, "InProgress")

    # The reconciler puts back the build Redis lost; the build's end moves the execution to dev, whose deployment
    # Redis loses too.
    jobs.reconcile(now=timezone.now() + timedelta(minutes=5))
    run_builds()
    assert execution.action_runs.get(stage="Deploy-dev").deployment.deployment_status == "Queued"
    rq_queues["default"].connection.flushdb()
    jobs.reconcile(now=timezone.now() + timedelta(minutes=5))
    drive()

    execution.refresh_from_db()
    assert stage_status(execution, "Approval") == "InProgress"
    assert deployed_version(private_repo, "dev") == "v1"


def _person(username: str):
    from portal.models import User

    return User.objects.get(username=username)


def test_three_quick_pushes_supersede_the_middle_one(private_repo, bob, environments_of_release, drive):
    first = push_files(private_repo, bob, "main", release_files("v1"))
    push_files(private_repo, bob, "main", release_files("v2"))
    third = push_files(private_repo, bob, "main", release_files("v3"))
    one, two, three = release(private_repo).executions.order_by("number")
    two.refresh_from_db()
    assert two.status == "Superseded"
    assert "Superseded by execution 3 in front of Build" in two.reason
    assert actions(two) == [("Source", "Source", 1, "Succeeded")]

    drive()

    one.refresh_from_db()
    three.refresh_from_db()
    assert one.status == "InProgress" and stage_status(one, "Approval") == "InProgress"
    assert three.status == "InProgress" and three.action_runs.get(stage="Deploy-dev").status == "Succeeded"
    # The third waits in front of the approval, which holds the first: never two executions in a stage.
    state = pipelines.rules_of(release(private_repo))
    assert state.execution(3).waiting_for == "Approval"
    assert state.holder("Approval").id == 1
    # One build per commit the pipeline ran; the dev target runs the newest.
    assert Build.objects.filter(repository=private_repo, head_sha=first).count() == 1
    assert Build.objects.filter(repository=private_repo, head_sha=third).count() == 1
    assert one.build.build_status == three.build.build_status == "SUCCEEDED"
    assert deployed_version(private_repo, "dev") == "v3"


def test_a_bad_pipeline_yml_is_recorded_with_its_line_and_key_and_starts_nothing(
    private_repo, bob, environments_of_release, drive
):
    bad = (
        "version: 1\n"
        "name: release\n"
        "source:\n"
        "  branch: main\n"
        "stages:\n"
        "  - name: Build\n"
        "    actions:\n"
        "      - name: Build\n"
        "        type: biuld\n"
    )
    sha = push_files(private_repo, bob, "main", release_files("v1") | {"pipeline.yml": bad.encode()})

    pipeline = release(private_repo)
    assert (pipeline.error_sha, pipeline.error_line, pipeline.error_key) == (sha, 9, "stages[0].actions[0].type")
    assert "pipeline.yml, line 9" in pipeline.error and "'biuld'" in pipeline.error
    assert not pipeline.executions.exists()
    assert AuditEvent.objects.filter(action="pipeline.refused", target_id=str(pipeline.pk)).exists()

    # A good file on the next push clears the error and runs.
    good = bad.replace("biuld", "build")
    push_files(private_repo, bob, "main", {"pipeline.yml": good.encode()})
    pipeline.refresh_from_db()
    assert pipeline.error == "" and pipeline.from_file and pipeline.version == 1
    assert pipeline.executions.count() == 1


def test_a_changed_pipeline_yml_is_a_new_version(private_repo, bob, environments_of_release, drive):
    push_files(private_repo, bob, "main", release_files("v1"))
    pipeline = release(private_repo)
    assert (pipeline.version, pipeline.from_file) == (1, False)
    custom = (
        "version: 1\nname: release\nsource:\n  branch: main\nstages:\n"
        "  - name: Build\n    actions:\n      - {name: Build, type: build}\n"
        "  - name: Deploy-dev\n    actions:\n      - {name: Deploy, type: deploy, environment: dev}\n"
    )
    push_files(private_repo, bob, "main", {"pipeline.yml": custom.encode()})
    pipeline.refresh_from_db()
    assert (pipeline.version, pipeline.from_file) == (2, True)
    one, two = pipeline.executions.order_by("number")
    one.refresh_from_db()
    # The first execution was waiting in front of a stage of the old structure: it stops.
    assert one.status in ("Stopping", "Stopped") and "structure changed" in one.reason
    drive()
    two.refresh_from_db()
    assert two.status == "Succeeded", two.reason
    assert [run[0] for run in actions(two)] == ["Source", "Build", "Deploy-dev"]


QA_PIPELINE = (
    "version: 1\nname: release\nsource:\n  branch: main\nstages:\n"
    "  - name: Build\n    actions:\n      - {name: Build, type: build}\n"
    "  - name: Deploy-qa\n    actions:\n      - {name: Deploy, type: deploy, environment: qa}\n"
)


def test_a_failed_deploy_stage_is_retried(private_repo, alice, bob, carol, drive):
    # No environment qa yet: the deploy action fails, saying why.
    files = release_files("v1") | {"pipeline.yml": QA_PIPELINE.encode()}
    push_files(private_repo, bob, "main", files)
    drive()
    execution = latest(private_repo)
    assert execution.status == "Failed"
    assert "There is no environment named qa to deploy to." in execution.reason

    with pytest.raises(PermissionDenied):
        pipelines.retry(execution, actor=carol)
    set_targets(private_repo, "qa", ["a"], alice)
    pipelines.retry(execution, actor=bob)
    drive()

    execution.refresh_from_db()
    assert execution.status == "Succeeded", execution.reason
    assert actions(execution) == [
        ("Source", "Source", 1, "Succeeded"),
        ("Build", "Build", 1, "Succeeded"),
        ("Deploy-qa", "Deploy", 1, "Failed"),
        ("Deploy-qa", "Deploy", 2, "Succeeded"),
    ]
    assert deployed_version(private_repo, "qa") == "v1"
    assert AuditEvent.objects.filter(action="pipeline.retry", actor=bob).exists()
    # Once succeeded, there is nothing left to retry.
    with pytest.raises(ValidationError):
        pipelines.retry(execution, actor=bob)


def test_without_pipeline_yml_a_repository_runs_the_default_pipeline_once_it_has_dev_and_uat(
    private_repo, alice, bob, drive
):
    set_targets(private_repo, "dev", ["a"], alice)
    push_files(private_repo, bob, "main", release_files("v1"))
    assert not Pipeline.objects.exists()
    set_targets(private_repo, "uat", ["a"], alice)
    # A push to another branch is not the default pipeline's.
    push_files(private_repo, bob, "feature", release_files("v2"))
    assert not Pipeline.objects.exists()
    push_files(private_repo, bob, "main", release_files("v3"))
    pipeline = release(private_repo)
    assert (pipeline.source_branch, pipeline.from_file, pipeline.version) == ("main", False, 1)
    assert pipeline.executions.count() == 1


def test_stop_and_abandon_ends_it_at_once_and_the_build_no_longer_counts(
    private_repo, bob, environments_of_release, drive
):
    push_files(private_repo, bob, "main", release_files("v1"))
    execution = latest(private_repo)

    pipelines.stop(execution, actor=bob, mode="abandon")
    execution.refresh_from_db()
    assert execution.status == "Stopped"
    assert actions(execution)[-1] == ("Build", "Build", 1, "Abandoned")

    drive()
    execution.refresh_from_db()
    assert execution.status == "Stopped"
    assert not Deployment.objects.exists()
    with pytest.raises(ValidationError):
        pipelines.stop(execution, actor=bob, mode="abandon")


def test_stop_and_wait_lets_the_build_finish_then_retry_goes_on(private_repo, bob, environments_of_release, drive):
    push_files(private_repo, bob, "main", release_files("v1"))
    execution = latest(private_repo)

    pipelines.stop(execution, actor=bob, mode="wait")
    execution.refresh_from_db()
    assert execution.status == "Stopping"
    drive()
    execution.refresh_from_db()
    assert execution.status == "Stopped"
    assert ("Build", "Build", 1, "Succeeded") in actions(execution)
    assert not Deployment.objects.exists()

    pipelines.retry(execution, actor=bob)
    drive()
    execution.refresh_from_db()
    assert execution.status == "InProgress" and stage_status(execution, "Approval") == "InProgress"
    assert deployed_version(private_repo, "dev") == "v1"


def test_an_approval_nobody_answers_times_out(private_repo, bob, environments_of_release, drive):
    push_files(private_repo, bob, "main", release_files("v1"))
    drive()
    execution = latest(private_repo)

    assert pipelines.sweep()["advanced"] == 1
    assert execution.approvals.get().status == "Pending"
    pipelines.sweep(now=timezone.now() + timedelta(days=7, minutes=1))

    execution.refresh_from_db()
    assert execution.status == "Failed" and "timed out" in execution.reason
    assert execution.approvals.get().status == "TimedOut"
    assert execution.action_runs.get(stage="Approval").status == PipelineActionRun.Status.FAILED
    assert PipelineApproval.objects.filter(status="Pending").count() == 0


def test_a_stage_rolls_back_to_an_earlier_execution_artifact(private_repo, alice, bob, drive):
    set_targets(private_repo, "dev", ["a"], alice)
    set_targets(private_repo, "uat", ["a"], alice)
    push_files(private_repo, bob, "main", release_files("v1"))
    drive()
    first = latest(private_repo)
    pipelines.answer_approval(first, "Approval", "Approve", user=alice, status="Approved")
    drive()
    push_files(private_repo, bob, "main", release_files("v2"))
    drive()
    assert deployed_version(private_repo, "dev") == "v2"

    rollback = pipelines.rollback_stage(release(private_repo), "Deploy-dev", first, actor=alice)
    drive()

    rollback.refresh_from_db()
    assert (rollback.trigger, rollback.rollback_of, rollback.requester) == ("rollback", first, alice)
    assert rollback.status == "Succeeded", rollback.reason
    assert rollback.artifact == first.artifact
    assert deployed_version(private_repo, "dev") == "v1"


# The first build sleeps long enough to have its worker killed; a later build of the same commit goes straight
# through.
SLEEPS_FIRST = """version: 0.2
phases:
  build:
    commands:
      - echo "started build $CODEBUILD_BUILD_NUMBER"
      - if [ "$CODEBUILD_BUILD_NUMBER" = 1 ]; then sleep 300; fi
artifacts:
  files:
    - '**/*'
"""


def test_a_worker_killed_during_the_build_stage_fails_it_and_a_retry_builds_again(
    private_repo,
    bob,
    environments_of_release,
    drive,
    worker_env,
    rq_workers,
    settings,
):
    from portal import jobs
    from releases.tests.test_build_faults import log_shows
    from reviews.tests.test_job_faults import kill_worker, wait_for

    files = release_files("v1") | {"buildspec.yml": SLEEPS_FIRST.encode()}
    push_files(private_repo, bob, "main", files)
    execution = latest(private_repo)
    build = execution.action_runs.get(stage="Build").build
    worker = rq_workers(worker_env, "builds")
    try:
        wait_for(lambda: log_shows(build, "started build 1"))
    finally:
        build.refresh_from_db()
        kill_worker(worker, build)
    settings.PORTAL_JOB_HEARTBEAT_LIMIT = 2
    wait_for(lambda: jobs.reconcile()["failed"] == 1, timeout=20)

    execution.refresh_from_db()
    assert execution.status == "Failed"
    assert f"Build #{build.number} fault" in execution.reason and "stopped sending heartbeats" in execution.reason

    pipelines.retry(execution, actor=bob)
    drive()
    execution.refresh_from_db()
    # The retry built the commit again (the faulted build is not followed), and the execution went on.
    assert execution.build.number == 2 and execution.build.build_status == "SUCCEEDED"
    assert stage_status(execution, "Approval") == "InProgress"
    assert deployed_version(private_repo, "dev") == "v1"


def test_in_queued_mode_waiting_executions_run_first_in_first_out(private_repo, alice, bob, drive):
    queued = QA_PIPELINE.replace("name: release\n", "name: release\nexecution_mode: QUEUED\n")
    files = {"pipeline.yml": queued.encode()}
    set_targets(private_repo, "qa", ["a"], alice)
    shas = [push_files(private_repo, bob, "main", release_files(version) | files) for version in ("v1", "v2", "v3")]
    drive()

    statuses = list(release(private_repo).executions.order_by("number").values_list("number", "status"))
    assert statuses == [(1, "Succeeded"), (2, "Succeeded"), (3, "Succeeded")]
    deploys = Deployment.objects.filter(environment__name="qa").order_by("pk")
    assert [deployment.pipeline_action.execution.number for deployment in deploys] == [1, 2, 3]
    assert deployed_version(private_repo, "qa") == "v3"
    # The second push's build was superseded by the third's while both waited; the build the pipeline then
    # started for the second commit left the third's queued build alone, which the third execution followed.
    assert [Build.objects.filter(head_sha=sha).count() for sha in shas] == [1, 2, 1]
    assert [deployment.artifact.build.head_sha for deployment in deploys] == shas


def test_a_writer_starts_an_execution_by_hand_and_a_reader_cannot(
    private_repo, alice, bob, carol, environments_of_release, drive
):
    sha = push_files(private_repo, bob, "main", release_files("v1"))
    pipelines.stop(latest(private_repo), actor=bob, mode="abandon")
    with pytest.raises(PermissionDenied):
        pipelines.start_execution(private_repo, "release", sha, requester=carol, trigger="manual")

    execution = pipelines.start_execution(private_repo, "release", sha, requester=alice, trigger="manual")
    drive()

    execution.refresh_from_db()
    assert (execution.number, execution.trigger, execution.requester) == (2, "manual", alice)
    assert stage_status(execution, "Approval") == "InProgress"
    # The commit's build was built once, by the push, and followed by both executions.
    assert Build.objects.filter(repository=private_repo, head_sha=sha).count() == 1
    assert AuditEvent.objects.filter(action="pipeline.execution_start", actor=alice).exists()


def invoking(url: str) -> bytes:
    return (
        QA_PIPELINE
        + f"  - name: Notify\n    actions:\n      - {{name: Chat, type: invoke, url: '{url}', secret: CHAT_HOOK}}\n"
    ).encode()


@pytest.fixture
def chat_secret(private_repo, alice, settings):
    """The secret CHAT_HOOK, given to builds of main (and so to its pipeline's calls); receivers on loopback."""
    from releases import services, variables

    settings.PORTAL_WEBHOOK_ALLOWED_HOSTS = "127.0.0.1"
    settings.PORTAL_JOB_RETRY_DELAY = 0
    services.save_build_settings(private_repo, actor=alice, secret_branches="main")
    variables.set_build_variable(actor=alice, name="CHAT_HOOK", value="s3cret", secret=True, repository=private_repo)
    set_targets(private_repo, "qa", ["a"], alice)
    return "s3cret"


def test_an_invoke_action_calls_its_webhook_signed_with_the_secret(
    private_repo, bob, chat_secret, receivers, drive, run_worker
):
    receiver = receivers()
    sha = push_files(private_repo, bob, "main", release_files("v1") | {"pipeline.yml": invoking(receiver.url)})
    drive()
    run_worker()

    execution = latest(private_repo)
    assert execution.status == "Succeeded", execution.reason
    [(headers, body)] = receiver.received
    digest = hmac.new(chat_secret.encode(), body, hashlib.sha256).hexdigest()
    assert headers["X-Hub-Signature-256"] == f"sha256={digest}"
    payload = json.loads(body)
    assert (payload["pipeline"], payload["execution"], payload["stage"], payload["action"]) == (
        "release",
        1,
        "Notify",
        "Chat",
    )
    assert payload["source_sha"] == sha and payload["artifact_digest"] == f"sha256:{execution.artifact_sha256}"
    invocation = execution.action_runs.get(stage="Notify").invocation
    assert (invocation.status_code, invocation.state, invocation.attempts) == (200, "done", 1)


def test_an_invoke_action_whose_receiver_keeps_failing_fails_after_three_tries_and_is_retried(
    private_repo, bob, chat_secret, receivers, drive, run_worker
):
    receiver = receivers(statuses=[500, 502, 500, 200])
    push_files(private_repo, bob, "main", release_files("v1") | {"pipeline.yml": invoking(receiver.url)})
    drive()
    run_worker()

    execution = latest(private_repo)
    assert execution.status == "Failed"
    assert "failed 3 times: the receiver answered 500" in execution.reason
    assert len(receiver.received) == 3

    # Retried, the stage calls again, as a new attempt of the action; this time the receiver answers.
    pipelines.retry(execution, actor=bob)
    run_worker()
    execution.refresh_from_db()
    assert execution.status == "Succeeded", execution.reason
    assert list(execution.action_runs.filter(stage="Notify").values_list("attempt", "status")) == [
        (1, "Failed"),
        (2, "Succeeded"),
    ]
    assert len(receiver.received) == 4


def test_an_invoke_action_refuses_a_missing_secret_and_a_private_address(
    private_repo, alice, bob, chat_secret, settings, drive, run_worker
):
    files = release_files("v1") | {"pipeline.yml": invoking("http://127.0.0.1:9/hook").replace(b"CHAT_HOOK", b"NONE")}
    push_files(private_repo, bob, "main", files)
    drive()
    run_worker()
    assert (
        latest(private_repo).reason
        == "Chat failed in Notify: There is no build secret named NONE to sign the call with."
    )

    settings.PORTAL_WEBHOOK_ALLOWED_HOSTS = ""
    push_files(private_repo, bob, "main", {"pipeline.yml": invoking("http://127.0.0.1:9/hook")})
    drive()
    run_worker()
    execution = latest(private_repo)
    assert execution.status == "Failed"
    assert "The call of http://127.0.0.1:9/hook was refused" in execution.reason
    # Refused, it is not tried again.
    assert execution.action_runs.get(stage="Notify").invocation.attempts == 1
