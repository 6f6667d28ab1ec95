"""Jobs that survive (DESIGN §11): the database row is the record, Redis only delivers.

Every kind of job has a model built on JobRow and registered here. A job function takes ids, re-reads its row and
runs through `run_claimed`: it claims the row by compare-and-swap (a second delivery of the same job loses and does
nothing), beats while it works, and records the outcome on the row. Services enqueue after commit. The reconciler,
run every minute by rq's cron scheduler (portal/cron.py), enqueues again what is queued in the database but missing
in Redis, and ends runs whose worker stopped beating: queued again while attempts are left, failed otherwise, with
the reason in last_error."""

import logging
import os
import signal
import socket
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import ClassVar

import django_rq
import rq
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, models, transaction
from django.urls import URLResolver, get_resolver
from django.utils import timezone
from django.utils.module_loading import import_string
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

from portal import audit

log = logging.getLogger(__name__)


def enqueue_after_commit(what: str, function: str, *args, queue: str = "default", job_id: str | None = None) -> None:
    """Enqueue function(*args) once the current transaction commits (at once outside one); what names it in the log.

    The job then sees the rows the transaction wrote; and a queue outage is logged, never raised: it must not
    undo an action that already happened (a push git accepted, a comment saved)."""

    def enqueue() -> None:
        try:
            django_rq.get_queue(queue).enqueue(function, *args, job_id=job_id)
        except Exception:
            log.exception("could not enqueue %s %s", what, ", ".join(map(repr, args)))

    transaction.on_commit(enqueue)


# Set in the process running a job once its worker is asked to stop (SIGTERM, Ctrl-C). rq lets the job finish first,
# which suits a short one; a long one (a build) polls this to end early and record how far it got, rather than be
# killed with its worker when serve's stop timeout runs out and be found dead only by the reconciler.
worker_stopping = threading.Event()


class PromptStop:
    """rq's worker listens for commands (stop a job, shut down) in a thread that polls Redis once a minute, and
    stopping the worker waits for that thread: a worker asked to stop, or done with a burst, could take up to a
    minute to exit (and serve's stop timeout killed it). This one polls every second.

    A stop also reaches the job it is running, as worker_stopping: the forking worker passes its SIGTERM on to its
    work horse (in a process group of its own, so serve's signal does not reach it), whose handler only sets the
    event; a simple worker runs the job in its own process."""

    def request_stop(self, signum, frame):
        worker_stopping.set()
        if self.horse_pid:
            try:
                os.kill(self.horse_pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        super().request_stop(signum, frame)

    def setup_work_horse_signals(self):
        super().setup_work_horse_signals()
        signal.signal(signal.SIGTERM, lambda signum, frame: worker_stopping.set())

    def subscribe(self) -> None:
        self.log.info("Worker %s: subscribing to channel %s", self.name, self.pubsub_channel_name)
        self.pubsub = self.connection.pubsub()
        self.pubsub.subscribe(**{self.pubsub_channel_name: self.handle_payload})
        self.pubsub_thread = self.pubsub.run_in_thread(
            sleep_time=1, daemon=True, exception_handler=self._pubsub_exception_handler
        )


class Worker(PromptStop, rq.Worker):
    """The worker `manage.py rqworker` runs (RQ["WORKER_CLASS"] in the settings).

    It runs each job in a work horse, a fork of itself, so it imports the job function of every kind of job row once
    before its first job: each horse then has it at once, where otherwise each job would import its module again,
    with all that module imports (for a deployment, most of the time between the horse's start and the claim). It
    builds the URL resolvers' tables once too: a job that makes a link (an approval's email, with its own link)
    would otherwise build them again in every horse, a tenth of a second of regular expressions each time."""

    def work(self, *args, **kwargs) -> bool:
        for model in JOB_ROWS.values():
            import_string(model.job_function)
        populate_url_resolvers(get_resolver())
        return super().work(*args, **kwargs)


def populate_url_resolvers(resolver: URLResolver) -> None:
    """Build the reverse tables of a URL resolver and of every resolver under it (each namespace has its own, built
    the first time one of its names is reversed)."""
    resolver._populate()
    for pattern in resolver.url_patterns:
        if isinstance(pattern, URLResolver):
            populate_url_resolvers(pattern)


class SimpleWorker(PromptStop, rq.SimpleWorker):
    """A worker that runs jobs in its own process, as the tests do."""


# The models the reconciler scans and the admin page lists, by label ("reviews.notificationemail").
JOB_ROWS: dict[str, type["JobRow"]] = {}


def register(model: type["JobRow"]) -> type["JobRow"]:
    """Class decorator: a kind of job row the reconciler and the admin page know about."""
    JOB_ROWS[model._meta.label_lower] = model
    return model


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class JobRow(models.Model):
    """The record of one job: its state, attempts and last error, changed only by conditional updates."""

    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"
        CANCELED = "canceled", "Canceled"

    # What a subclass names: the rq function it runs, its queue, how many tries before it fails for good.
    job_function: ClassVar[str]
    queue_name: ClassVar[str] = "default"
    max_attempts: ClassVar[int] = 3
    # A debounced job always goes through the scheduler under its one id, so enqueuing it again moves it later.
    debounced: ClassVar[bool] = False
    # What describe() reads, fetched with the rows the admin page lists.
    describe_related: ClassVar[tuple[str, ...]] = ()

    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED)
    attempts = models.PositiveIntegerField(default=0)
    # When the job should run: now for most, later for a debounced one.
    due_at = models.DateTimeField(default=timezone.now)
    enqueued_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    worker = models.CharField(max_length=200, blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        abstract = True

    @property
    def job_kind(self) -> str:
        """The registry's name of this kind of row, as URLs carry it: "reviews.notificationemail"."""
        return self._meta.label_lower

    @property
    def job_kind_name(self) -> str:
        return str(self._meta.verbose_name)

    # What a subclass defines.

    def rq_job_id(self) -> str:
        """The rq job id of this row: the same for every delivery, so Redis holds at most one."""
        return f"{self._meta.label_lower.replace('.', '-')}-{self.pk}"

    def job_args(self) -> tuple:
        return (self.pk,)

    def describe(self) -> str:
        """What the job is about, for the admin page."""
        return str(self)

    def retry_delay(self) -> float:
        """Seconds before the next try after a failed one: PORTAL_JOB_RETRY_DELAY times the attempts made."""
        return settings.PORTAL_JOB_RETRY_DELAY * self.attempts

    # Transitions, each one conditional update that fails if another process got there first.

    def _transition(self, old: list[str], **changes) -> bool:
        filters = {"pk": self.pk, "state__in": old}
        if "worker__eq" in changes:
            filters["worker"] = changes.pop("worker__eq")
        if not type(self).objects.filter(**filters).update(**changes):
            return False
        self.refresh_from_db()
        return True

    def claim(self, worker: str | None = None) -> bool:
        """Take a queued row to run it; False when another delivery (or a cancel) got there first."""
        now = timezone.now()
        return self._transition(
            [self.State.QUEUED],
            state=self.State.RUNNING,
            attempts=models.F("attempts") + 1,
            started_at=now,
            heartbeat_at=now,
            finished_at=None,
            worker=worker or worker_name(),
        )

    def finish(self) -> bool:
        """Record that the claimed run did its work."""
        return self._transition(
            [self.State.RUNNING], worker__eq=self.worker, state=self.State.DONE, finished_at=timezone.now()
        )

    def fail(self, error: str, *, retry: bool = True) -> bool:
        """End a run that went wrong: queued again (enqueued after commit) while attempts are left, else failed.

        A retry waits retry_delay() seconds, so a service that is down (a mail server, a webhook's host) gets time
        to come back."""
        again = retry and self.attempts < self.max_attempts
        now = timezone.now()
        changes = {"last_error": error[:5000], "finished_at": now}
        if again:
            due_at = now + timedelta(seconds=self.retry_delay())
            changes |= {"state": self.State.QUEUED, "due_at": due_at, "enqueued_at": now}
        else:
            changes |= {"state": self.State.FAILED}
        if not self._transition([self.State.RUNNING], worker__eq=self.worker, **changes):
            return False
        if again:
            self.enqueue()
        return True

    def enqueue(self) -> None:
        """Hand the row to rq after commit, at its due time (the worker's scheduler holds a later one)."""
        row = self

        def enqueue() -> None:
            try:
                queue = django_rq.get_queue(row.queue_name)
                if row.debounced or row.due_at > timezone.now():
                    queue.enqueue_at(row.due_at, row.job_function, *row.job_args(), job_id=row.rq_job_id())
                else:
                    queue.enqueue(row.job_function, *row.job_args(), job_id=row.rq_job_id())
            except Exception:
                log.exception("could not enqueue %s: row %s", row._meta.verbose_name_plural, row.pk)

        transaction.on_commit(enqueue)


class Heartbeat:
    """Beats on a claimed row from a thread while its job runs, so the reconciler can tell a dead worker."""

    def __init__(self, row: JobRow) -> None:
        self.row = row
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, name=f"heartbeat {row.rq_job_id()}", daemon=True)

    def _beat(self) -> None:
        model = type(self.row)
        try:
            while not self.stop.wait(settings.PORTAL_JOB_HEARTBEAT):
                model.objects.filter(pk=self.row.pk, state=JobRow.State.RUNNING, worker=self.row.worker).update(
                    heartbeat_at=timezone.now()
                )
        finally:
            connection.close()

    def __enter__(self) -> "Heartbeat":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()


def run_claimed(row: JobRow | None, work: Callable[[JobRow], None]) -> bool:
    """Claim row, run work(row) while beating, record the outcome; False when there was nothing to do.

    An error is recorded on the row (queued again while attempts are left) and raised, so rq shows it too."""
    if row is None or not row.claim():
        return False
    try:
        with Heartbeat(row):
            work(row)
    except Exception as exc:
        row.fail(f"{type(exc).__name__}: {exc}")
        raise
    row.finish()
    return True


def _in_redis(row: JobRow) -> bool:
    """True when Redis still holds the row's job waiting or running: queued, scheduled, deferred or started."""
    try:
        job = Job.fetch(row.rq_job_id(), connection=django_rq.get_connection(row.queue_name))
    except NoSuchJobError:
        return False
    return job.get_status(refresh=False) in {
        JobStatus.QUEUED,
        JobStatus.SCHEDULED,
        JobStatus.DEFERRED,
        JobStatus.STARTED,
    }


def reconcile(now=None) -> dict[str, int]:
    """Enqueue queued rows missing in Redis; end running rows whose worker stopped beating. Returns the counts."""
    now = now or timezone.now()
    grace = timedelta(seconds=settings.PORTAL_JOB_ENQUEUE_GRACE)
    stale = now - timedelta(seconds=settings.PORTAL_JOB_HEARTBEAT_LIMIT)
    counts = {"enqueued": 0, "retried": 0, "failed": 0}
    for model in JOB_ROWS.values():
        # A row just committed may not have reached Redis yet: its own enqueue is on the way. The others go back in
        # the order they were first enqueued, whatever the model's own ordering (newest first, for a page): two
        # deployments to one environment must run in the order they were asked for.
        queued = model.objects.filter(state=JobRow.State.QUEUED, enqueued_at__lte=now - grace)
        for row in queued.order_by("enqueued_at", "pk"):
            if not _in_redis(row):
                with transaction.atomic():
                    row.enqueue()
                counts["enqueued"] += 1
        for row in model.objects.filter(state=JobRow.State.RUNNING, heartbeat_at__lt=stale):
            beat = timezone.localtime(row.heartbeat_at).isoformat(timespec="seconds")
            with transaction.atomic():
                ended = row.fail(f"worker {row.worker} stopped sending heartbeats (last at {beat})")
            if ended:
                counts["retried" if row.state == JobRow.State.QUEUED else "failed"] += 1
    if any(counts.values()):
        log.warning("job reconciler: %s", ", ".join(f"{n} {what}" for what, n in counts.items()))
    return counts


def run_reconciler() -> dict[str, int]:
    """rq entry point of the reconciler, run every minute by the cron scheduler."""
    return reconcile()


def prune(now=None) -> dict[str, int]:
    """Delete rows of jobs that ended (done, failed or canceled) more than PORTAL_JOB_KEEP_DAYS ago; the counts by
    kind. A webhook's delivery log keeps its deliveries that long."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.PORTAL_JOB_KEEP_DAYS)
    ended = (JobRow.State.DONE, JobRow.State.FAILED, JobRow.State.CANCELED)
    counts = {}
    for label, model in JOB_ROWS.items():
        deleted, _ = model.objects.filter(state__in=ended, finished_at__lt=cutoff).delete()
        if deleted:
            counts[label] = deleted
    return counts


def run_pruner() -> dict[str, int]:
    """rq entry point of the pruner, run every hour by the cron scheduler."""
    return prune()


# Site administration: what the queues hold, and the two things an administrator may do to a job.

# The states the admin page lists: what is still to run, running, or failed for good.
OPEN_STATES = (JobRow.State.QUEUED, JobRow.State.RUNNING, JobRow.State.FAILED)


def get_job_row(kind: str, row_id: int) -> JobRow | None:
    """The job row of a registered kind ("reviews.notificationemail") with that id, or None."""
    model = JOB_ROWS.get(kind)
    return model.objects.filter(pk=row_id).first() if model is not None else None


def open_job_rows(limit: int = 200) -> dict[str, list[JobRow]]:
    """Queued, running and failed job rows by queue name, the newest first within each kind and state."""
    by_queue: dict[str, list[JobRow]] = {}
    for model in JOB_ROWS.values():
        for state in OPEN_STATES:
            rows = model.objects.filter(state=state).select_related(*model.describe_related)
            rows = rows.order_by("-enqueued_at", "-pk")[:limit]
            by_queue.setdefault(model.queue_name, []).extend(rows)
    return by_queue


def redis_counts(queue_names) -> dict[str, dict[str, int] | None]:
    """What Redis holds per queue (waiting, scheduled, started, failed); None for a queue Redis cannot tell."""
    counts: dict[str, dict[str, int] | None] = {}
    for name in queue_names:
        try:
            queue = django_rq.get_queue(name)
            counts[name] = {
                "waiting": queue.count,
                "scheduled": queue.scheduled_job_registry.count,
                "started": queue.started_job_registry.count,
                "failed": queue.failed_job_registry.count,
            }
        except Exception:
            counts[name] = None
    return counts


def _snapshot(row: JobRow) -> dict:
    return {"state": row.state, "attempts": row.attempts}


@transaction.atomic
def requeue_job(row: JobRow, *, actor) -> JobRow:
    """Queue a failed, canceled or stuck queued job again, now; audited."""
    before = _snapshot(row)
    now = timezone.now()
    try:
        with transaction.atomic():
            moved = row._transition(
                [JobRow.State.QUEUED, JobRow.State.FAILED, JobRow.State.CANCELED],
                state=JobRow.State.QUEUED,
                due_at=now,
                enqueued_at=now,
                finished_at=None,
            )
    except IntegrityError:
        raise ValidationError("Another job of the same kind for the same object is already queued.") from None
    if not moved:
        row.refresh_from_db()
        raise ValidationError(
            f"This job is {row.get_state_display().lower()}: only a queued, failed or canceled job can be queued again."
        )
    row.enqueue()
    audit.record(actor, "job.requeue", row, target_repr=row.describe(), before=before, after=_snapshot(row))
    return row


@transaction.atomic
def cancel_job(row: JobRow, *, actor) -> JobRow:
    """Cancel a queued or failed job: a delivery still in Redis then finds nothing to claim; audited."""
    before = _snapshot(row)
    if not row._transition(
        [JobRow.State.QUEUED, JobRow.State.FAILED], state=JobRow.State.CANCELED, finished_at=timezone.now()
    ):
        row.refresh_from_db()
        raise ValidationError(
            f"This job is {row.get_state_display().lower()}: only a queued or failed job can be canceled."
        )
    audit.record(actor, "job.cancel", row, target_repr=row.describe(), before=before, after=_snapshot(row))
    return row
