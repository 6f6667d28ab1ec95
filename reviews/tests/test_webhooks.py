"""Webhooks with a real HTTP receiver on the loopback and real rq workers: Gitea's payloads and headers for each
event, the signature, retries with backoff, redelivery, the automatic disable, and outbound safety end to end."""

import hashlib
import hmac
import json
from datetime import timedelta
from urllib.parse import parse_qs

import pytest
from django.utils import timezone

from portal import services as accounts
from portal.audit import AuditEvent
from portal.jobs import JobRow
from repos import git
from repos import services as repo_services
from repos.access import Principal
from reviews import jobs, services, webhooks
from reviews.models import MergeStrategy, Notification, Webhook, WebhookDelivery
from reviews.tests.conftest import SECRET, make_branch

# The fields of Gitea's payloads (its documentation's examples and its api structs) that receivers read.
GITEA_USER = {"id", "login", "username", "full_name", "email"}
GITEA_REPOSITORY = {
    "id",
    "owner",
    "name",
    "full_name",
    "description",
    "private",
    "html_url",
    "ssh_url",
    "clone_url",
    "default_branch",
    "created_at",
    "updated_at",
}
GITEA_COMMIT = {
    "id",
    "message",
    "url",
    "author",
    "committer",
    "verification",
    "timestamp",
    "added",
    "removed",
    "modified",
}
GITEA_PUSH = {"ref", "before", "after", "compare_url", "commits", "total_commits", "head_commit", "pusher", "sender"}
GITEA_PULL_REQUEST = {
    "id",
    "number",
    "user",
    "title",
    "body",
    "state",
    "base",
    "head",
    "merged",
    "html_url",
    "merge_base",
}


@pytest.fixture
def deliver_all(run_worker, django_capture_on_commit_callbacks):
    """deliver_all(action): do action, commit, and let a real worker send what it queued."""

    def run(action=None):
        with django_capture_on_commit_callbacks(execute=True):
            result = action() if action else None
        run_worker()
        return result

    return run


def received_json(receiver) -> list[tuple[dict, dict]]:
    return [(headers, json.loads(body)) for headers, body in receiver.received]


def check_gitea_shapes(payload: dict) -> None:
    assert GITEA_REPOSITORY <= set(payload["repository"])
    assert GITEA_USER <= set(payload["repository"]["owner"])
    assert GITEA_USER <= set(payload["sender"])


def test_a_push_over_http_reaches_the_receiver_signed_in_giteas_shape(
    clone_as, private_repo, alice, receivers, hook_to, run_worker, django_capture_on_commit_callbacks
):
    receiver = receivers()
    hook_to(receiver, events=["push", "create", "delete"])
    work = clone_as(alice)
    old = work.git("rev-parse", "HEAD").stdout.strip()
    first = work.commit("add the parser", parser__py="print(1)\n")
    second = work.commit("change the readme", README__md="# project\n")
    work.push("HEAD:main")
    run_worker()

    [(headers, body)] = receiver.received
    # The signature is the HMAC-SHA256 of the exact body with the secret, as Gitea and GitHub send it.
    digest = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert headers["X-Hub-Signature-256"] == f"sha256={digest}"
    assert headers["X-Gitea-Signature"] == digest
    assert (headers["X-Gitea-Event"], headers["X-GitHub-Event"], headers["X-Gitea-Event-Type"]) == ("push",) * 3
    assert headers["X-Gitea-Delivery"] == headers["X-GitHub-Delivery"]
    assert headers["Content-Type"] == "application/json"
    payload = json.loads(body)
    assert GITEA_PUSH <= set(payload)
    check_gitea_shapes(payload)
    assert (payload["ref"], payload["before"], payload["after"]) == ("refs/heads/main", old, second)
    assert payload["compare_url"].endswith(f"/alice/project/compare/{old}...{second}")
    assert payload["total_commits"] == 2
    assert [c["id"] for c in payload["commits"]] == [second, first]
    assert all(GITEA_COMMIT <= set(c) for c in payload["commits"])
    assert (payload["commits"][1]["added"], payload["commits"][0]["modified"]) == (["parser.py"], ["README.md"])
    assert payload["head_commit"]["id"] == second
    # Times to the second with the offset, as Gitea writes them.
    assert payload["head_commit"]["timestamp"].endswith("Z") and "." not in payload["head_commit"]["timestamp"]
    assert (payload["pusher"]["login"], payload["sender"]["login"]) == ("alice", "alice")
    assert payload["repository"]["full_name"] == "alice/project" and payload["repository"]["private"] is True

    delivery = WebhookDelivery.objects.get()
    assert (delivery.state, delivery.attempts, str(delivery.guid)) == ("done", 1, headers["X-Gitea-Delivery"])
    [attempt] = delivery.attempt_rows.all()
    assert (attempt.number, attempt.status_code, attempt.response_body) == (1, 200, "ok")
    assert attempt.request_headers["X-Hub-Signature-256"] == f"sha256={digest}"

    # A new branch: its create event, then its push; a deleted one: its delete event alone.
    receiver.received.clear()
    work.git("checkout", "-q", "-b", "topic")
    topic = work.commit("topic work", topic__txt="t\n")
    work.push("topic")
    work.push(":topic")
    run_worker()
    events = [(h["X-Gitea-Event"], p.get("ref"), p.get("ref_type")) for h, p in received_json(receiver)]
    assert events == [("create", "topic", "branch"), ("push", "refs/heads/topic", None), ("delete", "topic", "branch")]
    create, push, delete = (p for _, p in received_json(receiver))
    assert create["sha"] == topic and delete["pusher_type"] == "user"
    # A new branch's push lists what its default branch lacks.
    assert [c["id"] for c in push["commits"]] == [topic] and push["before"] == git.ZERO_SHA


def test_branch_filters_inactive_hooks_and_unchosen_events_send_nothing(
    private_repo, alice, receivers, hook_to, deliver_all
):
    wanted, filtered, inactive, other = receivers(), receivers(), receivers(), receivers()
    hook_to(wanted, events=["push"], branch_filter="{main,release/*}")
    hook_to(filtered, events=["push"], branch_filter="release/*")
    hook_to(inactive, events=["push"], active=False)
    hook_to(other, events=["pull_request"])

    def push_main():
        git.commit_files(private_repo.path, "main", {"a.txt": b"a"}, "a", name="alice", email="alice@example.com")
        sha = git.branch_sha(private_repo.path, "main")
        update = repo_services.RefUpdate("refs/heads/main", git.commit(private_repo.path, sha).parents[0], sha)
        repo_services.record_push(private_repo, actor=Principal(user=alice), protocol="ssh", updates=[update])

    deliver_all(push_main)
    assert [len(r.received) for r in (wanted, filtered, inactive, other)] == [1, 0, 0, 0]


@pytest.fixture
def feature(private_repo):
    make_branch(private_repo, "feature", {"app.py": b"def f():\n    return 1\n"}, "add app")
    return private_repo


def test_pull_request_review_comment_and_status_events_in_giteas_shapes(
    feature, alice, bob, carol, receivers, hook_to, deliver_all
):
    receiver = receivers()
    hook_to(receiver, events=["pull_request", "pull_request_review", "pull_request_comment", "status"])

    pr = deliver_all(
        lambda: services.open_pull_request(feature, actor=bob, title="Add the app", base="main", head="feature")
    )
    deliver_all(lambda: services.update_pull_request(pr, actor=bob, title="Add the app, tested"))
    deliver_all(lambda: services.close_pull_request(pr, actor=bob))
    deliver_all(lambda: services.reopen_pull_request(pr, actor=bob))
    deliver_all(lambda: services.add_comment(pr, actor=carol, body="Why 1?"))
    rejected = deliver_all(lambda: services.submit_review(pr, actor=carol, event="REQUEST_CHANGES", body="Make it 2"))
    deliver_all(lambda: services.dismiss_review(rejected, actor=alice, reason="answered"))

    def push_to_the_head():
        old = pr.head_sha
        new = git.commit_files(feature.path, "feature", {"app.py": b"2\n"}, "two", name="bob", email="bob@example.com")
        update = repo_services.RefUpdate("refs/heads/feature", old, new)
        repo_services.record_push(feature, actor=Principal(user=bob), protocol="http", updates=[update])

    deliver_all(push_to_the_head)
    pr.refresh_from_db()
    deliver_all(
        lambda: services.set_commit_status(feature, actor=alice, sha=pr.head_sha, state="success", context="ci")
    )
    deliver_all(lambda: services.submit_review(pr, actor=alice, event="APPROVE", commit_sha=pr.head_sha))
    deliver_all(
        lambda: services.merge_pull_request(pr, actor=alice, strategy=MergeStrategy.MERGE, head_sha=pr.head_sha)
    )

    got = received_json(receiver)
    assert [(h["X-Gitea-Event"], h["X-Gitea-Event-Type"], p.get("action")) for h, p in got] == [
        ("pull_request", "pull_request", "opened"),
        ("pull_request", "pull_request", "edited"),
        ("pull_request", "pull_request", "closed"),
        ("pull_request", "pull_request", "reopened"),
        ("issue_comment", "pull_request_comment", "created"),
        ("pull_request_rejected", "pull_request_review_rejected", "reviewed"),
        ("pull_request_review", "pull_request_review", "dismissed"),
        ("pull_request", "pull_request", "synchronized"),
        ("status", "status", None),
        ("pull_request_approved", "pull_request_review_approved", "reviewed"),
        ("pull_request", "pull_request", "closed"),
    ]
    opened, edited, closed, _, comment, rejected_event, dismissed, synchronized, status, review, merged = (
        p for _, p in got
    )
    for payload in (opened, edited, closed, review, merged, synchronized, dismissed):
        check_gitea_shapes(payload)
        assert GITEA_PULL_REQUEST <= set(payload["pull_request"])
        assert payload["number"] == pr.number
    assert (opened["pull_request"]["head"]["ref"], opened["pull_request"]["base"]["ref"]) == ("feature", "main")
    assert opened["sender"]["login"] == "bob"
    assert edited["changes"] == {"title": {"from": "Add the app"}}
    assert closed["pull_request"]["merged"] is False
    assert (comment["is_pull"], comment["comment"]["body"], comment["issue"]["number"]) == (True, "Why 1?", pr.number)
    assert comment["sender"]["login"] == "carol"
    assert (rejected_event["review"]["type"], rejected_event["review"]["content"]) == (
        "pull_request_review_rejected",
        "Make it 2",
    )
    assert dismissed["review_detail"]["dismissed_reason"] == "answered"
    assert synchronized["commit_id"] == pr.head_sha and synchronized["pull_request"]["head"]["sha"] == pr.head_sha
    assert (status["sha"], status["state"], status["context"]) == (pr.head_sha, "success", "ci")
    assert status["commit"]["id"] == pr.head_sha
    assert review["review"]["type"] == "pull_request_review_approved" and review["commit_id"] == pr.head_sha
    assert merged["pull_request"]["merged"] is True and merged["pull_request"]["state"] == "closed"
    # Nobody's email address goes out in a payload.
    assert all(p["sender"]["email"] == "" for _, p in got)


def test_an_organizations_hook_hears_of_its_repositories_lives(alice, receivers, allow_loopback, deliver_all):
    org = accounts.create_organization(actor=alice, name="acme")
    receiver = receivers()
    webhooks.save_webhook(
        None, actor=alice, organization=org, url=receiver.url, type="gitea", events=["repository"], active=True
    )
    repo = deliver_all(lambda: repo_services.create_repository(actor=alice, owner=org, name="tool"))
    deliver_all(lambda: repo_services.rename_repository(repo, actor=alice, name="tools"))
    deliver_all(lambda: repo_services.delete_repository(repo, actor=alice, confirm="acme/tools"))
    got = received_json(receiver)
    assert [(h["X-Gitea-Event"], p["action"], p["repository"]["name"]) for h, p in got] == [
        ("repository", "created", "tool"),
        ("repository", "renamed", "tools"),
        ("repository", "deleted", "tools"),
    ]
    assert got[1][1]["changes"] == {"repository": {"name": {"from": "tool"}}}
    assert got[0][1]["organization"]["login"] == "acme"


def test_slack_and_form_encoded_hooks(private_repo, alice, receivers, hook_to, deliver_all):
    slack, form = receivers(), receivers()
    hook_to(slack, type="slack", slack={"channel": "#dev"}, events=["push"], secret="")
    hook_to(form, content_type="form", events=["push"])
    deliver_all(lambda: webhooks.test_webhook(Webhook.objects.get(url=slack.url), actor=alice))
    deliver_all(lambda: webhooks.test_webhook(Webhook.objects.get(url=form.url), actor=alice))

    [(headers, body)] = slack.received
    message = json.loads(body)
    assert message["channel"] == "#dev"
    assert "alice/project" in message["text"] and "pushed by alice" in message["text"]
    assert "X-Hub-Signature-256" not in headers
    [(headers, body)] = form.received
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"
    payload = json.loads(parse_qs(body.decode())["payload"][0])
    assert payload["ref"] == "refs/heads/main"
    assert headers["X-Hub-Signature-256"] == "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()


def test_failed_deliveries_are_retried_with_backoff_and_every_attempt_is_kept(
    private_repo, alice, receivers, hook_to, settings, django_capture_on_commit_callbacks
):
    settings.PORTAL_WEBHOOK_RETRY_DELAYS = [60, 300, 900, 2400]
    settings.PORTAL_WEBHOOK_TIMEOUT = 0.5
    receiver = receivers(statuses=[500, 502])
    slow = receivers(delay=5)
    hook = hook_to(receiver, events=["push"])
    slow_hook = hook_to(slow, events=["push"])
    with django_capture_on_commit_callbacks(execute=True):
        delivery = webhooks.test_webhook(hook, actor=alice)
        timed_out = webhooks.test_webhook(slow_hook, actor=alice)

    waits = []
    for expected in (500, 502):
        jobs.deliver_webhook(delivery.pk)
        delivery.refresh_from_db()
        assert delivery.last_error == f"DeliveryFailed: the receiver answered {expected}"
        assert delivery.state == JobRow.State.QUEUED
        waits.append((delivery.due_at - delivery.finished_at).total_seconds())
    # The backoff: a minute, then five.
    assert waits == [60, 300]
    receiver.statuses = [200]
    jobs.deliver_webhook(delivery.pk)
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts) == ("done", 3)
    assert [(a.number, a.status_code) for a in delivery.attempt_rows.all()] == [(1, 500), (2, 502), (3, 200)]
    assert len(receiver.received) == 3
    # One guid for every attempt of a delivery.
    assert len({headers["X-Gitea-Delivery"] for headers, _ in receiver.received}) == 1

    jobs.deliver_webhook(timed_out.pk)
    timed_out.refresh_from_db()
    [attempt] = timed_out.attempt_rows.all()
    assert (timed_out.state, attempt.status_code, attempt.error) == (
        "queued",
        None,
        "the receiver did not answer within 0.5 s",
    )

    # Five attempts in all, then the delivery fails for good.
    for _ in range(WebhookDelivery.max_attempts - 1):
        WebhookDelivery.objects.filter(pk=timed_out.pk).update(due_at=timezone.now())
        jobs.deliver_webhook(timed_out.pk)
    timed_out.refresh_from_db()
    assert (timed_out.state, timed_out.attempts, timed_out.attempt_rows.count()) == ("failed", 5, 5)
    total = sum(settings.PORTAL_WEBHOOK_RETRY_DELAYS)
    assert 3000 < total < 4500, "five attempts over about an hour"


def test_a_hook_failing_for_a_day_is_turned_off_and_its_admins_are_told(
    private_repo, alice, bob, receivers, hook_to, settings, django_capture_on_commit_callbacks
):
    receiver = receivers(status=500)
    hook = hook_to(receiver, events=["push"])
    with django_capture_on_commit_callbacks(execute=True):
        first = webhooks.test_webhook(hook, actor=alice)
    jobs.deliver_webhook(first.pk)
    hook.refresh_from_db()
    assert hook.active and hook.failing_since is not None

    # A day of failures later: the next failure turns it off.
    Webhook.objects.filter(pk=hook.pk).update(failing_since=timezone.now() - timedelta(days=1, seconds=1))
    WebhookDelivery.objects.filter(pk=first.pk).update(due_at=timezone.now())
    jobs.deliver_webhook(first.pk)
    hook.refresh_from_db()
    assert not hook.active and "Every delivery since" in hook.disabled_reason
    [notice] = Notification.objects.filter(kind=Notification.Kind.WEBHOOK_DISABLED)
    assert notice.user == alice and hook.url in notice.text
    assert AuditEvent.objects.filter(action="webhook.disable", target_id=str(hook.pk)).exists()
    # Turned off, its later events are not sent; turning it on again forgives the failures.
    assert webhooks.announce(private_repo, "push", lambda: pytest.fail("built for an inactive hook")) == []
    webhooks.save_webhook(hook, actor=alice, active=True)
    hook.refresh_from_db()
    assert (hook.active, hook.failing_since, hook.disabled_reason) == (True, None, "")

    # A success in between starts the count again.
    receiver.statuses = [200]
    WebhookDelivery.objects.filter(pk=first.pk).update(due_at=timezone.now())
    Webhook.objects.filter(pk=hook.pk).update(failing_since=timezone.now())
    jobs.deliver_webhook(first.pk)
    hook.refresh_from_db()
    assert hook.failing_since is None


def test_deliveries_to_addresses_the_site_does_not_allow_are_refused_with_the_reason(
    private_repo, alice, receivers, settings, deliver_all
):
    settings.PORTAL_WEBHOOK_ALLOWED_HOSTS = "127.0.0.1"
    inside = receivers("127.0.0.2")
    ipv6 = receivers("::1")
    redirector = receivers("127.0.0.1", status=307, headers={"Location": inside.url})
    hooks = {
        url: webhooks.save_webhook(None, actor=alice, repository=private_repo, url=url, events=["push"], active=True)
        for url in (inside.url, ipv6.url, redirector.url)
    }
    for hook in hooks.values():
        deliver_all(lambda hook=hook: webhooks.test_webhook(hook, actor=alice))

    refused = {url: WebhookDelivery.objects.get(webhook=hook).attempt_rows.get().refused for url, hook in hooks.items()}
    assert "127.0.0.2, a loopback address" in refused[inside.url]
    assert "::1, a loopback address" in refused[ipv6.url]
    assert "PORTAL_WEBHOOK_ALLOWED_HOSTS" in refused[inside.url]
    assert "redirected to another host (127.0.0.2)" in refused[redirector.url]
    assert (inside.received, ipv6.received, len(redirector.received)) == ([], [], 1)
    # A refusal would be refused again: the delivery ends without retries, and the log says why.
    assert {d.state for d in WebhookDelivery.objects.all()} == {"done"}
    status, code = webhooks.delivery_status(WebhookDelivery.objects.get(webhook=hooks[inside.url]))
    assert status.startswith("Refused: ") and code == 0


def test_a_redelivery_sends_the_same_body_and_guid_again(private_repo, alice, receivers, hook_to, deliver_all):
    receiver = receivers()
    hook = hook_to(receiver, events=["push"])
    first = deliver_all(lambda: webhooks.test_webhook(hook, actor=alice))
    again = deliver_all(lambda: webhooks.redeliver(first, actor=alice))
    assert (again.guid, again.body, again.redelivery_of) == (first.guid, first.body, first)
    [(one, body_one), (two, body_two)] = receiver.received
    assert one["X-Gitea-Delivery"] == two["X-Gitea-Delivery"] == str(first.guid)
    assert body_one == body_two
    assert AuditEvent.objects.filter(action="webhook.redeliver").count() == 1


def test_the_secret_is_never_shown_and_the_authorization_header_is_sent_but_not_kept(
    private_repo, alice, receivers, hook_to, deliver_all
):
    receiver = receivers()
    hook = hook_to(receiver, events=["push"], authorization_header="Bearer receiver-token")
    delivery = deliver_all(lambda: webhooks.test_webhook(hook, actor=alice))
    [(headers, _)] = receiver.received
    assert headers["Authorization"] == "Bearer receiver-token"
    attempt = delivery.attempt_rows.get()
    assert attempt.request_headers["Authorization"] == "********"
    audit = AuditEvent.objects.get(action="webhook.create", target_id=str(hook.pk))
    assert SECRET not in json.dumps(audit.after) and "receiver-token" not in json.dumps(audit.after)


def test_only_repository_admins_manage_its_hooks(private_repo, alice, bob, allow_loopback):
    from django.core.exceptions import PermissionDenied

    with pytest.raises(PermissionDenied):
        webhooks.save_webhook(None, actor=bob, repository=private_repo, url="https://example.com/hook")
    hook = webhooks.save_webhook(None, actor=alice, repository=private_repo, url="https://example.com/hook")
    for change in (
        lambda: webhooks.save_webhook(hook, actor=bob, active=False),
        lambda: webhooks.test_webhook(hook, actor=bob),
        lambda: webhooks.delete_webhook(hook, actor=bob),
    ):
        with pytest.raises(PermissionDenied):
            change()
