"""The webhook settings pages: add a hook, test it, read a delivery, redeliver it, delete the hook."""

from django.test import Client

from portal import services as accounts
from reviews.models import Webhook, WebhookDelivery
from reviews.tests.conftest import SECRET


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_an_admin_adds_tests_and_deletes_a_hook_and_reads_its_deliveries(
    private_repo, alice, receivers, allow_loopback, run_worker, django_capture_on_commit_callbacks
):
    receiver = receivers()
    client = signed_in(alice)
    page = client.get("/alice/project/settings/hooks")
    assert page.status_code == 200 and b"No webhooks yet" in page.content
    form = {
        "url": receiver.url,
        "type": "gitea",
        "content_type": "json",
        "secret": SECRET,
        "events": ["push", "pull_request"],
        "branch_filter": "",
        "active": "on",
    }
    saved = client.post("/alice/project/settings/hooks", form)
    hook = Webhook.objects.get()
    assert saved.status_code == 302 and saved["Location"] == f"/alice/project/settings/hooks/{hook.pk}"
    assert (hook.secret, hook.events, hook.active) == (SECRET, ["push", "pull_request"], True)

    page = client.get(saved["Location"])
    assert b"A secret is set" in page.content and SECRET.encode() not in page.content
    with django_capture_on_commit_callbacks(execute=True):
        client.post(f"/alice/project/settings/hooks/{hook.pk}/test")
    run_worker()
    delivery = WebhookDelivery.objects.get()
    page = client.get(f"/alice/project/settings/hooks/{hook.pk}")
    assert str(delivery.guid).encode() in page.content and b"OK" in page.content

    detail = client.get(f"/alice/project/settings/hooks/{hook.pk}/deliveries/{delivery.pk}")
    assert b"X-Hub-Signature-256: sha256=" in detail.content and b"Response 200" in detail.content
    with django_capture_on_commit_callbacks(execute=True):
        again = client.post(f"/alice/project/settings/hooks/{hook.pk}/deliveries/{delivery.pk}/redeliver")
    run_worker()
    assert again.status_code == 302 and len(receiver.received) == 2

    # Saving without typing the secret keeps it; the box removes it.
    client.post(saved["Location"], form | {"secret": "", "events": ["push"]})
    hook.refresh_from_db()
    assert (hook.secret, hook.events) == (SECRET, ["push"])
    client.post(saved["Location"], form | {"secret": "", "remove_secret": "on"})
    hook.refresh_from_db()
    assert hook.secret == ""

    asked = client.post(f"/alice/project/settings/hooks/{hook.pk}/delete")
    assert asked.status_code == 200 and Webhook.objects.exists()
    client.post(f"/alice/project/settings/hooks/{hook.pk}/delete", {"confirmed": "1"})
    assert not Webhook.objects.exists()


def test_a_bad_hook_is_refused_with_the_reason_and_nothing_saved(private_repo, alice):
    client = signed_in(alice)
    page = client.post(
        "/alice/project/settings/hooks",
        {"url": "https://example.com/hook", "type": "slack", "content_type": "json", "events": ["push"]},
    )
    assert page.status_code == 400 and b"A Slack webhook needs a channel." in page.content
    assert not Webhook.objects.exists()


def test_a_turned_off_hook_says_why_on_its_page(private_repo, alice, allow_loopback):
    from reviews import webhooks

    hook = webhooks.save_webhook(None, actor=alice, repository=private_repo, url="https://example.com/hook")
    Webhook.objects.filter(pk=hook.pk).update(active=False, disabled_reason="Every delivery since noon failed.")
    page = signed_in(alice).get(f"/alice/project/settings/hooks/{hook.pk}")
    assert b"The portal turned this webhook off. Every delivery since noon failed." in page.content


def test_an_organizations_owners_manage_its_hooks(alice, bob):
    org = accounts.create_organization(actor=alice, name="acme")
    devs = accounts.create_team(org, actor=alice, name="devs")
    accounts.add_team_member(devs, bob, actor=alice)
    form = {"url": "https://example.com/hook", "type": "gitea", "content_type": "json", "events": ["repository"]}
    assert signed_in(bob).post("/orgs/acme/hooks", form).status_code == 403
    saved = signed_in(alice).post("/orgs/acme/hooks", form | {"active": "on"})
    hook = Webhook.objects.get()
    assert saved["Location"] == f"/orgs/acme/hooks/{hook.pk}" and hook.organization == org
    assert b"Webhooks" in signed_in(alice).get("/orgs/acme/teams").content
