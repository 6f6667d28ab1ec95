"""A repository as a whole: creating, seeding and deleting it, and the maintenance that keeps it fast."""

import os
import shutil
import time
from pathlib import Path

import pygit2

from ._base import ZERO_SHA, open_repo, run_git
from .merge import Person, signature_of
from .refs import update_ref


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


def is_empty(path: Path) -> bool:
    """No refs at all, as git itself means it.

    libgit2's is_empty only recognises an unborn HEAD named after init.defaultBranch (master), so a
    fresh repository whose HEAD is main would look non-empty."""
    return next(iter(open_repo(path).references), None) is None


def disk_size(path: Path) -> int:
    """The bytes a bare repository takes on disk (its objects, refs and the rest), as Gitea counts a repository's
    size."""
    total = 0
    for folder, _dirs, names in os.walk(path):
        for name in names:
            try:
                total += (Path(folder) / name).lstat().st_size
            except OSError:
                continue
    return total


def commit_files(path: Path, branch: str, files: dict[str, bytes], message: str, *, name: str, email: str) -> str:
    """Commit files ("name" or "dir/name": content) on top of branch (creating it when absent) and return the new
    commit's sha."""
    repo = open_repo(path)
    ref_name = f"refs/heads/{branch}"
    parent = repo.references.get(ref_name)
    parent_sha = str(parent.target) if parent is not None else None
    person = Person(name, email)
    sha = write_commit(path, parent_sha, files, message, author=person, committer=person)
    update_ref(path, ref_name, sha, parent_sha or ZERO_SHA)
    return sha


def write_commit(
    path: Path, parent_sha: str | None, files: dict[str, bytes], message: str, *, author: Person, committer: Person
) -> str:
    """Write a commit of files ("name" or "dir/name": content) on top of parent_sha (None: a root commit) and return
    its sha; no ref moves, so the caller can ask the push rules first and then move the branch by compare-and-swap."""
    repo = open_repo(path)
    parents = [repo[parent_sha].peel(pygit2.Commit).id] if parent_sha else []
    tree = _tree_with(repo, repo[parents[0]].tree if parents else None, files)
    oid = repo.create_commit(None, signature_of(author), signature_of(committer), message, tree, parents)
    return str(oid)


def _tree_with(repo: pygit2.Repository, tree: pygit2.Tree | None, files: dict[str, bytes]) -> pygit2.Oid:
    """The id of tree with files ("dir/name": content) written into it, the folders they need made."""
    builder = repo.TreeBuilder(tree) if tree is not None else repo.TreeBuilder()
    folders: dict[str, dict[str, bytes]] = {}
    for file_name, content in files.items():
        head, _, rest = file_name.strip("/").partition("/")
        if rest:
            folders.setdefault(head, {})[rest] = content
        else:
            builder.insert(head, repo.create_blob(content), pygit2.enums.FileMode.BLOB)
    for folder, inside in folders.items():
        existing = tree[folder] if tree is not None and folder in tree else None
        subtree = existing if existing is not None and existing.type_str == "tree" else None
        builder.insert(folder, _tree_with(repo, subtree, inside), pygit2.enums.FileMode.TREE)
    return builder.write()


def write_commit_graph(path: Path) -> None:
    """Write the commit-graph with changed-path filters, which makes path-limited log and blame fast."""
    run_git(path, "commit-graph", "write", "--reachable", "--changed-paths")


def repack(path: Path) -> None:
    """Roll small packs and loose objects into a geometric sequence of packs, with a multi-pack bitmap.

    Geometric repacking touches only the small packs that recent pushes added, so it stays cheap on
    a big repository, and the reachability bitmap lets clones skip counting objects."""
    run_git(path, "repack", "-d", "-q", "--geometric=2", "--write-midx", "--write-bitmap-index")


def remove_stale_incoming(path: Path, *, older_than: float) -> list[str]:
    """Delete the quarantine directories (objects/tmp_objdir-incoming-*) that killed pushes left behind, when
    nothing in them changed for older_than seconds; returns the names removed."""
    removed = []
    limit = time.time() - older_than
    for directory in (path / "objects").glob("tmp_objdir-incoming-*"):
        if not directory.is_dir() or directory.is_symlink():
            continue
        entries = [directory, *directory.rglob("*")]
        try:
            newest = max(entry.lstat().st_mtime for entry in entries)
        except FileNotFoundError:
            # git is moving or deleting it right now: a push in progress.
            continue
        if newest < limit:
            shutil.rmtree(directory, ignore_errors=True)
            removed.append(directory.name)
    return removed
