"""Builds as jobs: real pushes and pull requests queue them, a real rq worker runs them in the real sandbox, and
their commit status follows."""

import hashlib
import io
import threading
import time
import zipfile
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.utils import timezone

from portal import jobs
from portal.models import AuditEvent
from releases import logs, services
from releases.models import Build, BuildArtifact
from releases.storage import artifact_storage
from repos import git
from repos import services as repo_services
from repos.access import Principal
from repos.services import RefUpdate
from repos.tests.conftest import git_env, server  # noqa: F401 (fixtures)
from reviews import services as review_services
from reviews.models import CommitStatus
from reviews.tests.conftest import clone_as, make_branch  # noqa: F401 (fixtures)

GOOD = """version: 0.2
phases:
  install:
    commands:
      - echo installing
  build:
    commands:
      - cd sub
      - echo "built in $(pwd) from $CODEBUILD_RESOLVED_SOURCE_VERSION"
      - cat hello.txt
"""

FAILING = """version: 0.2
phases:
  build:
    commands:
      - echo before
      - test 1 -eq 3
      - echo never
  post_build:
    commands:
      - echo "succeeding=$CODEBUILD_BUILD_SUCCEEDING"
"""

BAD = """version: 0.2
phases:
  build:
    commands: echo not a list
"""


def push_files(repo, user, branch: str, files: dict[str, bytes]) -> str:
    """Commit files on branch and record the push as post-receive does; returns the new head."""
    try:
        old = git.branch_sha(repo.path, branch)
    except git.RefNotFound:
        old = git.ZERO_SHA
    new = git.commit_files(repo.path, branch, files, "change", name=user.username, email=user.email)
    repo_services.record_push(
        repo,
        actor=Principal(user=user),
        protocol="http",
        updates=[RefUpdate(old_sha=old, new_sha=new, ref=f"refs/heads/{branch}")],
    )
    return new


def build_status(repo, sha: str) -> CommitStatus:
    return CommitStatus.objects.get(repository=repo, sha=sha, context="build")


def log_of(build: Build) -> str:
    return logs.read_all(build).decode()


def test_a_push_over_http_with_a_buildspec_builds_it_and_reports_success(
    clone_as,  # noqa: F811 (fixtures)
    private_repo,
    bob,
    server,  # noqa: F811 (fixtures)
    run_builds,
):
    work = clone_as(bob)
    (work.path / "sub").mkdir()
    sha = work.commit("add a build", buildspec__yml=GOOD, **{"sub/hello__txt": "hello from the source\n"})
    result = work.push("HEAD:refs/heads/main")
    build = Build.objects.get(repository=private_repo)
    assert f"Build #1 of {sha[:12]}:" in result.stderr
    assert f"{server}/alice/project/builds/1" in result.stderr
    assert (build.head_sha, build.head_branch, build.trigger, build.initiator) == (sha, "main", "push", bob)
    assert build_status(private_repo, sha).state == "pending"

    run_builds()

    build.refresh_from_db()
    assert build.build_status == "SUCCEEDED" and build.state == Build.State.DONE
    assert [(p["name"], p["status"]) for p in build.phases] == [
        ("INSTALL", "SUCCEEDED"),
        ("PRE_BUILD", "SUCCEEDED"),
        ("BUILD", "SUCCEEDED"),
        ("POST_BUILD", "SUCCEEDED"),
        ("UPLOAD_ARTIFACTS", "SUCCEEDED"),
    ]
    log = log_of(build)
    assert f"built in /workspace/sub from {sha}" in log
    assert "hello from the source" in log
    assert build.log_size == len(log.encode())
    status = build_status(private_repo, sha)
    assert status.state == "success"
    assert status.target_url == f"{server}/alice/project/builds/1"
    assert status.creator == bob
    assert AuditEvent.objects.filter(action="build.start", target_id=str(build.pk)).exists()
    assert AuditEvent.objects.filter(action="build.end", target_id=str(build.pk)).exists()
    # The workspace is gone; the log is stored.
    assert not (Path(settings.PORTAL_BUILDS_ROOT) / str(build.pk)).exists()
    assert artifact_storage().exists(f"logs/{private_repo.pk}/{build.pk}.log")


@pytest.mark.usefixtures("transactional_db")
def test_a_failing_command_fails_the_build_and_its_status(private_repo, bob, run_builds):
    sha = push_files(private_repo, bob, "main", {"buildspec.yml": FAILING.encode()})
    run_builds()
    build = Build.objects.get(repository=private_repo)
    assert build.build_status == "FAILED"
    statuses = {p["name"]: p["status"] for p in build.phases}
    assert statuses["BUILD"] == "FAILED" and statuses["POST_BUILD"] == "SUCCEEDED"
    assert "COMMAND_EXECUTION_ERROR" in build.message
    log = log_of(build)
    assert "before" in log and "never" not in log and "succeeding=0" in log
    assert build_status(private_repo, sha).state == "failure"


@pytest.mark.usefixtures("transactional_db")
def test_a_bad_buildspec_fails_before_the_build_starts_naming_line_and_key(private_repo, bob, run_builds):
    sha = push_files(private_repo, bob, "main", {"buildspec.yml": BAD.encode()})
    run_builds()
    build = Build.objects.get(repository=private_repo)
    assert build.build_status == "FAILED" and build.phases == []
    log = log_of(build)
    assert "YAML_FILE_ERROR" in log
    assert "buildspec.yml, line 4" in log and "phases.build.commands" in log
    assert "line 4" in build.message
    assert build_status(private_repo, sha).state == "failure"


@pytest.mark.usefixtures("transactional_db")
def test_a_repository_without_a_buildspec_gets_no_build(private_repo, bob, run_builds):
    sha = push_files(private_repo, bob, "main", {"README.md": b"no build here\n"})
    run_builds()
    assert not Build.objects.exists()
    assert not CommitStatus.objects.filter(repository=private_repo, sha=sha).exists()


@pytest.mark.usefixtures("transactional_db")
def test_a_pull_request_opened_builds_its_head_with_the_status_on_the_head(private_repo, alice, bob, run_builds):
    head = make_branch(private_repo, "feature", {"buildspec.yml": FAILING.replace("test 1 -eq 3", "true").encode()})
    pr = review_services.open_pull_request(private_repo, actor=bob, title="Build me", base="main", head="feature")
    build = Build.objects.get(repository=private_repo)
    assert (build.trigger, build.pull_request, build.head_sha, build.head_branch) == (
        "pull_request",
        pr,
        head,
        "feature",
    )
    assert build.ref == f"refs/pull/{pr.number}/head"
    run_builds()
    build.refresh_from_db()
    assert build.build_status == "SUCCEEDED"
    assert build_status(private_repo, head).state == "success"


@pytest.mark.usefixtures("transactional_db")
def test_a_push_to_a_pull_requests_branch_builds_the_head_once(private_repo, bob, run_builds):
    make_branch(private_repo, "feature", {"buildspec.yml": GOOD.encode()})
    pr = review_services.open_pull_request(private_repo, actor=bob, title="Build me", base="main", head="feature")
    head = push_files(private_repo, bob, "feature", {"buildspec.yml": FAILING.encode()})
    builds = Build.objects.filter(repository=private_repo, head_sha=head)
    assert [(b.trigger, b.pull_request_id) for b in builds] == [("pull_request", pr.pk)]


@pytest.mark.usefixtures("transactional_db")
def test_a_newer_push_stops_the_older_build_still_queued(private_repo, bob, run_builds):
    first = push_files(private_repo, bob, "main", {"buildspec.yml": GOOD.encode()})
    second = push_files(private_repo, bob, "main", {"buildspec.yml": FAILING.encode()})
    older, newer = Build.objects.order_by("number")
    assert (older.head_sha, newer.head_sha) == (first, second)
    assert older.build_status == "STOPPED" and older.state == Build.State.CANCELED
    assert "superseded by build #2" in older.message
    assert build_status(private_repo, first).state == "error"

    run_builds()

    older.refresh_from_db()
    newer.refresh_from_db()
    assert older.build_status == "STOPPED" and older.attempts == 0
    assert newer.build_status == "FAILED"
    assert AuditEvent.objects.filter(action="build.stop", target_id=str(older.pk)).exists()


@pytest.mark.usefixtures("transactional_db")
def test_a_deleted_branch_or_a_tag_is_not_built(private_repo, bob, run_builds):
    sha = make_branch(private_repo, "gone", {"buildspec.yml": GOOD.encode()})
    git.update_ref(private_repo.path, "refs/tags/v1", sha, git.ZERO_SHA)
    git.delete_ref(private_repo.path, "refs/heads/gone", sha)
    repo_services.record_push(
        private_repo,
        actor=Principal(user=bob),
        protocol="http",
        updates=[
            RefUpdate(old_sha=git.ZERO_SHA, new_sha=sha, ref="refs/tags/v1"),
            RefUpdate(old_sha=sha, new_sha=git.ZERO_SHA, ref="refs/heads/gone"),
        ],
    )
    assert not Build.objects.exists()


@pytest.mark.usefixtures("transactional_db")
def test_a_build_delivered_twice_runs_once(private_repo, bob, rq_queues, run_builds):
    push_files(private_repo, bob, "main", {"buildspec.yml": FAILING.replace("test 1 -eq 3", "true").encode()})
    build = Build.objects.get(repository=private_repo)
    queue = rq_queues["builds"]
    # A second delivery under an id of its own, as a reconciler racing the first one would make.
    queue.enqueue(build.job_function, *build.job_args())
    assert queue.count == 2
    run_builds()
    build.refresh_from_db()
    assert build.build_status == "SUCCEEDED" and build.attempts == 1
    assert log_of(build).count("Entering phase BUILD") == 1
    assert AuditEvent.objects.filter(action="build.end", target_id=str(build.pk)).count() == 1


@pytest.mark.usefixtures("transactional_db")
def test_a_build_whose_worker_stopped_beating_ends_fault_with_its_status(private_repo, bob, settings, rq_queues):
    sha = push_files(private_repo, bob, "main", {"buildspec.yml": GOOD.encode()})
    build = Build.objects.get(repository=private_repo)
    # A worker claimed it and started, then was killed: its last heartbeat is older than the limit.
    assert build.claim(worker="lost-host:4242")
    services.mark_in_progress(build)
    stale = timezone.now() - timedelta(seconds=settings.PORTAL_JOB_HEARTBEAT_LIMIT + 1)
    Build.objects.filter(pk=build.pk).update(heartbeat_at=stale)

    assert jobs.reconcile()["failed"] == 1

    build.refresh_from_db()
    assert build.state == Build.State.FAILED and build.build_status == "FAULT"
    assert "lost-host:4242 stopped sending heartbeats" in build.message
    assert build_status(private_repo, sha).state == "error"


@pytest.mark.usefixtures("transactional_db")
def test_a_manual_build_takes_start_variables_over_the_buildspecs(private_repo, alice, run_builds):
    spec = (
        "version: 0.2\nenv:\n  variables:\n    GREETING: from-buildspec\n    OTHER: kept\n"
        'phases:\n  build:\n    commands:\n      - echo "$GREETING $OTHER $CODEBUILD_INITIATOR"\n'
    )
    sha = git.commit_files(private_repo.path, "main", {"buildspec.yml": spec.encode()}, "b", name="a", email="a@x")
    build = services.start_build(
        private_repo,
        sha=sha,
        ref="refs/heads/main",
        trigger=Build.Trigger.MANUAL,
        initiator=alice,
        variables={"GREETING": "from-start"},
    )
    run_builds()
    build.refresh_from_db()
    assert build.build_status == "SUCCEEDED" and build.start_variables == {"GREETING": "from-start"}
    assert "from-start kept alice" in log_of(build)
    assert build_status(private_repo, sha).creator == alice


SLEEPING = "version: 0.2\nphases:\n  build:\n    commands:\n      - echo started\n      - sleep 120\n"


def once_log_shows(build: Build, text: str, action) -> threading.Thread:
    """Run action() in a thread once the build's log shows text (the build runs meanwhile in the test's worker)."""

    def wait_then_act() -> None:
        try:
            while True:
                row = Build.objects.get(pk=build.pk)
                if text in log_of(row):
                    break
                time.sleep(0.05)
            action()
        finally:
            connection.close()

    thread = threading.Thread(target=wait_then_act)
    thread.start()
    return thread


@pytest.mark.usefixtures("transactional_db")
def test_stopping_a_running_build_ends_it_stopped(private_repo, alice, bob, run_builds):
    sha = push_files(private_repo, bob, "main", {"buildspec.yml": SLEEPING.encode()})
    build = Build.objects.get(repository=private_repo)

    stopper = once_log_shows(build, "started", lambda: services.cancel_build(build, actor=alice))
    run_builds()
    stopper.join()

    build.refresh_from_db()
    assert build.build_status == "STOPPED" and build.stop_requested
    assert {p["name"]: p["status"] for p in build.phases}["BUILD"] == "STOPPED"
    assert build_status(private_repo, sha).state == "error"
    assert AuditEvent.objects.filter(action="build.stop_requested", actor=alice).exists()


@pytest.mark.usefixtures("transactional_db")
def test_the_live_log_is_read_by_offset_and_sent_whole_again_after_redis_is_emptied(
    private_repo, alice, bob, rq_queues, run_builds
):
    push_files(private_repo, bob, "main", {"buildspec.yml": SLEEPING.encode()})
    build = Build.objects.get(repository=private_repo)
    redis = rq_queues["builds"].connection
    seen = {}

    def empty_redis_then_stop() -> None:
        running = Build.objects.get(pk=build.pk)
        first = logs.read(running, 0)
        seen["rest"] = logs.read(running, first.next_offset - 8)
        redis.flushdb()
        deadline = time.monotonic() + 10
        while b"started" not in (redis.get(logs.redis_key(build.pk)) or b"") and time.monotonic() < deadline:
            time.sleep(0.05)
        seen["again"] = redis.get(logs.redis_key(build.pk)) or b""
        seen["whole"] = first.data
        services.cancel_build(running, actor=alice)

    stopper = once_log_shows(build, "started", empty_redis_then_stop)
    run_builds()
    stopper.join()

    build.refresh_from_db()
    assert build.build_status == "STOPPED"
    assert seen["rest"].data == seen["whole"][-8:] and seen["rest"].next_offset == len(seen["whole"])
    # The build printed nothing after the flush, yet its log was written to Redis again, whole.
    assert seen["again"].startswith(seen["whole"])
    stored = logs.read_all(build)
    assert stored.startswith(seen["whole"]) and b"Build ended STOPPED" in stored
    assert logs.read(build, len(stored)).data == b""


@pytest.mark.usefixtures("transactional_db")
def test_with_stop_running_set_a_newer_push_stops_the_running_build(private_repo, alice, bob, run_builds):
    services.save_build_settings(private_repo, actor=alice, stop_running=True)
    first = push_files(private_repo, bob, "main", {"buildspec.yml": SLEEPING.encode()})
    older = Build.objects.get(repository=private_repo)
    quick = SLEEPING.replace("sleep 120", "true")

    pusher = once_log_shows(older, "started", lambda: push_files(private_repo, bob, "main", {"buildspec.yml": quick}))
    run_builds()
    pusher.join()

    older.refresh_from_db()
    newer = Build.objects.get(repository=private_repo, number=2)
    assert older.build_status == "STOPPED" and older.head_sha == first
    assert newer.build_status == "SUCCEEDED"
    assert AuditEvent.objects.filter(action="build.stop_requested", actor=None, target_id=str(older.pk)).exists()


@pytest.mark.usefixtures("transactional_db")
def test_the_build_settings_choose_branches_and_tags(private_repo, alice, bob, carol, run_builds):
    with pytest.raises(PermissionDenied):
        services.save_build_settings(private_repo, actor=bob, build_tags=True)
    services.save_build_settings(private_repo, actor=alice, branch_filter="release/*", build_tags=True)
    assert AuditEvent.objects.filter(action="build_settings.update", actor=alice).exists()
    spec = 'version: 0.2\nphases:\n  build:\n    commands:\n      - echo "trigger=$CODEBUILD_WEBHOOK_TRIGGER"\n'
    push_files(private_repo, bob, "main", {"buildspec.yml": spec.encode()})
    assert not Build.objects.exists()
    sha = make_branch(private_repo, "release/1", {"buildspec.yml": spec.encode(), "notes.txt": b"one\n"})
    git.update_ref(private_repo.path, "refs/tags/v1", sha, git.ZERO_SHA)
    repo_services.record_push(
        private_repo,
        actor=Principal(user=bob),
        protocol="http",
        updates=[RefUpdate(old_sha=git.ZERO_SHA, new_sha=sha, ref="refs/tags/v1")],
    )
    tag_build = Build.objects.get(repository=private_repo)
    assert (tag_build.ref, tag_build.head_branch) == ("refs/tags/v1", "")
    run_builds()
    tag_build.refresh_from_db()
    assert tag_build.build_status == "SUCCEEDED"
    assert "trigger=tag/v1" in log_of(tag_build)
    push_files(private_repo, bob, "release/1", {"buildspec.yml": spec.encode(), "notes.txt": b"two\n"})
    assert Build.objects.filter(head_branch="release/1", trigger="push").count() == 1


@pytest.mark.usefixtures("transactional_db")
def test_the_build_settings_name_the_buildspec_path_and_refuse_bad_values(private_repo, alice, bob, run_builds):
    for changes, field in [
        ({"buildspec_path": "../etc/passwd"}, "buildspec_path"),
        ({"buildspec_path": " "}, "buildspec_path"),
        ({"timeout_minutes": 0}, "timeout_minutes"),
        ({"timeout_minutes": 8 * 60 + 1}, "timeout_minutes"),
        ({"colour": "blue"}, "colour"),
    ]:
        with pytest.raises(ValidationError) as refused:
            services.save_build_settings(private_repo, actor=alice, **changes)
        assert refused.value.params == {"field": field}
    services.save_build_settings(private_repo, actor=alice, buildspec_path="/ci/build.yml", timeout_minutes=5)
    settings = services.build_settings(private_repo)
    assert (settings.buildspec_path, settings.timeout_minutes, settings.build_tags) == ("ci/build.yml", 5, False)
    spec = "version: 0.2\nphases:\n  build:\n    commands:\n      - echo from the ci folder\n"
    push_files(private_repo, bob, "main", {"buildspec.yml": spec.encode()})
    assert not Build.objects.exists()
    sha = push_files(private_repo, bob, "main", {"ci/build.yml": spec.encode()})
    build = Build.objects.get(repository=private_repo)
    assert (build.head_sha, build.buildspec_path) == (sha, "ci/build.yml")
    run_builds()
    build.refresh_from_db()
    assert build.build_status == "SUCCEEDED"
    assert "from the ci folder" in log_of(build)


def test_only_writers_start_builds_by_hand_and_with_valid_variables(private_repo, alice, carol):
    sha = git.branch_sha(private_repo.path, "main")
    with pytest.raises(PermissionDenied):
        services.start_build(private_repo, sha=sha, ref="refs/heads/main", trigger="manual", initiator=carol)
    for name in ("CODEBUILD_BUILD_ID", "not-a-name"):
        with pytest.raises(ValidationError, match=name):
            services.start_build(
                private_repo, sha=sha, ref="refs/heads/main", trigger="manual", initiator=alice, variables={name: "x"}
            )
    assert not Build.objects.exists()


@pytest.mark.usefixtures("transactional_db")
def test_keys_not_implemented_are_warnings_on_the_build_and_in_its_log(private_repo, bob, run_builds):
    spec = "version: 0.2\nproxy:\n  upload-artifacts: yes\nphases:\n  build:\n    commands:\n      - echo ok\n"
    push_files(private_repo, bob, "main", {"buildspec.yml": spec.encode()})
    run_builds()
    build = Build.objects.get(repository=private_repo)
    assert build.build_status == "SUCCEEDED"
    assert build.warnings == ["line 2, proxy: not supported: ignored"]
    assert "Warning: buildspec line 2, proxy: not supported: ignored" in log_of(build)


@pytest.mark.usefixtures("transactional_db")
def test_artifacts_are_stored_once_by_their_digest(private_repo, alice, bob, run_builds):
    spec = (
        "version: 0.2\nphases:\n  build:\n    commands:\n      - mkdir -p out && echo made > out/app.txt\n"
        "artifacts:\n  files:\n    - out/**/*\n  name: app\n"
    )
    push_files(private_repo, bob, "main", {"buildspec.yml": spec.encode()})
    push_files(private_repo, bob, "other", {"buildspec.yml": spec.encode()})
    run_builds()
    artifacts = list(BuildArtifact.objects.order_by("build__number"))
    assert [(a.build.number, a.name, a.files) for a in artifacts] == [
        (1, "app", ["out/app.txt"]),
        (2, "app", ["out/app.txt"]),
    ]
    first, second = artifacts
    assert first.sha256 == second.sha256
    storage = artifact_storage()
    assert storage.listdir(f"sha256/{first.sha256[:2]}")[1] == [f"{first.sha256}.zip"]
    with storage.open(first.storage_name) as stored:
        content = stored.read()
    assert hashlib.sha256(content).hexdigest() == first.sha256 and len(content) == first.size_in_bytes
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        assert archive.read("out/app.txt") == b"made\n"


@pytest.mark.usefixtures("transactional_db")
def test_a_builds_junit_reports_are_kept_on_it_case_by_case(private_repo, bob, run_builds):
    junit = (
        '<testsuite name="unit"><testcase classname="app.Test" name="adds" time="0.25"/>'
        '<testcase classname="app.Test" name="divides" time="1.5"><failure message="division by zero">'
        "Traceback</failure></testcase></testsuite>"
    )
    spec = (
        "version: 0.2\nphases:\n  build:\n    commands:\n      - echo ok\n"
        "reports:\n  unit:\n    files:\n      - 'reports/*.xml'\n"
    )
    push_files(private_repo, bob, "main", {"buildspec.yml": spec.encode(), "reports/unit.xml": junit.encode()})
    run_builds()
    build = Build.objects.get(repository=private_repo)
    assert build.build_status == "SUCCEEDED"
    [report] = build.reports
    assert (report["group"], report["files"], report["errors"]) == ("unit", ["reports/unit.xml"], [])
    assert [(c["classname"], c["name"], c["status"], c["duration"], c["message"]) for c in report["cases"]] == [
        ("app.Test", "adds", "SUCCEEDED", 0.25, ""),
        ("app.Test", "divides", "FAILED", 1.5, "division by zero"),
    ]


@pytest.mark.usefixtures("transactional_db")
def test_a_worker_sweeps_what_builds_no_longer_running_left_on_its_disk(private_repo, alice, bob, run_builds):
    spec = "version: 0.2\nphases:\n  build:\n    commands:\n      - echo ok\n"
    push_files(private_repo, bob, "main", {"buildspec.yml": spec.encode()})
    run_builds()
    ended = Build.objects.get(repository=private_repo)
    root = Path(settings.PORTAL_BUILDS_ROOT)
    # What a worker killed mid-build leaves: its directory (with a folder the build made unwritable) and its log.
    left = root / str(ended.pk) / "src" / "locked"
    left.mkdir(parents=True)
    (left / "file").write_text("left over\n")
    left.chmod(0o500)
    logs.local_path(ended).write_text("left over\n")
    # A build another worker of this machine runs now, and one whose log the store does not have yet.
    sha = git.branch_sha(private_repo.path, "main")
    running = services.start_build(private_repo, sha=sha, ref="refs/heads/main", trigger="manual", initiator=alice)
    assert running.claim(worker="other-worker:1")
    (root / str(running.pk) / "src").mkdir(parents=True)
    unstored = services.start_build(private_repo, sha=sha, ref="refs/heads/main", trigger="manual", initiator=alice)
    services.cancel_build(unstored, actor=alice)
    logs.local_path(unstored).write_text("only here\n")
    # A directory of a build that no longer exists.
    (root / "999999" / "src").mkdir(parents=True)

    push_files(private_repo, bob, "other", {"buildspec.yml": spec.encode()})
    run_builds()

    assert Build.objects.filter(head_branch="other", build_status="SUCCEEDED").exists()
    assert not (root / str(ended.pk)).exists() and not logs.local_path(ended).exists()
    assert not (root / "999999").exists()
    assert (root / str(running.pk) / "src").is_dir()
    assert logs.local_path(unstored).read_text() == "only here\n"
    # The log is still there to read, from the store.
    assert b"ok" in logs.read_all(ended)
