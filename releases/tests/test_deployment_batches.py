"""CodeDeploy's arithmetic as deployments run it on local targets, one test per row of the issue: batch sizes from
the minimum of healthy hosts, the order of targets, the success rule, and the health bookkeeping afterwards.

A target is made to fail by a marker file planted in its live root, which the next revision's root copies: the
BeforeInstall hook fails where it finds one."""

import pytest
from django.core.exceptions import ValidationError

from releases import deployments
from releases.local_target import LocalTarget
from releases.models import Deployment, EnvironmentTarget
from releases.tests.deploying import appspec_text, release_files, set_targets

pytestmark = pytest.mark.usefixtures("transactional_db")

MARKED = 'if [ -e "$PORTAL_TARGET_ROOT/fail-here" ]; then echo "this target is marked to fail"; exit 1; fi'
SPEC = appspec_text(hooks=("BeforeInstall",))


def names(count: int) -> list[str]:
    return [f"t{index:02d}" for index in range(count)]


@pytest.fixture
def deploy(private_repo, alice, bob, built, run_deploys):
    """deploy(env, version): build a release of that version and deploy it; returns the ended Deployment."""
    versions = {}

    def run(environment, version: str) -> Deployment:
        if version not in versions:
            versions[version] = built(
                private_repo, bob, release_files(version, spec=SPEC, fail={"BeforeInstall": MARKED})
            )
        deployment = deployments.request_deployment(
            private_repo, environment, actor=bob, artifact=versions[version].artifacts.get()
        )
        run_deploys()
        deployment.refresh_from_db()
        return deployment

    return run


def batches_of(deployment: Deployment) -> list[list[str]]:
    found: dict[int, list[str]] = {}
    for run in deployment.targets.exclude(batch=None).order_by("batch", "position"):
        found.setdefault(run.batch, []).append(run.name)
    return [found[number] for number in sorted(found)]


def mark_to_fail(repo, environment: str, target: str) -> None:
    place = LocalTarget(repo.pk, environment, target)
    (place.current / "root" / "fail-here").write_text("")


@pytest.mark.parametrize(
    ("config", "sizes"),
    [
        ({"type": "FLEET_PERCENT", "value": 90}, [1] * 10),
        ({"type": "FLEET_PERCENT", "value": 80}, [2] * 5),
        ({"type": "FLEET_PERCENT", "value": 0}, [10]),
    ],
    ids=["min 90% of 10: one at a time", "min 80% of 10: two at a time", "min 0% of 10: all at once"],
)
def test_ten_targets_deploy_in_batches_the_minimum_allows(private_repo, alice, deploy, config, sizes):
    dev = set_targets(private_repo, "dev", names(10), alice, deployment_config=config)
    deployment = deploy(dev, "v1")
    assert deployment.deployment_status == "Succeeded", deployment.message
    assert [len(batch) for batch in batches_of(deployment)] == sizes
    assert deployment.minimum_healthy == {90: 9, 80: 8, 0: 0}[config["value"]]


def test_a_minimum_of_95_percent_of_ten_leaves_no_target_to_deploy_to(private_repo, alice):
    with pytest.raises(ValidationError) as refused:
        set_targets(private_repo, "dev", names(10), alice, deployment_config={"type": "FLEET_PERCENT", "value": 95})
    assert "leaves no target to deploy to" in str(refused.value)


def test_a_minimum_that_grew_past_the_targets_fails_the_deployment_at_once(private_repo, alice, deploy):
    dev = set_targets(private_repo, "dev", names(2), alice, deployment_config={"type": "HOST_COUNT", "value": 1})
    # Set behind the settings' check (as a target removed by hand would): the job checks again.
    EnvironmentTarget.objects.filter(environment=dev, name="t01").delete()
    deployment = deploy(dev, "v1")
    assert deployment.deployment_status == "Failed"
    assert "leaves no target to deploy to" in deployment.message
    assert not deployment.targets.exists() and not deployment.rollbacks.exists()


@pytest.mark.parametrize(
    ("config", "sizes"),
    [
        ({"name": "HalfAtATime"}, [4, 4, 1]),
        ({"type": "HOST_COUNT", "value": 6}, [3, 3, 3]),
        ({"type": "FLEET_PERCENT", "value": 40}, [5, 4]),
    ],
    ids=["HalfAtATime of 9", "HOST_COUNT 6 of 9", "FLEET_PERCENT 40 of 9"],
)
def test_nine_targets(private_repo, alice, deploy, config, sizes):
    dev = set_targets(private_repo, "dev", names(9), alice, deployment_config=config)
    deployment = deploy(dev, "v1")
    assert deployment.deployment_status == "Succeeded", deployment.message
    assert [len(batch) for batch in batches_of(deployment)] == sizes


def test_a_group_of_one_deploys_at_once_and_must_succeed(private_repo, alice, deploy):
    dev = set_targets(private_repo, "dev", ["only"], alice)
    first = deploy(dev, "v1")
    assert first.deployment_status == "Succeeded" and batches_of(first) == [["only"]]
    assert first.minimum_healthy == 0
    mark_to_fail(private_repo, "dev", "only")
    second = deploy(dev, "v2")
    assert second.deployment_status == "Failed"
    assert "0 of 1 targets succeeded" in second.message


def test_under_one_at_a_time_a_failing_last_host_still_succeeds(private_repo, alice, deploy):
    dev = set_targets(private_repo, "dev", ["a", "b", "c"], alice)
    assert deploy(dev, "v1").deployment_status == "Succeeded"
    mark_to_fail(private_repo, "dev", "c")
    second = deploy(dev, "v2")
    assert batches_of(second) == [["a"], ["b"], ["c"]]
    assert second.deployment_status == "Succeeded", second.message
    assert dict(second.targets.values_list("name", "status")) == {"a": "Succeeded", "b": "Succeeded", "c": "Failed"}
    # The bookkeeping afterwards: c is unhealthy and keeps the revision it had; the others run the new one.
    targets = {target.name: target for target in dev.targets.all()}
    first = second.previous
    assert (targets["c"].health, targets["c"].revision_id) == ("unhealthy", first.pk)
    assert (targets["a"].health, targets["a"].revision_id) == ("healthy", second.pk)


def test_under_one_at_a_time_a_failing_first_host_stops_the_rest(private_repo, alice, deploy):
    dev = set_targets(private_repo, "dev", ["a", "b", "c"], alice)
    assert deploy(dev, "v1").deployment_status == "Succeeded"
    mark_to_fail(private_repo, "dev", "a")
    second = deploy(dev, "v2")
    assert second.deployment_status == "Failed"
    assert dict(second.targets.values_list("name", "status")) == {"a": "Failed", "b": "Skipped", "c": "Skipped"}
    assert "none more can be taken down" in second.message
    # It reached a target, so it rolls back to v1, which a further worker run deploys.
    rollback = second.rollbacks.get()
    assert rollback.automatic and rollback.artifact == second.previous.artifact


def test_targets_go_unhealthy_first_then_unknown_old_and_current(private_repo, alice, deploy):
    dev = set_targets(private_repo, "dev", ["a", "b", "c"], alice)
    assert deploy(dev, "v1").deployment_status == "Succeeded"
    mark_to_fail(private_repo, "dev", "c")
    # With all three at once, c fails and becomes unhealthy; a and b run v2, the group's revision.
    dev.deployment_config = {"name": "AllAtOnce", "type": "HOST_COUNT", "value": 0}
    dev.save()
    second = deploy(dev, "v2")
    assert second.deployment_status == "Succeeded"
    (LocalTarget(private_repo.pk, "dev", "c").current / "root" / "fail-here").unlink()
    # A new target is unknown; b is made old by hand (it runs v1 again).
    set_targets(private_repo, "dev", ["a", "b", "c", "d"], alice, deployment_config={"name": "OneAtATime"})
    EnvironmentTarget.objects.filter(environment=dev, name="b").update(revision=second.previous)
    third = deploy(dev, "v3")
    assert third.deployment_status == "Succeeded", third.message
    order = list(third.targets.order_by("position").values_list("name", "health_before", "revision_before"))
    assert order == [
        ("c", "unhealthy", "old"),
        ("d", "healthy", "unknown"),
        ("b", "healthy", "old"),
        ("a", "healthy", "current"),
    ]
    assert batches_of(third) == [["c"], ["d"], ["b"], ["a"]]
    assert set(dev.targets.values_list("health", flat=True)) == {"healthy"}
