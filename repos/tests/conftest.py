"""Fixtures shared by the git transport tests."""

import os

import pytest

from repos.tests.api_client import as_alice, as_bob, as_carol, as_mallory  # noqa: F401 (fixtures)
from repos.tests.worktree import work  # noqa: F401 (a fixture)


@pytest.fixture
def server(live_server, settings):
    """The live web server, with git hooks and printed links pointing at it."""
    settings.PORTAL_INTERNAL_URL = live_server.url
    settings.PORTAL_BASE_URL = live_server.url
    return live_server.url


@pytest.fixture
def git_env(tmp_path):
    """An environment for the git client with no user or system configuration and no prompts."""
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_") and "proxy" not in k.lower()}
    return env | {
        "HOME": str(home),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_AUTHOR_NAME": "Test",
        "GIT_AUTHOR_EMAIL": "test@example.com",
        "GIT_COMMITTER_NAME": "Test",
        "GIT_COMMITTER_EMAIL": "test@example.com",
    }
