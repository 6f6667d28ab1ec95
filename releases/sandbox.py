"""The bubblewrap sandbox a build runs in, and how it is stopped.

A build sees a read-only system (/usr and a few files of /etc), its own writable workspace, home and /tmp, its own
PID, IPC, UTS, network and user namespaces, as user 1000 with every capability dropped. When the portal runs as
root the sandbox runs as an unprivileged host uid of the caller's choosing: give each concurrent build its own, since
the process limit counts every process of a host uid. Limits on memory, processes and file size are rlimits set by
`prlimit` before bubblewrap starts; the wall-clock limit and the log limit are the runner's. A build has no
network unless asked: then slirp4netns routes its namespace out, still with no way to the host's loopback.

The sandbox's init gets SIGKILL when the thread that started it ends (`--die-with-parent`): start builds from a
thread that outlives them, such as the worker's main thread.
"""

import glob
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

SANDBOX_UID = 1000
SANDBOX_USER = "build"
SANDBOX_WORKSPACE = "/workspace"
SANDBOX_HOME = "/home/build"
SANDBOX_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# What a build may read of the host's /etc: the dynamic loader, certificates, time zones, name lookup files and
# the alternatives Debian's commands link through. Never passwd/shadow, the portal's config or package credentials.
ETC_ALLOWED = (
    "alternatives",
    "ca-certificates",
    "ca-certificates.conf",
    "debian_version",
    "host.conf",
    "hosts",
    "inputrc",
    "java-*",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "magic",
    "magic.mime",
    "mime.types",
    "nsswitch.conf",
    "os-release",
    "perl",
    "protocols",
    "python3*",
    "services",
    "ssl",
    "timezone",
)
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")


class SandboxError(RuntimeError):
    """The sandbox could not be started: the build ends FAULT, not FAILED."""


def traversable_directory(path: Path) -> Path:
    """Create path and its missing parents traversable (not listable) by the sandboxes' uids: a build's or a
    hook's directory is bound into its sandbox from below them."""
    missing = [parent for parent in (path, *path.parents) if not parent.exists()]
    for directory in reversed(missing):
        directory.mkdir(mode=0o711, exist_ok=True)
        directory.chmod(0o711)
    return path


@dataclass(frozen=True)
class Limits:
    """What one build may use. Memory is per process (address space), processes are per host uid."""

    timeout_seconds: float = 60 * 60
    memory_bytes: int = 4 * 1024**3
    processes: int = 512
    file_size_bytes: int = 4 * 1024**3
    open_files: int = 4096
    tmp_bytes: int = 1024**3
    log_bytes: int = 64 * 1024**2
    kill_grace_seconds: float = 10


@dataclass(frozen=True)
class BuildDirectory:
    """The host directories bound into a sandbox: the source at /workspace, the home and the generated /etc files."""

    root: Path

    @property
    def workspace(self) -> Path:
        return self.root / "src"

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def etc(self) -> Path:
        return self.root / "etc"


def prepare_build_directory(root: Path) -> BuildDirectory:
    """Create the workspace (root/src, for the checkout), the home and the /etc files a sandbox binds."""
    directory = BuildDirectory(Path(root))
    for path in (directory.workspace, directory.home, directory.etc):
        path.mkdir(parents=True, exist_ok=True)
    (directory.etc / "passwd").write_text(
        f"root:x:0:0:root:/root:/usr/sbin/nologin\n"
        f"{SANDBOX_USER}:x:{SANDBOX_UID}:{SANDBOX_UID}:build:{SANDBOX_HOME}:/bin/bash\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
    )
    # slirp4netns answers DNS on 10.0.2.3 for a sandbox with a network.
    (directory.etc / "resolv.conf").write_text("nameserver 10.0.2.3\n")
    (directory.etc / "group").write_text(f"root:x:0:\n{SANDBOX_USER}:x:{SANDBOX_UID}:\nnogroup:x:65534:\n")
    return directory


def remove_build_directory(directory: BuildDirectory) -> None:
    """Delete a build directory, including what the build made unwritable (a build may chmod its own files)."""

    def writable_again(function, path, error):
        os.chmod(os.path.dirname(path), 0o700)
        if os.path.isdir(path) and not os.path.islink(path):
            os.chmod(path, 0o700)
        function(path)

    if not directory.root.exists():
        return
    if sys.version_info >= (3, 12):
        shutil.rmtree(directory.root, onexc=writable_again)
    else:
        shutil.rmtree(directory.root, onerror=writable_again)


def give_to(path: Path, uid: int) -> None:
    """Make a tree the sandbox user's (without following links), so a build can change its own files."""
    os.lchown(path, uid, uid)
    for parent, dirs, files in os.walk(path):
        for name in dirs + files:
            os.lchown(os.path.join(parent, name), uid, uid)


def check_reachable(path: Path, uid: int) -> None:
    """Refuse a build directory the build's host uid could not reach: bubblewrap binds it as that uid."""
    for parent in [path, *Path(path).parents]:
        info = os.stat(parent)
        if info.st_uid != uid and not info.st_mode & stat.S_IXOTH:
            raise SandboxError(f"{parent} is not reachable by uid {uid}: builds need a directory others may traverse")


def _tool(name: str) -> str:
    path = shutil.which(name, path="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    if path is None:
        raise SandboxError(f"{name} is not installed")
    return path


def sandbox_command(
    directory: BuildDirectory,
    command: list[str],
    *,
    limits: Limits,
    host_uid: int | None = None,
    info_fd: int | None = None,
    block_fd: int | None = None,
    network: bool = False,
    binds: tuple["Bind", ...] = (),
    chdir: str = SANDBOX_WORKSPACE,
) -> list[str]:
    """The command line that runs command in a sandbox over directory, within limits.

    binds are more host directories to show inside, each writable or not, and chdir where the command starts: a
    deployment's hook sees its revision there (releases/local_target.py); a build needs neither.

    info_fd receives bubblewrap's JSON with the sandbox init's host pid; block_fd holds the command back until
    something is written to it (Sandbox connects the network first). The sandbox always has a network namespace of
    its own: without network it has only its own loopback; with it, Sandbox routes it out through slirp4netns and
    the build resolves names through slirp's DNS.
    """
    rlimits = [
        _tool("prlimit"),
        f"--as={limits.memory_bytes}",
        f"--nproc={limits.processes}",
        f"--fsize={limits.file_size_bytes}",
        f"--nofile={limits.open_files}",
        "--core=0",
        "--",
    ]
    drop_root: list[str] = []
    if os.geteuid() == 0:
        if host_uid is None or host_uid == 0:
            raise SandboxError("the portal runs as root: a build needs an unprivileged host uid")
        drop_root = [_tool("setpriv"), f"--reuid={host_uid}", f"--regid={host_uid}", "--clear-groups", "--"]
    bwrap = [
        _tool("bwrap"),
        "--unshare-all",
        "--unshare-user",
        "--disable-userns",
        "--die-with-parent",
        "--new-session",
        "--cap-drop",
        "ALL",
        "--uid",
        str(SANDBOX_UID),
        "--gid",
        str(SANDBOX_UID),
        "--hostname",
        "build",
    ]
    for system_dir in SYSTEM_DIRS:
        if os.path.islink(system_dir):
            bwrap += ["--symlink", os.readlink(system_dir), system_dir]
        elif os.path.isdir(system_dir):
            bwrap += ["--ro-bind", system_dir, system_dir]
    for pattern in ETC_ALLOWED:
        for path in sorted(glob.glob(os.path.join("/etc", pattern))):
            bwrap += ["--ro-bind", path, path]
    bwrap += [
        "--ro-bind",
        str(directory.etc / "passwd"),
        "/etc/passwd",
        "--ro-bind",
        str(directory.etc / "group"),
        "/etc/group",
        "--bind",
        str(directory.workspace),
        SANDBOX_WORKSPACE,
        "--bind",
        str(directory.home),
        SANDBOX_HOME,
        "--size",
        str(limits.tmp_bytes),
        "--tmpfs",
        "/tmp",  # noqa: S108 (the sandbox's own tmpfs, not the host's /tmp)
        "--proc",
        "/proc",
        "--dev",
        "/dev",
    ]
    for bind in binds:
        bwrap += ["--bind" if bind.writable else "--ro-bind", str(bind.source), bind.destination]
    bwrap += [
        "--chdir",
        chdir,
        "--clearenv",
        "--setenv",
        "PATH",
        SANDBOX_PATH,
        "--setenv",
        "HOME",
        SANDBOX_HOME,
        "--setenv",
        "USER",
        SANDBOX_USER,
        "--setenv",
        "LANG",
        "C.UTF-8",
    ]
    if network:
        bwrap += ["--ro-bind", str(directory.etc / "resolv.conf"), "/etc/resolv.conf"]
    if info_fd is not None:
        bwrap += ["--info-fd", str(info_fd)]
    if block_fd is not None:
        bwrap += ["--block-fd", str(block_fd)]
    return rlimits + drop_root + bwrap + ["--", *command]


@dataclass(frozen=True)
class Bind:
    """A host directory shown inside the sandbox at destination, read-only unless writable."""

    source: Path
    destination: str
    writable: bool = False


class Sandbox:
    """A running sandbox: its outer process, the host pid of its init, and a stop that ends every process inside."""

    def __init__(
        self,
        directory: BuildDirectory,
        command: list[str],
        *,
        limits: Limits,
        host_uid: int | None = None,
        pass_fds: tuple[int, ...] = (),
        network: bool = False,
        binds: tuple[Bind, ...] = (),
        chdir: str = SANDBOX_WORKSPACE,
    ):
        self.limits = limits
        self.network = None
        if os.geteuid() == 0 and host_uid is not None:
            for path in (directory.root, *(bind.source for bind in binds)):
                check_reachable(path, host_uid)
        info_read, info_write = os.pipe()
        # With a network, the command waits on this pipe until slirp4netns has configured the sandbox's interface.
        block_read, block_write = os.pipe() if network else (None, None)
        try:
            argv = sandbox_command(
                directory,
                command,
                limits=limits,
                host_uid=host_uid,
                info_fd=info_write,
                block_fd=block_read,
                network=network,
                binds=binds,
                chdir=chdir,
            )
            self.process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                pass_fds=tuple(fd for fd in (info_write, block_read, *pass_fds) if fd is not None),
                env={},
                start_new_session=True,
            )
        except (OSError, SandboxError) as error:
            for fd in (info_read, block_write):
                if fd is not None:
                    os.close(fd)
            raise SandboxError(f"the sandbox did not start: {error}")
        finally:
            for fd in (info_write, block_read):
                if fd is not None:
                    os.close(fd)
        try:
            self.init_pid = _read_child_pid(info_read)
            self.pid_namespace = _pid_namespace(self.init_pid)
            if network:
                self.network = _connect_network(self.init_pid)
                os.write(block_write, b"1")
        except (ValueError, KeyError, OSError, SandboxError) as error:
            self.process.kill()
            self.process.wait()
            if self.network is not None:
                self.network.close()
            # What bubblewrap said, without waiting on a pipe that a process of the sandbox may still hold.
            os.set_blocking(self.process.stdout.fileno(), False)
            output = (self.process.stdout.read(4096) or b"").decode("utf-8", "replace").strip()
            self.process.stdout.close()
            raise SandboxError(f"the sandbox did not start: {output or error}")
        finally:
            if block_write is not None:
                os.close(block_write)

    @property
    def output(self):
        return self.process.stdout

    def processes(self) -> list[int]:
        """Host pids of every process still in the sandbox's PID namespace, its init included."""
        if self.pid_namespace is None:
            return []
        found = []
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                if os.readlink(f"/proc/{entry.name}/ns/pid") == self.pid_namespace:
                    found.append(int(entry.name))
            except OSError:
                continue
        return found

    def stop(self, grace_seconds: float | None = None) -> None:
        """SIGTERM every process inside, SIGKILL what is left after the grace, then the init (which ends them all)."""
        grace = self.limits.kill_grace_seconds if grace_seconds is None else grace_seconds
        if self.process.poll() is None and grace > 0:
            for pid in self.processes():
                if pid != self.init_pid:
                    _signal(pid, signal.SIGTERM)
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline and [pid for pid in self.processes() if pid != self.init_pid]:
                time.sleep(0.05)
        # The kernel kills every process of a PID namespace when its init dies, however they hide (setsid,
        # double fork, ignoring SIGTERM). The outer bubblewrap then reaps the init and exits; killing it first would
        # leave the init a zombie for the host's init to reap.
        if self.init_pid in self.processes():
            _signal(self.init_pid, signal.SIGKILL)
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            _signal(self.process.pid, signal.SIGKILL)
            self.process.wait()
        if self.network is not None:
            self.network.close()

    def wait(self) -> int:
        return self.process.wait()


def _pid_namespace(init_pid: int) -> str | None:
    """The PID namespace of the sandbox's init, or None when the init already exited, which ended every process of
    the sandbox (a command as quick as `true` can be done before this look). A sandbox with network cannot get
    here first: its init waits for the network before it runs anything. A pid that already belongs to another
    process of the host's own namespace is the init's pid reused, never the sandbox."""
    try:
        namespace = os.readlink(f"/proc/{init_pid}/ns/pid")
    except FileNotFoundError:
        return None
    return None if namespace == os.readlink("/proc/self/ns/pid") else namespace


def _read_child_pid(info_fd: int) -> int:
    """The sandbox init's host pid from bubblewrap's info JSON (read as it comes: bubblewrap may keep the pipe open)."""
    raw = b""
    with os.fdopen(info_fd, "rb", buffering=0) as info:
        while chunk := info.read(4096):
            raw += chunk
            try:
                return int(json.loads(raw)["child-pid"])
            except json.JSONDecodeError:
                continue
    return int(json.loads(raw)["child-pid"])


class _Network:
    """slirp4netns serving one sandbox. It exits when its exit pipe closes: at stop, or when the portal dies."""

    def __init__(self, process: subprocess.Popen, exit_fd: int):
        self.process = process
        self.exit_fd = exit_fd

    def close(self) -> None:
        os.close(self.exit_fd)
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _connect_network(init_pid: int) -> _Network:
    """Give the sandbox's network namespace a tap0 routed out through slirp4netns, which refuses the host's
    loopback (10.0.2.2 and 127.0.0.0/8) and runs in a mount namespace and seccomp filter of its own, with its
    capabilities dropped. It runs as the portal's user: /dev/net/tun is often not open to others.

    It is given the network namespace as an open descriptor rather than the pid: given a pid, slirp4netns also
    joins that process's user namespace, which bubblewrap may be replacing at that moment.
    """
    # bubblewrap brings the sandbox's loopback up first; configuring beside it would race it.
    deadline = time.monotonic() + 5
    while "127.0.0.1" not in Path(f"/proc/{init_pid}/net/fib_trie").read_text():
        if time.monotonic() > deadline:
            raise SandboxError("the sandbox's loopback did not come up")
        time.sleep(0.005)
    netns = os.open(f"/proc/{init_pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    ready_read, ready_write = os.pipe()
    exit_read, exit_write = os.pipe()
    try:
        process = subprocess.Popen(
            [
                _tool("slirp4netns"),
                "--configure",
                "--mtu=65520",
                "--disable-host-loopback",
                "--enable-sandbox",
                "--enable-seccomp",
                f"--ready-fd={ready_write}",
                f"--exit-fd={exit_read}",
                "--netns-type=path",
                f"/proc/self/fd/{netns}",
                "tap0",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            pass_fds=(ready_write, exit_read, netns),
            env={},
            start_new_session=True,
        )
    except OSError:
        os.close(exit_write)
        raise
    finally:
        for fd in (ready_write, exit_read, netns):
            os.close(fd)
    network = _Network(process, exit_write)
    with os.fdopen(ready_read, "rb") as ready:
        if ready.read(1) != b"1":
            network.close()
            raise SandboxError(f"slirp4netns did not start: {process.stderr.read().decode('utf-8', 'replace').strip()}")
    return network


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except (ProcessLookupError, PermissionError):
        pass
