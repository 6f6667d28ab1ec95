"""Deployments end to end: a real build's artifact, a real rq worker on the deploys queue, local targets whose hooks
run in the sandbox, batches by CodeDeploy's arithmetic, statuses, bookkeeping and automatic rollback."""

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from portal.models import AuditEvent
from releases import deploy_job, deployments, logs, retention
from releases.local_target import LocalTarget
from releases.models import Build, Deployment
from releases.storage import artifact_storage
from releases.tests.deploying import release_files, set_targets, statuses

pytestmark = pytest.mark.usefixtures("transactional_db")


def test_a_successful_build_deploys_to_every_target_and_becomes_current(private_repo, alice, bob, built, run_deploys):
    build = built(private_repo, bob, release_files("v1"))
    dev = set_targets(private_repo, "dev", ["a", "b", "c"], alice, deployment_config={"name": "AllAtOnce"})
    deployment = deployments.request_deployment(private_repo, dev, actor=bob, sha=build.head_sha)
    assert deployment.deployment_status == Deployment.Status.QUEUED

    run_deploys()

    deployment.refresh_from_db()
    assert deployment.deployment_status == Deployment.Status.SUCCEEDED, deployment.message
    assert statuses(deployment) == ["queued", "in_progress", "success"]
    runs = list(deployment.targets.all())
    assert [(run.name, run.batch, run.status) for run in runs] == [
        ("a", 1, "Succeeded"),
        ("b", 1, "Succeeded"),
        ("c", 1, "Succeeded"),
    ]
    assert [event["event"] for event in runs[0].events][-1] == "ValidateService"
    for name in ("a", "b", "c"):
        place = LocalTarget(private_repo.pk, "dev", name)
        assert place.current_revision() == str(deployment.pk)
        assert (place.current / "root/srv/app/version.txt").read_text() == "v1\n"
    target = dev.targets.get(name="a")
    assert (target.health, target.revision_id, target.last_deployment_id) == ("healthy", deployment.pk, deployment.pk)


def test_each_target_runs_the_hooks_in_codedeploys_order_and_a_second_one_stops_the_first(
    private_repo, alice, bob, built, run_deploys
):
    dev = set_targets(private_repo, "dev", ["a", "b"], alice)
    first_build = built(private_repo, bob, release_files("v1"))
    first = deployments.request_deployment(private_repo, dev, actor=bob, sha=first_build.head_sha)
    run_deploys()
    second_build = built(private_repo, bob, release_files("v2"))
    second = deployments.request_deployment(private_repo, dev, actor=bob, sha=second_build.head_sha)
    run_deploys()
    first.refresh_from_db()
    second.refresh_from_db()
    assert second.deployment_status == "Succeeded" and second.previous == first
    hooks = ["ApplicationStop", "DownloadBundle", "BeforeInstall", "Install", "AfterInstall"]
    hooks += ["ApplicationStart", "ValidateService"]
    for run in second.targets.all():
        assert [event["event"] for event in run.events] == hooks
        log = logs.read_all(run).decode()
        # ApplicationStop is the previous revision's script; the rest are the new one's.
        assert f"ApplicationStop of {second.pk} on dev: v1" in log
        assert f"BeforeInstall of {second.pk} on dev: v2" in log
        assert log.index("==> ApplicationStop") < log.index("==> BeforeInstall") < log.index("==> ValidateService")
    first_run = first.targets.get(name="a")
    # A target's first deployment has no previous revision to stop.
    assert [event["event"] for event in first_run.events] == hooks[1:]
    # The first deployment's status went inactive when the second succeeded.
    assert statuses(first) == ["queued", "in_progress", "success", "inactive"]


def test_a_bad_appspec_fails_the_deployment_naming_file_line_and_key(private_repo, alice, bob, built, run_deploys):
    dev = set_targets(private_repo, "dev", ["a"], alice)
    bad = "version: 0.0\nos: linux\nhooks:\n  BeforeInstall:\n    - location: scripts/x.sh\n      timeout: soon\n"
    build = built(private_repo, bob, release_files("v1", spec=bad))
    deployment = deployments.request_deployment(private_repo, dev, actor=bob, sha=build.head_sha)
    run_deploys()
    deployment.refresh_from_db()
    assert deployment.deployment_status == "Failed"
    run = deployment.targets.get()
    assert "appspec.yml" in run.message and "line 6" in run.message and "timeout" in run.message
    assert LocalTarget(private_repo.pk, "dev", "a").current_revision() is None
    # Nothing was deployed before, so there is nothing to roll back to.
    assert not deployment.rollbacks.exists()


def test_a_failed_deployment_rolls_back_by_itself_to_the_last_good_artifact(
    private_repo, alice, bob, built, run_deploys
):
    dev = set_targets(private_repo, "dev", ["a", "b"], alice, deployment_config={"name": "AllAtOnce"})
    good = built(private_repo, bob, release_files("v1"))
    first = deployments.request_deployment(private_repo, dev, actor=bob, sha=good.head_sha)
    run_deploys()
    bad = built(private_repo, bob, release_files("v2", fail={"ValidateService": "exit 3"}))
    failed = deployments.request_deployment(private_repo, dev, actor=bob, sha=bad.head_sha)
    run_deploys()
    failed.refresh_from_db()
    assert failed.deployment_status == "Failed"
    rollback = failed.rollbacks.get()
    assert (rollback.automatic, rollback.creator, rollback.artifact) == (True, None, first.artifact)
    assert rollback.deployment_status == "Succeeded" and rollback.pk > failed.pk
    for name in ("a", "b"):
        place = LocalTarget(private_repo.pk, "dev", name)
        assert place.current_revision() == str(rollback.pk)
        assert (place.current / "root/srv/app/version.txt").read_text() == "v1\n"
    # A rollback that fails does not roll back again.
    assert not rollback.rollbacks.exists()
    assert set(dev.targets.values_list("revision_id", flat=True)) == {rollback.pk}


def test_a_deployment_is_rolled_back_by_hand_to_the_one_before(private_repo, alice, bob, carol, built, run_deploys):
    dev = set_targets(private_repo, "dev", ["a"], alice)
    for version in ("v1", "v2"):
        build = built(private_repo, bob, release_files(version))
        deployments.request_deployment(private_repo, dev, actor=bob, sha=build.head_sha)
        run_deploys()
    first, second = Deployment.objects.order_by("pk")
    with pytest.raises(PermissionDenied):
        deployments.roll_back(second, actor=carol)
    rollback = deployments.roll_back(second, actor=bob)
    run_deploys()
    rollback.refresh_from_db()
    assert (rollback.rollback_of, rollback.automatic, rollback.artifact) == (second, False, first.artifact)
    assert rollback.deployment_status == "Succeeded"
    current = LocalTarget(private_repo.pk, "dev", "a").current
    assert (current / "root/srv/app/version.txt").read_text() == "v1\n"
    # The first deployment has nothing before it.
    assert deployments.roll_back(first, actor=bob) is None


def test_required_reviewers_hold_a_deployment_and_the_requester_never_counts(
    private_repo, alice, bob, carol, built, run_deploys
):
    dev = set_targets(
        private_repo,
        "dev",
        ["a"],
        alice,
        required_approvals=1,
        reviewers=[{"type": "User", "id": alice.pk}, {"type": "User", "id": bob.pk}],
    )
    build = built(private_repo, bob, release_files("v1"))
    deployment = deployments.request_deployment(private_repo, dev, actor=bob, sha=build.head_sha)
    assert deployment.deployment_status == "Waiting" and "1 more approval" in deployment.message
    run_deploys()
    deployment.refresh_from_db()
    assert deployment.deployment_status == "Waiting" and not deployment.targets.exists()
    deployments.review(deployment, actor=bob, state="approved")
    deployment.refresh_from_db()
    assert deployment.deployment_status == "Waiting" and "own approval does not count" in deployment.message
    with pytest.raises(PermissionDenied):
        deployments.review(deployment, actor=carol, state="approved")
    deployments.review(deployment, actor=alice, state="approved", comment="ship it")
    run_deploys()
    deployment.refresh_from_db()
    assert deployment.deployment_status == "Succeeded", deployment.message
    assert statuses(deployment) == ["waiting", "waiting", "queued", "in_progress", "success"]
    assert AuditEvent.objects.filter(action="deployment.approved", target_id=str(deployment.pk)).exists()


def test_a_rejection_ends_the_deployment(private_repo, alice, bob, built, run_deploys):
    dev = set_targets(
        private_repo, "dev", ["a"], alice, required_approvals=1, reviewers=[{"type": "User", "id": alice.pk}]
    )
    build = built(private_repo, bob, release_files("v1"))
    deployment = deployments.request_deployment(private_repo, dev, actor=bob, sha=build.head_sha)
    deployments.review(deployment, actor=alice, state="rejected", comment="not today")
    run_deploys()
    deployment.refresh_from_db()
    assert deployment.deployment_status == "Failed"
    assert deployment.message == "Rejected by alice: not today"
    assert LocalTarget(private_repo.pk, "dev", "a").current_revision() is None


@pytest.mark.parametrize("hold", ["wait_timer", "freeze"])
def test_a_wait_timer_or_a_freeze_holds_a_deployment_until_an_admin_overrides_it(
    private_repo, alice, bob, built, run_deploys, hold
):
    now = timezone.now()
    options = (
        {"wait_timer": 30}
        if hold == "wait_timer"
        else {
            "freeze_windows": [
                {
                    "start": (now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"),
                    "end": (now + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"),
                    "timezone": "UTC",
                    "name": "release freeze",
                }
            ]
        }
    )
    dev = set_targets(private_repo, "dev", ["a"], alice, **options)
    build = built(private_repo, bob, release_files("v1"))
    deployment = deployments.request_deployment(private_repo, dev, actor=bob, sha=build.head_sha)
    assert deployment.deployment_status == "Waiting"
    assert ("30-minute timer" if hold == "wait_timer" else "frozen") in deployment.message
    run_deploys()
    deployment.refresh_from_db()
    assert deployment.deployment_status == "Waiting"
    with pytest.raises(PermissionDenied):
        deployments.override(deployment, actor=bob)
    deployments.override(deployment, actor=alice)
    run_deploys()
    deployment.refresh_from_db()
    assert deployment.deployment_status == "Succeeded" and deployment.override_by == alice
    assert AuditEvent.objects.filter(action="deployment.override", actor=alice).exists()


def test_only_writers_deploy_and_only_built_commits(private_repo, alice, bob, carol, built):
    dev = set_targets(private_repo, "dev", ["a"], alice)
    build = built(private_repo, bob, release_files("v1"))
    with pytest.raises(PermissionDenied):
        deployments.request_deployment(private_repo, dev, actor=carol, sha=build.head_sha)
    with pytest.raises(ValidationError) as refused:
        deployments.request_deployment(private_repo, dev, actor=bob, sha="0" * 40)
    assert "no successful build" in str(refused.value)
    empty = set_targets(private_repo, "uat", [], alice)
    with pytest.raises(ValidationError) as refused:
        deployments.request_deployment(private_repo, empty, actor=bob, sha=build.head_sha)
    assert "no targets" in str(refused.value)


def test_retention_keeps_the_artifacts_deployments_name(private_repo, alice, bob, built, run_deploys, settings):
    dev = set_targets(private_repo, "dev", ["a"], alice)
    deployed = built(private_repo, bob, release_files("v1"))
    deployments.request_deployment(private_repo, dev, actor=bob, sha=deployed.head_sha)
    run_deploys()
    unused = built(private_repo, bob, release_files("v2"))
    Build.objects.update(build_ended=timezone.now() - timedelta(days=settings.PORTAL_BUILD_KEEP_DAYS + 1))
    counts = retention.expire()
    assert counts["kept_in_use"] == 1 and counts["artifacts"] == 1
    kept, gone = deployed.artifacts.get(), unused.artifacts.get()
    assert not kept.expired and artifact_storage().exists(kept.storage_name)
    assert gone.expired and not artifact_storage().exists(gone.storage_name)
    # The kept artifact still rolls back.
    second = built(private_repo, bob, release_files("v3"))
    later = deployments.request_deployment(private_repo, dev, actor=bob, sha=second.head_sha)
    with pytest.raises(ValidationError):
        # Not before it ended.
        deployments.roll_back(later, actor=bob)
    run_deploys()
    later.refresh_from_db()
    rollback = deployments.roll_back(later, actor=bob)
    run_deploys()
    rollback.refresh_from_db()
    assert (rollback.artifact, rollback.deployment_status) == (kept, "Succeeded")


def test_a_targets_health_check_runs_after_its_deployment_and_on_schedule(private_repo, alice, bob, built, run_deploys):
    check = "grep v1 /deployment/root/srv/app/version.txt"
    dev = set_targets(
        private_repo,
        "dev",
        [
            {"name": "a", "type": "local", "health_check": check},
            {"name": "b", "type": "local", "health_check": "false"},
        ],
        alice,
        deployment_config={"name": "AllAtOnce"},
    )
    build = built(private_repo, bob, release_files("v1"))
    deployment = deployments.request_deployment(private_repo, dev, actor=bob, sha=build.head_sha)
    run_deploys()
    deployment.refresh_from_db()
    runs = {run.name: run for run in deployment.targets.all()}
    assert runs["a"].status == "Succeeded" and runs["a"].events[-1]["event"] == "HealthCheck"
    assert runs["b"].status == "Failed" and "health check failed" in runs["b"].message
    # One of two succeeded, which AllAtOnce (a minimum of 0) accepts.
    assert deployment.deployment_status == "Succeeded"
    a, b = dev.targets.order_by("name")
    assert (a.check_healthy, "v1" in a.check_detail, b.check_healthy) == (True, True, False)
    (LocalTarget(private_repo.pk, "dev", "a").current / "root/srv/app/version.txt").write_text("v0\n")
    assert deploy_job.check_health() == {"healthy": 0, "unhealthy": 1}
    a.refresh_from_db()
    assert a.check_healthy is False and a.checked_at is not None


def test_a_deployment_nobody_reviews_in_time_ends_failed(private_repo, alice, bob, built, run_deploys):
    dev = set_targets(
        private_repo, "dev", ["a"], alice, required_approvals=1, reviewers=[{"type": "User", "id": alice.pk}]
    )
    build = built(private_repo, bob, release_files("v1"))
    deployment = deployments.request_deployment(private_repo, dev, actor=bob, sha=build.head_sha)
    Deployment.objects.filter(pk=deployment.pk).update(created=timezone.now() - deployments.APPROVAL_TIMEOUT)
    deployment.refresh_from_db()
    # The check that the scheduler would make once the timeout comes.
    deployments.hold(deployment)
    run_deploys()
    deployment.refresh_from_db()
    assert deployment.deployment_status == "Failed"
    assert deployment.message.startswith("Nobody reviewed it in time.")
    assert not deployment.targets.exists()


def test_one_deployment_runs_on_an_environment_at_a_time(private_repo, alice, bob, built, run_deploys):
    dev = set_targets(private_repo, "dev", ["a"], alice)
    build = built(private_repo, bob, release_files("v1"))
    first = deployments.request_deployment(private_repo, dev, actor=bob, sha=build.head_sha)
    Deployment.objects.filter(pk=first.pk).update(deployment_status=Deployment.Status.IN_PROGRESS)
    second = deployments.request_deployment(private_repo, dev, actor=bob, sha=build.head_sha)
    assert second.deployment_status == "Waiting"
    assert second.message == f"Waiting for deployment {first.pk}, which is running on dev."
    # The job finds it held too, and gives it back.
    Deployment.objects.filter(pk=second.pk).update(due_at=timezone.now())
    deploy_job.run_deployment(second.pk)
    second.refresh_from_db()
    assert (second.deployment_status, second.state, second.attempts) == ("Waiting", "queued", 0)
    Deployment.objects.filter(pk=first.pk).update(deployment_status=Deployment.Status.SUCCEEDED)
    deployments.hold(second)
    run_deploys()
    second.refresh_from_db()
    assert second.deployment_status == "Succeeded", second.message


def test_a_local_target_keeps_its_last_revisions(private_repo, alice, bob, built, run_deploys):
    dev = set_targets(private_repo, "dev", ["a"], alice)
    done = []
    for version in ("v1", "v2", "v3", "v4"):
        build = built(private_repo, bob, release_files(version))
        done.append(deployments.request_deployment(private_repo, dev, actor=bob, sha=build.head_sha))
        run_deploys()
    place = LocalTarget(private_repo.pk, "dev", "a")
    kept = sorted(int(entry.name) for entry in place.revisions.iterdir())
    assert kept == [deployment.pk for deployment in done[-deploy_job.KEEP_REVISIONS :]]
    assert place.current_revision() == str(done[-1].pk)
    run = done[-1].targets.get()
    assert run.started <= run.ended and run.duration_seconds > 0
