"""The builds API in GitHub Actions' shapes, over builds that a real rq worker ran in the real sandbox."""

import hashlib
import io
import zipfile
from urllib.parse import quote

import pytest
from django.test import Client

from portal.models import AuditEvent
from releases import logs, services
from releases.models import Build
from releases.tests.test_builds import FAILING, SLEEPING, once_log_shows, push_files
from repos import git
from repos.tests.api_client import send, token_for
from reviews import services as review_services
from reviews.tests.conftest import make_branch

PASSING = FAILING.replace("test 1 -eq 3", "true")
RUNS = "/repos/alice/project/actions/runs"
ARTIFACTS = "/repos/alice/project/actions/artifacts"
WITH_ARTIFACT = (
    "version: 0.2\nphases:\n  build:\n    commands:\n      - mkdir -p out && echo made > out/app.txt\n"
    "      - echo packed the app\nartifacts:\n  files:\n    - out/**/*\n  name: app\n"
)
VARIABLES = (
    "version: 0.2\nenv:\n  variables:\n    GREETING: from-buildspec\n    OTHER: kept\n"
    'phases:\n  build:\n    commands:\n      - echo "greeting=$GREETING other=$OTHER by=$CODEBUILD_INITIATOR"\n'
)
RUN_FIELDS = {
    "id",
    "name",
    "path",
    "run_number",
    "run_attempt",
    "event",
    "trigger",
    "status",
    "conclusion",
    "head_sha",
    "head_branch",
    "workflow_id",
    "html_url",
    "url",
    "logs_url",
    "artifacts_url",
    "cancel_url",
    "rerun_url",
    "workflow_url",
    "created_at",
    "updated_at",
    "run_started_at",
    "actor",
    "triggering_actor",
    "pull_requests",
    "repository",
    "build_status",
    "phases",
    "buildspec_path",
    "message",
    "warnings",
}


def names(response) -> list[int]:
    return [run["run_number"] for run in response.json()["workflow_runs"]]


@pytest.mark.usefixtures("transactional_db")
def test_runs_are_listed_in_githubs_shape_filtered_and_paged(private_repo, bob, carol, api, run_builds, settings):
    first = push_files(private_repo, bob, "main", {"buildspec.yml": FAILING.encode()})
    make_branch(private_repo, "feature", {"buildspec.yml": PASSING.encode()})
    pr = review_services.open_pull_request(private_repo, actor=bob, title="Build me", base="main", head="feature")
    feature = pr.head_sha
    run_builds()

    response = api("carol", "GET", RUNS)
    assert response.status_code == 200
    body = response.json()
    assert body["total_count"] == 2 and names(response) == [2, 1]
    newest, oldest = body["workflow_runs"]
    assert set(newest) == RUN_FIELDS
    build = Build.objects.get(repository=private_repo, number=2)
    base = f"{settings.PORTAL_BASE_URL}/api/v1{RUNS}/{build.pk}"
    assert {key: newest[key] for key in ("id", "run_number", "head_sha", "head_branch", "event", "trigger")} == {
        "id": build.pk,
        "run_number": 2,
        "head_sha": feature,
        "head_branch": "feature",
        "event": "pull_request",
        "trigger": "pull_request",
    }
    assert (newest["status"], newest["conclusion"], newest["build_status"]) == ("completed", "success", "SUCCEEDED")
    assert (oldest["status"], oldest["conclusion"], oldest["build_status"]) == ("completed", "failure", "FAILED")
    assert (oldest["event"], oldest["head_sha"], oldest["head_branch"]) == ("push", first, "main")
    assert newest["url"] == base and newest["logs_url"] == f"{base}/logs"
    assert (newest["cancel_url"], newest["rerun_url"]) == (f"{base}/cancel", f"{base}/rerun")
    assert newest["artifacts_url"] == f"{base}/artifacts"
    assert api("carol", "GET", newest["workflow_url"].split("/api/v1", 1)[1]).json()["path"] == "buildspec.yml"
    assert newest["html_url"] == f"{settings.PORTAL_BASE_URL}/alice/project/builds/2"
    assert newest["actor"]["login"] == "bob" and newest["actor"]["email"] == ""
    assert newest["repository"]["full_name"] == "alice/project" and newest["repository"]["private"] is True
    [pull] = newest["pull_requests"]
    assert (pull["number"], pull["head"]["ref"], pull["head"]["sha"], pull["base"]["ref"]) == (
        pr.number,
        "feature",
        feature,
        "main",
    )
    assert oldest["pull_requests"] == []
    assert [(p["name"], p["status"]) for p in oldest["phases"]][:4] == [
        ("INSTALL", "SUCCEEDED"),
        ("PRE_BUILD", "SUCCEEDED"),
        ("BUILD", "FAILED"),
        ("POST_BUILD", "SUCCEEDED"),
    ]
    phase = oldest["phases"][2]
    assert phase["started"] <= phase["ended"] and phase["duration_in_seconds"] >= 0
    assert "COMMAND_EXECUTION_ERROR" in phase["message"]
    assert oldest["buildspec_path"] == "buildspec.yml" and oldest["warnings"] == []
    # Times are written as everywhere else in the API.
    pulls = api("carol", "GET", "/repos/alice/project/pulls").json()
    assert len(newest["created_at"]) == len(pulls[0]["created_at"]) and newest["created_at"].endswith("Z")
    assert newest["run_started_at"] is not None and newest["updated_at"] >= newest["run_started_at"]

    for query, expected in [
        ("branch=main", [1]),
        ("branch=feature", [2]),
        ("branch=nope", []),
        ("event=push", [1]),
        ("event=pull_request", [2]),
        ("status=completed", [2, 1]),
        ("status=success", [2]),
        ("status=failure", [1]),
        ("status=queued", []),
        ("status=cancelled", []),
        (f"head_sha={first}", [1]),
        ("actor=bob", [2, 1]),
        ("actor=carol", []),
    ]:
        response = api("carol", "GET", f"{RUNS}?{query}")
        assert response.status_code == 200, query
        assert names(response) == expected, query
        assert response.json()["total_count"] == len(expected), query
    for query, field in [("status=sleeping", "status"), ("event=schedule", "event"), ("per_page=101", "per_page")]:
        response = api("carol", "GET", f"{RUNS}?{query}")
        assert response.status_code == 422, query
        assert [error["field"] for error in response.json()["errors"]] == [f"query.{field}"], query

    response = api("carol", "GET", f"{RUNS}?per_page=1&status=completed")
    assert names(response) == [2] and response.json()["total_count"] == 2
    assert response["X-Total-Count"] == "2"
    link = response["Link"]
    assert f'<{settings.PORTAL_BASE_URL}/api/v1{RUNS}?per_page=1&status=completed&page=2>; rel="next"' in link
    assert 'rel="last"' in link and 'rel="prev"' not in link
    response = api("carol", "GET", f"{RUNS}?per_page=1&page=2")
    assert names(response) == [1]
    assert 'page=1>; rel="prev"' in response["Link"] and 'rel="next"' not in response["Link"]
    assert "Link" not in api("carol", "GET", RUNS)
    assert names(api("carol", "GET", f"{RUNS}?page=3&per_page=1")) == []

    response = api("carol", "GET", f"{RUNS}/{build.pk}")
    assert response.status_code == 200 and response.json() == newest
    assert api("carol", "GET", f"{RUNS}/{build.pk + 100}").status_code == 404


@pytest.mark.usefixtures("transactional_db")
def test_a_runs_log_comes_zipped_and_its_artifacts_bytes_match_their_digest(private_repo, bob, api, run_builds):
    push_files(private_repo, bob, "main", {"buildspec.yml": WITH_ARTIFACT.encode()})
    build = Build.objects.get(repository=private_repo)
    # Before a worker has started it, the build has no log.
    assert api("carol", "GET", f"{RUNS}/{build.pk}/logs").status_code == 404
    run_builds()
    build.refresh_from_db()
    assert build.build_status == "SUCCEEDED"

    response = api("carol", "GET", f"{RUNS}/{build.pk}/logs")
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    assert "project-build-1-logs.zip" in response["Content-Disposition"]
    with zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content))) as archive:
        assert archive.namelist() == ["build-1.txt"]
        text = archive.read("build-1.txt")
    assert text == logs.read_all(build) and b"packed the app" in text

    response = api("carol", "GET", f"{RUNS}/{build.pk}/artifacts")
    assert response.status_code == 200
    body = response.json()
    assert body["total_count"] == 1
    [artifact] = body["artifacts"]
    assert (artifact["name"], artifact["expired"], artifact["expires_at"], artifact["files"]) == (
        "app",
        False,
        None,
        ["out/app.txt"],
    )
    assert artifact["workflow_run"] == {
        "id": build.pk,
        "repository_id": private_repo.pk,
        "head_branch": "main",
        "head_sha": build.head_sha,
    }
    assert artifact["archive_download_url"].endswith(f"{ARTIFACTS}/{artifact['id']}/zip")
    assert api("carol", "GET", f"{ARTIFACTS}/{artifact['id']}").json() == artifact
    assert api("carol", "GET", ARTIFACTS).json() == body
    assert api("carol", "GET", f"{ARTIFACTS}?name=other").json() == {"total_count": 0, "artifacts": []}

    response = api("carol", "GET", f"{ARTIFACTS}/{artifact['id']}/zip")
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    content = b"".join(response.streaming_content)
    assert artifact["digest"] == f"sha256:{hashlib.sha256(content).hexdigest()}"
    assert len(content) == artifact["size_in_bytes"]
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        assert archive.read("out/app.txt") == b"made\n"
    assert api("carol", "GET", f"{ARTIFACTS}/{artifact['id'] + 100}/zip").status_code == 404


@pytest.mark.usefixtures("transactional_db")
def test_only_writers_cancel_and_rerun_and_outsiders_see_nothing(private_repo, bob, carol, api, run_builds):
    push_files(private_repo, bob, "main", {"buildspec.yml": PASSING.encode()})
    build = Build.objects.get(repository=private_repo)
    cancel = f"{RUNS}/{build.pk}/cancel"

    for who in ("mallory",):
        for method, path in [
            ("GET", RUNS),
            ("GET", f"{RUNS}/{build.pk}"),
            ("GET", ARTIFACTS),
            ("POST", cancel),
            ("POST", f"{RUNS}/{build.pk}/rerun"),
        ]:
            assert api(who, method, path).status_code == 404, (method, path)
    assert Client().get(f"/api/v1{RUNS}").status_code in (401, 404)
    response = api("carol", "POST", cancel)
    assert response.status_code == 403 and "writers" in response.json()["message"]
    # A token that may only read cannot stop a build, even bob's.
    reading = token_for(bob, scopes=("api", "read:repo"))
    response = send(Client(), "POST", cancel, **reading)
    assert response.status_code == 403 and "write:repo" in response.json()["message"]
    assert send(Client(), "GET", f"{RUNS}/{build.pk}", **reading).status_code == 200
    build.refresh_from_db()
    assert build.build_status == "QUEUED"
    # A run still queued cannot be rerun.
    response = api("bob", "POST", f"{RUNS}/{build.pk}/rerun")
    assert response.status_code == 409 and "has not ended" in response.json()["message"]

    response = api("bob", "POST", cancel)
    assert response.status_code == 202 and response.json() == {}
    run = api("carol", "GET", f"{RUNS}/{build.pk}").json()
    assert (run["status"], run["conclusion"], run["build_status"]) == ("completed", "cancelled", "STOPPED")
    assert AuditEvent.objects.filter(action="build.stop", actor=bob, target_id=str(build.pk)).exists()
    response = api("bob", "POST", cancel)
    assert response.status_code == 409 and "already ended" in response.json()["message"]
    assert api("carol", "GET", f"{RUNS}/{build.pk}/logs").status_code == 404

    assert api("carol", "POST", f"{RUNS}/{build.pk}/rerun").status_code == 403
    response = api("bob", "POST", f"{RUNS}/{build.pk}/rerun", {"enable_debug_logging": True})
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "enable_debug_logging"
    response = api("bob", "POST", f"{RUNS}/{build.pk}/rerun", {"colour": "blue"})
    assert response.status_code == 422 and "colour" in response.json()["message"]
    assert Build.objects.count() == 1
    response = api("bob", "POST", f"{RUNS}/{build.pk}/rerun")
    assert response.status_code == 201
    rerun = response.json()
    assert rerun["id"] != build.pk and rerun["run_number"] == 2
    assert (rerun["head_sha"], rerun["head_branch"], rerun["event"], rerun["trigger"]) == (
        build.head_sha,
        "main",
        "workflow_dispatch",
        "rerun",
    )
    assert (rerun["status"], rerun["conclusion"], rerun["actor"]["login"]) == ("queued", None, "bob")
    run_builds()
    run = api("carol", "GET", f"{RUNS}/{rerun['id']}").json()
    assert (run["status"], run["conclusion"]) == ("completed", "success")
    assert api("carol", "GET", f"{RUNS}?event=workflow_dispatch").json()["total_count"] == 1


@pytest.mark.usefixtures("transactional_db")
def test_stopping_a_running_run_through_the_api_ends_it_cancelled(private_repo, bob, api, run_builds):
    push_files(private_repo, bob, "main", {"buildspec.yml": SLEEPING.encode()})
    build = Build.objects.get(repository=private_repo)
    answers = []

    def stop() -> None:
        # While it runs, the log so far.
        response = api("carol", "GET", f"{RUNS}/{build.pk}/logs")
        with zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content))) as archive:
            answers.append(b"started" in archive.read("build-1.txt"))
        answers.append(api("bob", "POST", f"{RUNS}/{build.pk}/cancel").status_code)
        answers.append(api("bob", "GET", f"{RUNS}/{build.pk}").json()["status"])

    stopper = once_log_shows(build, "started", stop)
    run_builds()
    stopper.join()
    assert answers == [True, 202, "in_progress"]
    run = api("bob", "GET", f"{RUNS}/{build.pk}").json()
    assert (run["conclusion"], run["build_status"]) == ("cancelled", "STOPPED")


@pytest.mark.usefixtures("transactional_db")
def test_a_dispatch_starts_a_build_whose_inputs_override_the_buildspecs_variables(
    private_repo, alice, bob, api, run_builds, settings
):
    services.save_build_settings(private_repo, actor=alice, buildspec_path="ci/build.yml")
    sha = git.commit_files(private_repo.path, "main", {"ci/build.yml": VARIABLES.encode()}, "b", name="a", email="a@x")
    git.update_ref(private_repo.path, "refs/tags/v1", sha, git.ZERO_SHA)
    dispatches = f"/repos/alice/project/actions/workflows/{quote('ci/build.yml', safe='')}/dispatches"

    workflows = api("carol", "GET", "/repos/alice/project/actions/workflows").json()
    assert workflows["total_count"] == 1
    [workflow] = workflows["workflows"]
    assert (workflow["id"], workflow["path"], workflow["state"]) == (private_repo.pk, "ci/build.yml", "active")
    for name in (private_repo.pk, "build.yml", quote("ci/build.yml", safe="")):
        assert api("carol", "GET", f"/repos/alice/project/actions/workflows/{name}").json() == workflow
    assert api("carol", "GET", "/repos/alice/project/actions/workflows/buildspec.yml").status_code == 404
    assert api("carol", "GET", dispatches).status_code == 405

    for body, field in [
        ({"ref": "nowhere"}, "ref"),
        ({"ref": "refs/tags/main"}, "ref"),
        ({"ref": "main", "inputs": {"not-a-name": "x"}}, "inputs"),
        ({"ref": "main", "inputs": {"CODEBUILD_BUILD_ID": "x"}}, "inputs"),
        ({"ref": "main", "colour": "blue"}, "colour"),
    ]:
        response = api("bob", "POST", dispatches, body)
        assert response.status_code == 422, body
        assert [error["field"] for error in response.json()["errors"]] == [field], body
    older = git.commit_files(private_repo.path, "old", {"README.md": b"no build\n"}, "o", name="a", email="a@x")
    response = api("bob", "POST", dispatches, {"ref": older})
    # A branch named as the tag: refs/tags/v1 still means the tag.
    git.update_ref(private_repo.path, "refs/heads/v1", older, git.ZERO_SHA)
    assert response.status_code == 422 and "has no ci/build.yml" in response.json()["message"]
    assert (
        api("bob", "POST", "/repos/alice/project/actions/workflows/other.yml/dispatches", {"ref": "main"}).status_code
        == 404
    )
    assert api("carol", "POST", dispatches, {"ref": "main"}).status_code == 403
    assert api("mallory", "POST", dispatches, {"ref": "main"}).status_code == 404
    assert not Build.objects.exists()

    response = api("bob", "POST", dispatches, {"ref": "main", "inputs": {"GREETING": "from-api"}})
    assert response.status_code == 204 and response.content == b""
    response = api(
        "bob",
        "POST",
        f"/repos/alice/project/actions/workflows/{private_repo.pk}/dispatches",
        {"ref": "refs/tags/v1", "inputs": {"GREETING": True}, "return_run_details": True},
    )
    assert response.status_code == 200
    details = response.json()
    tagged = Build.objects.get(pk=details["workflow_run_id"])
    assert details == {
        "workflow_run_id": tagged.pk,
        "run_url": f"{settings.PORTAL_BASE_URL}/api/v1{RUNS}/{tagged.pk}",
        "html_url": tagged.web_url,
    }
    response = api("bob", "POST", "/repos/alice/project/actions/workflows/build.yml/dispatches", {"ref": sha})
    assert response.status_code == 204
    run_builds()

    first, second, third = Build.objects.order_by("number")
    assert (first.trigger, first.ref, first.head_sha, first.initiator) == ("manual", "refs/heads/main", sha, bob)
    assert (second.ref, second.start_variables, third.ref) == ("refs/tags/v1", {"GREETING": "true"}, sha)
    assert "greeting=from-api other=kept by=bob" in logs.read_all(first).decode()
    assert "greeting=true other=kept" in logs.read_all(second).decode()
    assert "greeting=from-buildspec other=kept" in logs.read_all(third).decode()
    runs = api("carol", "GET", f"{RUNS}?event=workflow_dispatch").json()["workflow_runs"]
    assert [(r["run_number"], r["head_branch"], r["conclusion"]) for r in runs] == [
        (3, None, "success"),
        (2, "v1", "success"),
        (1, "main", "success"),
    ]
    assert names(api("carol", "GET", f"{RUNS}?branch=v1")) == [2]
