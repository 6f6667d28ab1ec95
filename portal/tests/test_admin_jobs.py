"""The site admin's page of the job queues: what the rows say, and requeue or cancel, confirmed and audited."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from rq import cron

from portal.jobs import JobRow, prune, reconcile, run_pruner, run_reconciler
from portal.models import AuditEvent
from repos import jobs as repo_jobs
from repos.models import RepositoryMaintenance


@pytest.fixture
def failed(private_repo):
    return RepositoryMaintenance.objects.create(
        repository=private_repo, state=JobRow.State.FAILED, attempts=3, last_error="OSError: disk full"
    )


def url(name: str, row: JobRow) -> str:
    return reverse(f"portal:admin_job_{name}", args=[row.job_kind, row.pk])


def test_the_page_lists_queued_running_and_failed_rows_by_queue(client, admin, private_repo, failed):
    RepositoryMaintenance.objects.create(repository=private_repo, state=JobRow.State.DONE, attempts=1)
    queued = RepositoryMaintenance.objects.create(repository=private_repo)
    client.force_login(admin)

    response = client.get(reverse("portal:admin_jobs"))

    assert response.status_code == 200
    page = response.content.decode()
    assert "Queue <code>default</code>" in page
    assert f'id="job-repos.repositorymaintenance-{failed.pk}"' in page
    assert f'id="job-repos.repositorymaintenance-{queued.pk}"' in page
    assert "<code>done</code>" not in page
    assert f"maintenance of repository #{private_repo.pk}" in page
    assert "3 of 3" in page and "OSError: disk full" in page


def test_requeue_asks_first_then_queues_the_row_again_and_audits(
    client, admin, failed, rq_queues, django_capture_on_commit_callbacks
):
    client.force_login(admin)

    asked = client.post(url("requeue", failed))
    assert asked.status_code == 200 and "Yes, requeue it" in asked.content.decode()
    failed.refresh_from_db()
    assert failed.state == "failed"

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url("requeue", failed), {"confirmed": "1"})

    assert response.status_code == 302 and response.url == reverse("portal:admin_jobs")
    failed.refresh_from_db()
    assert (failed.state, failed.attempts, failed.last_error) == ("queued", 3, "OSError: disk full")
    assert repo_jobs.maintenance_job_id(failed.repository_id) in rq_queues["default"].scheduled_job_registry
    event = AuditEvent.objects.get(action="job.requeue")
    assert (event.actor, event.before["state"], event.after["state"]) == (admin, "failed", "queued")


def test_cancel_stops_a_queued_job_even_if_its_delivery_comes(client, admin, private_repo):
    row = repo_jobs.schedule_maintenance(private_repo.pk)
    client.force_login(admin)

    response = client.post(url("cancel", row), {"confirmed": "1"})

    assert response.status_code == 302
    row.refresh_from_db()
    assert row.state == "canceled"
    repo_jobs.run_repository_maintenance(private_repo.pk)
    row.refresh_from_db()
    assert (row.state, row.attempts) == ("canceled", 0)
    assert AuditEvent.objects.filter(action="job.cancel", target_id=str(row.pk)).exists()


def test_a_running_job_is_neither_requeued_nor_canceled(client, admin, private_repo):
    row = RepositoryMaintenance.objects.create(repository=private_repo)
    assert row.claim(worker="elsewhere:1")
    client.force_login(admin)

    for action in ("requeue", "cancel"):
        response = client.post(url(action, row), {"confirmed": "1"}, follow=True)
        assert "only a queued" in response.content.decode()
    row.refresh_from_db()
    assert row.state == "running"
    assert not AuditEvent.objects.filter(action__startswith="job.").exists()


def test_an_unknown_kind_or_row_is_not_found(client, admin, failed):
    client.force_login(admin)

    assert client.post(reverse("portal:admin_job_cancel", args=["portal.user", admin.pk])).status_code == 404
    assert client.post(reverse("portal:admin_job_cancel", args=[failed.job_kind, 999999])).status_code == 404


def test_a_requeue_that_would_make_a_second_queued_maintenance_is_refused(client, admin, private_repo, failed):
    RepositoryMaintenance.objects.create(repository=private_repo)
    client.force_login(admin)

    response = client.post(url("requeue", failed), {"confirmed": "1"}, follow=True)

    assert "already queued" in response.content.decode()
    failed.refresh_from_db()
    assert failed.state == "failed"


def test_the_cron_schedule_runs_the_reconcilers_every_minute_and_the_pruner_every_hour(rq_queues):
    scheduler = cron.CronScheduler(connection=rq_queues["default"].connection)
    scheduler.load_config_from_file("portal.cron")

    jobs = {job.func: (job.queue_name, job.interval) for job in scheduler.get_jobs()}
    assert jobs[run_reconciler] == ("default", 60)
    assert jobs[repo_jobs.run_ref_reconciler] == ("default", 60)
    assert jobs[run_pruner] == ("default", 3600)


def test_the_pruner_deletes_only_rows_of_jobs_that_ended_long_ago(private_repo, settings):
    settings.PORTAL_JOB_KEEP_DAYS = 30
    now = timezone.now()
    old, recent = now - timedelta(days=31), now - timedelta(days=29)
    rows = {
        "old done": RepositoryMaintenance.objects.create(repository=private_repo, state="done", finished_at=old),
        "old failed": RepositoryMaintenance.objects.create(repository=private_repo, state="failed", finished_at=old),
        "recent done": RepositoryMaintenance.objects.create(repository=private_repo, state="done", finished_at=recent),
        # Still to run, whatever its age (a retry records finished_at too).
        "old queued": RepositoryMaintenance.objects.create(repository=private_repo, state="queued", finished_at=old),
    }

    assert prune(now) == {"repos.repositorymaintenance": 2}

    left = set(RepositoryMaintenance.objects.values_list("pk", flat=True))
    assert left == {rows["recent done"].pk, rows["old queued"].pk}


def test_the_reconciler_fails_a_dead_run_with_no_attempts_left(private_repo, settings):
    settings.PORTAL_JOB_HEARTBEAT_LIMIT = 0
    row = RepositoryMaintenance.objects.create(repository=private_repo, attempts=2)
    assert row.claim(worker="gone:1")

    assert reconcile()["failed"] == 1

    row.refresh_from_db()
    assert (row.state, row.attempts) == ("failed", 3)
    assert "worker gone:1 stopped sending heartbeats" in row.last_error
