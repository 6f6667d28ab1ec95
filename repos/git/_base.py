"""What every part of repos.git shares: object ids, errors, commits as dataclasses, paths, and running git.

Paths inside a repository are str decoded from git's bytes with "surrogateescape", so a file name that is not
UTF-8 survives the round trip to a URL and back; `label()` turns one into text fit for a page.
"""

import os
import re
import subprocess
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pygit2
from django.conf import settings

_SHA_RE = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


def is_sha(value: object) -> bool:
    """Whether value is a full object id as git writes it: 40 (SHA-1) or 64 (SHA-256) lower-case hex digits."""
    return isinstance(value, str) and _SHA_RE.fullmatch(value) is not None


def check_sha(*shas: str) -> None:
    """GitError naming the first value that is not a full object id."""
    for sha in shas:
        if not is_sha(sha):
            raise GitError(f"not an object id: {sha!r}")


ZERO_SHA = "0" * 40
EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
STREAM_CHUNK = 64 * 1024


class GitError(Exception):
    pass


class RefNotFound(GitError):
    pass


class PathNotFound(GitError):
    pass


class MergeConflict(GitError):
    """Merging would leave these paths in conflict."""

    def __init__(self, paths: list[str]) -> None:
        self.paths = list(paths)
        super().__init__("conflicts in " + ", ".join(label(p) for p in self.paths))


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

    @property
    def body(self) -> str:
        """The message after its summary line."""
        return self.message.partition("\n")[2].strip("\n")


def as_signature(sig: "pygit2.Signature") -> Signature:
    return Signature(name=sig.name, email=sig.email, when=datetime.fromtimestamp(sig.time, tz=UTC))


def as_commit(obj: "pygit2.Commit") -> Commit:
    return Commit(
        sha=str(obj.id),
        message=obj.message,
        author=as_signature(obj.author),
        committer=as_signature(obj.committer),
        parents=tuple(str(p) for p in obj.parent_ids),
    )


# libgit2 keeps commits in a repository's object cache but no tree over 4 KiB, so every read of a big directory
# (git's root is 22 KiB, its t/ 61 KiB) parsed it again; trees up to this size are kept too, within the cache's
# overall limit.
TREE_CACHE_LIMIT = 256 * 1024
pygit2.settings.cache_object_limit(pygit2.enums.ObjectType.TREE, TREE_CACHE_LIMIT)

# Repositories this thread keeps open, most recently used last: path -> (stamp, handle).
_handles = threading.local()
HANDLES_PER_THREAD = 8


def _stamp(path: Path) -> tuple[int, int, int] | None:
    """What changes when a repository's packs change (a push's pack, a repack) or its folder is made anew."""
    try:
        folder, packs = os.stat(path), os.stat(os.path.join(path, "objects", "pack"))
    except OSError:
        return None
    return folder.st_ino, packs.st_ino, packs.st_mtime_ns


def open_repo(path: Path) -> pygit2.Repository:
    """The repository at path, kept open by this thread for as long as its set of packs stays the same.

    Opening one reads its config and maps its pack indexes, and a new handle starts with an empty object cache;
    a page used to pay that for every read. A handle serves one thread (libgit2 does not share a repository
    between threads), sees new refs and loose objects as they come, and is opened again once a pack is added or
    removed, so that it never holds on to a pack that maintenance deleted."""
    key = str(path)
    kept = getattr(_handles, "repos", None)
    if kept is None:
        kept = _handles.repos = OrderedDict()
    stamp = _stamp(path)
    found = kept.get(key)
    if found is not None and stamp is not None and found[0] == stamp:
        kept.move_to_end(key)
        return found[1]
    try:
        handle = pygit2.Repository(key)
    except pygit2.GitError as exc:
        kept.pop(key, None)
        raise GitError(f"cannot open repository: {exc}") from exc
    # A miss is rare: let go of the handles whose repository has changed or is gone, then of the oldest.
    for other, (other_stamp, _) in list(kept.items()):
        if other != key and _stamp(Path(other)) != other_stamp:
            del kept[other]
    if stamp is not None:
        kept[key] = (stamp, handle)
        kept.move_to_end(key)
        while len(kept) > HANDLES_PER_THREAD:
            kept.popitem(last=False)
    return handle


def open_ahead(path: Path) -> bool:
    """Open the repository at path for this thread now, and read what a first page reads of it: its refs, the
    commit HEAD names and that commit's tree (which maps its pack indexes and commit-graph). Whether it could be
    read: one that cannot is left to its first page, as it would have been."""
    try:
        repo = open_repo(path)
        if list(repo.references) and not repo.head_is_unborn:
            return repo.head.peel(pygit2.Commit).tree is not None
        return True
    except (GitError, pygit2.GitError, KeyError, ValueError):
        return False


def load_commit(repo: pygit2.Repository, sha: str) -> pygit2.Commit:
    check_sha(sha)
    obj = repo.get(sha)
    if not isinstance(obj, pygit2.Commit):
        raise RefNotFound(sha)
    return obj


def blob_at(tree: pygit2.Tree, file_path: str) -> pygit2.Blob | None:
    """The blob at file_path, or None when there is none (missing, a directory or a submodule)."""
    if not file_path or "\x00" in file_path:
        return None
    try:
        obj = tree[file_path]
    except (KeyError, ValueError, pygit2.GitError):
        return None
    return obj if isinstance(obj, pygit2.Blob) else None


def label(path: str) -> str:
    """A path as text for display: UTF-8 when it is, otherwise its bytes read as Latin-1."""
    raw = path.encode("utf-8", "surrogateescape")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def path_bytes(path: str) -> bytes:
    return path.encode("utf-8", "surrogateescape")


def decode_path(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


LINE_RE = re.compile(rb"[^\n]*\n|[^\n]+\Z")


def strip_line_end(segment: bytes) -> bytes:
    if segment.endswith(b"\r\n"):
        return segment[:-2]
    return segment.removesuffix(b"\n")


def base_environment() -> dict[str, str]:
    """A clean environment for git subprocesses: no inherited GIT_* that could redirect them."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env["GIT_CONFIG_NOSYSTEM"] = "1"
    env["HOME"] = str(settings.VAR_DIR)
    return env


def repo_env(path: Path) -> dict[str, str]:
    return base_environment() | {"GIT_DIR": str(path)}


def run_git(path: Path, *args: str | bytes, check: bool = True, stdin: bytes | None = None) -> bytes:
    """Run a git command on a repository and return its output; GitError with git's message when it fails."""
    result = subprocess.run(
        [settings.GIT_BIN, "-c", "core.quotePath=false", *args],
        cwd=path,
        env=repo_env(path),
        capture_output=True,
        input=stdin,
    )
    if check and result.returncode != 0:
        raise GitError(f"git {args[0]!s} failed: {result.stderr.decode(errors='replace').strip()}")
    return result.stdout
