"""Merging, squashing and rebasing for pull requests, done in memory with pygit2: no work tree, no ref moved; and the
line-level edits that suggested changes need."""

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pygit2

from ._base import (
    LINE_RE,
    GitError,
    MergeConflict,
    blob_at,
    load_commit,
    open_repo,
    strip_line_end,
)


@dataclass(frozen=True)
class Person:
    """Who a new commit is by; `when` None means now."""

    name: str
    email: str
    when: datetime | None = None


def signature_of(person: Person) -> pygit2.Signature:
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


def merge_check(path: Path, base_sha: str, head_sha: str) -> list[str]:
    """Paths that conflict when head is merged into base (empty: merges cleanly); nothing is written."""
    repo = open_repo(path)
    return _conflict_paths(repo.merge_commits(load_commit(repo, base_sha), load_commit(repo, head_sha)))


def merge_commit(path: Path, base_sha: str, head_sha: str, *, message: str, author: Person, committer: Person) -> str:
    """Write a merge commit (parents base, head) of the merged tree and return its sha; MergeConflict on conflicts."""
    repo = open_repo(path)
    base, head = load_commit(repo, base_sha), load_commit(repo, head_sha)
    tree = _merged_tree(repo, base, head)
    oid = repo.create_commit(
        None, signature_of(author), signature_of(committer), _message(message), tree, [base.id, head.id]
    )
    return str(oid)


def squash_commit(path: Path, base_sha: str, head_sha: str, *, message: str, author: Person, committer: Person) -> str:
    """One commit on top of base whose tree is head merged into base; MergeConflict on conflicts."""
    repo = open_repo(path)
    base, head = load_commit(repo, base_sha), load_commit(repo, head_sha)
    tree = _merged_tree(repo, base, head)
    oid = repo.create_commit(None, signature_of(author), signature_of(committer), _message(message), tree, [base.id])
    return str(oid)


def rebase_commits(path: Path, base_sha: str, head_sha: str, *, committer: Person) -> str:
    """Replay head's commits that base lacks onto base, oldest first, and return the last one's sha.

    Merge commits are skipped and each replayed commit keeps its author and message, as `git rebase` does;
    so is a commit whose change base already has (it would come out empty). When base is already an ancestor of
    head, head is the result as it is. MergeConflict names the files of the first commit that does not apply."""
    repo = open_repo(path)
    base, head = load_commit(repo, base_sha), load_commit(repo, head_sha)
    if base.id == head.id or repo.descendant_of(head.id, base.id):
        return head_sha
    signature = signature_of(committer)
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


def _replacement_lines(replacement: str) -> list[str]:
    text = replacement.replace("\r\n", "\n")
    return text.removesuffix("\n").split("\n") if text else []


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
    repo = open_repo(path)
    parent = load_commit(repo, parent_sha)
    parts = file_path.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise GitError(f"not a file path: {file_path!r}")
    blob = blob_at(parent.tree, file_path)
    if blob is None:
        raise GitError(f"no file {file_path!r} in {parent_sha}")
    mode = parent.tree[file_path].filemode
    if mode not in (pygit2.enums.FileMode.BLOB, pygit2.enums.FileMode.BLOB_EXECUTABLE):
        raise GitError(f"{file_path!r} is not a regular file")
    if blob.is_binary:
        raise GitError(f"{file_path!r} is a binary file")
    data = blob.data
    segments = LINE_RE.findall(data)
    if not 1 <= start_line <= end_line <= len(segments):
        raise GitError(f"lines {start_line}-{end_line} are outside {file_path!r} ({len(segments)} lines)")
    line_end = b"\r\n" if data.count(b"\r\n") * 2 > data.count(b"\n") else b"\n"
    new_segments = [line.encode() + line_end for line in _replacement_lines(replacement)]
    result = segments[: start_line - 1] + new_segments + segments[end_line:]
    if result and not data.endswith(b"\n"):
        result[-1] = strip_line_end(result[-1])
    tree = _replace_in_tree(repo, parent.tree, parts, repo.create_blob(b"".join(result)), mode)
    oid = repo.create_commit(None, signature_of(author), signature_of(committer), _message(message), tree, [parent.id])
    return str(oid)
