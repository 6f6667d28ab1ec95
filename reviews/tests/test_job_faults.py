"""Jobs that survive (DESIGN §11), shown on notification emails with a real Redis and real rq workers: Redis
flushed, a worker killed mid-job, the same job delivered twice."""

import os
import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.core import mail

from portal.jobs import JobRow, reconcile
from reviews.models import Notification, NotificationEmail
from reviews.notifications import notify

REVIEW_REQUESTED = Notification.Kind.REVIEW_REQUESTED


def test_emails_lost_with_redis_go_out_once_after_the_reconciler(
    pull_request, alice, bob, carol, rq_queues, email_backend, settings, django_capture_on_commit_callbacks, run_worker
):
    settings.PORTAL_JOB_ENQUEUE_GRACE = 0
    with django_capture_on_commit_callbacks(execute=True):
        notify(REVIEW_REQUESTED, pull_request, actor=bob, recipients=[alice, carol], text="review please")
    assert rq_queues["default"].count == 2

    # Redis loses everything it held; the rows in the database still say two emails are queued.
    rq_queues["default"].connection.flushdb()
    assert rq_queues["default"].count == 0
    assert NotificationEmail.objects.filter(state=JobRow.State.QUEUED).count() == 2

    with django_capture_on_commit_callbacks(execute=True):
        assert reconcile() == {"enqueued": 2, "retried": 0, "failed": 0}
    run_worker()

    assert sorted(message.to[0] for message in mail.outbox) == ["alice@example.com", "carol@example.com"]
    assert list(NotificationEmail.objects.values_list("state", "attempts")) == [("done", 1), ("done", 1)]
    # Done rows are not enqueued again: another pass of the reconciler sends nothing more.
    with django_capture_on_commit_callbacks(execute=True):
        assert reconcile()["enqueued"] == 0
    assert rq_queues["default"].count == 0
    assert len(mail.outbox) == 2


def test_the_reconciler_leaves_alone_rows_whose_job_redis_still_holds_or_that_just_committed(
    pull_request, alice, bob, rq_queues, settings, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        notify(REVIEW_REQUESTED, pull_request, actor=bob, recipients=[alice], text="review please")

    settings.PORTAL_JOB_ENQUEUE_GRACE = 0
    assert reconcile()["enqueued"] == 0
    rq_queues["default"].connection.flushdb()
    # A row younger than the grace may still have its own enqueue on the way.
    settings.PORTAL_JOB_ENQUEUE_GRACE = 60
    assert reconcile()["enqueued"] == 0


def test_the_same_job_delivered_twice_sends_one_email(
    pull_request, alice, bob, rq_queues, email_backend, django_capture_on_commit_callbacks, run_worker
):
    (row,) = notify(REVIEW_REQUESTED, pull_request, actor=bob, recipients=[alice], text="review please")
    queue = rq_queues["default"]
    with django_capture_on_commit_callbacks(execute=True):
        queue.enqueue("reviews.jobs.send_notification_emails", [row.pk])
        queue.enqueue("reviews.jobs.send_notification_emails", [row.pk])
    assert queue.count == 2

    run_worker()

    assert len(mail.outbox) == 1
    email = NotificationEmail.objects.get(pk=row.pk)
    assert (email.state, email.attempts, email.last_error) == ("done", 1, "")
    assert queue.failed_job_registry.count == 0


def test_a_failed_send_is_queued_again_with_its_error_then_fails_for_good(pull_request, alice, bob, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 1, 2
    (row,) = notify(REVIEW_REQUESTED, pull_request, actor=alice, recipients=[bob], text="review")
    from reviews import jobs

    for attempt in range(1, NotificationEmail.max_attempts + 1):
        with pytest.raises(OSError):
            jobs.send_notification_emails([row.pk])
        email = NotificationEmail.objects.get(pk=row.pk)
        assert email.attempts == attempt
        assert "ConnectionRefusedError" in email.last_error
        if email.state == "queued":
            # The retry waits longer after each attempt.
            assert email.due_at - email.finished_at == timedelta(seconds=settings.PORTAL_JOB_RETRY_DELAY * attempt)

    assert email.state == "failed"
    # A failed row is not run again by a late delivery.
    jobs.send_notification_emails([row.pk])
    assert NotificationEmail.objects.get(pk=row.pk).attempts == NotificationEmail.max_attempts


def wait_for(condition, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def start_worker(env: dict) -> subprocess.Popen:
    """A real `manage.py rqworker` of the default queue, in a session of its own so that it can be killed whole."""
    return subprocess.Popen(
        [sys.executable, str(settings.BASE_DIR / "manage.py"), "rqworker", "default", "--burst"],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def kill_worker(worker: subprocess.Popen, row) -> None:
    """The whole worker goes, as when its machine dies: the process running the job (rq's work horse, in a process
    group of its own; the row names it) and the worker that forked it."""
    if row.worker:
        os.kill(int(row.worker.rsplit(":", 1)[1]), signal.SIGKILL)
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait()


def test_a_worker_killed_mid_job_is_retried_after_the_heartbeat_limit(
    django_subprocess_env, pull_request, alice, bob, rq_queues, tmp_path, run_worker
):
    # A mail server that takes the connection and never says hello: the email job blocks in it.
    silent = socket.create_server(("127.0.0.1", 0))
    (row,) = notify(REVIEW_REQUESTED, pull_request, actor=bob, recipients=[alice], text="review please")
    assert rq_queues["default"].count == 1
    env = django_subprocess_env | {
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(silent.getsockname()[1]),
        "EMAIL_USE_TLS": "0",
        "PORTAL_JOB_HEARTBEAT": "1",
    }
    worker = start_worker(env)
    try:
        email = NotificationEmail.objects.get(pk=row.pk)
        # The job claimed the row and beats while it waits for the mail server.
        wait_for(lambda: email.refresh_from_db() or (email.heartbeat_at and email.heartbeat_at > email.started_at))
        assert (email.state, email.attempts) == ("running", 1)
    finally:
        kill_worker(worker, email)
        silent.close()

    settings.PORTAL_JOB_HEARTBEAT_LIMIT = 2
    settings.PORTAL_JOB_RETRY_DELAY = 0
    # Still within the limit: the run is left alone.
    assert reconcile()["retried"] == 0
    time.sleep(2.5)
    assert reconcile() == {"enqueued": 0, "retried": 1, "failed": 0}
    email.refresh_from_db()
    assert (email.state, email.attempts) == ("queued", 1)
    assert "stopped sending heartbeats" in email.last_error

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    run_worker()

    assert [message.to for message in mail.outbox] == [["alice@example.com"]]
    email.refresh_from_db()
    assert (email.state, email.attempts) == ("done", 2)
    # The row keeps why the first attempt ended.
    assert "stopped sending heartbeats" in email.last_error
