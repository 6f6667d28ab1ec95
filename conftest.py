"""Shared fixtures: the named people of the house style and real repositories on disk."""

import pytest

from portal import services as accounts
from repos import services as repo_services
from repos.models import Role


@pytest.fixture(autouse=True)
def _isolated_storage(settings, tmp_path):
    """Every test gets its own GIT_ROOT, so repositories never leak between tests."""
    settings.GIT_ROOT = tmp_path / "git"
    settings.GIT_ROOT.mkdir()
    settings.VAR_DIR = tmp_path / "var"
    settings.VAR_DIR.mkdir()


@pytest.fixture(autouse=True)
def _fresh_site_settings():
    """The sign-up flag is remembered by the process and the cache; a test's rolled-back change must not leak."""
    from django.core.cache import cache

    from portal import models

    models._signup_memo[:] = [False, 0.0]
    cache.delete(models.SiteSettings.CACHE_KEY)


def _person(username: str, *, admin: bool = False):
    user = accounts.create_user(
        actor=None,
        username=username,
        email=f"{username}@example.com",
        password="correct horse battery staple",
        is_admin=admin,
    )
    return user


@pytest.fixture
def password():
    return "correct horse battery staple"


@pytest.fixture
def admin(db):
    return _person("root", admin=True)


@pytest.fixture
def alice(db):
    return _person("alice")


@pytest.fixture
def bob(db):
    return _person("bob")


@pytest.fixture
def carol(db):
    return _person("carol")


@pytest.fixture
def mallory(db):
    return _person("mallory")


@pytest.fixture
def private_repo(alice, bob, carol):
    """alice/project: private, alice owns, bob writes, carol reads, with one README commit on main."""
    repo = repo_services.create_repository(actor=alice, owner=alice, name="project", initialize=True)
    repo_services.set_collaborator(repo, bob, actor=alice, role=Role.WRITE)
    repo_services.set_collaborator(repo, carol, actor=alice, role=Role.READ)
    return repo


# Git over SSH: the real server, real keys on disk, and the environment for the real git and ssh.


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix, tmp_path_factory):
    """SQLite tests use a database file, not shared memory.

    Subprocesses (`manage.py serv` run the way OpenSSH runs it) must open the test database, and
    the SSH server's worker threads write to it alongside the live server: a file with WAL handles
    both, where SQLite's shared in-memory cache fails with "database table is locked"."""
    from django.conf import settings

    database = settings.DATABASES["default"]
    if database["ENGINE"] == "django.db.backends.sqlite3":
        database.setdefault("TEST", {})["NAME"] = str(tmp_path_factory.mktemp("db") / "test.sqlite3")


@pytest.fixture
def django_subprocess_env(settings, transactional_db):
    """Environment for a `manage.py` subprocess that sees this test's database and storage."""
    import os

    from django.db import connection

    db = connection.settings_dict
    if db["ENGINE"] == "django.db.backends.sqlite3":
        url = f"sqlite:///{db['NAME']}"
    else:
        auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
        url = f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    return env | {
        "DATABASE_URL": url,
        "GIT_ROOT": str(settings.GIT_ROOT),
        "PORTAL_VAR_DIR": str(settings.VAR_DIR),
        "PORTAL_INTERNAL_URL": settings.PORTAL_INTERNAL_URL,
        # The same key signs and verifies provenance and encrypts secrets in both processes.
        "SECRET_KEY": settings.SECRET_KEY,
        "DJANGO_SETTINGS_MODULE": "portal.settings",
    }


@pytest.fixture
def ssh_server(live_server, settings, tmp_path):
    """The embedded SSH server on a free loopback port, with git hooks pointed at the live web server."""
    from repos.sshd import BackgroundServer

    settings.PORTAL_INTERNAL_URL = live_server.url
    settings.PORTAL_SSH_HOST_KEY = tmp_path / "ssh_host_ed25519_key"
    server = BackgroundServer("127.0.0.1", 0, settings.PORTAL_SSH_HOST_KEY).start()
    settings.PORTAL_SSH_PORT = server.port
    yield server
    server.stop()


@pytest.fixture
def ssh_keypair(tmp_path):
    """Make an ed25519 key pair on disk with ssh-keygen; returns (private key path, public key line)."""
    import subprocess

    def make(name: str) -> tuple[str, str]:
        path = tmp_path / "keys" / name
        path.parent.mkdir(exist_ok=True)
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{name}@example.com", "-f", str(path)], check=True
        )
        return str(path), (path.parent / f"{name}.pub").read_text().strip()

    return make


@pytest.fixture
def git_ssh_env(ssh_server, tmp_path):
    """git_ssh_env(keyfile): an environment in which git and ssh use only that key against ssh_server."""
    import os
    import shlex

    home = tmp_path / "home"
    home.mkdir(exist_ok=True)

    def make(keyfile: str) -> dict[str, str]:
        ssh = shlex.join(
            [
                "ssh",
                "-F",
                "/dev/null",
                "-i",
                keyfile,
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "IdentityAgent=none",
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "BatchMode=yes",
                "-o",
                "LogLevel=ERROR",
                "-p",
                str(ssh_server.port),
            ]
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_") and k != "SSH_AUTH_SOCK"}
        return env | {
            "HOME": str(home),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_SSH_COMMAND": ssh,
            "GIT_AUTHOR_NAME": "Test",
            "GIT_AUTHOR_EMAIL": "test@example.com",
            "GIT_COMMITTER_NAME": "Test",
            "GIT_COMMITTER_EMAIL": "test@example.com",
        }

    return make


# Redis: portal/pytest_plugin.py exports REDIS_URL for the whole session (a Valkey of its own, or the
# REDIS_URL given, on a database of its own) before the settings are read.


@pytest.fixture
def rq_queues():
    """The rq queues (default, builds, deploys) on the session's Redis, empty at the start and end of the test."""
    import django_rq

    connection = django_rq.get_connection("default")
    connection.flushdb()
    yield {name: django_rq.get_queue(name) for name in ("default", "builds", "deploys")}
    connection.flushdb()


@pytest.fixture
def email_backend(settings):
    """Mail kept in django.core.mail.outbox, with links to the portal's public address."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.PORTAL_BASE_URL = "https://git.example.com"


@pytest.fixture
def run_worker(rq_queues):
    """run_worker(): a real rq worker runs every job of the default queue, then stops."""
    from portal.jobs import SimpleWorker

    def run() -> None:
        queue = rq_queues["default"]
        SimpleWorker([queue], connection=queue.connection).work(burst=True)

    return run


@pytest.fixture
def receivers():
    """receivers(host, status=…, statuses=…, delay=…): webhook receivers on loopback addresses, stopped at the end."""
    from portal.tests.receiver import Receiver

    started = []

    def start(host: str = "127.0.0.1", **answer) -> "Receiver":
        receiver = Receiver(host, **answer)
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        receiver.stop()


# Browser: the system's Chromium driven by Playwright, launched once per test session.

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for the whole session (CHROMIUM_PATH overrides where it lives)."""
    import os

    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the ORM calls the tests make are still synchronous.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"), args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture
def new_page(browser, live_server):
    """new_page(): a tab in a fresh browser context (its own cookies) on the live server, closed after the test.

    Whatever the Content-Security-Policy blocked on any page of the test, as Chromium's console reports it,
    fails the test after it ran.
    """
    contexts = []
    blocked: list[str] = []

    def report(message) -> None:
        if "Content Security Policy" in message.text:
            blocked.append(f"{message.location.get('url', '')}: {message.text}")

    def make():
        context = browser.new_context(base_url=live_server.url)
        context.set_default_timeout(15_000)
        context.on("console", report)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()
    assert not blocked, "the Content-Security-Policy blocked:\n" + "\n".join(blocked)


@pytest.fixture
def sign_in_page(new_page, password):
    """sign_in_page(user): a new tab signed in as user through the real sign-in form."""

    def make(user):
        page = new_page()
        page.goto("/accounts/login/")
        page.fill("input[name=login]", user.username)
        page.fill("input[name=password]", password)
        page.click("form.stack button[type=submit]")
        page.wait_for_url(lambda url: "/accounts/login/" not in url)
        return page

    return make
