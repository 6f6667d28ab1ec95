"""Builds when things go wrong, with real rq worker processes on the real Redis: a worker killed mid-build, Redis
emptied with builds queued, the portal restarted mid-build; and escape attempts made through the real build job.

Two pushes in quick succession (the older build still queued ends STOPPED, superseded; with stop_running, the
running one too) are in test_builds.py."""

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from portal import jobs, pytest_plugin
from portal.tests.test_serve import assert_everything_stopped, serves, wait_until_ready  # noqa: F401 (fixtures)
from releases import logs, services
from releases.jobs import WORKER_STOPPED, host_uid
from releases.models import MAX_TIMEOUT_MINUTES, Build
from releases.sandbox import BuildDirectory
from releases.storage import artifact_storage
from repos import git
from repos import services as repo_services
from reviews.tests.test_job_faults import kill_worker, wait_for

from .conftest import processes_of
from .test_builds import build_status, log_of, push_files
from .test_sandbox import attempts

# Build #1 prints, then sleeps long enough to be killed mid-build; any later build of the same commit (a rerun)
# goes straight through.
PRINTS_THEN_SLEEPS = """version: 0.2
phases:
  build:
    commands:
      - echo "started build $CODEBUILD_BUILD_NUMBER"
      - if [ "$CODEBUILD_BUILD_NUMBER" = 1 ]; then sleep 300; fi
      - echo "finished build $CODEBUILD_BUILD_NUMBER"
"""


def log_shows(build: Build, text: str) -> bool:
    return text in log_of(Build.objects.get(pk=build.pk))


@pytest.mark.usefixtures("transactional_db")
def test_a_worker_killed_mid_build_ends_it_fault_within_the_heartbeat_window_and_a_rerun_succeeds(
    private_repo,
    bob,
    worker_env,
    rq_workers,
    rq_queues,
    run_builds,
    settings,
):
    sha = push_files(private_repo, bob, "main", {"buildspec.yml": PRINTS_THEN_SLEEPS.encode()})
    build = Build.objects.get(repository=private_repo)
    uid = host_uid(build)
    worker = rq_workers(worker_env, "builds")
    try:
        wait_for(lambda: log_shows(build, "started build 1"))
        build.refresh_from_db()
        assert (build.state, build.build_status) == (Build.State.RUNNING, "IN_PROGRESS")
        # The sandbox runs as the build's own uid (the sleep, at least).
        assert processes_of(uid)
    finally:
        build.refresh_from_db()
        kill_worker(worker, build)
    killed = time.monotonic()
    # The sandbox dies with the process that started it: nothing of the build's uid is left running.
    wait_for(lambda: processes_of(uid) == [], timeout=10)

    settings.PORTAL_JOB_HEARTBEAT_LIMIT = 5
    # Within the heartbeat limit the reconciler cannot tell a lost worker from a slow one: it leaves the run alone.
    assert jobs.reconcile()["failed"] == 0
    wait_for(lambda: jobs.reconcile()["failed"] == 1, timeout=20)
    ended = time.monotonic()

    build.refresh_from_db()
    assert (build.state, build.build_status) == (Build.State.FAILED, "FAULT")
    # Ended within the heartbeat window (the limit, and the reconciler's own passes around it), not at the
    # build's time limit.
    assert ended - killed < settings.PORTAL_JOB_HEARTBEAT_LIMIT + 10
    assert "stopped sending heartbeats" in build.message
    assert build_status(private_repo, sha).state == "error"
    # What it printed before the worker died is kept in the store, as the log of an ended build.
    log = log_of(build)
    assert "started build 1" in log and "finished build" not in log
    assert artifact_storage().exists(logs.stored_name(build))
    assert build.log_size == len(log.encode())

    rerun = services.start_build(
        private_repo, sha=build.head_sha, ref=build.ref, trigger=Build.Trigger.RERUN, initiator=bob
    )
    run_builds()
    rerun.refresh_from_db()
    assert (rerun.number, rerun.build_status, rerun.attempts) == (2, "SUCCEEDED", 1)
    assert "finished build 2" in log_of(rerun)
    assert build_status(private_repo, sha).state == "success"
    assert processes_of(host_uid(rerun)) == []


@pytest.mark.usefixtures("transactional_db")
def test_builds_queued_when_redis_is_emptied_are_enqueued_again_and_each_runs_once(
    private_repo, bob, worker_env, rq_workers, rq_queues, settings
):
    settings.PORTAL_JOB_ENQUEUE_GRACE = 0
    quick = PRINTS_THEN_SLEEPS.replace("sleep 300", "true")
    for branch in ("main", "feature", "fix"):
        push_files(private_repo, bob, branch, {"buildspec.yml": quick.encode(), "branch.txt": branch.encode()})
    builds = list(Build.objects.filter(repository=private_repo).order_by("number"))
    queue = rq_queues["builds"]
    assert len(builds) == 3 and queue.count == 3

    # Redis loses everything it held (all of it when the session runs its own Valkey; only the session's database
    # of a Redis given by REDIS_URL, which others may use); the database still says three builds are queued.
    if pytest_plugin._valkey is not None:
        queue.connection.flushall()
    else:
        queue.connection.flushdb()
    assert queue.count == 0
    assert [b.state for b in Build.objects.filter(repository=private_repo)] == [Build.State.QUEUED] * 3

    jobs.reconcile()
    assert queue.count == 3
    worker = rq_workers(worker_env, "builds")
    assert worker.wait(timeout=240) == 0

    for build in builds:
        build.refresh_from_db()
        assert (build.build_status, build.attempts) == ("SUCCEEDED", 1), build.message
        log = log_of(build)
        assert log.count("Entering phase BUILD") == 1 and f"finished build {build.number}" in log
        assert build_status(private_repo, build.head_sha).state == "success"
    # Nothing is left to enqueue: a second pass of the reconciler runs nothing again.
    jobs.reconcile()
    assert queue.count == 0


@pytest.mark.usefixtures("transactional_db")
def test_a_build_is_not_cut_short_by_rqs_own_job_timeout(private_repo, bob, rq_queues):
    push_files(private_repo, bob, "main", {"buildspec.yml": PRINTS_THEN_SLEEPS.encode()})
    (job,) = rq_queues["builds"].get_jobs()
    # rq kills a job that runs past its timeout; a build has its own time limit, which can be 8 hours.
    assert job.timeout > MAX_TIMEOUT_MINUTES * 60


# The portal restarted mid-build: `manage.py serve` as a real process, as portal/tests/test_serve.py runs it.

SETUP = """
from portal import services as accounts
from releases import services
from repos import git, services as repos
owner = accounts.create_user(actor=None, username='olivia', email='olivia@example.com', password='olivia-pass-123')
repo = repos.create_repository(actor=owner, owner=owner, name='app', initialize=True)
sha = git.commit_files(repo.path, 'main', {{'buildspec.yml': {spec!r}.encode()}}, 'build', name='o', email='o@x')
for _ in range(2):
    services.start_build(repo, sha=sha, ref='refs/heads/main', trigger='manual', initiator=owner)
"""


def _rows(database: Path, query: str) -> list[tuple]:
    with sqlite3.connect(database, timeout=20) as db:
        return db.execute(query).fetchall()


def _builds(database: Path) -> dict[int, tuple]:
    rows = _rows(database, "SELECT number, state, build_status, message, log_size FROM releases_build")
    return {number: tuple(rest) for number, *rest in rows}


def test_the_portal_restarted_mid_build_ends_the_running_build_recorded_and_runs_the_queued_one_after(
    serves,  # noqa: F811 (fixtures)
    tmp_path,
    builds_root,
):
    var, database = tmp_path / "var", tmp_path / "portal.sqlite3"
    env = {"PORTAL_BUILDS_ROOT": str(builds_root), "PORTAL_JOB_HEARTBEAT": "1"}
    serve = serves(var, database, 30, env)
    seen = wait_until_ready(serve)
    setup_env = {k: v for k, v in os.environ.items() if k not in ("GIT_ROOT", "PORTAL_BASE_URL")}
    setup_env |= env | {
        "PORTAL_VAR_DIR": str(var),
        "DATABASE_URL": f"sqlite:///{database}",
        "REDIS_URL": f"unix://{var / 'valkey.sock'}",
    }
    subprocess.run(
        [sys.executable, str(settings.BASE_DIR / "manage.py"), "shell", "-c", SETUP.format(spec=PRINTS_THEN_SLEEPS)],
        cwd=settings.BASE_DIR,
        env=setup_env,
        check=True,
        capture_output=True,
    )
    local_log = builds_root / "logs"
    serve.wait_for(
        "build #1 to print",
        lambda: any(b"started build 1" in path.read_bytes() for path in local_log.glob("*.log")),
    )
    assert _builds(database)[1][:2] == ("running", "IN_PROGRESS")
    assert _builds(database)[2][:2] == ("queued", "QUEUED")

    assert serve.stop(signal.SIGTERM) == 0
    # The worker stopped the build instead of being killed in the middle of it.
    assert "did not stop" not in serve.output
    assert_everything_stopped(serve, seen)
    state, status, message, log_size = _builds(database)[1]
    assert (state, status, message) == ("done", "FAULT", WORKER_STOPPED)
    (build_id,) = _rows(database, "SELECT id FROM releases_build WHERE number = 1")[0]
    (repository_id,) = _rows(database, "SELECT repository_id FROM releases_build WHERE number = 1")[0]
    stored = (builds_root / "store" / "logs" / str(repository_id) / f"{build_id}.log").read_bytes()
    assert b"started build 1" in stored and WORKER_STOPPED.encode() in stored and log_size == len(stored)
    # Its commit status is final, and the build behind it still waits.
    assert _rows(database, "SELECT state FROM reviews_commitstatus WHERE context = 'build'") == [("error",)]
    assert _builds(database)[2][:2] == ("queued", "QUEUED")

    serve = serves(var, database, 30, env)
    seen = wait_until_ready(serve)
    serve.wait_for("build #2 to end", lambda: _builds(database)[2][0] not in ("queued", "running"))
    assert _builds(database)[2][:2] == ("done", "SUCCEEDED")
    assert _builds(database)[1][:3] == ("done", "FAULT", WORKER_STOPPED)
    assert serve.stop(signal.SIGTERM) == 0
    assert_everything_stopped(serve, seen)


# Escape attempts through the real build job (the sandbox alone is tried in test_sandbox.py): a build of one
# repository reaching for the portal's data and for another repository's build running beside it.

VICTIM = """version: 0.2
phases:
  build:
    commands:
      - cat victim-secret.txt
      - mkdir -p out && cp victim-secret.txt out/app.txt
      - if [ "$CODEBUILD_BUILD_NUMBER" = 2 ]; then sleep 300; fi
artifacts:
  files:
    - out/app.txt
"""
VICTIM_SECRET = "the victim's private source"


def _files(root: Path) -> dict[Path, bytes]:
    return {path: path.read_bytes() for path in root.rglob("*") if path.is_file()}


@pytest.mark.usefixtures("transactional_db")
def test_a_build_reads_and_changes_nothing_of_the_portal_or_of_another_repositorys_running_build(
    private_repo,
    alice,
    bob,
    worker_env,
    rq_workers,
    builds_root,
    rq_queues,
    run_builds,
):
    victim = repo_services.create_repository(actor=alice, owner=alice, name="victim", initialize=True)
    files = {"buildspec.yml": VICTIM.encode(), "victim-secret.txt": VICTIM_SECRET.encode() + b"\n"}
    sha = git.commit_files(victim.path, "main", files, "victim", name="alice", email="alice@example.com")
    start = {"sha": sha, "ref": "refs/heads/main", "trigger": Build.Trigger.MANUAL, "initiator": alice}
    # The victim's first build ends with a log and an artifact in the store; its second one runs (sleeps) in a
    # worker process of its own while the other repository's build tries to reach it.
    finished = services.start_build(victim, **start)
    run_builds()
    finished.refresh_from_db()
    assert finished.build_status == "SUCCEEDED" and finished.artifacts.count() == 1
    running = services.start_build(victim, **start)
    worker = rq_workers(worker_env, "builds")
    wait_for(lambda: log_shows(running, VICTIM_SECRET))
    workspace = BuildDirectory(builds_root / str(running.pk)).workspace
    # With SQLite the database is a file of the portal's to reach for; PostgreSQL is a server, and the loopback it
    # listens on is out of reach of every build (releases/tests/test_sandbox.py).
    sqlite = connection.vendor == "sqlite"
    database = Path(connection.settings_dict["NAME"]) if sqlite else None
    store = builds_root / "store"
    stored_before = _files(store)
    git_before = _files(victim.path)
    secret_before = (workspace / "victim-secret.txt").read_bytes()
    (artifact,) = finished.artifacts.all()
    targets = {
        "repositories": f"{settings.GIT_ROOT}",
        "repository": f"{victim.path}",
        **({"database": f"{database}"} if sqlite else {}),
        "store": f"{store}",
        "stored log": f"{store}/{logs.stored_name(finished)}",
        "artifact": f"{store}/{artifact.storage_name}",
        "running log": f"{builds_root}/logs/{running.pk}.log",
        "workspace": f"{workspace}",
    }

    attacker = push_files(
        private_repo,
        bob,
        "main",
        {
            "buildspec.yml": attempts(
                *(f"ls -la {path}" for path in targets.values()),
                f"cat {targets['repository']}/config {targets['repository']}/HEAD",
                f"git --git-dir={targets['repository']} log --oneline",
                *([f"head -c 64 {database}"] if sqlite else []),
                f"cat {targets['stored log']} {targets['artifact']}",
                f"cat {targets['running log']}",
                f"cat {targets['workspace']}/victim-secret.txt",
                f"cat ../{running.pk}/src/victim-secret.txt ../../{running.pk}/src/victim-secret.txt",
                "find / -xdev -name 'victim-secret.txt' -o -name '*.sqlite3' 2>/dev/null; echo searched",
                "tr '\\0' '\\n' < /proc/1/environ; cat /proc/*/environ | tr '\\0' '\\n'; echo environ-read",
                f"echo pwned > {targets['workspace']}/victim-secret.txt",
                *([f"echo pwned >> {database}"] if sqlite else []),
                f"echo pwned >> {targets['running log']}",
                f"touch {targets['store']}/pwned",
                f"rm -rf {targets['repository']}",
            ).encode(),
        },
    )
    run_builds()

    build = Build.objects.get(repository=private_repo, head_sha=attacker)
    assert build.build_status == "SUCCEEDED"
    log = log_of(build)
    # Nothing of the portal's data or of the other build came through.
    for leaked in (VICTIM_SECRET, "SQLite format 3", "repositoryformatversion", "ref: refs/heads/main"):
        assert leaked not in log
    # The sandbox's init is its own, with an empty environment; the worker's (the database, Redis) is not seen.
    for variable in ("REDIS_URL", "DATABASE_URL", "PORTAL_", "DJANGO_SETTINGS_MODULE"):
        assert variable not in log
    for path in targets.values():
        assert f"ls: cannot access '{path}': No such file or directory" in log
    # ... and nothing outside the sandbox changed.
    assert (workspace / "victim-secret.txt").read_bytes() == secret_before
    assert not sqlite or b"pwned" not in database.read_bytes()
    assert _files(victim.path) == git_before
    assert {path: data for path, data in _files(store).items() if path in stored_before} == stored_before
    assert not (store / "pwned").exists()
    assert "pwned" not in log_of(Build.objects.get(pk=running.pk))

    services.cancel_build(running, actor=alice)
    assert worker.wait(timeout=60) == 0
    running.refresh_from_db()
    assert running.build_status == "STOPPED"
    assert processes_of(host_uid(running)) == processes_of(host_uid(build)) == []
