"""Webhook deliveries under the job rules, with a real Redis, real rq workers and a real receiver: Redis flushed with
deliveries queued, a worker killed mid-delivery, the same job enqueued twice."""

import time

from django.conf import settings

from portal.jobs import JobRow, reconcile
from reviews import webhooks
from reviews.models import WebhookDelivery
from reviews.tests.test_job_faults import kill_worker, start_worker, wait_for


def test_deliveries_lost_with_redis_arrive_once_after_the_reconciler(
    private_repo, alice, receivers, hook_to, rq_queues, settings, django_capture_on_commit_callbacks, run_worker
):
    settings.PORTAL_JOB_ENQUEUE_GRACE = 0
    receiver = receivers()
    hooks = [hook_to(receiver, events=["push"]) for _ in range(3)]
    with django_capture_on_commit_callbacks(execute=True):
        for hook in hooks:
            webhooks.test_webhook(hook, actor=alice)
    assert rq_queues["default"].count == 3

    rq_queues["default"].connection.flushdb()
    assert WebhookDelivery.objects.filter(state=JobRow.State.QUEUED).count() == 3

    with django_capture_on_commit_callbacks(execute=True):
        assert reconcile() == {"enqueued": 3, "retried": 0, "failed": 0}
    run_worker()
    with django_capture_on_commit_callbacks(execute=True):
        assert reconcile()["enqueued"] == 0
    run_worker()

    guids = sorted(headers["X-Gitea-Delivery"] for headers, _ in receiver.received)
    assert guids == sorted(str(d.guid) for d in WebhookDelivery.objects.all())
    assert set(WebhookDelivery.objects.values_list("state", "attempts")) == {("done", 1)}


def test_the_same_delivery_enqueued_twice_is_sent_once(
    private_repo, alice, receivers, hook_to, rq_queues, django_capture_on_commit_callbacks, run_worker
):
    receiver = receivers()
    hook = hook_to(receiver, events=["push"])
    delivery = webhooks.test_webhook(hook, actor=alice)
    queue = rq_queues["default"]
    with django_capture_on_commit_callbacks(execute=True):
        queue.enqueue("reviews.jobs.deliver_webhook", delivery.pk)
        queue.enqueue("reviews.jobs.deliver_webhook", delivery.pk)
    assert queue.count == 2

    run_worker()

    assert len(receiver.received) == 1
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts, delivery.attempt_rows.count()) == ("done", 1, 1)


def test_a_worker_killed_mid_delivery_is_retried_and_the_log_keeps_both_attempts(
    django_subprocess_env, private_repo, alice, receivers, hook_to, rq_queues, run_worker
):
    # A receiver that takes the request and holds it: the delivery job blocks waiting for its answer.
    receiver = receivers(delay=60)
    hook = hook_to(receiver, events=["push"])
    delivery = webhooks.test_webhook(hook, actor=alice)
    # Outside a test's transaction capture the enqueue runs at once.
    assert rq_queues["default"].count == 1
    env = django_subprocess_env | {
        "PORTAL_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1",
        "PORTAL_WEBHOOK_TIMEOUT": "120",
        "PORTAL_JOB_HEARTBEAT": "1",
    }
    worker = start_worker(env)
    try:
        wait_for(lambda: len(receiver.received) == 1)
        wait_for(
            lambda: (
                delivery.refresh_from_db() or (delivery.heartbeat_at and delivery.heartbeat_at > delivery.started_at)
            )
        )
        assert (delivery.state, delivery.attempts) == ("running", 1)
    finally:
        kill_worker(worker, delivery)

    settings.PORTAL_JOB_HEARTBEAT_LIMIT = 2
    time.sleep(2.5)
    assert reconcile() == {"enqueued": 0, "retried": 1, "failed": 0}
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts) == ("queued", 1)

    receiver.delay = 0
    run_worker()

    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts) == ("done", 2)
    first, second = delivery.attempt_rows.all()
    assert (first.number, first.status_code, first.finished is not None) == (1, None, True)
    assert "the worker stopped during this attempt" in first.error
    assert (second.number, second.status_code) == (2, 200)
    assert len(receiver.received) == 2
    assert len({headers["X-Gitea-Delivery"] for headers, _ in receiver.received}) == 1
