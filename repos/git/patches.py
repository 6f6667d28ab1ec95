"""A change as git writes it for people and tools: the unified diff, and format-patch's mailbox of its commits.

Callers reach it as `repos.git.patches` (Gitea's `.diff` and `.patch` of a pull request). Both come from the git CLI,
as patch_id's diff does: the text is then exactly what `git apply` and `git am` expect (binary patches, mode
changes, "No newline at end of file"), which libgit2 has no format-patch for. The shas are checked first.
"""

from pathlib import Path

from ._base import EMPTY_TREE, check_sha, run_git
from .diffs import DIFF_RENAME_LIMIT


def diff_text(path: Path, base_sha: str, head_sha: str, *, binary: bool = False) -> bytes:
    """`git diff` from base to head, renames found; an empty base means from nothing (an unrelated head). With
    binary, binary files are in it too, so that `git apply` can apply it."""
    base_sha = base_sha or EMPTY_TREE
    check_sha(base_sha, head_sha)
    options = ["--binary"] if binary else []
    return run_git(
        path,
        "diff",
        "--no-color",
        "--no-ext-diff",
        "--no-textconv",
        "-M",
        f"-l{DIFF_RENAME_LIMIT}",
        *options,
        base_sha,
        head_sha,
    )


def format_patch(path: Path, base_sha: str, head_sha: str) -> bytes:
    """`git format-patch --stdout` of the commits head has and base has not, oldest first, ready for `git am`."""
    check_sha(head_sha)
    if base_sha:
        check_sha(base_sha)
        revisions = f"{base_sha}..{head_sha}"
        return run_git(path, "format-patch", "--stdout", "--no-signature", "--no-color", "-M", revisions)
    return run_git(path, "format-patch", "--stdout", "--no-signature", "--no-color", "-M", "--root", head_sha)
