"""The one check of a full object id, and the git functions that refuse anything else before running git."""

import pytest

from repos import git


@pytest.mark.parametrize("value", ["0" * 40, "a" * 40, "0123456789abcdef" * 4])
def test_a_full_object_id_is_a_sha(value):
    assert git.is_sha(value)
    git.check_sha(value)


@pytest.mark.parametrize(
    "value",
    ["", "a" * 7, "a" * 39, "a" * 41, "A" * 40, "g" * 40, "a" * 40 + "\n", "-" + "a" * 39, None, 40, b"a" * 40],
)
def test_anything_else_is_not(value):
    assert not git.is_sha(value)
    with pytest.raises(git.GitError, match="not an object id"):
        git.check_sha("a" * 40, value)


def test_git_functions_refuse_a_name_where_they_need_an_id(tmp_path):
    path = tmp_path / "project.git"
    git.init_bare(path)
    main = git.commit_files(path, "main", {"README.md": b"hello\n"}, "first", name="Alice", email="a@example.com")
    for call in [
        lambda: git.update_ref(path, "refs/heads/main", "main", main),
        lambda: git.delete_ref(path, "refs/heads/main", "HEAD"),
        lambda: git.merge_base(path, main, "--all"),
        lambda: git.commits_between(path, "main", main),
        lambda: git.log(path, "main", file_path="README.md"),
        lambda: git.blame(path, "main", "README.md"),
        lambda: git.patch_id(path, main, main[:12]),
    ]:
        with pytest.raises(git.GitError, match="not an object id"):
            call()
    assert not git.has_object(path, main[:12])
    assert git.has_object(path, main)
    assert git.branch_sha(path, "main") == main


def test_the_hooks_git_runs_are_where_the_package_says():
    assert (git.HOOKS_DIR / "pre-receive").is_file()
    assert (git.HOOKS_DIR / "post-receive").is_file()
