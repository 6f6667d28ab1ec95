"""Objects read by id or path: commits, trees, blobs and the lines of a file."""

import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import pygit2

from ._base import (
    LINE_RE,
    Commit,
    PathNotFound,
    RefNotFound,
    as_commit,
    blob_at,
    is_sha,
    label,
    load_commit,
    open_repo,
    strip_line_end,
)


@dataclass(frozen=True)
class TreeEntry:
    name: str
    path: str
    sha: str
    kind: str  # "tree", "blob", "symlink" or "submodule"
    mode: int

    @property
    def label(self) -> str:
        return label(self.name)


def has_object(path: Path, sha: str) -> bool:
    """Whether the repository holds an object with this full id."""
    if not is_sha(sha):
        return False
    try:
        return sha in open_repo(path)
    except ValueError:
        return False


_KINDS = {
    pygit2.enums.FileMode.TREE: "tree",
    pygit2.enums.FileMode.LINK: "symlink",
    pygit2.enums.FileMode.COMMIT: "submodule",
}


def _entry_kind(mode: int) -> str:
    return _KINDS.get(mode, "blob")


def _join(base: str, name: str) -> str:
    return f"{base}/{name}" if base else name


def entry(path: Path, commit_sha: str, file_path: str) -> TreeEntry:
    """The entry at file_path in a commit's tree ("" is the root tree)."""
    repo = open_repo(path)
    tree = repo[commit_sha].peel(pygit2.Tree)
    if not file_path:
        return TreeEntry(name="", path="", sha=str(tree.id), kind="tree", mode=pygit2.enums.FileMode.TREE)
    # libgit2 reads the path as a C string: "secret.txt\0.png" would find secret.txt. No git path holds a NUL.
    if "\x00" in file_path:
        raise PathNotFound(file_path)
    try:
        obj = tree[file_path]
    except (KeyError, ValueError):
        raise PathNotFound(file_path) from None
    return TreeEntry(
        name=file_path.rsplit("/", 1)[-1],
        path=file_path,
        sha=str(obj.id),
        kind=_entry_kind(obj.filemode),
        mode=obj.filemode,
    )


# The last tree listed by this thread: a directory's page lists it for its rows and again to find its README.
_last_listed = threading.local()


def tree_entries(path: Path, tree_sha: str, base: str) -> tuple[TreeEntry, ...]:
    """A tree's entries, directories first, each group by name; base is the tree's own path."""
    key = (str(path), tree_sha, base)
    last = getattr(_last_listed, "value", None)
    if last is not None and last[0] == key:
        return last[1]
    tree = open_repo(path)[tree_sha]
    entries = []
    for e in tree:
        # pygit2 makes the mode an enum member on each read.
        name, mode = e.name, e.filemode
        entries.append(TreeEntry(name=name, path=_join(base, name), sha=str(e.id), kind=_entry_kind(mode), mode=mode))
    entries.sort(key=lambda e: (e.kind != "tree", e.name.lower()))
    _last_listed.value = (key, tuple(entries))
    return _last_listed.value[1]


def tree_size(path: Path, tree_sha: str) -> int:
    """How many entries a tree has, without listing them."""
    return len(open_repo(path)[tree_sha])


def changed_trees(path: Path, commit_sha: str, old_commit_sha: str | None, *, limit: int) -> list[tuple[str, str]]:
    """The directories of a commit (path, tree sha) whose tree is not the one at the same path in old_commit_sha:
    every directory when there is no such commit (a new branch). The root first, then by depth, at most limit.

    A directory whose tree is unchanged is not walked: what lies under it is unchanged too."""
    repo = open_repo(path)
    tree = repo[commit_sha].peel(pygit2.Tree)
    old = repo.get(old_commit_sha) if old_commit_sha and is_sha(old_commit_sha) else None
    old_tree = old.peel(pygit2.Tree) if isinstance(old, pygit2.Commit) else None
    found: list[tuple[str, str]] = []
    waiting = deque([("", tree, old_tree)])
    while waiting and len(found) < limit:
        base, tree, before = waiting.popleft()
        if before is not None and before.id == tree.id:
            continue
        found.append((base, str(tree.id)))
        for child in tree:
            if child.filemode != pygit2.enums.FileMode.TREE:
                continue
            was = before[child.name] if before is not None and child.name in before else None
            waiting.append((_join(base, child.name), child, was if isinstance(was, pygit2.Tree) else None))
    return found


def read_blob(path: Path, sha: str, *, limit: int | None = None) -> tuple[bytes, int]:
    """A blob's bytes (the first `limit` of them when given) and its full size."""
    blob = open_repo(path)[sha]
    if not isinstance(blob, pygit2.Blob):
        raise PathNotFound(sha)
    size = blob.size
    if limit is not None and size > limit:
        return blob.read_raw()[:limit], size
    return blob.data, size


def commit(path: Path, sha: str) -> Commit:
    obj = open_repo(path).get(sha)
    if not isinstance(obj, pygit2.Commit):
        raise RefNotFound(sha)
    return as_commit(obj)


def commits(path: Path, shas: list[str]) -> list[Commit]:
    repo = open_repo(path)
    return [as_commit(repo[sha]) for sha in shas]


def file_lines(path: Path, commit_sha: str, file_path: str) -> list[str] | None:
    """The file's lines at a commit, decoded as UTF-8 (with replacement) and without line endings; None if missing
    or binary."""
    repo = open_repo(path)
    blob = blob_at(load_commit(repo, commit_sha).tree, file_path)
    if blob is None or blob.is_binary:
        return None
    return [strip_line_end(segment).decode("utf-8", "replace") for segment in LINE_RE.findall(blob.data)]
