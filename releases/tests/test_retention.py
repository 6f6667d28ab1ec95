"""Retention over real builds: the logs and artifacts of builds that ended long ago go, the recent ones stay, and a
zip shared with a build still kept stays in the store."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rq import cron

from portal.models import AuditEvent
from releases import logs
from releases.models import Build, BuildArtifact
from releases.retention import expire, referenced, run_retention
from releases.storage import artifact_storage
from releases.tests.test_builds import push_files

# The primary artifact is the same bytes on every branch; the secondary one holds the branch's own note.
SPEC = (
    "version: 0.2\nphases:\n  build:\n    commands:\n      - mkdir -p out && echo same > out/app.txt\n"
    "artifacts:\n  files:\n    - out/**/*\n  name: app\n"
    "  secondary-artifacts:\n    notes:\n      files:\n        - note.txt\n      name: notes\n"
)


def ended_days_ago(build: Build, days: float) -> None:
    Build.objects.filter(pk=build.pk).update(build_ended=timezone.now() - timedelta(days=days))


def stored(artifact: BuildArtifact) -> bool:
    return artifact_storage().exists(artifact.storage_name)


def artifact(build: Build, name: str) -> BuildArtifact:
    return BuildArtifact.objects.get(build=build, name=name)


@pytest.fixture
def two_builds(private_repo, bob, run_builds):  # noqa: F811 (fixture)
    """Build #1 of main, ended 91 days ago; build #2 of other, 89 days ago; both made the same app.zip."""
    push_files(private_repo, bob, "main", {"buildspec.yml": SPEC.encode(), "note.txt": b"one\n"})
    push_files(private_repo, bob, "other", {"buildspec.yml": SPEC.encode(), "note.txt": b"two\n"})
    run_builds()
    old, recent = Build.objects.filter(repository=private_repo).order_by("number")
    assert old.build_status == recent.build_status == "SUCCEEDED"
    assert artifact(old, "app").sha256 == artifact(recent, "app").sha256
    assert artifact(old, "notes").sha256 != artifact(recent, "notes").sha256
    ended_days_ago(old, 91)
    ended_days_ago(recent, 89)
    return old, recent


@pytest.mark.usefixtures("transactional_db")
def test_old_logs_and_artifacts_go_recent_ones_and_shared_zips_stay(two_builds, settings):
    old, recent = two_builds
    assert settings.PORTAL_BUILD_KEEP_DAYS == 90
    log_size = old.log_size
    assert log_size > 0 and logs.read_all(old)

    counts = run_retention()

    assert counts == {"logs": 1, "artifacts": 2, "zips": 1, "kept_in_use": 0}
    old.refresh_from_db()
    assert old.log_path == "" and old.log_size == log_size and old.log_removed
    # Gone from the store and from the worker's disk, so nothing serves it any more.
    assert not artifact_storage().exists(logs.stored_name(old)) and not logs.local_path(old).exists()
    assert logs.read_all(old) == b""
    recent.refresh_from_db()
    assert recent.log_path and not recent.log_removed and logs.read_all(recent)
    # The old build's artifacts are marked expired, their provenance kept; the zip it shares with the recent build
    # stays, its own goes.
    assert [(a.name, a.expired, a.provenance is not None) for a in old.artifacts.all()] == [
        ("app", True, True),
        ("notes", True, True),
    ]
    assert stored(artifact(old, "app")) and not stored(artifact(old, "notes"))
    assert [(a.name, a.expired) for a in recent.artifacts.all()] == [("app", False), ("notes", False)]
    assert stored(artifact(recent, "app")) and stored(artifact(recent, "notes"))
    [event] = AuditEvent.objects.filter(action="build.retention")
    assert event.after == counts | {"keep_days": 90}

    # Again: nothing changes, and the run is audited with zeros.
    assert expire() == {"logs": 0, "artifacts": 0, "zips": 0, "kept_in_use": 0}
    assert stored(artifact(old, "app")) and stored(artifact(recent, "notes"))
    assert AuditEvent.objects.filter(action="build.retention").count() == 2

    # Kept for 30 days only: the recent build's turn. Its own zip was already deleted by a run cut short before
    # it marked the rows; this run marks them, and the shared zip goes now that no artifact kept names it.
    settings.PORTAL_BUILD_KEEP_DAYS = 30
    artifact_storage().delete(artifact(recent, "notes").storage_name)
    assert expire() == {"logs": 1, "artifacts": 2, "zips": 1, "kept_in_use": 0}
    assert not stored(artifact(recent, "app"))
    assert not BuildArtifact.objects.filter(expired=False).exists()


@pytest.mark.usefixtures("transactional_db")
def test_builds_still_running_or_queued_are_left_alone(private_repo, bob, settings):
    push_files(private_repo, bob, "main", {"buildspec.yml": SPEC.encode(), "note.txt": b"one\n"})
    queued = Build.objects.get(repository=private_repo)
    Build.objects.filter(pk=queued.pk).update(created=timezone.now() - timedelta(days=400), log_path="logs/x.log")
    assert expire()["logs"] == 0
    queued.refresh_from_db()
    assert queued.log_path == "logs/x.log"


@pytest.mark.usefixtures("transactional_db")
def test_what_another_row_points_at_is_found_through_the_models_relations(two_builds, private_repo, bob):
    """The rule that keeps an artifact a deployment uses, asked of builds, which artifacts point at."""
    old, recent = two_builds
    push_files(private_repo, bob, "third", {"buildspec.yml": b"version: 0.2\nphases:\n  build:\n    commands: x\n"})
    unreferenced = Build.objects.get(repository=private_repo, head_branch="third")
    assert set(Build.objects.filter(referenced(Build))) == {old, recent}
    assert unreferenced not in Build.objects.filter(referenced(Build))
    # Nothing points at an artifact yet, so none is kept for being in use.
    assert not BuildArtifact.objects.filter(referenced(BuildArtifact)).exists()


def test_retention_is_scheduled_daily(rq_queues):
    scheduler = cron.CronScheduler(connection=rq_queues["default"].connection)
    # portal/cron.py imports this module; loaded by name, it is read again even when that import already ran.
    scheduler.load_config_from_file("releases.cron")
    jobs = {job.func: (job.queue_name, job.interval) for job in scheduler.get_jobs()}
    assert jobs[run_retention] == ("default", 24 * 60 * 60)
