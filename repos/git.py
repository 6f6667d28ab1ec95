"""The only module that touches git: pygit2 for reads and writes, the git CLI for the wire protocol.

Everything returned is a plain frozen dataclass, never a pygit2 object.
"""

import logging
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

import pygit2
from django.conf import settings

ZERO_SHA = "0" * 40
HOOKS_DIR = Path(__file__).resolve().parent / "hooks"
_SHA_RE = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
SERVICES = ("git-upload-pack", "git-receive-pack", "git-upload-archive")


class GitError(Exception):
    pass


class RefNotFound(GitError):
    pass


class MergeConflict(GitError):
    pass


@dataclass(frozen=True)
class Signature:
    name: str
    email: str
    when: datetime


@dataclass(frozen=True)
class Commit:
    sha: str
    message: str
    author: Signature
    committer: Signature
    parents: tuple[str, ...]

    @property
    def summary(self) -> str:
        return self.message.split("\n", 1)[0]


@dataclass(frozen=True)
class Branch:
    name: str
    sha: str


def _signature(sig: "pygit2.Signature") -> Signature:
    return Signature(name=sig.name, email=sig.email, when=datetime.fromtimestamp(sig.time, tz=UTC))


def _commit(obj: "pygit2.Commit") -> Commit:
    return Commit(
        sha=str(obj.id),
        message=obj.message,
        author=_signature(obj.author),
        committer=_signature(obj.committer),
        parents=tuple(str(p) for p in obj.parent_ids),
    )


def _open(path: Path) -> pygit2.Repository:
    try:
        return pygit2.Repository(str(path))
    except pygit2.GitError as exc:
        raise GitError(f"cannot open repository: {exc}") from exc


def init_bare(path: Path, *, default_branch: str = "main") -> None:
    """Create a bare repository with the portal's defaults."""
    path.parent.mkdir(parents=True, exist_ok=True)
    repo = pygit2.init_repository(str(path), bare=True, initial_head=default_branch)
    config = repo.config
    config["receive.fsckObjects"] = True
    config["receive.advertisePushOptions"] = True
    config["uploadpack.allowFilter"] = True
    config["uploadpack.allowAnySHA1InWant"] = False
    config["core.logAllRefUpdates"] = True
    config["gc.auto"] = 0


def delete(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def commit_files(path: Path, branch: str, files: dict[str, bytes], message: str, *, name: str, email: str) -> str:
    """Commit files on top of branch (creating it when absent) and return the new commit's sha."""
    repo = _open(path)
    ref_name = f"refs/heads/{branch}"
    parent = repo.references.get(ref_name)
    parents = [parent.target] if parent is not None else []
    builder = repo.TreeBuilder(repo[parents[0]].tree) if parents else repo.TreeBuilder()
    for file_name, content in files.items():
        if "/" in file_name:
            raise GitError("commit_files only writes top-level files")
        builder.insert(file_name, repo.create_blob(content), pygit2.enums.FileMode.BLOB)
    sig = pygit2.Signature(name, email)
    oid = repo.create_commit(None, sig, sig, message, builder.write(), parents)
    update_ref(path, ref_name, str(oid), str(parents[0]) if parents else ZERO_SHA)
    return str(oid)


def update_ref(path: Path, ref_name: str, new_sha: str, old_sha: str, *, message: str = "portal") -> None:
    """Move ref_name to new_sha only if it still points at old_sha (ZERO_SHA: must not exist yet).

    pygit2 has no compare-and-swap for references, so this is `git update-ref` with the old value,
    which checks it under the ref's lock: a racing push can neither be lost nor overwritten."""
    for value in (new_sha, old_sha):
        if not _SHA_RE.fullmatch(value):
            raise GitError(f"not an object id: {value!r}")
    if not ref_name.startswith("refs/"):
        raise GitError(f"not a full ref name: {ref_name!r}")
    result = subprocess.run(
        [settings.GIT_BIN, "update-ref", "-m", message, "--end-of-options", ref_name, new_sha, old_sha],
        cwd=path,
        env=base_environment()
        | {"GIT_DIR": str(path), "GIT_COMMITTER_NAME": "portal", "GIT_COMMITTER_EMAIL": "portal@localhost"},
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise GitError(f"{ref_name} moved while updating it: {result.stderr.strip()}")


def is_empty(path: Path) -> bool:
    """No refs at all, as git itself means it.

    libgit2's is_empty only recognises an unborn HEAD named after init.defaultBranch (master), so a
    fresh repository whose HEAD is main would look non-empty."""
    return next(iter(_open(path).references), None) is None


def is_valid_branch_name(branch: str) -> bool:
    """Whether git accepts refs/heads/<branch> (no control characters, '.lock', '//', '@{' and the like)."""
    return pygit2.reference_is_valid_name(f"refs/heads/{branch}")


def set_default_branch(path: Path, branch: str) -> None:
    repo = _open(path)
    repo.references.create("HEAD", f"refs/heads/{branch}", force=True)


def branches(path: Path) -> list[Branch]:
    repo = _open(path)
    result = []
    for name in repo.branches.local:
        ref = repo.references.get(f"refs/heads/{name}")
        if ref is not None:
            result.append(Branch(name=name, sha=str(ref.resolve().target)))
    return sorted(result, key=lambda b: b.name)


def branch_sha(path: Path, branch: str) -> str:
    ref = _open(path).references.get(f"refs/heads/{branch}")
    if ref is None:
        raise RefNotFound(branch)
    return str(ref.resolve().target)


def head_commit(path: Path, branch: str) -> Commit | None:
    repo = _open(path)
    ref = repo.references.get(f"refs/heads/{branch}")
    if ref is None:
        return None
    return _commit(repo[ref.resolve().target])


def branch_heads(path: Path) -> list[tuple[Branch, Commit]]:
    """Every branch with its latest commit, most recently committed first."""
    repo = _open(path)
    heads = [(branch, _commit(repo[branch.sha])) for branch in branches(path)]
    return sorted(heads, key=lambda head: head[1].committer.when, reverse=True)


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


def base_environment() -> dict[str, str]:
    """A clean environment for git subprocesses: no inherited GIT_* that could redirect them."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env["GIT_CONFIG_NOSYSTEM"] = "1"
    env["HOME"] = str(settings.VAR_DIR)
    return env


# Smart HTTP and maintenance.

log = logging.getLogger(__name__)
STREAM_CHUNK = 64 * 1024


def _feed(source: BinaryIO, sink: BinaryIO) -> None:
    """Copy a request body into a process's stdin, then close it so the process sees the end."""
    try:
        while chunk := source.read(STREAM_CHUNK):
            sink.write(chunk)
    except (BrokenPipeError, ValueError):
        # The process exited early (it refused the request); what it printed is the answer.
        pass
    except Exception:
        log.exception("reading the request body for git failed")
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
    finished = False
    try:
        while chunk := proc.stdout.read1(STREAM_CHUNK):
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
            log.warning(
                "%s on %s exited with %s: %s",
                service,
                path,
                returncode,
                b"".join(stderr_tail).decode(errors="replace").strip(),
            )


def write_commit_graph(path: Path) -> None:
    """Write the commit-graph with changed-path filters, which makes path-limited log and blame fast."""
    result = subprocess.run(
        [settings.GIT_BIN, "commit-graph", "write", "--reachable", "--changed-paths"],
        cwd=path,
        env=base_environment() | {"GIT_DIR": str(path)},
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise GitError(f"commit-graph write failed: {result.stderr.strip()}")


def repack(path: Path) -> None:
    """Roll small packs and loose objects into a geometric sequence of packs, with a multi-pack bitmap.

    Geometric repacking touches only the small packs that recent pushes added, so it stays cheap on
    a big repository, and the reachability bitmap lets clones skip counting objects."""
    result = subprocess.run(
        [settings.GIT_BIN, "repack", "-d", "-q", "--geometric=2", "--write-midx", "--write-bitmap-index"],
        cwd=path,
        env=base_environment() | {"GIT_DIR": str(path)},
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise GitError(f"repack failed: {result.stderr.strip()}")
