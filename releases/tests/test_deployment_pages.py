"""The deployment pages over real builds and real deployments (a real rq worker on the deploys queue, local targets
whose hooks run in the sandbox): "Deploy" on a build, the Environments tab, an environment's history, a deployment
with its batches, hooks and logs, the actions on it (review, start now, stop, roll back) and the environment
settings."""

import json
import re

import asyncssh
import pytest
from django.test import Client

from portal import services as accounts
from portal.models import AuditEvent
from releases import deployments, environments
from releases.models import Deployment, EnvironmentTarget
from releases.tests.deploying import release_files, set_targets

pytestmark = pytest.mark.usefixtures("transactional_db")


def client_for(user) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def text_of(response) -> str:
    return response.content.decode()


def field_errors(response, field: str) -> list[str]:
    """The errors shown beside a field of the environment form."""
    form = response.context["form"]
    return list(form.errors.get(field, []))


def flashed(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def test_deploy_on_a_build_deploys_it_and_the_pages_show_it(
    private_repo, alice, bob, carol, mallory, built, run_deploys
):
    build = built(private_repo, bob, release_files("v1"))
    set_targets(private_repo, "dev", ["a", "b"], alice, deployment_config={"name": "OneAtATime"})
    set_targets(private_repo, "uat", ["u"], alice)
    build_page = f"/alice/project/builds/{build.number}"

    # A reader sees no Deploy form and may not post one; a writer sees the environments in order.
    assert 'class="box deploy-build"' not in text_of(client_for(carol).get(build_page))
    refused = client_for(carol).post(f"{build_page}/deploy", {"environment": "dev"})
    assert refused.status_code == 403
    page = text_of(client_for(bob).get(build_page))
    assert re.findall(r'<option value="(\w+)">', page.split("deploy-build")[1].split("</form>")[0]) == ["dev", "uat"]

    # An environment that is not there is refused with its reason, on the build's page.
    missing = client_for(bob).post(f"{build_page}/deploy", {"environment": "prod"}, follow=True)
    assert missing.redirect_chain[-1][0] == build_page
    assert "Choose an environment of this repository to deploy to." in flashed(missing)
    assert not Deployment.objects.exists()

    environments.set_environment(private_repo, "empty", actor=alice)
    no_targets = client_for(bob).post(f"{build_page}/deploy", {"environment": "empty"}, follow=True)
    assert "empty has no targets to deploy to." in flashed(no_targets)
    assert not Deployment.objects.exists()

    response = client_for(bob).post(f"{build_page}/deploy", {"environment": "dev"})
    deployment = Deployment.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/alice/project/deployments/{deployment.pk}"
    assert (deployment.creator, deployment.environment.name, deployment.artifact.build) == (bob, "dev", build)

    run_deploys()
    deployment.refresh_from_db()
    assert deployment.deployment_status == Deployment.Status.SUCCEEDED, deployment.message

    # The deployment's page, as a reader sees it: batches of one target each, hooks with durations, the artifact.
    detail = client_for(carol).get(f"/alice/project/deployments/{deployment.pk}")
    assert detail.status_code == 200
    html = text_of(detail)
    assert "data-deployment-status>Succeeded<" in html
    batches = re.findall(r'<section class="box batch" data-batch="(\w+)">', html)
    assert batches == ["1", "2"]
    assert re.findall(r'class="box-row deployment-target check-success" data-target="(\w)"', html) == ["a", "b"]
    for event in ("BeforeInstall", "AfterInstall", "ApplicationStart", "ValidateService"):
        assert f'data-event="{event}"' in html
        assert f'<div class="hook-section" data-hook="{event}">' in html
    assert f"{event} of {deployment.pk} on dev: v1" in html
    assert f"sha256:{deployment.artifact.sha256}" in html
    assert f'href="/alice/project/builds/{build.number}"' in html
    assert f'href="/alice/project/commit/{build.head_sha}"' in html
    provenance = f"/alice/project/builds/{build.number}/artifacts/{deployment.artifact.pk}/provenance.json"
    assert f'href="{provenance}"' in html
    assert client_for(carol).get(provenance).status_code == 200
    assert "OneAtATime" in html and "at least 1 healthy" in html
    assert [s.state for s in deployment.statuses.order_by("created", "id")] == ["queued", "in_progress", "success"]
    assert html.index(">queued<") < html.index(">in_progress<") < html.index(">success<")
    # Buttons only for those allowed: no reader's, and nothing to roll back to from a first deployment.
    for button in ("Stop</button>", "Roll back</button>", "Start now</button>", "Approve and deploy"):
        assert button not in html
    assert "Roll back</button>" not in text_of(client_for(bob).get(f"/alice/project/deployments/{deployment.pk}"))

    # The log poll endpoint answers one target's lines, from an offset, its hooks' headers marked.
    url = f"/alice/project/deployments/{deployment.pk}/targets/b/log"
    piece = client_for(carol).get(url).json()
    assert piece["ended"] and piece["status"] == "Succeeded" and not piece["more"]
    assert 'data-phase="ApplicationStart"' in piece["html"]
    assert f"ApplicationStart of {deployment.pk} on dev: v1" in piece["html"]
    half = piece["offset"] // 2
    rest = client_for(carol).get(url, {"offset": half, "line": 3}).json()
    assert rest["offset"] == piece["offset"] and 'id="L4"' in rest["html"] and 'id="L1"' not in rest["html"]
    assert client_for(carol).get(url, {"offset": "x"}).status_code == 400
    assert client_for(carol).get(f"/alice/project/deployments/{deployment.pk}/targets/zz/log").status_code == 404
    own = client_for(carol).get(f"/alice/project/deployments/{deployment.pk}/log").json()
    assert own["targets"] == 2 and "Verified: the bytes are sha256:" in own["html"]

    # The Environments tab: each target's artifact, health and last deployment, in the environments' order.
    tab = text_of(client_for(carol).get("/alice/project/environments"))
    assert re.findall(r'<section class="box environment" data-environment="(\w+)">', tab) == ["dev", "uat", "empty"]
    dev = tab.split('data-environment="dev"')[1].split("</section>")[0]
    for name in ("a", "b"):
        row = dev.split(f'data-target="{name}"')[1].split("</tr>")[0]
        assert f"sha256:{deployment.artifact.sha256[:12]}" in row
        assert f'href="/alice/project/builds/{build.number}"' in row
        assert f'href="/alice/project/commit/{build.head_sha}"' in row
        assert "health-healthy" in row
        assert f'href="/alice/project/deployments/{deployment.pk}"' in row
    uat = tab.split('data-environment="uat"')[1].split("</section>")[0]
    assert "nothing deployed" in uat
    # The environment's history.
    history = text_of(client_for(carol).get("/alice/project/environments/dev"))
    assert f'href="/alice/project/deployments/{deployment.pk}"><strong>#{deployment.pk}</strong> Succeeded' in history
    assert "bob" in history
    assert client_for(carol).get("/alice/project/environments/prod").status_code == 404

    # A private repository's deployments are hidden from everyone else.
    hidden = [
        "/alice/project/environments",
        "/alice/project/environments/dev",
        f"/alice/project/deployments/{deployment.pk}",
        f"/alice/project/deployments/{deployment.pk}/log",
        f"/alice/project/deployments/{deployment.pk}/targets/a/log",
    ]
    for path in hidden:
        assert client_for(mallory).get(path).status_code == 404, path
        assert client_for(None).get(path).status_code in (302, 404), path
    assert client_for(mallory).post(f"/alice/project/deployments/{deployment.pk}/rollback").status_code == 404


def test_a_failure_rolls_back_the_pages_link_both_ways_and_a_writer_rolls_back_by_hand(
    private_repo, alice, bob, carol, built, run_deploys
):
    dev = set_targets(private_repo, "dev", ["a"], alice)
    first = built(private_repo, bob, release_files("v1"))
    deployments.request_deployment(private_repo, dev, actor=bob, sha=first.head_sha)
    run_deploys()
    second = built(private_repo, bob, release_files("v2", fail={"ValidateService": "exit 3"}))
    failed = deployments.request_deployment(private_repo, dev, actor=bob, sha=second.head_sha)
    run_deploys()
    failed.refresh_from_db()
    assert failed.deployment_status == Deployment.Status.FAILED
    rollback = Deployment.objects.get(rollback_of=failed)
    assert rollback.deployment_status == Deployment.Status.SUCCEEDED

    page = text_of(client_for(carol).get(f"/alice/project/deployments/{failed.pk}"))
    assert f'Rolled back by <a href="/alice/project/deployments/{rollback.pk}">#{rollback.pk}</a>' in page
    assert "does not undo what this deployment's hooks did" in page
    assert 'class="box-row deployment-target check-failure" data-target="a"' in page
    assert '<tr class="check-failure" data-event="ValidateService">' in page
    page = text_of(client_for(carol).get(f"/alice/project/deployments/{rollback.pk}"))
    assert f'Automatic rollback of <a href="/alice/project/deployments/{failed.pk}">#{failed.pk}</a>' in page
    history = text_of(client_for(carol).get("/alice/project/environments/dev"))
    assert f'rollback of <a href="/alice/project/deployments/{failed.pk}">#{failed.pk}</a>, automatic' in history
    assert f'rolled back by <a href="/alice/project/deployments/{rollback.pk}">#{rollback.pk}</a>' in history

    # Roll back by hand: writers only, and the button only for them.
    assert "Roll back</button>" not in text_of(client_for(carol).get(f"/alice/project/deployments/{rollback.pk}"))
    assert "Roll back</button>" in text_of(client_for(bob).get(f"/alice/project/deployments/{rollback.pk}"))
    assert client_for(carol).post(f"/alice/project/deployments/{rollback.pk}/rollback").status_code == 403
    response = client_for(bob).post(f"/alice/project/deployments/{rollback.pk}/rollback")
    again = Deployment.objects.get(rollback_of=rollback)
    assert response["Location"] == f"/alice/project/deployments/{again.pk}"
    assert (again.creator, again.automatic, again.artifact.build) == (bob, False, first)
    # The first deployment has nothing before it: the refusal says so.
    response = client_for(bob).post(f"/alice/project/deployments/{failed.pk - 1}/rollback", follow=True)
    assert "dev has no successful deployment before this one to roll back to." in flashed(response)


def test_reviewers_approve_or_reject_admins_start_early_and_writers_stop(
    private_repo, alice, bob, carol, mallory, built, rq_queues
):
    build = built(private_repo, bob, release_files("v1"))
    uat = set_targets(private_repo, "uat", ["u"], alice, reviewers=[{"type": "User", "id": carol.pk}])
    waiting = deployments.request_deployment(private_repo, uat, actor=bob, sha=build.head_sha)
    assert waiting.deployment_status == Deployment.Status.WAITING
    url = f"/alice/project/deployments/{waiting.pk}"

    # The waiting deployment says why on its page and on the Environments tab; only the reviewer may review.
    assert client_for(mallory).get(url).status_code == 404
    page = text_of(client_for(carol).get(url))
    assert "Waiting: Waiting for review" in page and "Approve and deploy" in page
    for user in (bob, alice):
        assert "Approve and deploy" not in text_of(client_for(user).get(url))
    tab = text_of(client_for(bob).get("/alice/project/environments"))
    assert f'<a href="{url}">#{waiting.pk}</a> waits: <span class="waiting-reason">Waiting for review' in tab
    assert client_for(bob).post(f"{url}/review", {"state": "approved"}).status_code == 403

    response = client_for(carol).post(f"{url}/review", {"state": "rejected", "comment": "not this week"})
    assert response["Location"] == url
    waiting.refresh_from_db()
    assert waiting.deployment_status == Deployment.Status.FAILED
    assert waiting.message == "Rejected by carol: not this week"
    assert "carol</strong> rejected: not this week" in text_of(client_for(bob).get(url))

    approved = deployments.request_deployment(private_repo, uat, actor=bob, sha=build.head_sha)
    client_for(carol).post(f"/alice/project/deployments/{approved.pk}/review", {"state": "approved"})
    approved.refresh_from_db()
    assert approved.deployment_status == Deployment.Status.QUEUED

    # A wait timer: admins see "Start now", which is audited; writers see Stop, readers neither.
    dev = set_targets(private_repo, "dev", ["d"], alice, wait_timer=30)
    timed = deployments.request_deployment(private_repo, dev, actor=bob, sha=build.head_sha)
    url = f"/alice/project/deployments/{timed.pk}"
    page = text_of(client_for(alice).get(url))
    assert "Waiting: Waiting for the environment&#x27;s 30-minute timer" in page
    assert "Start now</button>" in page and "Stop</button>" in page
    page = text_of(client_for(bob).get(url))
    assert "Start now</button>" not in page and "Stop</button>" in page
    page = text_of(client_for(carol).get(url))
    assert "Start now</button>" not in page and "Stop</button>" not in page
    assert client_for(bob).post(f"{url}/override").status_code == 403
    assert client_for(alice).post(f"{url}/override")["Location"] == url
    timed.refresh_from_db()
    assert (timed.deployment_status, timed.override_by) == (Deployment.Status.QUEUED, alice)
    assert AuditEvent.objects.filter(action="deployment.override", actor=alice).exists()

    stopped = deployments.request_deployment(private_repo, dev, actor=bob, sha=build.head_sha)
    url = f"/alice/project/deployments/{stopped.pk}"
    assert client_for(carol).post(f"{url}/stop").status_code == 403
    assert client_for(bob).post(f"{url}/stop")["Location"] == url
    stopped.refresh_from_db()
    assert (stopped.deployment_status, stopped.message) == (Deployment.Status.STOPPED, "Stopped by bob.")
    page = text_of(client_for(bob).get(url))
    assert "Stop</button>" not in page and "Stopped by bob." in page

    # The environment's history, newest first, thirty a page.
    for _ in range(30):
        deployments.request_deployment(private_repo, dev, actor=bob, sha=build.head_sha)
    ids = list(dev.deployments.order_by("-created", "-id").values_list("pk", flat=True))
    assert len(ids) == 32

    def listed(query: str) -> list[int]:
        html = text_of(client_for(carol).get(f"/alice/project/environments/dev{query}"))
        return [int(n) for n in re.findall(r'class="deployment-title" href="/alice/project/deployments/(\d+)"', html)]

    assert listed("") == ids[:30]
    assert listed("?page=2") == ids[30:] == [stopped.pk, timed.pk]


def test_admins_set_up_environments_with_targets_variables_and_secrets(private_repo, alice, bob, carol):
    settings_url = "/alice/project/settings/environments"
    assert client_for(bob).get(settings_url).status_code == 403
    assert client_for(carol).post(settings_url, {"name": "prod"}).status_code == 403
    response = client_for(alice).post(settings_url, {"name": "prod"})
    assert response["Location"] == f"{settings_url}/prod"
    bad_name = client_for(alice).post(settings_url, {"name": "../x"})
    assert bad_name.status_code == 400 and "has-error" in text_of(bad_name)

    url = f"{settings_url}/prod"
    host_key = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()
    form = {
        "config": "HOST_COUNT",
        "config_value": "1",
        "reviewers": "carol",
        "required_approvals": "1",
        "prevent_self_review": "on",
        "default_branch": "on",
        "patterns": "tag:v*\n",
        "wait_timer": "5",
        "freeze_windows": "",
        "target_count": "3",
        "target-0-name": "web1",
        "target-0-type": "local",
        "target-0-health_check": "test -f /srv/app/version.txt",
        "target-1-name": "web2",
        "target-1-type": "ssh",
        "target-1-host": "web2.example.com",
        "target-1-port": "22",
        "target-1-user": "deploy",
        "target-1-host_key": "ssh-ed25519 not-a-key",
    }
    # A refusal of the service shows beside the field it names: here the second target's host key.
    refused = client_for(alice).post(url, form)
    assert refused.status_code == 400
    row = text_of(refused).split('data-row="1"')[1].split("</fieldset>")[0]
    host_key_field = row.split('for="target-1-host_key"')[1].split('<div class="field')[0]
    assert "errorlist" in host_key_field
    assert not EnvironmentTarget.objects.exists()
    # A bad freeze window names the window and its key.
    windows = [{"cron": "0 18 * * 8", "duration_minutes": 60, "timezone": "UTC"}]
    refused = client_for(alice).post(url, form | {"freeze_windows": json.dumps(windows)})
    assert "Window 1 (cron): &#x27;0 18 * * 8&#x27;" in text_of(refused)
    refused = client_for(alice).post(url, form | {"freeze_windows": "[{"})
    assert "Line 1, column 3" in text_of(refused)
    refused = client_for(alice).post(url, form | {"reviewers": "carol nobody"})
    assert "There is no user or team named nobody." in text_of(refused)
    organization = accounts.create_organization(actor=alice, name="acme")
    accounts.create_team(organization, actor=alice, name="ops")
    refused = client_for(alice).post(url, form | {"reviewers": "acme/ops"})
    assert field_errors(refused, "reviewers") == ["The team acme/ops does not belong to alice."]
    refused = client_for(alice).post(url, form | {"config": "FLEET_PERCENT", "config_value": "100"})
    assert field_errors(refused, "config_value")
    assert not field_errors(refused, "config")

    windows = [{"cron": "0 18 * * 5", "duration_minutes": 600, "timezone": "Europe/Paris", "name": "weekend"}]
    saved = client_for(alice).post(
        url, form | {"target-1-host_key": host_key, "freeze_windows": json.dumps(windows)}, follow=True
    )
    assert saved.redirect_chain[-1][0] == url
    environment = environments.find_environment(private_repo, "prod")
    described = environments.describe(environment)
    assert described["deployment_config"] == {"name": "HOST_COUNT 1", "type": "HOST_COUNT", "value": 1}
    assert described["reviewers"] == [{"type": "User", "id": carol.pk}]
    assert described["deployment_branch_policy"] == {
        "default_branch": True,
        "protected_branches": False,
        "patterns": ["tag:v*"],
    }
    assert (described["wait_timer"], described["freeze_windows"][0]["name"]) == (5, "weekend")
    web2 = environment.targets.get(name="web2")
    assert web2.deploy_key_public.startswith("ssh-ed25519 ")
    assert any(web2.deploy_key_public in message for message in flashed(saved))
    page = text_of(saved)
    assert f'<pre class="mono deploy-key-line" data-deploy-key="web2">{web2.deploy_key_public}</pre>' in page
    assert 'value="test -f /srv/app/version.txt"' in page and "carol" in page

    # Variables are shown; a secret's value never is.
    client_for(alice).post(f"{url}/variables", {"kind": "variable", "name": "REGION", "value": "eu-west"})
    client_for(alice).post(f"{url}/variables", {"kind": "secret", "name": "API_TOKEN", "value": "s3cr3t-value"})
    page = text_of(client_for(alice).get(url))
    assert "eu-west" in page and "API_TOKEN" in page and "s3cr3t-value" not in page
    assert client_for(bob).post(f"{url}/variables", {"kind": "variable", "name": "X", "value": "1"}).status_code == 403
    bad = client_for(alice).post(f"{url}/variables", {"kind": "variable", "name": "1BAD", "value": "x"})
    assert bad.status_code == 400 and "has-error" in text_of(bad)
    delete = f"{url}/variables/secret/API_TOKEN/delete"
    assert "Delete the secret API_TOKEN of prod?" in text_of(client_for(alice).post(delete))
    client_for(alice).post(delete, {"confirmed": "1"})
    assert not environment.variables.filter(secret=True).exists()

    # Emptying a row removes its target; deleting the environment asks first.
    empty_row = {f"target-1-{key}": "" for key in ("name", "host", "port", "user", "host_key")}
    emptied = client_for(alice).post(url, form | empty_row | {"config": "OneAtATime"})
    assert emptied.status_code == 302, re.findall(r"errorlist.*?</ul>", text_of(emptied))
    assert list(environment.targets.values_list("name", flat=True)) == ["web1"]
    assert "Delete the environment prod?" in text_of(client_for(alice).post(f"{url}/delete"))
    assert client_for(alice).post(f"{url}/delete", {"confirmed": "1"})["Location"] == settings_url
    assert environments.find_environment(private_repo, "prod") is None
