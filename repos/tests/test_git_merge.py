"""Merges, squashes, rebases and line edits for pull requests, on real repositories built with the git CLI."""

import os
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from repos import git
from repos.tests.worktree import run

ALICE = git.Person(name="Alice", email="alice@example.com", when=datetime(2024, 5, 1, 12, 0, tzinfo=UTC))
PORTAL = git.Person(name="Portal", email="portal@example.com")


@pytest.fixture
def bare(tmp_path) -> Path:
    path = tmp_path / "project.git"
    git.init_bare(path)
    return path


def commit(work: Path, message: str, files: dict[str, bytes | None], *, author: str = "Bob") -> str:
    """Write (or delete, for None) files in the work tree and commit them as author."""
    for name, content in files.items():
        target = work / name
        if content is None:
            target.unlink()
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
    run(work, "add", "-A")
    run(work, "commit", "-q", "--allow-empty", "-m", message, env=_identity(author))
    return run(work, "rev-parse", "HEAD")


def _identity(author: str) -> dict[str, str]:
    email = f"{author.lower()}@example.com"
    return os.environ | {
        "GIT_AUTHOR_NAME": author,
        "GIT_AUTHOR_EMAIL": email,
        "GIT_COMMITTER_NAME": author,
        "GIT_COMMITTER_EMAIL": email,
    }


def publish(work: Path, bare: Path) -> None:
    run(work, "push", "-q", "--force", str(bare), "refs/heads/*:refs/heads/*")


def blob_text(bare: Path, sha: str, file_path: str) -> bytes:
    data, _size = git.read_blob(bare, git.entry(bare, sha, file_path).sha)
    return data


@pytest.fixture
def diverged(work, bare) -> dict[str, str]:
    """main and feature both moved on from a shared start, touching different files."""
    start = commit(
        work, "Start", {"a.txt": b"1\n2\n3\n", "b.txt": b"x\ny\n", "src/lib/util.py": b"def f():\n    pass\n"}
    )
    run(work, "checkout", "-q", "-b", "feature")
    feature = commit(work, "Change a", {"a.txt": b"one\n2\n3\n"})
    run(work, "checkout", "-q", "main")
    main = commit(work, "Change b", {"b.txt": b"x\nY\n"}, author="Carol")
    publish(work, bare)
    return {"start": start, "main": main, "feature": feature}


@pytest.fixture
def conflicting(work, bare) -> dict[str, str]:
    """main and feature changed the same lines of a.txt and src/c.txt differently."""
    start = commit(work, "Start", {"a.txt": b"1\n", "src/c.txt": b"c\n", "ok.txt": b"ok\n"})
    run(work, "checkout", "-q", "-b", "feature")
    feature = commit(work, "Feature", {"a.txt": b"feature\n", "src/c.txt": b"feature\n", "ok.txt": b"fine\n"})
    run(work, "checkout", "-q", "main")
    main = commit(work, "Main", {"a.txt": b"main\n", "src/c.txt": b"main\n"})
    publish(work, bare)
    return {"start": start, "main": main, "feature": feature}


def test_a_clean_merge_commit_has_both_parents_and_both_changes(bare, diverged):
    assert git.merge_check(bare, diverged["main"], diverged["feature"]) == []

    sha = git.merge_commit(
        bare, diverged["main"], diverged["feature"], message="Merge feature", author=ALICE, committer=PORTAL
    )

    merged = git.commit(bare, sha)
    assert merged.parents == (diverged["main"], diverged["feature"])
    assert merged.message == "Merge feature\n"
    assert (merged.author.name, merged.author.email, merged.author.when) == (ALICE.name, ALICE.email, ALICE.when)
    assert merged.committer.name == "Portal"
    assert abs(merged.committer.when - datetime.now(UTC)) < timedelta(minutes=1)
    assert blob_text(bare, sha, "a.txt") == b"one\n2\n3\n"
    assert blob_text(bare, sha, "b.txt") == b"x\nY\n"
    # Nothing moved: the caller decides which ref gets the commit.
    assert git.branch_sha(bare, "main") == diverged["main"]


def test_a_person_with_a_time_zone_keeps_it(bare, diverged):
    when = datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    author = git.Person(name="Zoë", email="zoe@example.com", when=when)

    sha = git.squash_commit(
        bare, diverged["main"], diverged["feature"], message="Squash", author=author, committer=author
    )

    assert run(bare, "log", "-1", "--format=%an %ad", "--date=iso", sha) == "Zoë 2024-01-02 03:04:05 +0200"


def test_conflicts_are_listed_and_raised_with_their_paths(bare, conflicting):
    assert git.merge_check(bare, conflicting["main"], conflicting["feature"]) == ["a.txt", "src/c.txt"]

    with pytest.raises(git.MergeConflict) as raised:
        git.merge_commit(bare, conflicting["main"], conflicting["feature"], message="M", author=ALICE, committer=ALICE)

    assert raised.value.paths == ["a.txt", "src/c.txt"]
    assert str(raised.value) == "conflicts in a.txt, src/c.txt"
    assert isinstance(raised.value, git.GitError)
    with pytest.raises(git.MergeConflict):
        git.squash_commit(bare, conflicting["main"], conflicting["feature"], message="S", author=ALICE, committer=ALICE)


def test_squash_makes_one_commit_on_base_with_the_merged_tree(bare, diverged):
    merge = git.merge_commit(bare, diverged["main"], diverged["feature"], message="M", author=ALICE, committer=ALICE)

    sha = git.squash_commit(
        bare, diverged["main"], diverged["feature"], message="Feature, squashed", author=ALICE, committer=PORTAL
    )

    squashed = git.commit(bare, sha)
    assert squashed.parents == (diverged["main"],)
    assert squashed.summary == "Feature, squashed"
    assert git.entry(bare, sha, "").sha == git.entry(bare, merge, "").sha


def test_rebase_replays_each_commit_on_base_keeping_authors_and_messages(work, bare, diverged):
    run(work, "checkout", "-q", "feature")
    second = commit(work, "Add a line to util\n\nWith a body.", {"src/lib/util.py": b"def f():\n    return 1\n"})
    third = commit(work, "Add notes", {"docs/notes.md": b"# Notes\n"}, author="Dave")
    publish(work, bare)

    sha = git.rebase_commits(bare, diverged["main"], third, committer=PORTAL)

    replayed = git.commits_between(bare, diverged["main"], sha)
    assert [c.message for c in replayed] == ["Change a\n", "Add a line to util\n\nWith a body.\n", "Add notes\n"]
    assert [c.author.name for c in replayed] == ["Bob", "Bob", "Dave"]
    assert {c.committer.name for c in replayed} == {"Portal"}
    assert replayed[0].parents == (diverged["main"],)
    assert [c.sha for c in replayed][-1] == sha
    assert {c.sha for c in replayed}.isdisjoint({diverged["feature"], second, third})
    assert blob_text(bare, sha, "b.txt") == b"x\nY\n"
    assert blob_text(bare, sha, "a.txt") == b"one\n2\n3\n"
    assert blob_text(bare, sha, "docs/notes.md") == b"# Notes\n"
    assert git.branch_sha(bare, "feature") == third


def test_rebase_skips_merge_commits_and_changes_base_already_has(work, bare, diverged):
    run(work, "checkout", "-q", "-b", "side", diverged["start"])
    commit(work, "Side work", {"side.txt": b"side\n"})
    run(work, "checkout", "-q", "feature")
    run(work, "merge", "-q", "--no-ff", "-m", "Merge side", "side", env=_identity("Bob"))
    # The same change main already made comes out empty and is dropped, as git rebase drops it.
    commit(work, "Same as main", {"b.txt": b"x\nY\n"})
    head = run(work, "rev-parse", "HEAD")
    publish(work, bare)

    sha = git.rebase_commits(bare, diverged["main"], head, committer=PORTAL)

    replayed = git.commits_between(bare, diverged["main"], sha)
    assert sorted(c.summary for c in replayed) == ["Change a", "Side work"]
    assert all(len(c.parents) == 1 for c in replayed)
    assert blob_text(bare, sha, "side.txt") == b"side\n"


def test_rebase_is_a_fast_forward_when_base_is_already_in_head(bare, diverged):
    assert git.rebase_commits(bare, diverged["start"], diverged["feature"], committer=PORTAL) == diverged["feature"]
    assert git.rebase_commits(bare, diverged["feature"], diverged["feature"], committer=PORTAL) == diverged["feature"]
    # Nothing of head is missing from base: there is nothing to replay.
    assert git.rebase_commits(bare, diverged["main"], diverged["start"], committer=PORTAL) == diverged["main"]


def test_rebase_conflict_names_the_files_of_the_commit_that_does_not_apply(work, bare, diverged):
    run(work, "checkout", "-q", "feature")
    head = commit(work, "Clash with main", {"b.txt": b"x\nfeature\n", "new.txt": b"new\n"})
    publish(work, bare)

    with pytest.raises(git.MergeConflict) as raised:
        git.rebase_commits(bare, diverged["main"], head, committer=PORTAL)

    assert raised.value.paths == ["b.txt"]


def test_patch_id_is_the_same_after_a_rebase_and_after_a_message_only_amend(work, bare, diverged):
    original = git.patch_id(bare, diverged["main"], diverged["feature"])
    rebased = git.rebase_commits(bare, diverged["main"], diverged["feature"], committer=PORTAL)
    run(work, "checkout", "-q", "feature")
    run(work, "commit", "-q", "--amend", "-m", "Better words", env=_identity("Bob"))
    amended = run(work, "rev-parse", "HEAD")
    publish(work, bare)

    assert len(original) == 40 and original != "0" * 40
    assert git.patch_id(bare, diverged["main"], rebased) == original
    assert git.patch_id(bare, diverged["main"], amended) == original
    # Against the old base the same change is still the same change.
    assert git.patch_id(bare, diverged["start"], diverged["feature"]) == original


def test_patch_id_changes_with_the_code(work, bare, diverged):
    original = git.patch_id(bare, diverged["main"], diverged["feature"])
    run(work, "checkout", "-q", "feature")
    code_change = commit(work, "More", {"a.txt": b"one\ntwo\n3\n"})
    run(work, "checkout", "-q", "-b", "one-image", diverged["feature"])
    one_image = commit(work, "Image", {"logo.png": b"\x89PNG\x00\x01"})
    run(work, "checkout", "-q", "-b", "other-image", diverged["feature"])
    other_image = commit(work, "Image", {"logo.png": b"\x89PNG\x00\x02"})
    publish(work, bare)

    assert git.patch_id(bare, diverged["main"], code_change) != original
    # A binary file's diff shows no content: its blob ids tell the two changes apart.
    assert git.patch_id(bare, diverged["feature"], one_image) != git.patch_id(bare, diverged["feature"], other_image)
    assert git.patch_id(bare, diverged["feature"], diverged["main"]) != original
    assert git.patch_id(bare, diverged["feature"], diverged["start"]) == "0" * 40


def test_edit_lines_replaces_a_range_in_a_nested_crlf_file(work, bare):
    parent = commit(
        work,
        "Start",
        {"src/app/main.c": b"one\r\ntwo\r\nthree\r\n", "src/app/other.c": b"other\n", "src/top.c": b"top\n"},
    )
    publish(work, bare)

    sha = git.edit_lines(
        bare,
        parent,
        "src/app/main.c",
        2,
        2,
        "TWO\nand more\n",
        message="Apply suggestion",
        author=ALICE,
        committer=PORTAL,
    )

    assert blob_text(bare, sha, "src/app/main.c") == b"one\r\nTWO\r\nand more\r\nthree\r\n"
    assert blob_text(bare, sha, "src/app/other.c") == b"other\n"
    assert blob_text(bare, sha, "src/top.c") == b"top\n"
    edited = git.commit(bare, sha)
    assert edited.parents == (parent,)
    assert (edited.summary, edited.author.name, edited.committer.name) == ("Apply suggestion", "Alice", "Portal")
    assert [f.path for f in git.diff(bare, parent, sha)] == ["src/app/main.c"]
    assert git.branch_sha(bare, "main") == parent


def test_edit_lines_keeps_a_missing_final_newline_and_the_file_mode(work, bare):
    (work / "run.sh").write_bytes(b"#!/bin/sh\necho a\necho b")
    (work / "run.sh").chmod(0o755)
    parent = commit(work, "Script", {})
    publish(work, bare)

    last = git.edit_lines(bare, parent, "run.sh", 3, 3, "echo c", message="Edit", author=ALICE, committer=ALICE)
    cut = git.edit_lines(bare, parent, "run.sh", 2, 3, "", message="Cut", author=ALICE, committer=ALICE)
    middle = git.edit_lines(
        bare, parent, "run.sh", 2, 2, "echo 1\necho 2", message="Edit", author=ALICE, committer=ALICE
    )

    assert blob_text(bare, last, "run.sh") == b"#!/bin/sh\necho a\necho c"
    assert blob_text(bare, cut, "run.sh") == b"#!/bin/sh"
    assert blob_text(bare, middle, "run.sh") == b"#!/bin/sh\necho 1\necho 2\necho b"
    assert git.entry(bare, last, "run.sh").mode == 0o100755


@pytest.mark.parametrize(
    ("file_path", "start", "end"),
    [("missing.txt", 1, 1), ("src", 1, 1), ("image.bin", 1, 1), ("a.txt", 0, 1), ("a.txt", 2, 4), ("a.txt", 3, 2)],
)
def test_edit_lines_refuses_missing_binary_files_and_ranges_outside_the_file(work, bare, file_path, start, end):
    parent = commit(work, "Start", {"a.txt": b"1\n2\n3\n", "src/b.txt": b"b\n", "image.bin": b"\x00\x01\x02"})
    publish(work, bare)

    with pytest.raises(git.GitError):
        git.edit_lines(bare, parent, file_path, start, end, "x", message="Edit", author=ALICE, committer=ALICE)


def test_delete_ref_deletes_only_when_the_ref_did_not_move(bare):
    first = git.commit_files(bare, "topic", {"a.txt": b"1\n"}, "One", name="Bob", email="bob@example.com")
    second = git.commit_files(bare, "topic", {"a.txt": b"2\n"}, "Two", name="Bob", email="bob@example.com")

    with pytest.raises(git.GitError, match="moved"):
        git.delete_ref(bare, "refs/heads/topic", first)
    assert git.branch_sha(bare, "topic") == second

    git.delete_ref(bare, "refs/heads/topic", second)
    with pytest.raises(git.RefNotFound):
        git.branch_sha(bare, "topic")
    with pytest.raises(git.GitError):
        git.delete_ref(bare, "refs/heads/topic", second)
    with pytest.raises(git.GitError):
        git.delete_ref(bare, "topic", second)


def test_changed_ranges_give_zero_context_hunks(work, bare):
    old = commit(work, "Start", {"f.txt": b"1\n2\n3\n4\n5\n", "gone.txt": b"g\n", "same.txt": b"s\n"})
    new = commit(work, "Edit", {"f.txt": b"1\nTWO\n3\n4\ninserted\n5\n", "gone.txt": None, "added.txt": b"a\nb\n"})
    publish(work, bare)

    assert git.changed_ranges(bare, old, new, "f.txt") == [(2, 1, 2, 1), (4, 0, 5, 1)]
    assert git.changed_ranges(bare, old, new, "same.txt") == []
    assert git.changed_ranges(bare, old, new, "gone.txt") is None
    assert git.changed_ranges(bare, old, new, "added.txt") == [(0, 0, 1, 2)]


def test_file_lines_are_text_without_line_endings(work, bare):
    sha = commit(
        work,
        "Files",
        {
            "crlf.txt": b"a\r\nb\r\n",
            "partial.txt": b"x\ny",
            "latin.txt": b"caf\xe9\n",
            "bin.dat": b"\x00\xff",
            "e": b"",
        },
    )
    publish(work, bare)

    assert git.file_lines(bare, sha, "crlf.txt") == ["a", "b"]
    assert git.file_lines(bare, sha, "partial.txt") == ["x", "y"]
    assert git.file_lines(bare, sha, "latin.txt") == ["caf\ufffd"]
    assert git.file_lines(bare, sha, "e") == []
    assert git.file_lines(bare, sha, "bin.dat") is None
    assert git.file_lines(bare, sha, "missing.txt") is None


def test_is_ancestor_follows_history(bare, diverged):
    assert git.is_ancestor(bare, diverged["start"], diverged["feature"])
    assert git.is_ancestor(bare, diverged["main"], diverged["main"])
    assert not git.is_ancestor(bare, diverged["feature"], diverged["start"])
    assert not git.is_ancestor(bare, diverged["main"], diverged["feature"])


@pytest.mark.parametrize("bad", ["main", "HEAD~1", "--all", "0" * 39])
def test_every_sha_argument_must_be_an_object_id(bare, diverged, bad):
    with pytest.raises(git.GitError):
        git.merge_check(bare, bad, diverged["feature"])
    with pytest.raises(git.GitError):
        git.patch_id(bare, diverged["main"], bad)
    with pytest.raises(git.GitError):
        git.is_ancestor(bare, bad, diverged["main"])
    with pytest.raises(git.GitError):
        git.delete_ref(bare, "refs/heads/main", bad)
