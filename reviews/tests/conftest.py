"""Pull request fixtures: branches with real commits in alice/project, and real pushes over smart HTTP."""

from pathlib import Path

import pytest

from repos import git
from repos.tests.api_client import as_alice, as_bob, as_carol, as_mallory  # noqa: F401 (fixtures)
from repos.tests.conftest import git_env, server  # noqa: F401 (fixtures)
from repos.tests.test_http import clone, repo_url, run_git, token_for
from reviews import webhooks
from reviews.models import PullRequest, Webhook


def make_branch(repo, name: str, files: dict[str, bytes], message: str = "", *, start: str = "main") -> str:
    """Branch name off start and commit files on it (top-level files); returns the new head."""
    if name not in {b.name for b in git.branches(repo.path)}:
        git.update_ref(repo.path, f"refs/heads/{name}", git.branch_sha(repo.path, start), git.ZERO_SHA)
    return commit(repo, name, files, message)


def commit(repo, branch: str, files: dict[str, bytes], message: str = "", *, email: str = "bob@example.com") -> str:
    return git.commit_files(
        repo.path, branch, files, message or f"change {', '.join(files)}", name=email.split("@")[0], email=email
    )


class Clone:
    """A working copy that pushes as one user over smart HTTP, through the real hooks."""

    def __init__(self, path: Path, env: dict, url: str):
        self.path, self.env, self.url = path, env, url

    def git(self, *args: str, check: bool = True):
        result = run_git(*args, env=self.env, cwd=self.path)
        assert not check or result.returncode == 0, result.stderr
        return result

    def write(self, name: str, content: str) -> None:
        (self.path / name).write_text(content)

    def commit(self, message: str, **files: str) -> str:
        for name, content in files.items():
            self.write(name.replace("__", "."), content)
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)
        return self.git("rev-parse", "HEAD").stdout.strip()

    def push(self, *refspecs: str, check: bool = True):
        return self.git("push", self.url, *refspecs, check=check)


@pytest.fixture
def clone_as(server, git_env, tmp_path):  # noqa: F811 (fixtures)
    """clone_as(user): a fresh clone of alice/project that pushes as user."""

    def make(user) -> Clone:
        url = repo_url(server, user=user, token=token_for(user))
        work, result = clone(url, git_env, tmp_path, f"work-{user.username}")
        assert result.returncode == 0, result.stderr
        env = git_env | {"GIT_AUTHOR_EMAIL": user.email, "GIT_COMMITTER_EMAIL": user.email}
        return Clone(work, env, url)

    return make


@pytest.fixture
def pull_request(private_repo, bob):
    """A pull request row in alice/project, for tests of what follows it (notifications, jobs): no branches."""
    return PullRequest.objects.create(
        repository=private_repo,
        number=3,
        title="Fix the parser",
        author=bob,
        base_branch="main",
        head_branch="feature",
        head_sha="a" * 40,
        base_sha="b" * 40,
    )


SECRET = "s3cret-for-signing"


@pytest.fixture
def allow_loopback(settings):
    """Deliveries may reach 127.0.0.1 alone, and retries wait no time."""
    settings.PORTAL_WEBHOOK_ALLOWED_HOSTS = "127.0.0.1"
    settings.PORTAL_WEBHOOK_RETRY_DELAYS = [0.0]
    settings.PORTAL_BASE_URL = "https://git.example.com"


@pytest.fixture
def hook_to(private_repo, alice, allow_loopback):
    """hook_to(receiver, events=…): an active Gitea hook of alice/project, signed with SECRET."""

    def make(receiver, *, events=tuple(webhooks.payloads.EVENTS), **options) -> Webhook:
        fields = {"url": receiver.url, "type": "gitea", "secret": SECRET, "events": list(events), "active": True}
        return webhooks.save_webhook(None, actor=alice, repository=private_repo, **(fields | options))

    return make
