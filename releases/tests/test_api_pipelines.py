"""The pipelines API in CodePipeline's words, over pushes whose builds and deployments real rq workers run on local
targets, and approvals answered by the environment's reviewers."""

import pytest
from django.test import Client

from portal.models import AuditEvent
from releases.models import Deployment
from releases.tests.deploying import deployed_version, release_files, set_targets
from releases.tests.test_builds import push_files
from repos.tests.api_client import send, token_for

pytestmark = pytest.mark.usefixtures("transactional_db")
PIPELINES = "/repos/alice/project/pipelines"
RELEASE = f"{PIPELINES}/release"
EXECUTIONS = f"{RELEASE}/executions"
STAGES = ["Source", "Build", "Deploy-dev", "Approval", "Deploy-uat"]


def ok(response, status: int = 200) -> dict | list:
    assert response.status_code == status, response.content
    return response.json()


def stages(execution: dict) -> dict[str, str]:
    return {stage["name"]: stage["status"] for stage in execution["stages"]}


def test_the_journey_push_approve_and_uat_runs_devs_bytes(
    private_repo, alice, bob, api, environments_of_release, drive
):
    sha = push_files(private_repo, bob, "main", release_files("v1"))

    [pipeline] = ok(api("carol", "GET", PIPELINES))
    assert (pipeline["name"], pipeline["version"], pipeline["execution_mode"]) == ("release", 1, "SUPERSEDED")
    assert (pipeline["source_branch"], pipeline["from_file"], pipeline["error"]) == ("main", False, None)
    assert [stage["name"] for stage in pipeline["stages"]] == STAGES
    approval_stage = pipeline["stages"][3]
    assert approval_stage["actions"] == [{"name": "Approve", "type": "approval", "run_order": 1, "environment": "uat"}]
    assert pipeline["stages"][1]["latest_execution"] == {"id": 1, "status": "InProgress"}
    assert approval_stage["latest_execution"] is None

    drive()

    [execution] = ok(api("carol", "GET", EXECUTIONS))
    assert (execution["id"], execution["status"], execution["source_sha"]) == (1, "InProgress", sha)
    assert (execution["trigger"], execution["requester"]["login"], execution["rollback_of"]) == ("push", "bob", None)
    assert execution["artifact_digest"].startswith("sha256:") and len(execution["artifact_digest"]) == 71
    assert stages(execution) == {
        "Source": "Succeeded",
        "Build": "Succeeded",
        "Deploy-dev": "Succeeded",
        "Approval": "InProgress",
    }
    assert execution["ended_at"] is None

    # bob pushed and carol only reads: neither answers; alice, uat's reviewer, does.
    answer = {"status": "Approved", "summary": "Release notes checked."}
    for person in ("bob", "carol"):
        response = api(person, "POST", f"{EXECUTIONS}/1/approvals", answer)
        assert response.status_code == 403, (person, response.content)
    approval = ok(api("alice", "POST", f"{EXECUTIONS}/1/approvals", answer))
    assert (approval["stage"], approval["action"], approval["environment"]) == ("Approval", "Approve", "uat")
    assert approval["status"] == "Approved" and approval["missing"] is None
    assert [(a["user"]["login"], a["status"], a["summary"]) for a in approval["answers"]] == [
        ("alice", "Approved", "Release notes checked.")
    ]
    drive()

    detail = ok(api("carol", "GET", f"{EXECUTIONS}/1"))
    assert detail["status"] == "Succeeded" and detail["ended_at"] is not None
    assert list(stages(detail)) == STAGES and set(stages(detail).values()) == {"Succeeded"}
    runs = {(run["stage"], run["name"]): run for run in detail["actions"]}
    build = runs[("Build", "Build")]
    assert (build["status"], build["attempt"], build["deployment_id"]) == ("Succeeded", 1, None)
    assert build["build_id"] == detail["build_id"] and build["ended_at"] >= build["started_at"]
    digests = []
    for stage in ("Deploy-dev", "Deploy-uat"):
        deployment_id = runs[(stage, "Deploy")]["deployment_id"]
        deployment = ok(api("carol", "GET", f"/repos/alice/project/deployments/{deployment_id}"))
        assert deployment["status"] == "Succeeded"
        digests.append(deployment["artifact_digest"])
    assert digests == [detail["artifact_digest"]] * 2
    assert deployed_version(private_repo, "uat") == "v1"
    [approval] = detail["approvals"]
    assert approval["status"] == "Approved" and approval["answers"][0]["user"]["login"] == "alice"

    # Ended, the approval takes no more answers, named or not.
    response = api("alice", "POST", f"{EXECUTIONS}/1/approvals", {"status": "Rejected", "summary": "late"})
    assert response.status_code == 409, response.content
    named = {"status": "Rejected", "summary": "late", "stage": "Approval", "action": "Approve"}
    response = api("alice", "POST", f"{EXECUTIONS}/1/approvals", named)
    assert response.status_code == 409 and "no longer takes answers" in response.json()["message"]
    [pipeline] = ok(api("carol", "GET", PIPELINES))
    assert pipeline["stages"][4]["latest_execution"] == {"id": 1, "status": "Succeeded"}


def test_refusals_name_the_field_hide_the_repository_and_need_the_scope(
    private_repo, alice, bob, api, environments_of_release
):
    push_files(private_repo, bob, "main", release_files("v1"))

    response = api("alice", "POST", f"{EXECUTIONS}/1/approvals", {"status": "Approved", "comment": "typo"})
    assert response.status_code == 422
    assert [error["field"] for error in response.json()["errors"]] == ["comment"]
    response = api("alice", "POST", f"{EXECUTIONS}/1/approvals", {"status": "Approved", "stage": "Deploy-dev"})
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "stage"
    response = api("alice", "POST", EXECUTIONS, {"ref": "nowhere"})
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "ref"
    # Nothing waits for an approval yet: there is none to answer.
    assert api("alice", "POST", f"{EXECUTIONS}/1/approvals", {"status": "Approved"}).status_code == 409

    for method, path, body in [
        ("GET", PIPELINES, None),
        ("GET", EXECUTIONS, None),
        ("GET", f"{EXECUTIONS}/1", None),
        ("POST", f"{EXECUTIONS}/1/stop", {"abandon": True}),
        ("POST", f"{EXECUTIONS}/1/approvals", {"status": "Approved"}),
    ]:
        assert api("mallory", method, path, body).status_code == 404, (method, path)
    assert api("carol", "GET", f"{RELEASE}x/executions").status_code == 404
    assert api("carol", "GET", f"{EXECUTIONS}/9").status_code == 404

    reading = token_for(bob, scopes=("api", "read:repo"))
    response = send(Client(), "POST", f"{EXECUTIONS}/1/stop", {"abandon": True}, **reading)
    assert response.status_code == 403 and "write:repo" in response.json()["message"]
    assert send(Client(), "GET", EXECUTIONS, **reading).status_code == 200
    response = api("carol", "POST", f"{EXECUTIONS}/1/stop", {"abandon": True})
    assert response.status_code == 403 and "writers" in response.json()["message"]
    assert ok(api("carol", "GET", f"{EXECUTIONS}/1"))["status"] == "InProgress"


def test_stop_then_retry_and_a_writer_starts_one_by_hand(private_repo, bob, api, environments_of_release, drive):
    sha = push_files(private_repo, bob, "main", release_files("v1"))

    stopping = ok(api("bob", "POST", f"{EXECUTIONS}/1/stop", {"abandon": False, "reason": "hold on"}), 202)
    assert (stopping["status"], stopping["reason"]) == ("Stopping", "hold on")
    drive()
    stopped = ok(api("bob", "GET", f"{EXECUTIONS}/1"))
    assert stopped["status"] == "Stopped" and stages(stopped)["Build"] == "Stopped"
    # The build it let finish succeeded.
    assert [(run["stage"], run["status"]) for run in stopped["actions"]][-1] == ("Build", "Succeeded")
    assert api("bob", "POST", f"{EXECUTIONS}/1/stop", {"abandon": True}).status_code == 409

    retried = ok(api("bob", "POST", f"{EXECUTIONS}/1/retry", {"mode": "FAILED_ACTIONS"}))
    assert retried["status"] == "InProgress"
    drive()
    assert stages(ok(api("bob", "GET", f"{EXECUTIONS}/1")))["Approval"] == "InProgress"
    assert deployed_version(private_repo, "dev") == "v1"
    assert AuditEvent.objects.filter(action="pipeline.retry", actor=bob).exists()

    started = ok(api("bob", "POST", EXECUTIONS, {}), 201)
    assert (started["id"], started["source_sha"], started["trigger"]) == (2, sha, "manual")
    assert started["requester"]["login"] == "bob"
    response = api("carol", "GET", f"{EXECUTIONS}?per_page=1")
    assert [execution["id"] for execution in ok(response)] == [2]
    assert 'rel="next"' in response["Link"]


def test_a_disabled_transition_holds_the_push_until_enabled(
    private_repo, alice, bob, api, environments_of_release, drive
):
    # The push builds; the transition into Deploy-dev, disabled before the build ends, holds the execution there.
    push_files(private_repo, bob, "main", release_files("v1"))
    ok(api("bob", "POST", f"{RELEASE}/transitions/Deploy-dev", {"enabled": False, "reason": "dev is rebuilt"}))
    [pipeline] = ok(api("carol", "GET", PIPELINES))
    transition = pipeline["stages"][2]["transition"]
    assert (transition["enabled"], transition["reason"]) == (False, "dev is rebuilt")
    drive()
    assert not Deployment.objects.exists()

    assert api("carol", "POST", f"{RELEASE}/transitions/Deploy-dev", {"enabled": True}).status_code == 403
    assert api("bob", "POST", f"{RELEASE}/transitions/Nowhere", {"enabled": True}).status_code == 404
    enabled = ok(api("bob", "POST", f"{RELEASE}/transitions/Deploy-dev", {"enabled": True}))
    assert enabled["stages"][2]["transition"]["enabled"] is True
    drive()
    assert stages(ok(api("bob", "GET", f"{EXECUTIONS}/1")))["Approval"] == "InProgress"
    assert deployed_version(private_repo, "dev") == "v1"


def test_a_stage_rolls_back_to_an_earlier_executions_artifact(private_repo, alice, bob, api, drive):
    # Without reviewers, uat's approval is any writer's other than the requester.
    set_targets(private_repo, "dev", ["a"], alice)
    set_targets(private_repo, "uat", ["a"], alice)
    push_files(private_repo, bob, "main", release_files("v1"))
    drive()
    # bob is one of those writers, but he pushed: his approval is refused.
    response = api("bob", "POST", f"{EXECUTIONS}/1/approvals", {"status": "Approved"})
    assert response.status_code == 403 and "You requested this release" in response.json()["message"]
    ok(api("alice", "POST", f"{EXECUTIONS}/1/approvals", {"status": "Approved"}))
    drive()
    push_files(private_repo, bob, "main", release_files("v2"))
    drive()
    assert deployed_version(private_repo, "dev") == "v2"

    path = f"{RELEASE}/stages/Deploy-dev/rollback"
    assert api("carol", "POST", path, {"target_execution_id": 1}).status_code == 403
    response = api("alice", "POST", path, {"target_execution_id": 7})
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "target_execution_id"
    rollback = ok(api("alice", "POST", path, {"target_execution_id": 1}), 201)
    assert (rollback["id"], rollback["trigger"], rollback["rollback_of"]) == (3, "rollback", 1)
    drive()

    first = ok(api("alice", "GET", f"{EXECUTIONS}/1"))
    rolled = ok(api("alice", "GET", f"{EXECUTIONS}/3"))
    assert rolled["status"] == "Succeeded", rolled["reason"]
    assert rolled["artifact_digest"] == first["artifact_digest"]
    assert deployed_version(private_repo, "dev") == "v1"


def test_the_pipelines_are_listed_by_name_in_pages(private_repo, alice, api):
    from releases.models import Pipeline

    for name in ("ship", "audit", "release"):
        Pipeline.objects.create(repository=private_repo, name=name, source_branch="main")
    response = api("carol", "GET", f"{PIPELINES}?per_page=2")
    assert [pipeline["name"] for pipeline in ok(response)] == ["audit", "release"]
    assert response["X-Total-Count"] == "3" and 'rel="next"' in response["Link"]
    assert [pipeline["name"] for pipeline in ok(api("carol", "GET", f"{PIPELINES}?per_page=2&page=2"))] == ["ship"]
