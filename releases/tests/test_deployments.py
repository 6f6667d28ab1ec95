"""Deployments end to end: a real build's artifact, a real rq worker on the deploys queue, local targets whose hooks
run in the sandbox, batches by CodeDeploy's arithmetic, statuses, bookkeeping and automatic rollback."""

import pytest

from releases import deployments
from releases.local_target import LocalTarget
from releases.models import Deployment
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
