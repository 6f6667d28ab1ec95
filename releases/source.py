"""Where a build worker reads a build's commit from: the repository's own git directory when this machine holds
it, else a copy of that one commit fetched over the portal's smart HTTP.

A worker on another machine has the database, Redis and SECRET_KEY but not GIT_ROOT. The job carries only the
build's id, so no credential ever passes through Redis: the worker mints a read token for the build's repository
itself (repos/read_tokens.py) and fetches the exact sha into a bare repository of its own, in the build's
directory but outside what the sandbox binds. The token lives FETCH_TOKEN_SECONDS: it is used for this fetch only,
at the start of the build, and never reaches the build's commands, so it need not outlive a build that may run for
hours; smart HTTP checks it at the start of each request, so a large pack that is still streaming when it expires
is not cut off. The copy is removed as soon as the workspace and the buildspec are read from it."""

import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings

from releases.models import Build
from releases.runner import PREFIX
from repos import git, read_tokens

FETCH_TOKEN_SECONDS = 10 * 60


class SourceUnavailable(Exception):
    """The build's commit could not be fetched: the build ends FAULT with this message."""


def portal_url() -> str:
    """Where this machine reaches the portal's web server: PORTAL_INTERNAL_URL when set, else PORTAL_BASE_URL."""
    return settings.PORTAL_INTERNAL_URL or settings.PORTAL_BASE_URL


@contextmanager
def git_directory(build: Build, scratch: Path, *, on_line: Callable[[str], None]) -> Iterator[Path]:
    """A git directory holding build.head_sha, for as long as the with block runs: the repository itself when it
    is on this machine, else a fetched copy made under scratch (and removed afterwards)."""
    repository = build.repository
    if repository.path.exists():
        yield repository.path
        return
    url = f"{portal_url()}/{repository.full_name}.git"
    on_line(f"{PREFIX}The repository is not on this machine: fetching {build.head_sha} from {url}")
    copy = Path(tempfile.mkdtemp(prefix="source-", suffix=".git", dir=scratch))
    try:
        token = read_tokens.mint(repository, seconds=FETCH_TOKEN_SECONDS)
        try:
            git.fetch_commit(url, build.head_sha, copy, username=read_tokens.USERNAME, password=token)
        except git.GitError as error:
            raise SourceUnavailable(f"DOWNLOAD_SOURCE failed: {error}") from error
        on_line(f"{PREFIX}Fetched {build.head_sha} from {url}")
        yield copy
    finally:
        shutil.rmtree(copy, ignore_errors=True)
