"""Test session environment: a Redis for the queues, and a git identity and HOME of its own.

Registered with `-p portal.pytest_plugin` in pyproject's addopts, because it must run before pytest-django
imports the settings: RQ_QUEUES and CACHES are computed from REDIS_URL when portal.settings is imported.

Under pytest-xdist (`-n 2`) each worker process is a session of its own here: its own temporary directory, its
own Redis (a Valkey of its own, or its own database number on the REDIS_URL given) and its own range of sandbox
uids; pytest-django gives each its own test database. The controller, which runs no test, uses no Redis.
"""

import atexit
import os
import shutil
import tempfile
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest
import redis

from portal import supervisor

# The database number the test session uses on a Redis given by REDIS_URL; it is flushed at session start.
# xdist worker gwN uses the number N above it.
TEST_REDIS_DB = int(os.environ.get("PORTAL_TEST_REDIS_DB", "9"))
# How far each xdist worker's sandbox uids are moved (PORTAL_SANDBOX_UID_OFFSET): past the builds' and the
# targets' ranges of the worker before it (releases.jobs, releases.deploy_job).
WORKER_UID_OFFSET = 200_000

_valkey = None


def with_db(url: str, db: int) -> str:
    """The same Redis URL with another database number (path for redis://, ?db= for unix://)."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        query = [(key, value) for key, value in parse_qsl(parts.query) if key != "db"] + [("db", str(db))]
        return urlunsplit(parts._replace(query=urlencode(query)))
    return urlunsplit(parts._replace(path=f"/{db}"))


def xdist_worker_index() -> int:
    """N of the xdist worker gwN this process is, 0 when it runs the tests alone."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    return int(worker.removeprefix("gw")) if worker.startswith("gw") else 0


def _is_xdist_controller(namespace) -> bool:
    """Whether this process hands the tests to xdist workers (and runs none itself)."""
    return bool(getattr(namespace, "numprocesses", None)) and "PYTEST_XDIST_WORKER" not in os.environ


def _set_git_identity(home: Path) -> None:
    # A HOME of its own keeps the developer's ~/.gitconfig and ~/.ssh out of the tests.
    os.environ["HOME"] = str(home)
    os.environ["XDG_CONFIG_HOME"] = str(home / ".config")
    os.environ["GIT_CONFIG_NOSYSTEM"] = "1"
    os.environ["GIT_AUTHOR_NAME"] = os.environ["GIT_COMMITTER_NAME"] = "Portal Tests"
    os.environ["GIT_AUTHOR_EMAIL"] = os.environ["GIT_COMMITTER_EMAIL"] = "tests@portal.invalid"


def _stop_valkey() -> None:
    global _valkey
    if _valkey is not None:
        supervisor.stop_process(_valkey, timeout=5)
        _valkey = None


def _use_redis(workdir: Path) -> str:
    """Export REDIS_URL: the one given (on its own database, flushed), or a Valkey started for this session."""
    global _valkey
    given = os.environ.get("REDIS_URL")
    if given:
        url = with_db(given, TEST_REDIS_DB + xdist_worker_index())
        supervisor.wait_for_redis(url, timeout=5)
        redis.Redis.from_url(url).flushdb()
    else:
        socket_path = workdir / "valkey.sock"
        _valkey = supervisor.start_valkey(socket_path, workdir / "valkey", persist=False, quiet=True)
        # A crash of the session must not leave Valkey running either (it also dies with us: PDEATHSIG).
        atexit.register(_stop_valkey)
        url = f"unix://{socket_path}"
        supervisor.wait_for_redis(url, process=_valkey)
    os.environ["REDIS_URL"] = url
    return url


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config, parser, args):
    """Runs before pytest-django reads the settings (its hook is not tryfirst)."""
    namespace = early_config.known_args_namespace
    if getattr(namespace, "help", False) or getattr(namespace, "version", False):
        return
    workdir = Path(tempfile.mkdtemp(prefix="portal-tests-"))
    early_config.stash[_workdir_key] = workdir
    home = workdir / "home"
    home.mkdir()
    _set_git_identity(home)
    # The settings keep their data, and the secret key they make on a first start, under PORTAL_VAR_DIR; the tests
    # keep theirs out of the checkout's var/ (each test gets a folder of its own on top, see conftest.py).
    os.environ["PORTAL_VAR_DIR"] = str(workdir / "var")
    # whitenoise warns on every request handler it builds when STATIC_ROOT is missing; tests collect nothing.
    static_root = workdir / "staticfiles"
    static_root.mkdir()
    os.environ["STATIC_ROOT"] = str(static_root)
    # Live servers answer from threads of their own; a connection kept after a request there would still hold
    # the test database when pytest-django drops it at the end.
    os.environ["DATABASE_CONN_MAX_AGE"] = "0"
    # Builds and targets' hooks run as uids computed from their ids, which every worker's database hands out alike.
    offset = int(os.environ.get("PORTAL_SANDBOX_UID_OFFSET", "0")) + xdist_worker_index() * WORKER_UID_OFFSET
    os.environ["PORTAL_SANDBOX_UID_OFFSET"] = str(offset)
    if not _is_xdist_controller(namespace):
        # The workers inherit the controller's environment: REDIS_URL must still be the one given, if any.
        _use_redis(workdir)


_workdir_key = pytest.StashKey[Path]()


@pytest.fixture(scope="session", autouse=True)
def _fast_password_hasher(django_test_environment):
    """One MD5 round instead of a million of PBKDF2: users are made and signed in all the time in tests.

    Processes that run the portal with its own settings (`manage.py serve` in test_serve.py) still hash with
    the production hasher."""
    from django.test.utils import override_settings

    with override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]):
        yield


def pytest_report_header(config):
    if _is_xdist_controller(config.option):
        given = os.environ.get("REDIS_URL")
        return f"redis: {f'{given}, database {TEST_REDIS_DB}+N for worker gwN' if given else 'a Valkey per worker'}"
    return f"redis: {os.environ.get('REDIS_URL')}"


def pytest_unconfigure(config):
    _stop_valkey()
    workdir = config.stash.get(_workdir_key, None)
    if workdir is not None:
        shutil.rmtree(workdir, ignore_errors=True)
