"""The webhook API: Gitea's hook shapes, GitHub's delivery shapes, and a 422 naming every field it does not do."""

import pytest
from django.test import Client

from portal import services as accounts
from repos.tests.api_client import send, token_for
from reviews.models import Webhook, WebhookDelivery
from reviews.tests.conftest import SECRET

HOOKS = "/repos/alice/project/hooks"


def gitea_hook(receiver_url: str, **extra) -> dict:
    config = {"url": receiver_url, "content_type": "json", "secret": SECRET}
    return {"type": "gitea", "config": config, "events": ["push", "pull_request"], "active": True} | extra


def test_a_hook_created_as_gitea_clients_do_never_shows_its_secret(private_repo, alice, as_alice):
    client = Client()
    created = send(client, "POST", HOOKS, gitea_hook("https://example.com/hook", branch_filter="main"), **as_alice)
    assert created.status_code == 201, created.content
    hook = created.json()
    assert hook["type"] == "gitea" and hook["events"] == ["push", "pull_request"] and hook["active"] is True
    assert hook["config"] == {"url": "https://example.com/hook", "content_type": "json", "http_method": "post"}
    assert hook["branch_filter"] == "main" and hook["authorization_header"] == ""
    assert SECRET not in created.content.decode()
    assert Webhook.objects.get(pk=hook["id"]).secret == SECRET

    listed = send(client, "GET", HOOKS, **as_alice)
    assert [h["id"] for h in listed.json()] == [hook["id"]] and listed["X-Total-Count"] == "1"
    assert SECRET not in listed.content.decode()
    edited = send(client, "PATCH", f"{HOOKS}/{hook['id']}", {"active": False, "events": ["status"]}, **as_alice)
    assert (edited.json()["active"], edited.json()["events"]) == (False, ["status"])
    # Editing without a secret keeps it.
    assert Webhook.objects.get(pk=hook["id"]).secret == SECRET
    assert send(client, "DELETE", f"{HOOKS}/{hook['id']}", **as_alice).status_code == 204
    assert send(client, "GET", f"{HOOKS}/{hook['id']}", **as_alice).status_code == 404


def test_as_in_gitea_a_hook_without_active_starts_off_and_one_without_events_gets_pushes(private_repo, as_alice):
    body = {"type": "gitea", "config": {"url": "https://example.com/hook", "content_type": "json"}}
    hook = send(Client(), "POST", HOOKS, body, **as_alice).json()
    assert (hook["active"], hook["events"]) == (False, ["push"])


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"type": "discord"}, "type"),
        # A value that looks like a format is quoted as it is, not formatted (that was a 500).
        ({"type": "%d"}, "type"),
        ({"events": ["push", "issues"]}, "events"),
        ({"config": {"url": "https://example.com/hook", "content_type": "json", "is_system_webhook": "x"}}, "config"),
        ({"config": {"url": "https://example.com/hook", "content_type": "json", "http_method": "get"}}, "config"),
        ({"config": {"url": "https://example.com/hook", "content_type": "xml"}}, "content_type"),
        ({"config": {"url": "ftp://example.com/hook", "content_type": "json"}}, "url"),
        ({"type": "slack"}, "config"),
        ({"owner": "alice"}, "owner"),
    ],
)
def test_what_the_portal_does_not_do_is_refused_naming_the_field(private_repo, as_alice, change, field):
    response = send(Client(), "POST", HOOKS, gitea_hook("https://example.com/hook") | change, **as_alice)
    assert response.status_code == 422, response.content
    assert field in response.content.decode()
    assert not Webhook.objects.exists()


def test_tokens_without_write_scope_and_people_who_are_not_admins_cannot_manage_hooks(private_repo, alice, bob):
    client = Client()
    reader_token = token_for(alice, scopes=("api", "read:repo"))
    assert send(client, "POST", HOOKS, gitea_hook("https://example.com/hook"), **reader_token).status_code == 403
    # A read-only token acts with read access at most, as for deploy keys: hooks need an administrator.
    assert send(client, "GET", HOOKS, **reader_token).status_code == 403
    assert send(client, "GET", HOOKS, **token_for(alice, scopes=("api", "write:repo"))).status_code == 200
    # bob writes to the repository but does not administer it.
    assert send(client, "GET", HOOKS, **token_for(bob)).status_code == 403
    assert not Webhook.objects.exists()


def test_deliveries_in_githubs_shape_and_a_redelivery(
    private_repo, alice, as_alice, receivers, allow_loopback, run_worker, django_capture_on_commit_callbacks
):
    receiver = receivers(status=201, body=b'{"seen": true}')
    client = Client()
    hook = send(client, "POST", HOOKS, gitea_hook(receiver.url), **as_alice).json()
    with django_capture_on_commit_callbacks(execute=True):
        assert send(client, "POST", f"{HOOKS}/{hook['id']}/tests", **as_alice).status_code == 204
    run_worker()

    [listed] = send(client, "GET", f"{HOOKS}/{hook['id']}/deliveries", **as_alice).json()
    delivery = WebhookDelivery.objects.get()
    assert listed | {"delivered_at": None, "duration": None} == {
        "id": delivery.pk,
        "guid": str(delivery.guid),
        "delivered_at": None,
        "redelivery": False,
        "duration": None,
        "status": "OK",
        "status_code": 201,
        "event": "push",
        "action": None,
        "installation_id": None,
        "repository_id": private_repo.pk,
        "throttled_at": None,
        "attempts": 1,
    }
    detail = send(client, "GET", f"{HOOKS}/{hook['id']}/deliveries/{delivery.pk}", **as_alice).json()
    assert detail["request"]["headers"]["X-Gitea-Event"] == "push"
    assert detail["request"]["headers"]["X-Hub-Signature-256"].startswith("sha256=")
    assert detail["request"]["payload"]["ref"] == "refs/heads/main"
    assert detail["response"]["payload"] == '{"seen": true}'
    assert [a["status_code"] for a in detail["attempts_log"]] == [201]

    with django_capture_on_commit_callbacks(execute=True):
        again = send(client, "POST", f"{HOOKS}/{hook['id']}/deliveries/{delivery.pk}/attempts", **as_alice)
    assert again.status_code == 202
    assert (again.json()["redelivery"], again.json()["guid"]) == (True, str(delivery.guid))
    run_worker()
    assert len(receiver.received) == 2
    assert send(client, "GET", f"{HOOKS}/{hook['id']}/deliveries/999999", **as_alice).status_code == 404


def test_an_organizations_hooks_belong_to_its_owners(alice, bob):
    org = accounts.create_organization(actor=alice, name="acme")
    devs = accounts.create_team(org, actor=alice, name="devs")
    accounts.add_team_member(devs, bob, actor=alice)
    client = Client()
    body = gitea_hook("https://example.com/hook", events=["repository"])
    created = send(client, "POST", "/orgs/acme/hooks", body, **token_for(alice, scopes=("api", "write:org")))
    assert created.status_code == 201, created.content
    assert send(client, "GET", "/orgs/acme/hooks", **token_for(bob, scopes=("api", "read:org"))).status_code == 403
    assert (
        send(client, "POST", "/orgs/acme/hooks", body, **token_for(alice, scopes=("api", "write:repo"))).status_code
        == 403
    )
    assert Webhook.objects.get().organization == org
