"""Real sandboxed builds: bubblewrap and bash, on a workspace in tmp_path, with small limits so each stays quick."""

import os
import random
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from releases.buildspec import parse_buildspec
from releases.runner import BuildContext, BuildResult, run_build
from releases.sandbox import BuildDirectory, Limits, prepare_build_directory

SMALL_LIMITS = Limits(
    timeout_seconds=30,
    memory_bytes=1024**3,
    processes=256,
    file_size_bytes=16 * 1024**2,
    tmp_bytes=16 * 1024**2,
    log_bytes=1024**2,
    kill_grace_seconds=1,
)


def processes_of(uid: int) -> list[int]:
    """Host pids of live processes whose real uid is uid (a zombie is dead: the host's init reaps it)."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            fields = dict(
                line.split(":", 1)
                for line in Path(f"/proc/{entry.name}/status").read_text().splitlines()
                if ":" in line
            )
        except OSError:
            continue
        if int(fields["Uid"].split()[0]) == uid and not fields["State"].strip().startswith("Z"):
            found.append(int(entry.name))
    return found


@dataclass
class Built:
    result: BuildResult
    directory: BuildDirectory
    lines: list[str] = field(default_factory=list)

    @property
    def log(self) -> str:
        return "\n".join(self.lines)

    @property
    def statuses(self) -> dict[str, str]:
        return {phase.name: str(phase.status) for phase in self.result.phases}


@pytest.fixture
def host_uid():
    """An unprivileged host uid of this test's own: the process limit counts every process of a uid."""
    return random.randrange(200_000, 2**31 - 2)


@pytest.fixture
def builds_root():
    """Where build directories go: like the portal's, a directory the builds' uids may traverse but not list."""
    root = Path(tempfile.mkdtemp(prefix="portal-builds-"))
    root.chmod(0o711)
    yield root
    shutil.rmtree(root)


@pytest.fixture
def build(tmp_path, builds_root, host_uid):
    """Run a buildspec over a fresh workspace holding files; returns the result and the log lines."""
    counter = iter(range(1000))

    def run(buildspec: str, *, files: dict[str, str] | None = None, limits: Limits = SMALL_LIMITS, **options) -> Built:
        directory = prepare_build_directory(builds_root / f"build{next(counter)}")
        for name, content in (files or {}).items():
            path = directory.workspace / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
        options.setdefault("artifacts_dir", tmp_path / "artifacts")
        options.setdefault(
            "context",
            BuildContext(
                build_id="alice-project:42",
                build_number=42,
                source_version="refs/heads/main",
                resolved_source_version="a" * 40,
                initiator="alice",
                webhook_trigger="branch/main",
                webhook_event="PUSH",
                webhook_head_ref="refs/heads/main",
            ),
        )
        lines: list[str] = []
        also = options.pop("on_line", None)

        def on_line(line: str) -> None:
            lines.append(line)
            if also is not None:
                also(line)

        result = run_build(
            parse_buildspec(buildspec), directory, limits=limits, host_uid=host_uid, on_line=on_line, **options
        )
        return Built(result, directory, lines)

    return run


@pytest.fixture
def targets_root(settings):
    """Like the portal's: a directory the hooks' uids may traverse but not list."""
    root = Path(tempfile.mkdtemp(prefix="portal-targets-"))
    root.chmod(0o711)
    settings.PORTAL_TARGETS_ROOT = root
    yield root
    shutil.rmtree(root)


@pytest.fixture
def run_builds(rq_queues, settings, builds_root):
    """run_builds(): a real rq worker runs every job of the builds queue, then stops."""
    from portal.jobs import SimpleWorker

    settings.PORTAL_BUILDS_ROOT = builds_root

    def run() -> None:
        queue = rq_queues["builds"]
        SimpleWorker([queue], connection=queue.connection).work(burst=True)

    return run


@pytest.fixture
def deploys(settings, targets_root, builds_root, tmp_path):
    """Where deployments keep their files: the targets under a traversable root, the worker's own files."""
    settings.PORTAL_BUILDS_ROOT = builds_root
    root = tmp_path / "deploys"
    root.mkdir()
    root.chmod(0o711)
    settings.PORTAL_DEPLOYS_ROOT = root
    return targets_root


@pytest.fixture
def built(deploys, run_builds):
    """built(repo, user, files, branch="main"): push files, build them for real; returns the successful Build."""

    from releases.models import Build
    from releases.tests.test_builds import push_files

    def make(repo, user, files, branch="main") -> Build:
        sha = push_files(repo, user, branch, files)
        run_builds()
        build = Build.objects.get(repository=repo, head_sha=sha)
        assert build.build_status == Build.BuildStatus.SUCCEEDED, build.message
        return build

    return make


@pytest.fixture
def run_deploys(rq_queues):
    """run_deploys(): a real rq worker runs every job of the deploys queue (and what they queue), then stops."""
    from portal.jobs import SimpleWorker

    def run() -> None:
        queue = rq_queues["deploys"]
        SimpleWorker([queue], connection=queue.connection).work(burst=True)

    return run
