"""A git working tree for building test repositories with the real git."""

import os
import subprocess
from pathlib import Path

import pytest


def run(cwd: Path, *args: str | bytes, env: dict | None = None) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, env=env).stdout.decode().strip()


@pytest.fixture
def work(tmp_path) -> Path:
    """An empty working tree on main."""
    path = tmp_path / "work"
    path.mkdir()
    run(path, "init", "-q", "-b", "main")
    return path


def commit_all(work: Path, message: str, *, when: int | None = None) -> str:
    # The submodule has no checkout here: leave its entry alone.
    run(work, "add", "-A", "--", ".", ":(exclude)vendor/lib")
    env = os.environ | ({"GIT_AUTHOR_DATE": f"{when} +0000", "GIT_COMMITTER_DATE": f"{when} +0000"} if when else {})
    run(work, "commit", "-q", "-m", message, env=env)
    return run(work, "rev-parse", "HEAD")
