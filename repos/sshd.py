"""The embedded SSH server: public-key auth as `git`, then one git service per session, nothing else."""

import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import asyncssh
from django.conf import settings
from django.db import close_old_connections

from portal import services as accounts
from repos.access import Principal
from repos.transport import CommandRefused, GitInvocation, end_push, prepare_git_command, ssh_key_principal

logger = logging.getLogger(__name__)

SSH_USERNAME = "git"
CHUNK_SIZE = 64 * 1024
# How much git output may wait in the channel's buffer before we stop reading from git.
CHANNEL_HIGH_WATER = 1024 * 1024

T = TypeVar("T")


def load_host_key(path: Path) -> asyncssh.SSHKey:
    """Read the server's ed25519 host key, creating it (mode 0600) on first start."""
    path = Path(path)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        key = asyncssh.generate_private_key("ssh-ed25519", comment="portal host key")
        # O_EXCL with the mode given at creation: the private key is never readable by others,
        # not even for a moment, and two servers starting at once cannot both write it.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return asyncssh.read_private_key(path)
        with os.fdopen(fd, "wb") as handle:
            handle.write(key.export_private_key())
        path.with_name(path.name + ".pub").write_bytes(key.export_public_key())
        logger.info("generated SSH host key %s (%s)", path, key.get_fingerprint("sha256"))
        return key
    return asyncssh.read_private_key(path)


def _in_thread(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a database call with fresh connections, as Django expects outside a request."""
    close_old_connections()
    try:
        return fn(*args, **kwargs)
    finally:
        close_old_connections()


def _authenticate(fingerprint: str) -> Principal | None:
    """The principal for an offered key, recording its use; None refuses the key."""
    found = ssh_key_principal(fingerprint=fingerprint)
    if found is None:
        return None
    key, principal = found
    accounts.touch_ssh_key(key)
    return principal


REVOKED_MESSAGE = "This key is no longer registered with portal (it was revoked, or its account deactivated)."


def greeting(principal: Principal) -> str:
    """The line shown to someone who asks for a shell."""
    return f"Hi {principal.name}! You've authenticated, but portal does not provide shell access."


class SignInFailures:
    """Failed sign-ins per client address, to slow down whoever keeps trying keys.

    The first FREE failures cost nothing; after them every key offered from that address waits 1, 2, 4... seconds,
    at most MAX_DELAY, until FORGET_AFTER seconds pass without a failure. Kept in memory: a restart forgets."""

    FREE = 3
    MAX_DELAY = 30.0
    FORGET_AFTER = 15 * 60
    # At most this many addresses are remembered; the oldest failures are forgotten first.
    LIMIT = 10_000

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._failures: dict[str, tuple[int, float]] = {}

    def _count(self, address: str) -> int:
        count, last = self._failures.get(address, (0, 0.0))
        if count and self._clock() - last > self.FORGET_AFTER:
            del self._failures[address]
            return 0
        return count

    def delay(self, address: str) -> float:
        """Seconds to wait before checking a key offered from this address."""
        excess = self._count(address) - self.FREE
        return 0.0 if excess < 0 else min(2.0**excess, self.MAX_DELAY)

    def failed(self, address: str) -> None:
        count = self._count(address) + 1
        self._failures.pop(address, None)
        self._failures[address] = (count, self._clock())
        while len(self._failures) > self.LIMIT:
            del self._failures[next(iter(self._failures))]

    def succeeded(self, address: str) -> None:
        self._failures.pop(address, None)


class _Connection(asyncssh.SSHServer):
    """One client connection: only public keys, only the `git` user, looked up afresh every time."""

    def __init__(self, server: "GitSSHServer"):
        self._server = server
        self._conn: asyncssh.SSHServerConnection | None = None
        self._address = "?"
        # The user name the client asked to sign in as, once it did; and whether it got in.
        self._username: str | None = None
        self._authenticated = False

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn
        self._server.connections.add(conn)
        peer = conn.get_extra_info("peername")
        self._address = str(peer[0]) if peer else "?"

    def connection_lost(self, exc: Exception | None) -> None:
        if self._conn is not None:
            self._server.connections.discard(self._conn)
        if self._username is not None and not self._authenticated:
            self._server.sign_in_failures.failed(self._address)
            logger.warning("failed SSH sign-in from %s as %r", self._address, self._username[:64])

    def begin_auth(self, username: str) -> bool:
        self._username = username
        # True means authentication is required; returning False would let anyone in.
        return True

    def auth_completed(self) -> None:
        self._authenticated = True
        self._server.sign_in_failures.succeeded(self._address)

    def public_key_auth_supported(self) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return False

    def kbdint_auth_supported(self) -> bool:
        return False

    async def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        delay = self._server.sign_in_failures.delay(self._address)
        if delay:
            await asyncio.sleep(delay)
        if username != SSH_USERNAME:
            return False
        fingerprint = key.get_fingerprint("sha256")
        principal = await self._server.run_db(_authenticate, fingerprint)
        if principal is None:
            return False
        # asyncssh checks the signature right after this returns, and a later offer overwrites this,
        # so when authentication succeeds the principal is the one whose key signed.
        assert self._conn is not None
        self._conn.set_extra_info(principal=principal, key_fingerprint=fingerprint)
        return True


class GitSSHServer:
    """The SSH server; start() on a running event loop, stop() to close it and its connections."""

    def __init__(self, host: str, port: int, host_key_path: Path):
        self.host = host
        self.port = port
        self.host_key_path = Path(host_key_path)
        self.connections: set[asyncssh.SSHServerConnection] = set()
        self._acceptor: asyncssh.SSHAcceptor | None = None
        self._executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="sshd-db")
        self._sessions: set[asyncio.Task] = set()
        self.sign_in_failures = SignInFailures()

    async def run_db(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a synchronous ORM call in a worker thread, never on the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, partial(_in_thread, fn, *args, **kwargs))

    async def start(self) -> int:
        """Listen, and return the port (useful when asked for port 0)."""
        host_key = load_host_key(self.host_key_path)
        self._acceptor = await asyncssh.create_server(
            partial(_Connection, self),
            self.host,
            self.port,
            server_host_keys=[host_key],
            process_factory=self._track,
            encoding=None,
            line_editor=False,
            agent_forwarding=False,
            x11_forwarding=False,
            allow_scp=False,
            login_timeout=60,
            keepalive_interval=30,
        )
        self.port = self._acceptor.get_port()
        logger.info("SSH server listening on %s:%s", self.host, self.port)
        return self.port

    async def stop(self) -> None:
        """Stop listening, close every connection and wait for running git processes to end."""
        if self._acceptor is not None:
            self._acceptor.close()
            await self._acceptor.wait_closed()
            self._acceptor = None
        for conn in list(self.connections):
            conn.close()
        if self._sessions:
            await asyncio.wait(list(self._sessions), timeout=10)
        self._executor.shutdown(wait=True)

    def _track(self, process: asyncssh.SSHServerProcess) -> None:
        task = asyncio.ensure_future(self._session(process))
        self._sessions.add(task)
        task.add_done_callback(self._sessions.discard)

    async def _session(self, process: asyncssh.SSHServerProcess) -> None:
        try:
            status = await self._serve(process)
        except Exception:
            logger.exception("SSH session failed")
            status = 1
            try:
                _write_line(process, "Internal error; the administrators can find it in the server log.")
            except (OSError, asyncssh.Error):
                pass
        try:
            await _flush(process)
            process.exit(status)
        except (OSError, asyncssh.Error):
            # The client closed the channel first; there is no one left to tell.
            pass

    async def _serve(self, process: asyncssh.SSHServerProcess) -> int:
        # One connection can carry many sessions (OpenSSH's ControlMaster keeps one open for hours), so
        # the key and its user are looked up again for each: a revocation or deactivation applies at once.
        found = await self.run_db(ssh_key_principal, fingerprint=process.get_extra_info("key_fingerprint"))
        if found is None:
            _write_line(process, REVOKED_MESSAGE)
            return 1
        _, principal = found
        if process.subsystem is not None:
            _write_line(process, "Subsystems are not available; use git over SSH.")
            return 1
        if process.command is None:
            # A shell request (with or without a pty): say who the key belongs to, as git hosts do.
            newline = "\r\n" if process.get_terminal_type() else "\n"
            process.stdout.write((greeting(principal) + newline).encode())
            return 1
        try:
            invocation = await self.run_db(
                prepare_git_command,
                principal,
                process.command,
                protocol="ssh",
                git_protocol=process.env.get("GIT_PROTOCOL"),
            )
        except CommandRefused as exc:
            _write_line(process, str(exc))
            return 1
        try:
            return await run_git(process, invocation)
        finally:
            # Accepted, refused or abandoned, the push is over once git has exited: its secret must not outlive it.
            await self.run_db(end_push, invocation.env)


def _write_line(process: asyncssh.SSHServerProcess, message: str) -> None:
    """One line on the client's stderr, which git shows as `remote:`-less output before its own error."""
    process.stderr.write((message.replace("\n", " ") + "\n").encode())


async def _flush(process: asyncssh.SSHServerProcess) -> None:
    """Wait until every byte written to the channel has been sent, before the exit status goes out."""
    # With both marks at zero the channel counts as paused while anything is buffered, so drain
    # returns only once the buffer is empty.
    process.channel.set_write_buffer_limits(high=0, low=0)
    await process.stdout.drain()


def hold_window_for_queued_data(channel: asyncssh.SSHServerChannel) -> None:
    """Re-open the client's send window only for data git has taken, not for data still queued.

    asyncssh (2.24) refills the window to its full size whenever it hands one packet to a paused
    stream, even while many more wait in the channel's queue. When git reads slower than the client
    sends, each refill lets in another window's worth, and a 100 MB push piled up about 60 MB in
    memory. Counting the queued bytes as still outstanding keeps everything a client can make us
    hold to one window (plus the stream's own buffer of the same size)."""
    deliver = getattr(channel, "_deliver_data", None)
    if deliver is None or not hasattr(channel, "_recv_buf") or not hasattr(channel, "_recv_window"):
        logger.warning("asyncssh internals changed: receive flow control is left to asyncssh")
        return

    def deliver_counting_queue(data: bytes, datatype: Any) -> None:
        queued = sum(len(chunk) for chunk, _ in channel._recv_buf)
        channel._recv_window += queued
        try:
            deliver(data, datatype)
        finally:
            channel._recv_window -= queued

    channel._deliver_data = deliver_counting_queue


async def run_git(process: asyncssh.SSHServerProcess, invocation: GitInvocation) -> int:
    """Run git with explicit copy loops between the channel and the process; return git's status."""
    proc = await asyncio.create_subprocess_exec(
        *invocation.argv,
        env=invocation.env,
        cwd=str(invocation.repository.path),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        limit=CHUNK_SIZE,
    )
    process.channel.set_write_buffer_limits(high=CHANNEL_HIGH_WATER)
    hold_window_for_queued_data(process.channel)

    loop = asyncio.get_running_loop()
    last_data = [loop.time()]

    async def client_to_git() -> None:
        assert proc.stdin is not None
        try:
            while True:
                data = await process.stdin.read(CHUNK_SIZE)
                if not data:
                    break
                last_data[0] = loop.time()
                proc.stdin.write(data)
                # Waits while git is not reading, so a slow git never makes us buffer the whole pack;
                # meanwhile the SSH window closes and the client waits too.
                await proc.stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            # git stopped reading (it finished or failed); its status says which.
            pass
        except (OSError, asyncssh.Error):
            # The client went away mid-stream: closing git's stdin makes it abort the half-received pack.
            pass
        finally:
            proc.stdin.close()

    async def git_to_client(source: asyncio.StreamReader, sink: asyncssh.SSHWriter) -> None:
        while True:
            data = await source.read(CHUNK_SIZE)
            if not data:
                return
            last_data[0] = loop.time()
            sink.write(data)
            # Waits while the client is slower than git, so memory stays bounded by the high-water mark.
            await sink.drain()

    async def idle() -> None:
        """Returns once no data went either way for PORTAL_SSH_IDLE_TIMEOUT seconds."""
        timeout = settings.PORTAL_SSH_IDLE_TIMEOUT
        while (left := last_data[0] + timeout - loop.time()) > 0:
            await asyncio.sleep(left)

    feeder = asyncio.ensure_future(client_to_git())
    assert proc.stdout is not None and proc.stderr is not None
    output = asyncio.gather(git_to_client(proc.stdout, process.stdout), git_to_client(proc.stderr, process.stderr))
    watchdog = asyncio.ensure_future(idle())
    try:
        await asyncio.wait([output, watchdog], return_when=asyncio.FIRST_COMPLETED)
        if watchdog.done():
            # A session that sends nothing must not hold a git process (and a push's locks) forever.
            logger.info(
                "closing an SSH %s session of %s idle for %s seconds",
                invocation.service,
                invocation.repository.full_name,
                settings.PORTAL_SSH_IDLE_TIMEOUT,
            )
            _write_line(process, f"Closed after {settings.PORTAL_SSH_IDLE_TIMEOUT} seconds without data.")
            return await _stop_git(proc, output, feeder)
        await output
    except (OSError, asyncssh.Error) as exc:
        # The client is gone: nobody will read git's output, so stop git instead of blocking on it.
        logger.info("SSH client went away during %s: %s", invocation.service, exc)
        return await _stop_git(proc, output, feeder)
    finally:
        watchdog.cancel()
    status = await proc.wait()
    # git is done; whatever the client still sends (nothing, normally) has no reader.
    if not feeder.done():
        feeder.cancel()
    try:
        await feeder
    except asyncio.CancelledError:
        pass
    return status


async def _stop_git(proc: asyncio.subprocess.Process, *tasks: asyncio.Future) -> int:
    """Kill git, wait for it, and stop copying to and from it; the session's status is 255."""
    if proc.returncode is None:
        proc.kill()
    await proc.wait()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return 255


class BackgroundServer:
    """The SSH server on its own event loop in a daemon thread (for `serve` and for tests)."""

    def __init__(self, host: str, port: int, host_key_path: Path | None = None):
        self.server = GitSSHServer(host, port, host_key_path or settings.PORTAL_SSH_HOST_KEY)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="sshd", daemon=True)
        self._started = threading.Event()
        self._error: BaseException | None = None

    @property
    def host(self) -> str:
        return self.server.host

    @property
    def port(self) -> int:
        return self.server.port

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self.server.start())
        except BaseException as exc:
            self._error = exc
            self._started.set()
            return
        self._started.set()
        self.loop.run_forever()
        self.loop.close()

    def start(self) -> "BackgroundServer":
        self._thread.start()
        self._started.wait(timeout=30)
        if self._error is not None:
            raise self._error
        return self

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=30)


async def serve_forever(
    host: str, port: int, host_key_path: Path, stop: asyncio.Event, ready: Callable[[int], None] | None = None
) -> None:
    """Run the server until stop is set; ready(port) is called once it accepts connections."""
    server = GitSSHServer(host, port, host_key_path)
    bound = await server.start()
    if ready is not None:
        ready(bound)
    try:
        await stop.wait()
    finally:
        await server.stop()
