"""The queue infrastructure: jobs enqueued through django-rq run in a real rq worker process."""

import os
import subprocess
import sys
from pathlib import Path

import django_rq
from django.conf import settings
from rq.job import JobStatus


def write_marker(path: str, text: str) -> str:
    """A job: leaves a file behind, so the test sees that another process ran it."""
    Path(path).write_text(text)
    return f"wrote {len(text)} characters"


def fail_loudly() -> None:
    """A job that fails, to see failures recorded on the job."""
    raise RuntimeError("this job fails on purpose")


def modules_loaded(names: list[str]) -> list[str]:
    """A job: which of these modules its process had imported when it ran."""
    return [name for name in names if name in sys.modules]


def run_burst_worker(tmp_path: Path, *queues: str) -> subprocess.CompletedProcess:
    """`manage.py rqworker --burst` as a separate process, as production runs it, against the test Redis."""
    env = dict(os.environ, PORTAL_VAR_DIR=str(tmp_path / "worker-var"))
    return subprocess.run(
        [sys.executable, str(settings.BASE_DIR / "manage.py"), "rqworker", *queues, "--burst"],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_real_worker_runs_a_job_enqueued_on_the_default_queue(rq_queues, tmp_path):
    marker = tmp_path / "marker.txt"
    job = rq_queues["default"].enqueue(write_marker, str(marker), "hello from the queue")

    worker = run_burst_worker(tmp_path, "default")

    assert worker.returncode == 0, worker.stderr
    assert marker.read_text() == "hello from the queue"
    job.refresh()
    assert job.get_status() == JobStatus.FINISHED
    assert job.return_value() == "wrote 20 characters"


def test_a_failing_job_is_recorded_as_failed_with_its_error(rq_queues, tmp_path):
    job = rq_queues["default"].enqueue(fail_loudly)

    worker = run_burst_worker(tmp_path, "default")

    assert worker.returncode == 0, worker.stderr
    job.refresh()
    assert job.get_status() == JobStatus.FAILED
    assert job.id in rq_queues["default"].failed_job_registry.get_job_ids()
    assert "this job fails on purpose" in job.latest_result().exc_string


def test_a_jobs_work_horse_finds_every_job_function_imported_by_its_worker(rq_queues, tmp_path):
    # The horse is a fork of the worker: what the worker imported before, no job pays for again.
    from portal.jobs import JOB_ROWS

    modules = sorted({model.job_function.rpartition(".")[0] for model in JOB_ROWS.values()})
    job = rq_queues["default"].enqueue(modules_loaded, modules)

    worker = run_burst_worker(tmp_path, "default")

    assert worker.returncode == 0, worker.stderr
    job.refresh()
    assert job.get_status() == JobStatus.FINISHED
    assert len(modules) >= 4
    assert job.return_value() == modules


def url_resolvers_unbuilt() -> list[str]:
    """A job: the URL resolvers whose reverse tables its process has not built (the root's, every namespace's)."""
    from django.urls import URLResolver, get_resolver

    unbuilt = []

    def walk(resolver: URLResolver) -> None:
        if not resolver._populated:
            unbuilt.append(resolver.namespace or str(resolver.pattern) or "root")
        for pattern in resolver.url_patterns:
            if isinstance(pattern, URLResolver):
                walk(pattern)

    walk(get_resolver())
    return unbuilt


def test_a_jobs_work_horse_finds_the_url_resolvers_built_by_its_worker(rq_queues, tmp_path):
    # A job that makes a link (an approval's email) reverses a URL: the worker built the tables before it forked.
    job = rq_queues["default"].enqueue(url_resolvers_unbuilt)

    worker = run_burst_worker(tmp_path, "default")

    assert worker.returncode == 0, worker.stderr
    job.refresh()
    assert job.get_status() == JobStatus.FINISHED
    assert job.return_value() == []


def test_the_queues_use_the_redis_of_the_test_session():
    # The session exported REDIS_URL before the settings were read, so every queue points at it.
    assert os.environ["REDIS_URL"]
    for name in ("default", "builds", "deploys"):
        assert settings.RQ_QUEUES[name]["URL"] == os.environ["REDIS_URL"]
        assert django_rq.get_connection(name).ping()


def test_a_job_waits_in_its_own_queue_until_a_worker_listens_there(rq_queues, tmp_path):
    marker = tmp_path / "marker.txt"
    job = rq_queues["builds"].enqueue(write_marker, str(marker), "built")

    run_burst_worker(tmp_path, "default")
    assert not marker.exists()
    assert job.get_status(refresh=True) == JobStatus.QUEUED

    run_burst_worker(tmp_path, "builds", "deploys")
    assert marker.read_text() == "built"
    assert job.get_status(refresh=True) == JobStatus.FINISHED
