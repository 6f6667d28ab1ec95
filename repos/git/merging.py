"""Merging, squashing and rebasing for pull requests, done in memory with pygit2: no work tree, no ref moved.

Also the line-level reads and edits that review comments and suggested changes need.
"""

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pygit2

from repos.git import _SHA_RE, ZERO_SHA, GitError, MergeConflict, RefNotFound, _git, _open, merge_base

EMPTY_CHANGE_ID = ZERO_SHA
_LINE_RE = re.compile(rb"[^\n]*\n|[^\n]+\Z")


@dataclass(frozen=True)
class Person:
    """Who a new commit is by; `when` None means now."""

    name: str
    email: str
    when: datetime | None = None


def _check_sha(*shas: str) -> None:
    for sha in shas:
        if not isinstance(sha, str) or not _SHA_RE.fullmatch(sha):
            raise GitError(f"not an object id: {sha!r}")


def _load_commit(repo: pygit2.Repository, sha: str) -> pygit2.Commit:
    _check_sha(sha)
    obj = repo.get(sha)
    if not isinstance(obj, pygit2.Commit):
        raise RefNotFound(sha)
    return obj


def _signature_of(person: Person) -> pygit2.Signature:
    when = person.when or datetime.now(UTC)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    offset = int(when.utcoffset().total_seconds() // 60)
    try:
        return pygit2.Signature(person.name, person.email, int(when.timestamp()), offset)
    except (ValueError, pygit2.GitError) as exc:
        raise GitError(f"invalid signature {person.name!r} <{person.email}>: {exc}") from exc


def _message(text: str) -> str:
    # git itself always ends a message with a newline; tools that append trailers expect it.
    return text if text.endswith("\n") else text + "\n"


def _conflict_paths(index: pygit2.Index) -> list[str]:
    if index.conflicts is None:
        return []
    # A rename on one side names the file differently in each stage: every name is part of the conflict.
    return sorted({entry.path for stages in index.conflicts for entry in stages if entry is not None})


def _merged_tree(repo: pygit2.Repository, base: pygit2.Commit, head: pygit2.Commit) -> pygit2.Oid:
    index = repo.merge_commits(base, head)
    paths = _conflict_paths(index)
    if paths:
        raise MergeConflict(paths)
    return index.write_tree(repo)


def _blob_at(tree: pygit2.Tree, file_path: str) -> pygit2.Blob | None:
    """The blob at file_path, or None when there is none (missing, a directory or a submodule)."""
    if not file_path:
        return None
    try:
        obj = tree[file_path]
    except (KeyError, ValueError, pygit2.GitError):
        return None
    return obj if isinstance(obj, pygit2.Blob) else None


def is_ancestor(path: Path, ancestor_sha: str, descendant_sha: str) -> bool:
    """Whether ancestor_sha is reachable from descendant_sha (a commit is its own ancestor, as git says).

    `git merge-base` reads the commit-graph's generation numbers, where libgit2 walks the history; when one commit
    is an ancestor of the other, it is their only merge base."""
    repo = _open(path)
    ancestor = str(_load_commit(repo, ancestor_sha).id)
    descendant = str(_load_commit(repo, descendant_sha).id)
    return ancestor == descendant or merge_base(path, ancestor, descendant) == ancestor


def merge_check(path: Path, base_sha: str, head_sha: str) -> list[str]:
    """Paths that conflict when head is merged into base (empty: merges cleanly); nothing is written."""
    repo = _open(path)
    return _conflict_paths(repo.merge_commits(_load_commit(repo, base_sha), _load_commit(repo, head_sha)))


def merge_commit(path: Path, base_sha: str, head_sha: str, *, message: str, author: Person, committer: Person) -> str:
    """Write a merge commit (parents base, head) of the merged tree and return its sha; MergeConflict on conflicts."""
    repo = _open(path)
    base, head = _load_commit(repo, base_sha), _load_commit(repo, head_sha)
    tree = _merged_tree(repo, base, head)
    oid = repo.create_commit(
        None, _signature_of(author), _signature_of(committer), _message(message), tree, [base.id, head.id]
    )
    return str(oid)


def squash_commit(path: Path, base_sha: str, head_sha: str, *, message: str, author: Person, committer: Person) -> str:
    """One commit on top of base whose tree is head merged into base; MergeConflict on conflicts."""
    repo = _open(path)
    base, head = _load_commit(repo, base_sha), _load_commit(repo, head_sha)
    tree = _merged_tree(repo, base, head)
    oid = repo.create_commit(None, _signature_of(author), _signature_of(committer), _message(message), tree, [base.id])
    return str(oid)


def rebase_commits(path: Path, base_sha: str, head_sha: str, *, committer: Person) -> str:
    """Replay head's commits that base lacks onto base, oldest first, and return the last one's sha.

    Merge commits are skipped and each replayed commit keeps its author and message, as `git rebase` does;
    so is a commit whose change base already has (it would come out empty). When base is already an ancestor of
    head, head is the result as it is. MergeConflict names the files of the first commit that does not apply."""
    repo = _open(path)
    base, head = _load_commit(repo, base_sha), _load_commit(repo, head_sha)
    if base.id == head.id or repo.descendant_of(head.id, base.id):
        return head_sha
    signature = _signature_of(committer)
    walker = repo.walk(head.id, pygit2.enums.SortMode.TOPOLOGICAL | pygit2.enums.SortMode.REVERSE)
    walker.hide(base.id)
    tip = base
    empty_tree: pygit2.Oid | None = None
    for original in walker:
        if len(original.parent_ids) > 1:
            continue
        if original.parent_ids:
            ancestor_tree = original.parents[0].tree_id
        else:
            # A root commit of an unrelated history: its change is everything it holds.
            empty_tree = empty_tree or repo.TreeBuilder().write()
            ancestor_tree = empty_tree
        index = repo.merge_trees(ancestor_tree, tip.tree_id, original.tree_id)
        paths = _conflict_paths(index)
        if paths:
            raise MergeConflict(paths)
        tree = index.write_tree(repo)
        if tree == tip.tree_id and original.tree_id != ancestor_tree:
            continue
        # The message goes over as bytes, with the encoding it declares, so that nothing is re-encoded.
        extra = [original.message_encoding] if original.message_encoding else []
        oid = repo.create_commit(None, original.author, signature, original.raw_message, tree, [tip.id], *extra)
        tip = repo[oid]
    return str(tip.id)


def patch_id(path: Path, base_sha: str, head_sha: str) -> str:
    """A stable id of the change head brings over its merge base with base: equal for the same code on a newer base.

    `git patch-id --stable` hashes the diff without line numbers or commit messages; --full-index puts the blob
    ids of binary files in the diff, which patch-id hashes in place of their contents."""
    _check_sha(base_sha, head_sha)
    start = merge_base(path, base_sha, head_sha)
    if start is None:
        # Unrelated histories: head brings everything it holds.
        start = _git(path, "hash-object", "-t", "tree", "--stdin", stdin=b"").decode().strip()
    diff = _git(path, "diff", "--no-color", "--no-ext-diff", "--no-textconv", "--full-index", "-M", start, head_sha)
    if not diff.strip():
        return EMPTY_CHANGE_ID
    out = _git(path, "patch-id", "--stable", stdin=diff).split()
    return out[0].decode() if out else EMPTY_CHANGE_ID


def _replacement_lines(replacement: str) -> list[str]:
    text = replacement.replace("\r\n", "\n")
    return text.removesuffix("\n").split("\n") if text else []


def _strip_line_end(segment: bytes) -> bytes:
    if segment.endswith(b"\r\n"):
        return segment[:-2]
    return segment.removesuffix(b"\n")


def _replace_in_tree(
    repo: pygit2.Repository, tree: pygit2.Tree, parts: list[str], blob: pygit2.Oid, mode: int
) -> pygit2.Oid:
    builder = repo.TreeBuilder(tree)
    if len(parts) == 1:
        builder.insert(parts[0], blob, mode)
    else:
        subtree = _replace_in_tree(repo, tree[parts[0]], parts[1:], blob, mode)
        builder.insert(parts[0], subtree, pygit2.enums.FileMode.TREE)
    return builder.write()


def edit_lines(
    path: Path,
    parent_sha: str,
    file_path: str,
    start_line: int,
    end_line: int,
    replacement: str,
    *,
    message: str,
    author: Person,
    committer: Person,
) -> str:
    """A new commit on parent_sha with lines start_line..end_line (1-based, inclusive) of file_path replaced.

    The new lines take the file's line endings (CRLF when most of its lines have them), and the file keeps
    ending with a newline or not as it did. Moves no ref; returns the new commit's sha."""
    repo = _open(path)
    parent = _load_commit(repo, parent_sha)
    parts = file_path.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise GitError(f"not a file path: {file_path!r}")
    blob = _blob_at(parent.tree, file_path)
    if blob is None:
        raise GitError(f"no file {file_path!r} in {parent_sha}")
    mode = parent.tree[file_path].filemode
    if mode not in (pygit2.enums.FileMode.BLOB, pygit2.enums.FileMode.BLOB_EXECUTABLE):
        raise GitError(f"{file_path!r} is not a regular file")
    if blob.is_binary:
        raise GitError(f"{file_path!r} is a binary file")
    data = blob.data
    segments = _LINE_RE.findall(data)
    if not 1 <= start_line <= end_line <= len(segments):
        raise GitError(f"lines {start_line}-{end_line} are outside {file_path!r} ({len(segments)} lines)")
    line_end = b"\r\n" if data.count(b"\r\n") * 2 > data.count(b"\n") else b"\n"
    new_segments = [line.encode() + line_end for line in _replacement_lines(replacement)]
    result = segments[: start_line - 1] + new_segments + segments[end_line:]
    if result and not data.endswith(b"\n"):
        result[-1] = _strip_line_end(result[-1])
    tree = _replace_in_tree(repo, parent.tree, parts, repo.create_blob(b"".join(result)), mode)
    oid = repo.create_commit(
        None, _signature_of(author), _signature_of(committer), _message(message), tree, [parent.id]
    )
    return str(oid)


def delete_ref(path: Path, ref_name: str, old_sha: str) -> None:
    """Delete ref_name only if it still points at old_sha; GitError when it moved or is gone."""
    _check_sha(old_sha)
    if old_sha == ZERO_SHA or not ref_name.startswith("refs/"):
        raise GitError(f"cannot delete {ref_name!r} at {old_sha!r}")
    try:
        # Like update_ref: git checks the old value under the ref's lock, so a racing push is never lost.
        _git(path, "update-ref", "-d", "--end-of-options", ref_name, old_sha)
    except GitError as exc:
        raise GitError(f"{ref_name} moved while deleting it: {exc}") from exc


def changed_ranges(path: Path, old_sha: str, new_sha: str, file_path: str) -> list[tuple[int, int, int, int]] | None:
    """Zero-context hunks (old_start, old_lines, new_start, new_lines) of file_path between two commits.

    [] when the file is unchanged, None when new_sha has no such file; a file absent in old_sha counts as empty."""
    repo = _open(path)
    old, new = _load_commit(repo, old_sha), _load_commit(repo, new_sha)
    new_blob = _blob_at(new.tree, file_path)
    if new_blob is None:
        return None
    old_blob = _blob_at(old.tree, file_path)
    if old_blob is not None and old_blob.id == new_blob.id:
        return []
    # Forced to text so that a changed binary file still reports a change instead of no hunks.
    patch = pygit2.Patch.create_from(
        old_blob, new_blob, flag=pygit2.enums.DiffOption.FORCE_TEXT, context_lines=0, interhunk_lines=0
    )
    return [(hunk.old_start, hunk.old_lines, hunk.new_start, hunk.new_lines) for hunk in patch.hunks]


def file_lines(path: Path, commit_sha: str, file_path: str) -> list[str] | None:
    """The file's lines at a commit, decoded as UTF-8 (with replacement) and without line endings; None if missing
    or binary."""
    repo = _open(path)
    blob = _blob_at(_load_commit(repo, commit_sha).tree, file_path)
    if blob is None or blob.is_binary:
        return None
    return [_strip_line_end(segment).decode("utf-8", "replace") for segment in _LINE_RE.findall(blob.data)]
