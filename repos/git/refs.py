"""Branches, tags and other refs: reading them, resolving what a URL names, and moving them by compare-and-swap."""

import re
import subprocess
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pygit2
from django.conf import settings

from ._base import (
    ZERO_SHA,
    Commit,
    GitError,
    RefNotFound,
    Signature,
    as_commit,
    as_signature,
    base_environment,
    check_sha,
    open_repo,
    run_git,
)


@dataclass(frozen=True)
class Branch:
    name: str
    sha: str


@dataclass(frozen=True)
class Ref:
    """What a URL's <ref> named: a branch, a tag or a commit, and the commit it resolves to."""

    name: str
    kind: str  # "branch", "tag" or "commit"
    sha: str

    @property
    def is_sha(self) -> bool:
        return self.kind == "commit"


@dataclass(frozen=True)
class Tag:
    name: str
    sha: str  # the commit it points to
    commit: Commit
    message: str  # an annotated tag's message, "" for a lightweight tag
    tagger: Signature | None
    object_sha: str = ""  # the tag object of an annotated tag, the commit of a lightweight one

    @property
    def when(self) -> datetime:
        return self.tagger.when if self.tagger else self.commit.committer.when


_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
# What a URL may name a commit by: a sha or a prefix of one.
_SHA_PREFIX_RE = re.compile(r"[0-9a-f]{4,64}")


def is_valid_branch_name(branch: str) -> bool:
    """Whether git accepts refs/heads/<branch> (no control characters, '.lock', '//', '@{' and the like)."""
    return pygit2.reference_is_valid_name(f"refs/heads/{branch}")


def branches(path: Path) -> list[Branch]:
    repo = open_repo(path)
    result = []
    for name in repo.branches.local:
        ref = repo.references.get(f"refs/heads/{name}")
        if ref is not None:
            result.append(Branch(name=name, sha=str(ref.resolve().target)))
    return sorted(result, key=lambda b: b.name)


def branch_sha(path: Path, branch: str) -> str:
    ref = open_repo(path).references.get(f"refs/heads/{branch}")
    if ref is None:
        raise RefNotFound(branch)
    return str(ref.resolve().target)


def ref_target(path: Path, ref_name: str) -> str | None:
    """The object a full ref name (refs/heads/x, refs/tags/v1) points at as it is now, or None if it is absent."""
    if "\x00" in ref_name or not pygit2.reference_is_valid_name(ref_name):
        return None
    ref = open_repo(path).references.get(ref_name)
    if ref is None:
        return None
    return str(ref.resolve().target)


def head_commit(path: Path, branch: str) -> Commit | None:
    repo = open_repo(path)
    ref = repo.references.get(f"refs/heads/{branch}")
    if ref is None:
        return None
    return as_commit(repo[ref.resolve().target])


def branch_heads(path: Path) -> list[tuple[Branch, Commit]]:
    """Every branch with its latest commit, most recently committed first."""
    repo = open_repo(path)
    heads = [(branch, as_commit(repo[branch.sha])) for branch in branches(path)]
    return sorted(heads, key=lambda head: head[1].committer.when, reverse=True)


def _is_unsafe_ref(name: str) -> bool:
    """Names git could read as an option or a range, names with control characters (no ref has one) and names
    that are not text never reach a lookup."""
    if not name or name.startswith("-") or ".." in name or _CONTROL_RE.search(name):
        return True
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def resolve(path: Path, segments: list[str]) -> tuple[Ref, list[str]]:
    """Split URL segments into a ref (the longest prefix naming a branch or tag, or a commit sha) and a path.

    Branch names may contain '/', so "feature/x/src/a.c" tries "feature/x/src/a.c", "feature/x/src", ... in turn.
    Names that start with '-' or contain '..' are refused before any lookup."""
    repo = open_repo(path)
    for end in range(len(segments), 0, -1):
        name = "/".join(segments[:end])
        if _is_unsafe_ref(name):
            continue
        for prefix, kind in (("refs/heads/", "branch"), ("refs/tags/", "tag")):
            ref_name = prefix + name
            if not pygit2.reference_is_valid_name(ref_name):
                continue
            ref = repo.references.get(ref_name)
            if ref is not None:
                target = _commit_of(ref) if kind == "tag" else repo[ref.resolve().target]
                if isinstance(target, pygit2.Commit):
                    return Ref(name=name, kind=kind, sha=str(target.id)), segments[end:]
    if segments and _SHA_PREFIX_RE.fullmatch(segments[0]):
        try:
            obj = repo.get(segments[0])
        except (ValueError, pygit2.GitError):
            obj = None  # an ambiguous short sha
        commit = _commit_of(obj) if obj is not None else None
        if commit is not None:
            return Ref(name=segments[0], kind="commit", sha=str(commit.id)), segments[1:]
    raise RefNotFound("/".join(segments))


def _commit_of(obj: pygit2.Object | pygit2.Reference) -> pygit2.Commit | None:
    """The commit a ref, tag or commit comes to, or None when it names a tree or a blob (git's own history has
    a tag of a blob: junio-gpg-pub)."""
    try:
        return obj.peel(pygit2.Commit)
    except (pygit2.GitError, ValueError):
        return None


def resolve_commit(path: Path, name: str) -> Ref:
    """A single ref name (branch, tag or sha) with nothing after it."""
    if _is_unsafe_ref(name):
        raise RefNotFound(name)
    ref, rest = resolve(path, name.split("/"))
    if rest:
        raise RefNotFound(name)
    return ref


def tags(path: Path) -> list[Tag]:
    """Tags that point at commits, newest first."""
    repo = open_repo(path)
    result = []
    for ref_name in repo.references:
        if not ref_name.startswith("refs/tags/"):
            continue
        ref = repo.references[ref_name]
        obj = repo[ref.target]
        target = _commit_of(obj)
        if target is None:
            continue
        annotated = isinstance(obj, pygit2.Tag)
        result.append(
            Tag(
                name=ref_name.removeprefix("refs/tags/"),
                sha=str(target.id),
                commit=as_commit(target),
                message=obj.message if annotated else "",
                tagger=as_signature(obj.tagger) if annotated and obj.tagger else None,
                object_sha=str(obj.id),
            )
        )
    return sorted(result, key=lambda t: t.when, reverse=True)


def ref_names(path: Path) -> list[str]:
    """Every branch and tag, as full ref names in no particular order."""
    return [name for name in open_repo(path).references if name.startswith(("refs/heads/", "refs/tags/"))]


def version_key(name: str) -> tuple:
    """Sorts "v2.10.0" after "v2.9.1"."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", name))


def set_default_branch(path: Path, branch: str) -> None:
    repo = open_repo(path)
    repo.references.create("HEAD", f"refs/heads/{branch}", force=True)


def update_ref(path: Path, ref_name: str, new_sha: str, old_sha: str, *, message: str = "portal") -> None:
    """Move ref_name to new_sha only if it still points at old_sha (ZERO_SHA: must not exist yet).

    pygit2 has no compare-and-swap for references, so this is `git update-ref` with the old value,
    which checks it under the ref's lock: a racing push can neither be lost nor overwritten."""
    check_sha(new_sha, old_sha)
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


def delete_ref(path: Path, ref_name: str, old_sha: str) -> None:
    """Delete ref_name only if it still points at old_sha; GitError when it moved or is gone."""
    check_sha(old_sha)
    if old_sha == ZERO_SHA or not ref_name.startswith("refs/"):
        raise GitError(f"cannot delete {ref_name!r} at {old_sha!r}")
    try:
        # Like update_ref: git checks the old value under the ref's lock, so a racing push is never lost.
        run_git(path, "update-ref", "-d", "--end-of-options", ref_name, old_sha)
    except GitError as exc:
        raise GitError(f"{ref_name} moved while deleting it: {exc}") from exc


def ref_tips(path: Path) -> dict[str, str]:
    """Every branch and tag with the object it points at (a tag's own object for an annotated tag)."""
    repo = open_repo(path)
    tips = {}
    for name in repo.references:
        if name.startswith(("refs/heads/", "refs/tags/")):
            target = repo.references[name].target
            if isinstance(target, pygit2.Oid):
                tips[name] = str(target)
    return tips
