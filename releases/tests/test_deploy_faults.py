"""Deployments when things go wrong, with real rq worker processes on the real Redis: a worker killed mid-deployment,
Redis emptied with deployments queued, a stop asked for mid-deployment, a worker told to stop mid-deployment.

Each starts from v1 deployed to the environment, so that a rollback has somewhere to go back to (or, when none must
happen, would have)."""

import signal

import pytest

from portal import jobs, pytest_plugin
from releases import deploy_job, deployments, logs
from releases.local_target import LocalTarget
from releases.models import Deployment, DeploymentTarget
from releases.storage import artifact_storage
from releases.tests.deploying import release_files, set_targets, statuses
from reviews.tests.test_job_faults import kill_worker, wait_for

from .conftest import processes_of

pytestmark = pytest.mark.usefixtures("transactional_db")

# v2's BeforeInstall says it started, then sleeps: long enough to be killed in, or a moment for a batch under way.
STARTED = "sleeping in BeforeInstall"


def sleeping(seconds: int) -> dict:
    return {"BeforeInstall": f'echo "{STARTED}"; sleep {seconds}'}


def log_text(owner) -> str:
    return logs.read_all(owner).decode()


def version_on(repo, environment: str, name: str) -> str:
    return (LocalTarget(repo.pk, environment, name).current / "root/srv/app/version.txt").read_text()


@pytest.fixture
def deployed_v1(private_repo, alice, bob, built, run_deploys):
    """dev with targets a, b and c, one at a time, with v1 deployed to all; returns (dev, v1's deployment)."""
    dev = set_targets(private_repo, "dev", ["a", "b", "c"], alice, deployment_config={"name": "OneAtATime"})
    build = built(private_repo, bob, release_files("v1"))
    first = deployments.request_deployment(private_repo, dev, actor=bob, sha=build.head_sha)
    run_deploys()
    first.refresh_from_db()
    assert first.deployment_status == Deployment.Status.SUCCEEDED, first.message
    return dev, first


def lived(environment) -> dict[str, tuple]:
    """Each target's revision, health and last deployment, as the environment's page shows them."""
    return {
        row["target"].name: (row["revision"], row["health"], row["last_deployment"])
        for row in deployments.environment_state(environment)
    }


def stored_log(owner) -> bytes:
    with artifact_storage().open(logs.stored_name(owner), "rb") as stored:
        return stored.read()


def running_target(deployment: Deployment) -> DeploymentTarget | None:
    return deployment.targets.filter(status=DeploymentTarget.Status.IN_PROGRESS).first()


def wait_until_started(deployment: Deployment) -> DeploymentTarget:
    """The target whose hook has printed STARTED (seen through its live log, as a viewer sees it)."""
    found = []

    def started() -> bool:
        deployment.refresh_from_db()
        run = running_target(deployment)
        if run is not None and STARTED in log_text(run):
            found.append(run)
        return bool(found) or deployment.is_ended

    wait_for(started, timeout=30)
    assert found, f"{deployment.deployment_status}: {deployment.message}\n{log_text(deployment)}"
    return found[0]


def test_a_worker_killed_mid_deployment_ends_it_failed_by_heartbeat_and_rolls_back(
    private_repo, bob, deployed_v1, built, deploy_worker_env, rq_workers, rq_queues, run_deploys, settings
):
    dev, first = deployed_v1
    # Only b's hook sleeps: a file in b's live root, which each new revision's root starts as a copy of. a goes
    # first (batch 1) and succeeds, the worker is killed in b's batch, c never starts.
    (LocalTarget(private_repo.pk, "dev", "b").current / "root/slow").write_text("")
    slow_on_b = {"BeforeInstall": f'if [ -e "$PORTAL_TARGET_ROOT/slow" ]; then echo "{STARTED}"; sleep 300; fi'}
    build = built(private_repo, bob, release_files("v2", fail=slow_on_b))
    deployment = deployments.request_deployment(private_repo, dev, actor=bob, sha=build.head_sha)
    worker = rq_workers(deploy_worker_env, "deploys")
    try:
        run = wait_until_started(deployment)
        assert (run.name, run.batch) == ("b", 2)
        deployment.refresh_from_db()
        assert (deployment.state, deployment.deployment_status) == (Deployment.State.RUNNING, "InProgress")
        uid = deploy_job.target_uid(run.target)
        # The hook sleeps in its sandbox, as the target's own uid.
        assert processes_of(uid)
    finally:
        deployment.refresh_from_db()
        kill_worker(worker, deployment)
    # The sandbox dies with the process that started it.
    wait_for(lambda: processes_of(uid) == [], timeout=10)

    settings.PORTAL_JOB_HEARTBEAT_LIMIT = 3
    # Within the limit the reconciler cannot tell a lost worker from a slow one: it leaves the run alone.
    assert jobs.reconcile()["failed"] == 0
    wait_for(lambda: jobs.reconcile()["failed"] == 1, timeout=15)

    deployment.refresh_from_db()
    assert (deployment.state, deployment.deployment_status) == (Deployment.State.FAILED, "Failed")
    assert "stopped sending heartbeats" in deployment.message
    assert statuses(deployment) == ["queued", "in_progress", "failure"]
    runs = {target.name: target for target in deployment.targets.all()}
    assert {name: target.status for name, target in runs.items()} == {
        "a": "Succeeded",
        "b": "Failed",
        "c": "Skipped",
    }
    assert "stopped sending heartbeats" in runs["b"].message
    # What the killed hook printed is kept, as the log of an ended target, and read from the store.
    assert STARTED in log_text(runs["b"])
    assert logs.read_all(runs["b"]) == stored_log(runs["b"])
    assert runs["b"].log_size == len(logs.read_all(runs["b"]))
    assert "Batch 2: b" in log_text(deployment)
    assert deployment.log_size == len(stored_log(deployment))
    # CodeDeploy's bookkeeping as far as it got: a runs v2 (its `current` moved), b was cut off and is unhealthy,
    # c is as it was.
    assert version_on(private_repo, "dev", "a") == "v2\n"
    assert lived(dev) == {
        "a": (deployment, "healthy", deployment),
        "b": (first, "unhealthy", deployment),
        "c": (first, "healthy", first),
    }

    # The portal rolled back by itself: a new deployment of v1's artifact, which a new worker runs.
    rollback = Deployment.objects.get(rollback_of=deployment)
    assert (rollback.automatic, rollback.artifact_id, rollback.creator) == (True, first.artifact_id, None)
    assert rollback.deployment_status == Deployment.Status.QUEUED
    run_deploys()
    rollback.refresh_from_db()
    assert rollback.deployment_status == Deployment.Status.SUCCEEDED, rollback.message
    for name in ("a", "b", "c"):
        assert version_on(private_repo, "dev", name) == "v1\n"
        assert LocalTarget(private_repo.pk, "dev", name).current_revision() == str(rollback.pk)
    # The failed deployment is not run again behind anyone's back.
    deployment.refresh_from_db()
    assert (deployment.attempts, deployment.deployment_status) == (1, "Failed")


def test_deployments_queued_when_redis_is_emptied_are_enqueued_again_and_each_runs_once_in_order(
    private_repo, alice, bob, built, deploy_worker_env, rq_workers, rq_queues, settings
):
    settings.PORTAL_JOB_ENQUEUE_GRACE = 0
    v1 = built(private_repo, bob, release_files("v1"))
    v2 = built(private_repo, bob, release_files("v2"))
    dev, uat = (set_targets(private_repo, name, ["a"], alice) for name in ("dev", "uat"))
    # Two deployments to dev, v1 then v2 (v2 must end up live), and one to uat.
    queued = [
        deployments.request_deployment(private_repo, environment, actor=bob, sha=build.head_sha)
        for environment, build in ((dev, v1), (uat, v1), (dev, v2))
    ]
    queue = rq_queues["deploys"]
    assert queue.count == 3

    # Redis loses everything it held (see test_build_faults.py); the database still says three are queued.
    if pytest_plugin._valkey is not None:
        queue.connection.flushall()
    else:
        queue.connection.flushdb()
    assert queue.count == 0

    assert jobs.reconcile()["enqueued"] == 3
    assert queue.count == 3
    worker = rq_workers(deploy_worker_env, "deploys")
    assert worker.wait(timeout=120) == 0

    for deployment in queued:
        deployment.refresh_from_db()
        assert (deployment.deployment_status, deployment.state, deployment.attempts) == ("Succeeded", "done", 1)
        assert statuses(deployment)[:3] == ["queued", "in_progress", "success"]
        assert log_text(deployment).count("Batch 1: a") == 1
        (run,) = deployment.targets.all()
        assert log_text(run).count("BeforeInstall of") == 1
    # They ran in the order they were asked for: dev ends on v2, and v1's deployment there was replaced by it.
    assert [d.pk for d in sorted(queued, key=lambda d: d.deploy_started)] == [d.pk for d in queued]
    assert (version_on(private_repo, "dev", "a"), version_on(private_repo, "uat", "a")) == ("v2\n", "v1\n")
    assert deployments.last_success(dev) == queued[2]
    assert statuses(queued[0])[-1] == "inactive"
    # Nothing is left to enqueue.
    assert jobs.reconcile()["enqueued"] == 0
    assert queue.count == 0


def test_a_stop_asked_for_mid_deployment_skips_the_later_batches_and_does_not_roll_back(
    private_repo, bob, deployed_v1, built, deploy_worker_env, rq_workers
):
    dev, first = deployed_v1
    build = built(private_repo, bob, release_files("v2", fail=sleeping(2)))
    deployment = deployments.request_deployment(private_repo, dev, actor=bob, sha=build.head_sha)
    worker = rq_workers(deploy_worker_env, "deploys")
    run = wait_until_started(deployment)

    deployments.stop(deployment, actor=bob)
    assert worker.wait(timeout=60) == 0

    deployment.refresh_from_db()
    assert deployment.deployment_status == Deployment.Status.STOPPED
    assert deployment.message.startswith("Stopped by a person")
    assert statuses(deployment) == ["queued", "in_progress", "error"]
    runs = {target.name: target for target in deployment.targets.all()}
    # The batch under way finished; the later ones never started.
    assert (runs[run.name].batch, runs[run.name].status) == (1, "Succeeded")
    assert sorted(target.status for target in runs.values()) == ["Skipped", "Skipped", "Succeeded"]
    assert all(target.batch is None for name, target in runs.items() if name != run.name)
    assert not Deployment.objects.filter(rollback_of=deployment).exists()
    for name in ("a", "b", "c"):
        assert version_on(private_repo, "dev", name) == ("v2\n" if name == run.name else "v1\n")
    assert lived(dev) == {
        name: (deployment, "healthy", deployment) if name == run.name else (first, "healthy", first)
        for name in ("a", "b", "c")
    }


def test_a_worker_told_to_stop_finishes_the_batch_ends_failed_and_rolls_back(
    private_repo, bob, deployed_v1, built, deploy_worker_env, rq_workers, run_deploys
):
    dev, first = deployed_v1
    build = built(private_repo, bob, release_files("v2", fail=sleeping(2)))
    deployment = deployments.request_deployment(private_repo, dev, actor=bob, sha=build.head_sha)
    worker = rq_workers(deploy_worker_env, "deploys")
    run = wait_until_started(deployment)

    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=60) == 0

    deployment.refresh_from_db()
    assert (deployment.state, deployment.deployment_status) == (Deployment.State.DONE, "Failed")
    assert deployment.message == deploy_job.WORKER_STOPPED
    assert deploy_job.WORKER_STOPPED in log_text(deployment)
    runs = {target.name: target for target in deployment.targets.all()}
    assert (runs[run.name].batch, runs[run.name].status) == (1, "Succeeded")
    assert sorted(target.status for target in runs.values()) == ["Skipped", "Skipped", "Succeeded"]

    assert version_on(private_repo, "dev", run.name) == "v2\n"
    assert lived(dev) == {
        name: (deployment, "healthy", deployment) if name == run.name else (first, "healthy", first)
        for name in ("a", "b", "c")
    }
    rollback = Deployment.objects.get(rollback_of=deployment)
    assert (rollback.automatic, rollback.artifact_id) == (True, first.artifact_id)
    run_deploys()
    rollback.refresh_from_db()
    assert rollback.deployment_status == Deployment.Status.SUCCEEDED, rollback.message
    for name in ("a", "b", "c"):
        assert version_on(private_repo, "dev", name) == "v1\n"
