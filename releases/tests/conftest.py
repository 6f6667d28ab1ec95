"""Real sandboxed builds: bubblewrap and bash, on a workspace in tmp_path, with small limits so each stays quick.

And a real OpenSSH sshd on a loopback port, with its own host keys and config, for the ssh target: it logs in only
the user it runs as unless it runs as root, so a deployment logs in as the user running the tests (root in CI).
Nothing of the machine's own sshd is used (config, host keys, authorized_keys); only, as root, the empty privilege
separation directory sshd insists on."""

import os
import pwd
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh
import pytest

from releases.buildspec import parse_buildspec
from releases.runner import BuildContext, BuildResult, run_build
from releases.sandbox import BuildDirectory, Limits, prepare_build_directory
from releases.ssh_target import generate_deploy_key

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


@pytest.fixture
def drive(deploys, run_builds, run_deploys):
    """drive(): run the builds and deployments the pipelines asked for, and what those ask for, until none is left."""
    from django.utils import timezone

    from releases.models import Build, Deployment

    def run() -> None:
        for _ in range(10):
            queued = (
                Build.objects.filter(state=Build.State.QUEUED).exists()
                or Deployment.objects.filter(state=Deployment.State.QUEUED, due_at__lte=timezone.now()).exists()
            )
            if not queued:
                return
            run_builds()
            run_deploys()

    return run


@pytest.fixture
def environments_of_release(private_repo, alice):
    """dev on one local target; uat on one, guarded by alice's approval."""
    from releases.tests.deploying import set_targets

    dev = set_targets(private_repo, "dev", ["a"], alice)
    uat = set_targets(
        private_repo, "uat", ["a"], alice, required_approvals=1, reviewers=[{"type": "User", "id": alice.pk}]
    )
    return dev, uat


@pytest.fixture
def api(alice, bob, carol, mallory):
    """call(who, method, path, body=None): the API as alice (admin), bob (writer), carol (reader) or mallory."""
    from django.test import Client

    from repos.tests.api_client import send, token_for

    headers = {user.username: token_for(user) for user in (alice, bob, carol, mallory)}
    client = Client()

    def call(who: str, method: str, path: str, body=None):
        return send(client, method, path, body, **headers[who])

    return call


# A real OpenSSH sshd, for the ssh target.

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
PRIVSEP_DIRECTORY = Path("/run/sshd")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def alive(pid: int) -> bool:
    """Whether pid is a live process (a zombie waiting for a parent that is gone counts as dead)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "State:\tZ" not in status


@dataclass
class Sshd:
    directory: Path
    port: int = field(default_factory=free_port)
    user: str = field(default_factory=lambda: pwd.getpwuid(os.getuid()).pw_name)
    # Variables sshd sets in every session (SetEnv), such as a HOME of the test's own.
    environment: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen | None = None

    @property
    def authorized_keys(self) -> Path:
        return self.directory / "authorized_keys"

    @property
    def host_key(self) -> Path:
        return self.directory / "host_ed25519_key"

    def new_host_keys(self) -> str:
        """Give the server fresh host keys (Ed25519 and ECDSA); returns the Ed25519 one's public line."""
        for name, algorithm in (("host_ed25519_key", "ssh-ed25519"), ("host_ecdsa_key", "ecdsa-sha2-nistp256")):
            key = asyncssh.generate_private_key(algorithm)
            path = self.directory / name
            path.unlink(missing_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(key.export_private_key())
        return asyncssh.read_private_key(self.host_key).export_public_key().decode().strip()

    def start(self) -> None:
        config = self.directory / "sshd_config"
        config.write_text(
            f"ListenAddress 127.0.0.1\n"
            f"Port {self.port}\n"
            f"HostKey {self.directory / 'host_ed25519_key'}\n"
            f"HostKey {self.directory / 'host_ecdsa_key'}\n"
            f"PidFile {self.directory / 'sshd.pid'}\n"
            f"AuthorizedKeysFile {self.authorized_keys}\n"
            f"AllowUsers {self.user}\n"
            "StrictModes no\n"
            "UsePAM no\n"
            "PubkeyAuthentication yes\n"
            "PasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\n"
            "PermitRootLogin prohibit-password\n"
            "PermitUserEnvironment no\n"
            "PermitUserRC no\n"
            "PrintMotd no\n"
            "PrintLastLog no\n"
            "UseDNS no\n"
            "X11Forwarding no\n"
            "AllowTcpForwarding no\n"
            "Subsystem sftp internal-sftp\n"
            + "".join(f"SetEnv {name}={value}\n" for name, value in self.environment.items())
        )
        log = self.directory / "sshd.log"
        with log.open("w") as log_file:
            self.process = subprocess.Popen(
                [SSHD, "-D", "-e", "-f", str(config)], stdout=subprocess.DEVNULL, stderr=log_file, cwd=self.directory
            )
        deadline = time.monotonic() + 10
        while "Server listening" not in log.read_text():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"sshd did not start:\n{log.read_text()}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


@pytest.fixture
def sshd_environment() -> dict[str, str]:
    """Variables the test sshd sets in every session; a test module overrides it (a HOME of its own, say)."""
    return {}


@pytest.fixture
def sshd(tmp_path, sshd_environment):
    """A real OpenSSH sshd on a free loopback port: its own host keys, config and authorized_keys, public keys
    only; killed at teardown."""
    if os.getuid() == 0 and not PRIVSEP_DIRECTORY.is_dir():
        # A root sshd refuses to start without it; the package's own service creates the same empty directory.
        PRIVSEP_DIRECTORY.mkdir(mode=0o755, exist_ok=True)
    directory = tmp_path / "sshd"
    directory.mkdir()
    server = Sshd(directory, environment=dict(sshd_environment))
    server.new_host_keys()
    server.authorized_keys.write_text("")
    for attempt in range(3):
        try:
            server.start()
            break
        except RuntimeError:
            # Another process took the free port between the probe and sshd's bind: try another.
            if attempt == 2:
                raise
            server.port = free_port()
    yield server
    server.stop()


@pytest.fixture
def deploy_key(sshd):
    """An environment's deploy key, its public half authorized on the host."""
    private, public = generate_deploy_key()
    sshd.authorized_keys.write_text(public + "\n")
    return private


@pytest.fixture
def worker_env(django_subprocess_env, builds_root, settings):
    """The environment of a real `manage.py rqworker` that shares this test's database, Redis and builds root."""
    settings.PORTAL_BUILDS_ROOT = builds_root
    return django_subprocess_env | {"PORTAL_BUILDS_ROOT": str(builds_root), "PORTAL_JOB_HEARTBEAT": "1"}


@pytest.fixture
def deploy_worker_env(worker_env, deploys, settings):
    """worker_env with this test's targets root and deployments' root too."""
    return worker_env | {
        "PORTAL_TARGETS_ROOT": str(settings.PORTAL_TARGETS_ROOT),
        "PORTAL_DEPLOYS_ROOT": str(settings.PORTAL_DEPLOYS_ROOT),
    }


@pytest.fixture
def rq_workers(tmp_path):
    """start(env, queue): a real forking rq worker of a queue (burst), in a session of its own; none outlives the
    test. Its stderr goes to worker-N.log in the test's tmp_path."""
    from django.conf import settings

    started: list[subprocess.Popen] = []

    def start(env: dict, queue: str) -> subprocess.Popen:
        worker = subprocess.Popen(
            [sys.executable, str(settings.BASE_DIR / "manage.py"), "rqworker", queue, "--burst"],
            cwd=settings.BASE_DIR,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=(tmp_path / f"worker-{len(started)}.log").open("wb"),
            start_new_session=True,
        )
        started.append(worker)
        return worker

    yield start
    for worker in started:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
