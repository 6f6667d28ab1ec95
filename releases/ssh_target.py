"""The `ssh` deployment target's transport: a host reached with asyncssh, a deploy key and a pinned host key.

An environment generates its own deploy key (`generate_deploy_key`); its public half goes into the deploy user's
`authorized_keys` on each host. Each target pins the host key it expects, as a public key line (`ssh-ed25519 AAAA…`,
from `scan_host_key` when the target is first set up, for an admin to compare with the host's own
`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`). A connection goes ahead only when the host proves it holds
that very key; any other key is refused with both fingerprints named (`HostKeyMismatch`), since a changed key means a
reinstalled host or someone in between, and either way a person must look before bundles and secrets go there.

Layout on a target, under the target's base directory (`TargetLayout`):

    <base>/revisions/<deployment id>/   one deployment's unpacked bundle, uploaded whole before anything runs
    <base>/current -> revisions/<id>    the live revision, a relative symbolic link

Each revision is unpacked in its own directory, so a failed upload or a failed install never leaves a half-written
live tree, and ApplicationStop of the next deployment still finds the previous revision's scripts where they were.
Going live is one `switch()`: a new link made beside `current` and renamed over it (`mv -T`), which is atomic, so a
reader of `current` sees the old revision or the new one, never neither. Old revisions are removed with
`remove_tree` by whoever keeps the history.

The deployment job is an rq job, and rq jobs are synchronous: `SshTarget.connect(...)` opens one connection, kept by an
event loop in a thread of its own, and offers blocking operations over it (SFTP for files, one exec channel per
command). Callbacks such as `on_line` run in the caller's thread all the same, where its database connections are.
Every failure of the transport is an
`SshTargetError` whose message can be shown as it is.

What the host needs: OpenSSH's sshd with its SFTP subsystem, a POSIX shell as the deploy user's login shell, and
`env`, `ln`, `mv -T`, `rm` and `kill` (GNU coreutils or BusyBox); `curl` or `wget` for an HTTP health check.
"""

import asyncio
import os
import posixpath
import queue
import re
import shlex
import signal
import stat
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncssh

DEFAULT_PORT = 22
CONNECT_TIMEOUT = 20
# A host that stops answering is given up after about a minute, even in the middle of a long quiet hook.
KEEPALIVE_INTERVAL = 15
KEEPALIVE_COUNT_MAX = 4
COPY_CHUNK = 256 * 1024
# A line longer than this is passed on in pieces, so output without newlines cannot grow without bound.
MAX_LINE = 64 * 1024
# Host key types in the order a first scan asks for them: the one an admin most likely compares by hand first.
SCAN_HOST_KEY_ALGORITHMS = (
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "rsa-sha2-512",
    "rsa-sha2-256",
)
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# The first line the wrapper writes on stderr: the command's process group, so a timeout can kill all of it.
PGID_MARKER = "portal-pgid="


class SshTargetError(Exception):
    """The host could not be reached, refused us, or an operation on it failed; the message says which."""


class HostKeyMismatch(SshTargetError):
    """The host offered a host key other than the pinned one."""

    def __init__(self, host: str, port: int, expected: str, offered: str):
        self.expected = expected
        self.offered = offered
        super().__init__(
            f"The host key of {host}:{port} has changed: expected {expected}, the host offered {offered}. "
            "Nothing was sent to it. If the host was reinstalled, pin its new key in the target's settings."
        )


class RemoteFileError(SshTargetError):
    """A file operation on the host was refused or failed (no such file, permission denied…): `path` and `reason`."""

    def __init__(self, path: str, reason: str, where: str):
        self.path = path
        self.reason = reason
        super().__init__(f"{path} on {where}: {reason}")


class CommandTimedOut(SshTargetError):
    """A command ran past its timeout and was killed, with its whole process group."""

    def __init__(self, timeout: float):
        self.timeout = timeout
        super().__init__(f"The command did not finish within {timeout:g} seconds and was killed.")


def generate_deploy_key(comment: str = "portal deploy key") -> tuple[str, str]:
    """A new Ed25519 key: (the private key in OpenSSH format, the public line for authorized_keys)."""
    key = asyncssh.generate_private_key("ssh-ed25519", comment=comment)
    return key.export_private_key().decode(), key.export_public_key().decode().strip()


def parse_host_key(line: str) -> asyncssh.SSHKey:
    """The public key in an authorized_keys or known_hosts style line (a known_hosts line starts with its hosts)."""
    line = line.strip()
    if not line or "\n" in line or line.startswith(("@cert-authority", "@revoked")):
        raise SshTargetError("A host key must be one public key line, such as 'ssh-ed25519 AAAA…'.")
    candidates = [line]
    fields = line.split(None, 1)
    if len(fields) == 2:
        candidates.append(fields[1])
    for candidate in candidates:
        try:
            return asyncssh.import_public_key(candidate)
        except (asyncssh.KeyImportError, ValueError):
            continue
    raise SshTargetError("This is not a public key line; expected something like 'ssh-ed25519 AAAA…'.")


def fingerprint(line: str) -> str:
    """The SHA256:… fingerprint of a public key line, as `ssh-keygen -l` prints it."""
    return parse_host_key(line).get_fingerprint("sha256")


def _public_line(key: asyncssh.SSHKey) -> str:
    return key.export_public_key("openssh").decode().split("\n")[0].strip()


def scan_host_key(host: str, port: int = DEFAULT_PORT, *, timeout: float = CONNECT_TIMEOUT) -> str:
    """The host's public key line, for pinning when a target is first set up (trust on first use: show its
    fingerprint so an admin can compare it with the host's own)."""
    try:
        with _LoopThread(f"ssh scan {host}:{port}") as loop:
            line = loop.wait(_scan(host, port, timeout))
    except (OSError, asyncssh.Error) as exc:
        raise SshTargetError(f"Could not read the host key of {host}:{port}: {_reason(exc)}") from exc
    if line is None:
        raise SshTargetError(f"{host}:{port} completed the key exchange without a host key.")
    return line


async def _scan(host: str, port: int, timeout: float) -> str | None:
    key = await asyncio.wait_for(
        asyncssh.get_server_host_key(host, port, server_host_key_algs=list(SCAN_HOST_KEY_ALGORITHMS), config=None),
        timeout,
    )
    return None if key is None else _public_line(key)


class _LoopThread:
    """An event loop running in a thread of its own, for the blocking API.

    The caller's thread may already run an event loop of its own (Playwright's, an async view's), where a second
    one cannot run; so the connection lives in this thread and the caller waits for each operation. An operation
    interrupted in the caller (the job's own time limit, a signal, a failing callback) is cancelled in the loop,
    and waited for a moment, so that it can kill what it started before the connection closes."""

    def __init__(self, name: str):
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=name, daemon=True)

    def __enter__(self) -> "_LoopThread":
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def wait(self, coroutine, lines: "queue.SimpleQueue | None" = None, on_line: Callable[[str], None] | None = None):
        """Run coroutine in the loop and wait for its result, passing each string put in lines to on_line here."""
        started, finished = threading.Event(), threading.Event()

        async def guarded():
            started.set()
            try:
                return await coroutine
            finally:
                finished.set()
                if lines is not None:
                    lines.put(_END_OF_LINES)

        future = asyncio.run_coroutine_threadsafe(guarded(), self._loop)
        try:
            if lines is not None and on_line is not None:
                while (line := lines.get()) is not _END_OF_LINES:
                    on_line(line)
            return future.result()
        finally:
            if not finished.is_set():
                future.cancel()
                # A coroutine cancelled before it started has nothing to clean up, and never reports back.
                if started.is_set():
                    finished.wait(CONNECT_TIMEOUT)


_END_OF_LINES = object()


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__


def _remote_path(path: str) -> str:
    """An absolute, normalised remote path other than /: the only kind the operations accept, so that a slip
    such as an empty deployment id cannot turn `remove_tree` into a removal of the base or of the root."""
    if not path.startswith("/") or posixpath.normpath(path) != path or path in ("/", "//") or "\0" in path:
        raise SshTargetError(f"{path!r} is not an absolute, normalised path on the host.")
    return path


@dataclass(frozen=True)
class TargetLayout:
    """Where a target keeps its revisions and which one is live (see the module's docstring)."""

    base: str

    def __post_init__(self):
        _remote_path(self.base)

    @property
    def revisions(self) -> str:
        return f"{self.base}/revisions"

    @property
    def current(self) -> str:
        return f"{self.base}/current"

    def revision(self, deployment_id: int | str) -> str:
        name = str(deployment_id)
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
            raise SshTargetError(f"{name!r} cannot name a revision directory.")
        return f"{self.revisions}/{name}"

    def current_target(self, deployment_id: int | str) -> str:
        """What `current` points to for a revision: relative, so the base can be moved or mounted elsewhere."""
        return posixpath.relpath(self.revision(deployment_id), self.base)


@dataclass(frozen=True)
class HealthResult:
    healthy: bool
    detail: str


def _wrapped_command(command: str, env: Mapping[str, str], cwd: str | None) -> tuple[str, bytes]:
    """The command line for the login shell, and what to write on its standard input: report the process group,
    merge stderr into stdout (so the two keep their order), and read the variables from standard input, since a
    server's AcceptEnv rarely lets them through and a command line is readable by every user of the host.

    The login shell is the session leader, so its pid is the process group of everything the command starts; `exec`
    keeps that pid. The variables are exported assignments the shell sources from its standard input before it
    turns it to /dev/null, so no value (a secret's above all) is ever in the host's process list."""
    for name, value in env.items():
        if not ENV_NAME.match(name):
            raise SshTargetError(f"{name!r} is not a valid environment variable name.")
        if "\0" in value:
            raise SshTargetError(f"The value of {name} contains a NUL character.")
    steps = [f"echo {PGID_MARKER}$$ >&2", "exec 2>&1"]
    if env:
        steps.append("set -a && . /dev/stdin && set +a || exit 126")
    steps.append("exec </dev/null")
    if cwd is not None:
        steps.append(f"cd -- {shlex.quote(_remote_path(cwd))} || exit 126")
    steps.append(f"exec /bin/sh -c {shlex.quote(command)}")
    assignments = "".join(f"{name}={shlex.quote(value)}\n" for name, value in env.items())
    return "; ".join(steps), assignments.encode()


class LineSplitter:
    """Splits a byte stream into lines for a callback, keeping a partial line until its end arrives."""

    def __init__(self, on_line: Callable[[str], None]):
        self._on_line = on_line
        self._pending = b""

    def feed(self, data: bytes) -> None:
        self._pending += data
        while True:
            end = self._pending.find(b"\n")
            if end < 0:
                if len(self._pending) < MAX_LINE:
                    return
                end = MAX_LINE
                line, self._pending = self._pending[:end], self._pending[end:]
            else:
                line, self._pending = self._pending[:end], self._pending[end + 1 :]
            self._on_line(line.rstrip(b"\r").decode("utf-8", "replace"))

    def close(self) -> None:
        if self._pending:
            self._on_line(self._pending.decode("utf-8", "replace"))
            self._pending = b""


class SshTarget:
    """One open connection to a target host; open it with `SshTarget.connect(...)` as a context manager."""

    def __init__(self, loop: _LoopThread, connection: asyncssh.SSHClientConnection, where: str):
        self._loop = loop
        self._connection = connection
        self._sftp: asyncssh.SFTPClient | None = None
        self._where = where

    @classmethod
    @contextmanager
    def connect(
        cls,
        host: str,
        port: int,
        user: str,
        private_key: str,
        host_key: str,
        *,
        connect_timeout: float = CONNECT_TIMEOUT,
    ) -> Iterator["SshTarget"]:
        """Connect as user with the deploy key, only if the host holds the pinned host key."""
        with _LoopThread(f"ssh {user}@{host}:{port}") as loop:
            connection = loop.wait(_open_connection(host, port, user, private_key, host_key, connect_timeout))
            target = cls(loop, connection, f"{user}@{host}:{port}")
            try:
                yield target
            finally:
                loop.wait(_close(connection))

    def _call(self, coroutine, lines: "queue.SimpleQueue | None" = None, on_line: Callable[[str], None] | None = None):
        try:
            return self._loop.wait(coroutine, lines, on_line)
        except SshTargetError:
            raise
        except asyncssh.SFTPError as exc:
            raise SshTargetError(f"{self._where}: {exc.reason}") from exc
        except (OSError, asyncssh.Error) as exc:
            raise SshTargetError(f"Lost the connection to {self._where}: {_reason(exc)}") from exc

    async def _sftp_client(self) -> asyncssh.SFTPClient:
        if self._sftp is None:
            self._sftp = await self._connection.start_sftp_client()
        return self._sftp

    def upload_tree(self, local_dir: str | os.PathLike, remote_dir: str) -> None:
        """Copy a local directory to remote_dir over SFTP: files with their modes and times, symbolic links as links.

        remote_dir must not exist yet (its parents are created): an interrupted upload is removed with `remove_tree`
        before it is tried again, so no file of an earlier attempt can linger in a revision. Set-user-id and
        set-group-id bits are dropped: a bundle's files should not become programs running as the deploy user."""
        self._call(self._upload_tree(Path(local_dir), _remote_path(remote_dir)))

    async def _upload_tree(self, local_dir: Path, remote_dir: str) -> None:
        if not local_dir.is_dir():
            raise SshTargetError(f"{local_dir} is not a directory.")
        sftp = await self._sftp_client()
        if await sftp.exists(remote_dir) or await _is_link(sftp, remote_dir):
            raise SshTargetError(f"{remote_dir} already exists on {self._where}.")
        parent = posixpath.dirname(remote_dir)
        if parent != "/":
            await sftp.makedirs(parent, exist_ok=True)
        await self._upload_directory(sftp, local_dir, remote_dir, os.stat(local_dir))

    async def _upload_directory(self, sftp: asyncssh.SFTPClient, local: Path, remote: str, info: os.stat_result):
        await sftp.mkdir(remote)
        with os.scandir(local) as listing:
            entries = sorted(listing, key=lambda entry: entry.name)
        for entry in entries:
            entry_info = entry.stat(follow_symlinks=False)
            remote_path = f"{remote}/{entry.name}"
            if stat.S_ISLNK(entry_info.st_mode):
                await sftp.symlink(os.readlink(entry.path), remote_path)
            elif stat.S_ISDIR(entry_info.st_mode):
                await self._upload_directory(sftp, Path(entry.path), remote_path, entry_info)
            elif stat.S_ISREG(entry_info.st_mode):
                await self._upload_file(sftp, Path(entry.path), remote_path, entry_info)
            else:
                raise SshTargetError(f"{entry.path} is not a file, a directory or a symbolic link.")
        # The directory's own mode last: a read-only directory could not have received its files.
        await _set_mode_and_times(sftp, remote, info)

    async def _upload_file(
        self, sftp: asyncssh.SFTPClient, local: Path, remote: str, info: os.stat_result, *, exclusive: bool = False
    ):
        # An explicit loop rather than asyncssh's redirect(), which has been seen to cut large
        # transfers short; each write is awaited, so a slow host slows the reading down instead of filling memory.
        with local.open("rb") as source:
            async with sftp.open(remote, "xb" if exclusive else "wb") as destination:
                while chunk := source.read(COPY_CHUNK):
                    await destination.write(chunk)
        await _set_mode_and_times(sftp, remote, info)

    # Single files, for installing a revision's files at their destinations on the host. None follows a link at
    # the path itself.

    def mode(self, path: str) -> int | None:
        """The st_mode of what is at path (a link's own), or None when nothing is there."""
        return self._call(self._file_operation(path, self._mode))

    async def _mode(self, sftp: asyncssh.SFTPClient, path: str) -> int | None:
        try:
            attributes = await sftp.lstat(path)
        except asyncssh.SFTPNoSuchFile:
            return None
        return attributes.permissions

    def make_directory(self, path: str) -> bool:
        """Make a directory (mode 0755 less the server's umask); False when something is already there."""
        return self._call(self._file_operation(path, self._make_directory))

    async def _make_directory(self, sftp: asyncssh.SFTPClient, path: str) -> bool:
        try:
            await sftp.mkdir(path, asyncssh.SFTPAttrs(permissions=0o755))
        except asyncssh.SFTPError:
            # OpenSSH answers a plain failure for an existing path: look.
            if await self._mode(sftp, path) is not None:
                return False
            raise
        return True

    def remove_file(self, path: str) -> None:
        """Remove a file or a symbolic link."""
        self._call(self._file_operation(path, lambda sftp, path: sftp.remove(path)))

    def remove_directory(self, path: str) -> bool:
        """Remove an empty directory; False when it is not empty."""
        return self._call(self._file_operation(path, self._remove_directory))

    async def _remove_directory(self, sftp: asyncssh.SFTPClient, path: str) -> bool:
        try:
            await sftp.rmdir(path)
        except (asyncssh.SFTPNoSuchFile, asyncssh.SFTPPermissionDenied):
            raise
        except asyncssh.SFTPError:
            # OpenSSH answers a plain failure for a directory that is not empty.
            mode = await self._mode(sftp, path)
            if mode is not None and stat.S_ISDIR(mode):
                return False
            raise
        return True

    def make_link(self, target: str, path: str) -> None:
        """Make a symbolic link at path pointing to target."""
        if not target or "\0" in target:
            raise SshTargetError("A link needs a target.")
        self._call(self._file_operation(path, lambda sftp, path: sftp.symlink(target, path)))

    def upload_file(self, local: str | os.PathLike, remote: str) -> None:
        """Copy a local regular file to a new file at remote (never replacing one) with its mode, less set-user-id
        and set-group-id, and its times."""
        local = Path(local)

        async def upload(sftp: asyncssh.SFTPClient, path: str) -> None:
            await self._upload_file(sftp, local, path, os.stat(local), exclusive=True)

        self._call(self._file_operation(remote, upload))

    def set_mode(self, path: str, mode: int) -> None:
        self._call(self._file_operation(path, lambda sftp, path: sftp.chmod(path, mode)))

    def set_owner(self, path: str, uid: int | None, gid: int | None) -> None:
        """Change the owner and group by number (None keeps one as it is): only root may give a file away."""

        async def change(sftp: asyncssh.SFTPClient, path: str) -> None:
            current = await sftp.lstat(path)
            await sftp.chown(path, uid if uid is not None else current.uid, gid if gid is not None else current.gid)

        self._call(self._file_operation(path, change))

    def read_file(self, path: str, limit: int) -> bytes | None:
        """Up to limit bytes of the regular file at path; None when there is nothing there."""

        async def read(sftp: asyncssh.SFTPClient, path: str) -> bytes | None:
            mode = await self._mode(sftp, path)
            if mode is None:
                return None
            if not stat.S_ISREG(mode):
                raise RemoteFileError(path, "not a regular file", self._where)
            async with sftp.open(path, "rb") as file:
                return await file.read(limit)

        return self._call(self._file_operation(path, read))

    def write_file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        """Write data to a new file at path (never replacing one)."""

        async def write(sftp: asyncssh.SFTPClient, path: str) -> None:
            async with sftp.open(path, "xb", asyncssh.SFTPAttrs(permissions=mode)) as file:
                await file.write(data)

        self._call(self._file_operation(path, write))

    async def _file_operation(self, path: str, operation):
        path = _remote_path(path)
        sftp = await self._sftp_client()
        try:
            return await operation(sftp, path)
        except asyncssh.SFTPError as exc:
            raise RemoteFileError(path, exc.reason, self._where) from exc

    def run(
        self,
        command: str,
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        timeout: float,
        on_line: Callable[[str], None] | None = None,
    ) -> int:
        """Run a shell command on the host; return its exit status (128 + n when signal n ended it).

        Its output, stdout and stderr merged, goes to on_line a line at a time as it comes. The variables in env
        are given to the command only. After timeout seconds the command's whole process group is killed and
        `CommandTimedOut` raised; a process the command started in a group of its own (setsid, a service manager)
        keeps running, as a started service should. A background process that keeps the output open holds the
        command open until then, as it does under CodeDeploy's agent: hooks redirect a daemon's output."""
        lines: queue.SimpleQueue = queue.SimpleQueue()
        return self._call(self._run(command, env or {}, cwd, timeout, lines.put), lines, on_line or (lambda line: None))

    async def _run(
        self, command: str, env: Mapping[str, str], cwd: str | None, timeout: float, on_line: Callable[[str], None]
    ) -> int:
        line, assignments = _wrapped_command(command, env, cwd)
        process = await self._connection.create_process(line, encoding=None)
        if assignments:
            process.stdin.write(assignments)
        process.stdin.write_eof()
        process_group: list[int] = []

        def on_stderr_line(line: str) -> None:
            if not process_group and line.startswith(PGID_MARKER) and line[len(PGID_MARKER) :].isdigit():
                process_group.append(int(line[len(PGID_MARKER) :]))
            else:
                # Whatever the login shell's startup files say before the command starts.
                on_line(line)

        async def pump(stream: asyncssh.SSHReader, lines: LineSplitter) -> None:
            while data := await stream.read(COPY_CHUNK):
                lines.feed(data)
            lines.close()

        async def finish() -> None:
            await asyncio.gather(
                pump(process.stdout, LineSplitter(on_line)), pump(process.stderr, LineSplitter(on_stderr_line))
            )
            await process.wait_closed()

        try:
            await asyncio.wait_for(finish(), timeout)
        except TimeoutError:
            await self._kill(process_group)
            raise CommandTimedOut(timeout) from None
        except BaseException:
            # The caller gave up (on_line failed, the job was interrupted) or the connection failed: the command
            # must not go on without anyone reading its output.
            await self._kill(process_group)
            raise
        finally:
            process.close()
        if process.exit_status is not None and process.exit_status >= 0:
            return process.exit_status
        if process.exit_signal:
            name = process.exit_signal[0]
            number = getattr(signal, f"SIG{name}", None)
            return 128 + int(number) if number is not None else 255
        raise SshTargetError(f"The command on {self._where} ended without an exit status: the connection was lost.")

    async def _kill(self, process_group: list[int]) -> None:
        # The SSH protocol's own signal request is refused by OpenSSH for some sessions (root's, among others),
        # so the group is killed from a second session; the channel is closed afterwards all the same.
        if not process_group:
            return
        try:
            await asyncio.wait_for(
                self._connection.run(f"kill -s KILL -- -{process_group[0]}", check=False), CONNECT_TIMEOUT
            )
        except (TimeoutError, OSError, asyncssh.Error):
            pass

    def _check(self, command: str, what: str) -> None:
        output: list[str] = []
        status = self.run(command, timeout=CONNECT_TIMEOUT, on_line=output.append)
        if status != 0:
            detail = "\n".join(output[-10:]) or f"exit status {status}"
            raise SshTargetError(f"Could not {what} on {self._where}: {detail}")

    def switch(self, link: str, target: str) -> None:
        """Point the symbolic link at target atomically: a new link beside it, renamed over it with `mv -T`."""
        link = _remote_path(link)
        if not target or "\0" in target:
            raise SshTargetError("A link needs a target.")
        temporary = f"{link}.new-{uuid.uuid4().hex[:12]}"
        quoted_link, quoted_temporary = shlex.quote(link), shlex.quote(temporary)
        self._check(
            f"ln -s -- {shlex.quote(target)} {quoted_temporary} && mv -T -- {quoted_temporary} {quoted_link}"
            f" || {{ status=$?; rm -f -- {quoted_temporary}; exit $status; }}",
            f"point {link} at {target}",
        )

    def read_link(self, link: str) -> str | None:
        """What the symbolic link points to, or None when there is no link there."""
        return self._call(self._read_link(_remote_path(link)))

    async def _read_link(self, link: str) -> str | None:
        sftp = await self._sftp_client()
        if not await _is_link(sftp, link):
            return None
        return await sftp.readlink(link)

    def remove_tree(self, path: str) -> None:
        """Remove a directory and everything in it (a symbolic link is removed, not followed); nothing there is fine."""
        self._check(f"rm -rf -- {shlex.quote(_remote_path(path))}", f"remove {path}")

    def health(self, check: str, *, timeout: float = 30) -> HealthResult:
        """Run a health check on the host: a shell command (healthy when it exits 0), or an http(s) URL fetched on
        the host itself, so `http://localhost:…` means the target's service and the portal never opens a URL a
        repository admin typed."""
        if check.startswith(("http://", "https://")):
            url, seconds = shlex.quote(check), max(1, int(timeout) - 1)
            command = (
                f"if command -v curl >/dev/null; then curl -fsS -o /dev/null --max-time {seconds} -- {url}; "
                f"elif command -v wget >/dev/null; then wget -q -O /dev/null -T {seconds} -- {url}; "
                "else echo 'neither curl nor wget is installed on the host'; exit 127; fi"
            )
        else:
            command = check
        output: list[str] = []
        try:
            status = self.run(command, timeout=timeout, on_line=output.append)
        except CommandTimedOut as exc:
            return HealthResult(healthy=False, detail=str(exc))
        detail = "\n".join(output[-10:])[-2000:]
        if status != 0:
            return HealthResult(healthy=False, detail=detail or f"exit status {status}")
        return HealthResult(healthy=True, detail=detail)


async def _close(connection: asyncssh.SSHClientConnection) -> None:
    connection.close()
    await connection.wait_closed()


async def _is_link(sftp: asyncssh.SFTPClient, path: str) -> bool:
    try:
        attributes = await sftp.lstat(path)
    except asyncssh.SFTPNoSuchFile:
        return False
    return attributes.permissions is not None and stat.S_ISLNK(attributes.permissions)


async def _set_mode_and_times(sftp: asyncssh.SFTPClient, remote: str, info: os.stat_result) -> None:
    mode = stat.S_IMODE(info.st_mode) & ~(stat.S_ISUID | stat.S_ISGID)
    await sftp.setstat(remote, asyncssh.SFTPAttrs(permissions=mode, atime=int(info.st_atime), mtime=int(info.st_mtime)))


async def _open_connection(
    host: str, port: int, user: str, private_key: str, host_key: str, connect_timeout: float
) -> asyncssh.SSHClientConnection:
    pinned = parse_host_key(host_key)
    try:
        client_key = asyncssh.import_private_key(private_key)
    except (asyncssh.KeyImportError, ValueError) as exc:
        raise SshTargetError(f"The deploy key cannot be read: {exc}") from exc
    offered: list[asyncssh.SSHKey] = []

    class Client(asyncssh.SSHClient):
        # Called only for a host key that is not the pinned one: remember it, for the message, and refuse it.
        def validate_host_public_key(self, host, addr, port, key) -> bool:
            offered.append(key)
            return False

    try:
        connection, _ = await asyncssh.create_connection(
            Client,
            host,
            port,
            username=user,
            client_keys=[client_key],
            # The pinned key is the only one trusted, and only its type is asked for, so that a host holding
            # several keys cannot answer with another type and look like a changed key.
            known_hosts=([pinned], [], []),
            server_host_key_algs=[algorithm.decode() for algorithm in pinned.sig_algorithms],
            # Nothing from the portal user's own ~/.ssh (config, known_hosts, keys) or an ssh-agent takes part.
            config=None,
            agent_path=None,
            preferred_auth="publickey",
            connect_timeout=connect_timeout,
            login_timeout=connect_timeout,
            keepalive_interval=KEEPALIVE_INTERVAL,
            keepalive_count_max=KEEPALIVE_COUNT_MAX,
        )
    except asyncssh.HostKeyNotVerifiable as exc:
        if offered:
            raise HostKeyMismatch(
                host, port, pinned.get_fingerprint("sha256"), offered[-1].get_fingerprint("sha256")
            ) from exc
        raise SshTargetError(f"The host key of {host}:{port} could not be verified: {exc}") from exc
    except (asyncssh.KeyExchangeFailed, asyncssh.ConnectionLost, ConnectionResetError, BrokenPipeError) as exc:
        # OpenSSH hangs up (a lost or reset connection, by timing) on a client that asks only for key types it does
        # not hold, which is what a host whose pinned key was replaced by one of another type looks like: ask for
        # any key, to name the one it offers.
        try:
            offered_line = await _scan(host, port, connect_timeout)
        except (OSError, asyncssh.Error):
            offered_line = None
        # The same key offered to a plain scan means the hang-up had another cause.
        if offered_line is not None and parse_host_key(offered_line) != pinned:
            raise HostKeyMismatch(host, port, pinned.get_fingerprint("sha256"), fingerprint(offered_line)) from exc
        raise SshTargetError(f"Could not connect to {host}:{port}: {_reason(exc)}") from exc
    except asyncssh.PermissionDenied as exc:
        raise SshTargetError(
            f"{user}@{host}:{port} refused the deploy key ({client_key.get_fingerprint('sha256')}): "
            f"add its public half to {user}'s authorized_keys on the host."
        ) from exc
    except (TimeoutError, OSError, asyncssh.Error) as exc:
        raise SshTargetError(f"Could not connect to {host}:{port}: {_reason(exc)}") from exc
    return connection
