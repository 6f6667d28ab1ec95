"""The pipeline pages over real pipelines: pushes and merges through the real services, builds and deployments on
real rq workers, local targets. The tab and a pipeline's live picture (and the JSON it polls), the buttons of
writers and what their POSTs do, a refused pipeline.yml, the header's environment strip, the execution history and
the release record."""

import re

import pytest
from django.test import Client

from releases import pipelines
from releases.models import PipelineExecution
from releases.tests.deploying import latest, release_files
from releases.tests.test_builds import push_files
from repos import git

pytestmark = pytest.mark.usefixtures("transactional_db")

PIPELINE = "/alice/project/pipelines/release"
# The fixtures that drive a pipeline with real workers, shared with the pipelines' own tests.


def client_for(user) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def text_of(response) -> str:
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def flashed(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def stages(client: Client) -> dict[str, dict]:
    response = client.get(f"{PIPELINE}/state.json")
    assert response.status_code == 200
    return {stage["name"]: stage for stage in response.json()["stages"]}


def in_execution(stage: dict, number: int, status: str) -> bool:
    return stage["execution"] is not None and stage["execution"]["number"] == number and stage["status"] == status


def strip(page: str) -> dict[str, str]:
    """The header's environment strip: environment -> what it shows."""
    found = re.findall(r'data-running="(\w+)" href="[^"]+"[^>]*>\w+: (.*?)</a>', page)
    return {name: re.sub(r"<[^>]+>", "", shown) for name, shown in found}


def test_a_release_through_the_pages_and_its_record(
    private_repo, alice, bob, carol, mallory, environments_of_release, drive
):  # noqa: E501
    from reviews import services as reviews

    git.update_ref(private_repo.path, "refs/heads/feature", git.branch_sha(private_repo.path, "main"), git.ZERO_SHA)
    push_files(private_repo, bob, "feature", release_files("v1"))
    pr = reviews.open_pull_request(private_repo, actor=bob, title="Release v1", base="main", head="feature")
    reviews.submit_review(pr, actor=carol, event="APPROVE", body="Fine by me")
    reviews.merge_pull_request(pr, actor=bob, strategy="merge", head_sha=pr.head_sha)
    pr.refresh_from_db()
    sha = pr.merge_commit_sha

    # Running: the JSON the page polls holds execution 1 in the Build stage.
    reader = client_for(carol)
    running = stages(reader)
    assert running["Build"]["status"] == "InProgress"
    assert running["Build"]["execution"]["number"] == 1 and running["Build"]["execution"]["source_sha"] == sha
    assert running["Build"]["actions"][0]["build"]["number"] >= 1
    assert running["Deploy-uat"]["status"] is None

    drive()

    # Waiting at the approval: dev deployed, the header strip says what dev runs.
    now = stages(reader)
    assert now["Deploy-dev"]["status"] == "Succeeded"
    assert now["Deploy-dev"]["actions"][0]["deployments"][0]["status"] == "Succeeded"
    assert now["Approval"]["status"] == "InProgress"
    assert now["Approval"]["actions"][0]["approval"]["status"] == "Pending"
    home = text_of(reader.get("/alice/project"))
    assert strip(home) == {"dev": sha[:7], "uat": "nothing yet"}
    assert 'href="/alice/project/environments/dev"' in home

    # Readers see the pages and no buttons; an outsider finds nothing.
    listing = text_of(reader.get("/alice/project/pipelines"))
    assert "release" in listing and 'href="/alice/project/pipelines/release/executions/1"' in listing
    page = text_of(reader.get(PIPELINE))
    assert 'data-stage="Approval" data-state="InProgress"' in page
    # The waiting approval links to its page, where its reviewers see what the release changes and answer.
    assert f'<a class="approval-link" href="{PIPELINE}/executions/1/approval">Review and answer</a>' in page
    assert f'href="{PIPELINE}/executions/1/approval"' in text_of(reader.get(f"{PIPELINE}/executions/1"))
    assert "Start execution" not in page and "Disable transition" not in page and "Stop</button>" not in page
    writer_page = text_of(client_for(bob).get(PIPELINE))
    assert "Start execution" in writer_page and "Disable transition" in writer_page and "Stop</button>" in writer_page
    assert "<script>" not in writer_page and "style=" not in writer_page
    urls = [
        "/alice/project/pipelines",
        PIPELINE,
        f"{PIPELINE}/state.json",
        f"{PIPELINE}/executions",
        f"{PIPELINE}/executions/1",
        f"{PIPELINE}/executions/1/release",
        f"{PIPELINE}/executions/1/release.json",
    ]
    for url in urls:
        assert reader.get(url).status_code == 200, url
        assert client_for(mallory).get(url).status_code == 404, url
        assert Client().get(url).status_code in (302, 404), url

    # alice approves with a comment; UAT gets the same bytes; the record holds the chain.
    pipelines.answer_approval(
        latest(private_repo), "Approval", "Approve", user=alice, status="Approved", summary="Ship it."
    )
    drive()
    assert latest(private_repo).status == "Succeeded"
    assert strip(text_of(reader.get("/alice/project"))) == {"dev": sha[:7], "uat": sha[:7]}

    record = reader.get(f"{PIPELINE}/executions/1/release.json").json()
    assert record["source"]["sha"] == sha and record["status"] == "Succeeded"
    assert [(pull["number"], pull["approvers"]) for pull in record["pull_requests"]] == [(pr.number, ["carol"])]
    assert record["build"]["number"] == latest(private_repo).build.number
    digest = record["artifact"]["sha256"]
    assert len(digest) == 64 and record["artifact"]["provenance"]["payloadType"]
    assert [(item["environment"], item["status"], item["artifact_sha256"]) for item in record["deployments"]] == [
        ("dev", "Succeeded", digest),
        ("uat", "Succeeded", digest),
    ]
    assert record["deployments"][0]["targets"] == [{"name": "a", "status": "Succeeded"}]
    [answer] = record["approvals"][0]["answers"]
    assert (answer["user"], answer["status"], answer["summary"]) == ("alice", "Approved", "Ship it.")
    shown = text_of(reader.get(f"{PIPELINE}/executions/1/release"))
    assert digest in shown and "Ship it." in shown and "Release v1" in shown and "carol" in shown

    history = text_of(reader.get(f"{PIPELINE}/executions"))
    assert 'data-execution="1"' in history and "took " in history


def test_the_buttons_of_writers(private_repo, alice, bob, carol, environments_of_release, drive):
    push_files(private_repo, bob, "main", release_files("v1"))
    drive()
    writer, reader = client_for(bob), client_for(carol)

    # Disable and enable a transition; readers may not.
    assert reader.post(f"{PIPELINE}/stages/Deploy-uat/transition", {"enabled": "false"}).status_code == 403
    response = writer.post(
        f"{PIPELINE}/stages/Deploy-uat/transition", {"enabled": "false", "reason": "Freeze"}, follow=True
    )
    assert flashed(response) == ["The transition into Deploy-uat is disabled."]
    assert stages(reader)["Deploy-uat"]["disabled"]["reason"] == "Freeze"
    assert "transition disabled" in text_of(reader.get(PIPELINE))
    response = writer.post(f"{PIPELINE}/stages/Deploy-uat/transition", {"enabled": "true"}, follow=True)
    assert flashed(response) == ["The transition into Deploy-uat is enabled."]
    assert stages(reader)["Deploy-uat"]["disabled"] is None

    # Start an execution by hand: it takes the Build stage.
    assert reader.post(f"{PIPELINE}/start").status_code == 403
    response = writer.post(f"{PIPELINE}/start", follow=True)
    head = git.branch_sha(private_repo.path, "main")
    assert flashed(response) == [f"Execution 2 of {head[:12]} started."]
    execution = latest(private_repo)
    assert (execution.number, execution.trigger, execution.requester) == (2, "manual", bob)
    assert stages(reader)["Build"]["execution"]["number"] == 2
    bad = writer.post(f"{PIPELINE}/start", {"sha": "no-such-branch"}, follow=True)
    assert flashed(bad) == ["'no-such-branch' names no commit of alice/project."]

    # Stop and abandon it; a retry brings its stage back.
    assert reader.post(f"{PIPELINE}/executions/2/stop", {"mode": "abandon"}).status_code == 403
    response = writer.post(f"{PIPELINE}/executions/2/stop", {"mode": "abandon"}, follow=True)
    assert flashed(response) == ["Execution 2 is stopping (abandon)."]
    execution.refresh_from_db()
    assert execution.status == PipelineExecution.Status.STOPPED
    [stopped] = [name for name, stage in stages(reader).items() if in_execution(stage, 2, "Stopped")]
    response = writer.post(f"{PIPELINE}/executions/2/retry", {"mode": "ALL_ACTIONS"}, follow=True)
    assert flashed(response) == ["Execution 2: its failed stage runs again."]
    execution.refresh_from_db()
    assert execution.status == PipelineExecution.Status.IN_PROGRESS
    assert in_execution(stages(reader)[stopped], 2, "InProgress")

    # Refusals come back as messages: a wrong mode, a rollback to an execution that never succeeded.
    wrong = writer.post(f"{PIPELINE}/executions/2/stop", {"mode": "later"}, follow=True)
    assert flashed(wrong) == ["A stop's mode is wait or abandon, not 'later'."]
    refused = writer.post(f"{PIPELINE}/stages/Deploy-dev/rollback", {"execution": "1"}, follow=True)
    assert flashed(refused) == ["Deploy-dev is running execution 2: roll it back once that has ended."]
    assert refused.redirect_chain[-1][0] == PIPELINE
    missing = writer.post(f"{PIPELINE}/stages/Deploy-dev/rollback", {"execution": "9"}, follow=True)
    assert flashed(missing) == ["Pipeline release has no execution 9."]
    assert reader.post(f"{PIPELINE}/stages/Deploy-dev/rollback", {"execution": "1"}).status_code == 403


def test_a_rollback_from_the_page(private_repo, alice, bob, environments_of_release, drive):
    for version in ("v1", "v2"):
        push_files(private_repo, bob, "main", release_files(version))
        drive()
        pipelines.answer_approval(latest(private_repo), "Approval", "Approve", user=alice, status="Approved")
        drive()
    response = client_for(bob).post(f"{PIPELINE}/stages/Deploy-dev/rollback", {"execution": "1"}, follow=True)
    assert flashed(response) == ["Execution 3 rolls Deploy-dev back to execution 1."]
    drive()
    rollback = latest(private_repo)
    assert (rollback.number, rollback.trigger, rollback.rollback_of.number) == (3, "rollback", 1)
    assert rollback.status == "Succeeded", rollback.reason
    assert "rollback to #1" in text_of(client_for(bob).get(f"{PIPELINE}/executions"))


def test_a_bad_pipeline_yml_shows_its_error(private_repo, bob, carol, environments_of_release):
    bad = "version: 1\nname: release\nsource:\n  branch: main\nstages:\n  - name: Build\n    actions:\n      - name: Build\n        type: biuld\n"  # noqa: E501
    push_files(private_repo, bob, "main", release_files("v1") | {"pipeline.yml": bad.encode()})
    for url in ("/alice/project/pipelines", PIPELINE):
        page = text_of(client_for(carol).get(url))
        assert 'data-line="9" data-key="stages[0].actions[0].type">pipeline.yml, line 9' in page, url
        assert "&#x27;biuld&#x27;" in page


def test_the_environment_strip_is_one_query_and_absent_without_environments(
    private_repo, alice, carol, django_assert_num_queries
):
    from releases.templatetags.pipeline_tags import environment_strip
    from releases.tests.deploying import set_targets

    assert environment_strip(private_repo) == ""
    assert "environment-strip" not in text_of(client_for(carol).get("/alice/project"))
    set_targets(private_repo, "dev", ["a"], alice)
    set_targets(private_repo, "uat", ["a"], alice)
    with django_assert_num_queries(1):
        shown = environment_strip(private_repo)
    assert re.findall(r'data-running="([^"]+)"', shown) == ["dev", "uat"]
    assert shown.count("nothing yet") == 2
    assert strip(text_of(client_for(carol).get("/alice/project"))) == {"dev": "nothing yet", "uat": "nothing yet"}


def test_a_cached_page_shows_what_each_environment_runs_now(alice, client):
    """A visitor's repeat view comes from the cache, but its header's environments are read anew."""
    from releases.tests.deploying import set_targets
    from repos import services as repo_services
    from repos.models import Visibility

    site = repo_services.create_repository(
        actor=alice, owner=alice, name="site", initialize=True, visibility=Visibility.PUBLIC
    )
    set_targets(site, "dev", ["a"], alice)
    for url in ("/alice/site", "/alice/site/tree/main"):
        assert strip(text_of(client.get(url))) == {"dev": "nothing yet"}
    set_targets(site, "uat", ["a"], alice)
    # A file's first view: its header, the same as the code pages' before, is kept by the process, but its
    # environments are read anew too.
    for url in ("/alice/site", "/alice/site/tree/main", "/alice/site/blob/main/README.md"):
        assert strip(text_of(client.get(url))) == {"dev": "nothing yet", "uat": "nothing yet"}, url
