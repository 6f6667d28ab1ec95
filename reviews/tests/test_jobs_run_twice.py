"""Every kind of job run twice has the effect of running once (DESIGN §11): Redis may deliver a job twice (the
reconciler enqueues a row whose job Redis still held, a Valkey restored from its append-only file gives back
a job that already ran), and a real rq worker runs both deliveries, then a late third one."""

import subprocess
from collections.abc import Callable

import pytest
from django.core import mail
from django.utils import timezone

from portal.jobs import JOB_ROWS, JobRow, SimpleWorker
from repos.models import RepositoryMaintenance
from reviews import webhooks
from reviews.models import Notification, NotificationEmail
from reviews.notifications import notify


def notification_email(request) -> tuple[JobRow, Callable[[], object], Callable[[object], bool]]:
    """An email to alice about bob's review request; its effect is the mail sent, once: one message to alice."""
    pull_request, alice, bob = (request.getfixturevalue(name) for name in ("pull_request", "alice", "bob"))
    request.getfixturevalue("email_backend")
    (notification,) = notify(
        Notification.Kind.REVIEW_REQUESTED, pull_request, actor=bob, recipients=[alice], text="review please"
    )
    row = NotificationEmail.objects.get(pk=notification.pk)
    return row, lambda: [(m.to, m.subject) for m in mail.outbox], lambda sent: [to for to, _ in sent] == [[alice.email]]


def repository_maintenance(request) -> tuple[JobRow, Callable[[], object], Callable[[object], bool]]:
    """Maintenance of alice/project; its effect is the repository's packs, commit-graph and intact objects, once:
    one pack with its multi-pack-index bitmap, a commit-graph, and git fsck content."""
    repo = request.getfixturevalue("private_repo")
    row = RepositoryMaintenance.objects.create(repository=repo, due_at=timezone.now())

    def effect():
        objects = repo.path / "objects"
        fsck = subprocess.run(["git", "fsck", "--no-dangling"], cwd=repo.path, capture_output=True, text=True)
        return (
            sorted(path.name for path in (objects / "pack").iterdir()),
            (objects / "info" / "commit-graph").exists(),
            fsck.returncode,
        )

    def once(value) -> bool:
        packs, graph, fsck = value
        return (
            len([name for name in packs if name.endswith(".pack")]) == 1
            and graph
            and fsck == 0
            and any(name.startswith("multi-pack-index") and name.endswith(".bitmap") for name in packs)
        )

    return row, effect, once


def webhook_delivery(request) -> tuple[JobRow, Callable[[], object], Callable[[object], bool]]:
    """A test push to a hook of alice/project; its effect is what the receiver got, once: one request."""
    alice, hook_to, receivers = (request.getfixturevalue(name) for name in ("alice", "hook_to", "receivers"))
    receiver = receivers()
    row = webhooks.test_webhook(hook_to(receiver, events=["push"]), actor=alice)
    return (
        row,
        lambda: [headers["X-Gitea-Delivery"] for headers, _ in receiver.received],
        lambda got: got == [str(row.guid)],
    )


# Each kind of job row: how to make one, read its effect, and tell the effect of one run. A new kind of job needs
# its case here.
CASES = {
    "reviews.notificationemail": notification_email,
    "repos.repositorymaintenance": repository_maintenance,
    "reviews.webhookdelivery": webhook_delivery,
}


def test_every_kind_of_job_has_a_case():
    # releases' jobs have their cases in releases/tests: reviews cannot import them.
    assert sorted(kind for kind in JOB_ROWS if not kind.startswith("releases.")) == sorted(CASES)


@pytest.mark.parametrize("kind", sorted(CASES))
def test_a_job_run_twice_has_the_effect_of_once(kind, request, db, rq_queues, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        row, effect, is_once = CASES[kind](request)
    assert type(row) is JOB_ROWS[kind]
    before = effect()
    queue = rq_queues[row.queue_name]

    def deliver(times: int) -> None:
        with django_capture_on_commit_callbacks(execute=True):
            for _ in range(times):
                # Each delivery under an id of its own, so Redis holds them all and the worker runs each.
                queue.enqueue(row.job_function, *row.job_args())
        assert queue.count == times
        SimpleWorker([queue], connection=queue.connection).work(burst=True)

    deliver(2)
    once = effect()
    assert not is_once(before) and is_once(once), once
    row.refresh_from_db()
    assert (row.state, row.attempts, row.last_error) == (JobRow.State.DONE, 1, "")
    assert queue.failed_job_registry.count == 0

    # A late delivery, after the row is done, changes nothing either.
    deliver(1)
    assert effect() == once
    row.refresh_from_db()
    assert (row.state, row.attempts) == (JobRow.State.DONE, 1)
