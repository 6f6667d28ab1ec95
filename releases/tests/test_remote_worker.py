"""A build worker on another machine: a real `manage.py rqworker builds` in a process of its own whose GIT_ROOT does
not hold the repository, so it fetches the build's commit over the portal's smart HTTP (the live server) with a
read token it mints itself."""

import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from releases.models import Build, BuildArtifact
from releases.storage import artifact_storage
from releases.tests.test_builds import build_status, log_of, push_files
from repos import read_tokens
from repos.tests.conftest import server  # noqa: F401 (a fixture)

BUILDSPEC = """version: 0.2
phases:
  build:
    commands:
      - echo "built $CODEBUILD_RESOLVED_SOURCE_VERSION"
      - cat sub/hello.txt
      - mkdir out && cp sub/hello.txt out/
artifacts:
  files:
    - out/hello.txt
"""


@pytest.fixture
def remote_worker(django_subprocess_env, rq_queues, builds_root, tmp_path, server):  # noqa: F811 (a fixture)
    """remote_worker(**env): run every queued build in a real `manage.py rqworker builds --burst` that shares the
    database, Redis, SECRET_KEY and artifact store with the portal, but has a GIT_ROOT and var/ of its own."""
    settings.PORTAL_BUILDS_ROOT = builds_root
    git_root = tmp_path / "worker-git"
    git_root.mkdir()
    env = django_subprocess_env | {
        "GIT_ROOT": str(git_root),
        "PORTAL_VAR_DIR": str(tmp_path / "worker-var"),
        "PORTAL_BUILDS_ROOT": str(builds_root),
        "SECRET_KEY": settings.SECRET_KEY,
        "PORTAL_BASE_URL": server,
        "PORTAL_INTERNAL_URL": "",
    }

    def run(**changes: str) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [sys.executable, str(settings.BASE_DIR / "manage.py"), "rqworker", "builds", "--burst"],
            cwd=settings.BASE_DIR,
            env=env | changes,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr
        assert not any(git_root.iterdir()), "the worker's GIT_ROOT was meant to stay empty"
        return result

    return run


def test_a_worker_without_the_repository_fetches_the_commit_over_http_and_builds_it(
    private_repo, bob, remote_worker, builds_root
):
    sha = push_files(
        private_repo, bob, "main", {"buildspec.yml": BUILDSPEC.encode(), "sub/hello.txt": b"hello from afar\n"}
    )
    build = Build.objects.get(repository=private_repo)

    worker = remote_worker()

    build.refresh_from_db()
    assert build.build_status == "SUCCEEDED", (build.message, log_of(build))
    log = log_of(build)
    assert f"The repository is not on this machine: fetching {sha} from {settings.PORTAL_BASE_URL}" in log
    assert f"Fetched {sha}" in log
    assert f"built {sha}" in log and "hello from afar" in log
    (artifact,) = BuildArtifact.objects.filter(build=build)
    assert artifact_storage().exists(artifact.storage_name)
    assert artifact.files == ["out/hello.txt"]
    assert build_status(private_repo, sha).state == "success"
    # Neither the log nor the worker's own output shows a credential, and the fetched copy is gone with the build.
    for text in (log, worker.stdout, worker.stderr):
        assert read_tokens.USERNAME not in text and "PORTAL_FETCH_PASSWORD" not in text
    assert not (Path(builds_root) / str(build.pk)).exists()


def test_a_worker_reaches_the_portal_at_its_internal_url(private_repo, bob, remote_worker, server):  # noqa: F811
    sha = push_files(private_repo, bob, "main", {"buildspec.yml": BUILDSPEC.encode(), "sub/hello.txt": b"hi\n"})

    # The public address is one this worker cannot reach; the internal one is the live server.
    remote_worker(PORTAL_BASE_URL="http://portal.invalid", PORTAL_INTERNAL_URL=server)

    build = Build.objects.get(repository=private_repo)
    assert build.build_status == "SUCCEEDED", (build.message, log_of(build))
    assert f"fetching {sha} from {server}/alice/project.git" in log_of(build)


def test_a_fetch_the_portal_refuses_ends_the_build_fault_with_its_reason(private_repo, bob, remote_worker):
    sha = push_files(private_repo, bob, "main", {"buildspec.yml": BUILDSPEC.encode(), "sub/hello.txt": b"hi\n"})

    # A worker set up with another SECRET_KEY mints tokens the portal cannot verify.
    remote_worker(SECRET_KEY="not the portal's key")

    build = Build.objects.get(repository=private_repo)
    assert build.build_status == "FAULT" and build.state == Build.State.DONE
    assert build.message.startswith("DOWNLOAD_SOURCE failed: ")
    assert "This read token is invalid or expired." in build.message
    assert "DOWNLOAD_SOURCE failed: " in log_of(build)
    assert build.phases == []
    assert build_status(private_repo, sha).state == "error"
