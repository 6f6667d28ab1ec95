"""git's own commands, streamed: the wire-protocol services (upload-pack, receive-pack), archives and checkouts."""

import logging
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from django.conf import settings

from ._base import STREAM_CHUNK, GitError, is_sha, repo_env

SERVICES = ("git-upload-pack", "git-receive-pack", "git-upload-archive")
HOOKS_DIR = Path(__file__).resolve().parent.parent / "hooks"
logger = logging.getLogger(__name__)


class ServiceFailed(Exception):
    """A wire-protocol service refused its request before answering anything; the message is git's."""


def service_command(service: str, path: Path, *, stateless: bool = False, advertise: bool = False) -> list[str]:
    """The argv for a wire-protocol service on a repository path that the caller already resolved."""
    if service not in SERVICES:
        raise GitError(f"unknown service {service}")
    argv = [settings.GIT_BIN, "-c", f"core.hooksPath={HOOKS_DIR}", service.removeprefix("git-")]
    if stateless:
        argv.append("--stateless-rpc")
    if advertise:
        argv.append("--advertise-refs")
    argv += ["--end-of-options", str(path)] if service != "git-upload-archive" else [str(path)]
    return argv


def _feed(source: BinaryIO, sink: BinaryIO) -> None:
    """Copy a request body into a process's stdin, then close it so the process sees the end."""
    try:
        while chunk := source.read(STREAM_CHUNK):
            sink.write(chunk)
    except (BrokenPipeError, ValueError):
        # The process exited early (it refused the request); what it printed is the answer.
        pass
    except Exception:
        logger.exception("reading the request body for git failed")
    finally:
        try:
            sink.close()
        except OSError:
            pass


def _drain(source: BinaryIO, tail: list[bytes]) -> None:
    """Read a process's stderr to the end, keeping its last lines for the log."""
    for line in source:
        tail.append(line)
        del tail[:-20]


def stream_service(
    service: str, path: Path, *, env: dict[str, str], body: BinaryIO | None = None, advertise: bool = False
) -> Iterator[bytes]:
    """Run a wire-protocol service in stateless-RPC mode and yield its output in chunks.

    The request body is copied into git from a thread while the output is read here, so neither
    side ever holds a whole pack in memory and a large push cannot deadlock on full pipes."""
    argv = service_command(service, path, stateless=True, advertise=advertise)
    proc = subprocess.Popen(
        argv,
        cwd=path,
        env=env,
        stdin=subprocess.PIPE if body is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    threads = []
    stderr_tail: list[bytes] = []
    if body is not None:
        threads.append(threading.Thread(target=_feed, args=(body, proc.stdin), daemon=True))
    threads.append(threading.Thread(target=_drain, args=(proc.stderr, stderr_tail), daemon=True))
    for thread in threads:
        thread.start()
    finished = produced = False
    try:
        while chunk := proc.stdout.read1(STREAM_CHUNK):
            produced = True
            yield chunk
        finished = True
    finally:
        # The client went away mid-stream: never leave git running on its own.
        if not finished and proc.poll() is None:
            proc.kill()
        returncode = proc.wait()
        for thread in threads:
            thread.join(timeout=5)
        proc.stdout.close()
        if returncode != 0:
            logger.warning(
                "%s on %s exited with %s: %s",
                service,
                path,
                returncode,
                b"".join(stderr_tail).decode(errors="replace").strip(),
            )
    if returncode != 0 and not produced:
        raise ServiceFailed(b"".join(stderr_tail).decode(errors="replace").strip() or f"{service} failed")


ARCHIVE_FORMATS = ("tar.gz", "zip")


def archive(path: Path, sha: str, fmt: str, prefix: str) -> Iterator[bytes]:
    """`git archive` of a commit, yielded in chunks as git writes it."""
    if fmt not in ARCHIVE_FORMATS or not is_sha(sha):
        raise GitError(f"cannot archive {sha!r} as {fmt!r}")
    argv = [settings.GIT_BIN, "archive", f"--format={fmt}", f"--prefix={prefix}", "--end-of-options", sha]
    proc = subprocess.Popen(argv, cwd=path, env=repo_env(path), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        while chunk := proc.stdout.read1(STREAM_CHUNK):
            yield chunk
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stdout.close()


def export_tree(path: Path, sha: str, dest: Path) -> None:
    """Write the files of a commit into the directory dest, as a checkout of it would (no .git inside).

    A throwaway index outside the repository takes the commit's tree and checks it out into dest: unlike `git
    archive`, no export-ignore or export-subst attribute changes what the files hold."""
    if not is_sha(sha):
        raise GitError(f"cannot export {sha!r}")
    with tempfile.TemporaryDirectory(prefix="portal-export-") as scratch:
        env = repo_env(path) | {"GIT_INDEX_FILE": str(Path(scratch) / "index")}
        argv = [settings.GIT_BIN, f"--work-tree={dest}", "read-tree", "--reset", "-u", "--end-of-options", sha]
        result = subprocess.run(argv, cwd=path, env=env, capture_output=True)
    if result.returncode != 0:
        raise GitError(f"git read-tree failed: {result.stderr.decode(errors='replace').strip()}")


# A fetch that moves fewer than this many bytes a second for this many seconds is given up (a stalled portal).
FETCH_LOW_SPEED_BYTES = 1000
FETCH_LOW_SPEED_SECONDS = 60


def fetch_commit(url: str, sha: str, dest: Path, *, username: str, password: str) -> None:
    """Fetch one commit with its tree (not its history) over smart HTTP into a new bare repository at dest.

    The credentials reach git through a credential helper that reads the password from git's environment, never
    through its argv or the URL, so other users of the machine do not see them in the process list and git never
    prints them. No other helper, prompt or configuration of this machine's user takes part: a refusal fails at
    once with git's message and the server's. Protocol v2 lets the portal hand out a commit that no ref points at
    any more (a force-pushed pull request's head), which v0 refuses."""
    if not is_sha(sha):
        raise GitError(f"cannot fetch {sha!r}")
    config = [
        # The empty value drops any helper configured before; the next one answers every request with these.
        ("credential.helper", ""),
        (
            "credential.helper",
            '!f() { echo "username=$PORTAL_FETCH_USERNAME"; echo "password=$PORTAL_FETCH_PASSWORD"; }; f',
        ),
        ("protocol.version", "2"),
        ("http.lowSpeedLimit", str(FETCH_LOW_SPEED_BYTES)),
        ("http.lowSpeedTime", str(FETCH_LOW_SPEED_SECONDS)),
    ]
    env = {k: v for k, v in repo_env(dest).items() if k != "SSH_ASKPASS"} | {
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_CONFIG_COUNT": str(len(config)),
        "PORTAL_FETCH_USERNAME": username,
        "PORTAL_FETCH_PASSWORD": password,
    }
    for index, (key, value) in enumerate(config):
        env[f"GIT_CONFIG_KEY_{index}"] = key
        env[f"GIT_CONFIG_VALUE_{index}"] = value
    dest.mkdir(parents=True, exist_ok=True)
    steps = (
        ["init", "--quiet", "--bare"],
        ["fetch", "--quiet", "--depth=1", "--no-tags", "--no-write-fetch-head", "--end-of-options", url, sha],
        ["cat-file", "-e", f"{sha}^{{commit}}"],
    )
    for step in steps:
        result = subprocess.run([settings.GIT_BIN, *step], cwd=dest, env=env, capture_output=True)
        if result.returncode != 0:
            message = result.stderr.decode(errors="replace").strip() or f"exit status {result.returncode}"
            raise GitError(f"git {step[0]} from {url} failed: {message}")
