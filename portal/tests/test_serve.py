"""`manage.py serve` as a real process: it starts everything, prints how to reach it, and leaves nothing behind."""

import http.cookiejar
import os
import re
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.conf import settings

READY_TIMEOUT = 120
STOP_TIMEOUT = 60


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Serve:
    process: subprocess.Popen
    var_dir: Path
    database: Path
    http_port: int
    ssh_port: int
    lines: list[str] = field(default_factory=list)
    closed: threading.Event = field(default_factory=threading.Event)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def read(self) -> None:
        # The pipe closes only when every process holding it (serve and all its children) has exited.
        for line in self.process.stdout:
            self.lines.append(line)
        self.closed.set()

    def wait_for(self, what: str, condition, timeout: float = READY_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            if self.process.poll() is not None:
                pytest.fail(f"serve exited ({self.process.returncode}) while waiting for {what}:\n{self.output}")
            time.sleep(0.2)
        pytest.fail(f"timed out waiting for {what}:\n{self.output}")

    def stop(self, signum: int) -> int:
        self.process.send_signal(signum)
        return self.process.wait(timeout=STOP_TIMEOUT)

    def child_pid(self, name: str) -> int:
        """The pid of the child's latest start."""
        return int(re.findall(rf"(?:started|restarted) {name} \(pid (\d+)\)", self.output)[-1])


def start_serve(var_dir: Path, database: Path, stop_timeout: int, extra_env: dict[str, str] | None = None) -> Serve:
    env = {
        name: value
        for name, value in os.environ.items()
        # A first start as `make run` does it: production mode, nothing configured but ports and where the data goes.
        if name
        not in (
            "REDIS_URL",
            "PORTAL_BASE_URL",
            "PORTAL_INTERNAL_URL",
            "GIT_ROOT",
            "PORTAL_SSH_HOST_KEY",
            "DEBUG",
            "SECRET_KEY",
            "ALLOWED_HOSTS",
            "STATIC_ROOT",
            "DJANGO_ALLOW_ASYNC_UNSAFE",
        )
    }
    serve = Serve(process=None, var_dir=var_dir, database=database, http_port=free_port(), ssh_port=free_port())
    env.update(
        PORTAL_VAR_DIR=str(var_dir),
        DATABASE_URL=f"sqlite:///{database}",
        PORTAL_HTTP_PORT=str(serve.http_port),
        PORTAL_SSH_PORT=str(serve.ssh_port),
        PORTAL_WEB_WORKERS="1",
        PORTAL_WEB_THREADS="4",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra_env or {})
    serve.process = subprocess.Popen(
        [sys.executable, str(settings.BASE_DIR / "manage.py"), "serve", "--stop-timeout", str(stop_timeout)],
        cwd=settings.BASE_DIR,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    threading.Thread(target=serve.read, daemon=True).start()
    return serve


@pytest.fixture
def serves():
    """Starts serve processes and makes sure none outlives the test, even when an assertion fails."""
    started: list[Serve] = []

    def start(var_dir: Path, database: Path, stop_timeout: int = 10, env: dict[str, str] | None = None) -> Serve:
        serve = start_serve(var_dir, database, stop_timeout, env)
        started.append(serve)
        return serve

    yield start
    for serve in started:
        if serve.process.poll() is None:
            serve.process.kill()
            serve.process.wait()
        for pid in processes_of(serve.var_dir):
            os.kill(pid, signal.SIGKILL)


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (state, ppid, ...), or None if it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()
    except OSError:
        return None


def _live_pids() -> dict[int, list[str]]:
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := _stat(int(entry))) and fields[0] != "Z":
            found[int(entry)] = fields
    return found


def descendants(root: int) -> dict[int, str]:
    """Live descendants of a process, each with its start time (so a reused pid is not mistaken for it)."""
    table = _live_pids()
    children: dict[int, list[int]] = {}
    for pid, fields in table.items():
        children.setdefault(int(fields[1]), []).append(pid)
    found, todo = {}, [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found[child] = table[child][19]
            todo.append(child)
    return found


def still_alive(processes: dict[int, str]) -> list[int]:
    return [
        pid
        for pid, started in processes.items()
        if (fields := _stat(pid)) and fields[0] != "Z" and fields[19] == started
    ]


def processes_of(var_dir: Path) -> list[int]:
    """Live processes that inherited PORTAL_VAR_DIR from serve (those that did not rewrite their environment)."""
    marker = f"PORTAL_VAR_DIR={var_dir}\0".encode()
    found = []
    for pid in _live_pids():
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        if marker in environ and pid != os.getpid():
            found.append(pid)
    return found


def command_lines(pids: list[int]) -> str:
    lines = []
    for pid in pids:
        try:
            lines.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode())
        except OSError:
            pass
    return "\n".join(lines)


def web_answers(serve: Serve) -> bool:
    try:
        status = no_redirects().open(serve.base_url + "/", timeout=5).status
    except urllib.error.HTTPError as error:
        status = error.code
    except OSError:
        return False
    return status == 200 or 300 <= status < 400


def ssh_answers(serve: Serve) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", serve.ssh_port), timeout=5) as ssh:
            return ssh.recv(64).startswith(b"SSH-2.0-")
    except OSError:
        return False


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def no_redirects(jar: http.cookiejar.CookieJar | None = None) -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(
        _NoRedirect, urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar() if jar is None else jar)
    )


def fetch(serve: Serve, path: str) -> tuple[int, dict[str, str], str]:
    """GET a path without following redirects: status, headers and body."""
    try:
        response = no_redirects().open(serve.base_url + path, timeout=10)
    except urllib.error.HTTPError as error:
        response = error
    return response.status, dict(response.headers), response.read().decode(errors="replace")


def log_in(serve: Serve, username: str, password: str) -> tuple[int, str, set[str], urllib.request.OpenerDirector]:
    """Sign in through the real login form: status, redirect target, the cookies set, and the signed-in opener."""
    jar = http.cookiejar.CookieJar()
    opener = no_redirects(jar)
    opener.open(serve.base_url + "/accounts/login/", timeout=10).read()
    csrf = next(cookie.value for cookie in jar if cookie.name == "csrftoken")
    body = urllib.parse.urlencode({"login": username, "password": password, "csrfmiddlewaretoken": csrf}).encode()
    request = urllib.request.Request(serve.base_url + "/accounts/login/", data=body, method="POST")
    try:
        response = opener.open(request, timeout=10)
        status, location = response.status, response.headers.get("Location", "")
    except urllib.error.HTTPError as error:
        status, location = error.code, error.headers.get("Location", "")
    return status, location, {cookie.name for cookie in jar}, opener


def wait_until_ready(serve: Serve) -> dict[int, str]:
    """Wait for the banner and the web server; return every process serve runs by then."""
    serve.wait_for("the banner", lambda: "Portal is running" in serve.output)
    serve.wait_for("the web server", lambda: web_answers(serve))
    serve.wait_for("the SSH server", lambda: ssh_answers(serve))
    return descendants(serve.process.pid)


def assert_everything_stopped(serve: Serve, seen: dict[int, str]) -> None:
    left = sorted(set(still_alive(seen)) | set(processes_of(serve.var_dir)))
    assert not left, f"processes left behind:\n{command_lines(left)}"
    # Every child inherited serve's stdout; the pipe is closed once the last of them is gone.
    assert serve.closed.wait(timeout=10), "a process still holds serve's output open"
    assert "serve: every process has stopped" in serve.output


def test_serve_starts_everything_prints_the_urls_and_sigterm_stops_every_process(serves, tmp_path):
    serve = serves(tmp_path / "var", tmp_path / "portal.sqlite3")
    seen = wait_until_ready(serve)

    output = serve.output
    assert f"http://localhost:{serve.http_port}/" in output
    assert f"ssh://git@localhost:{serve.ssh_port}/<owner>/<repo>.git" in output
    assert f"http://localhost:{serve.http_port}/<owner>/<repo>.git" in output
    assert f"embedded Valkey on unix://{tmp_path / 'var' / 'valkey.sock'}" in output
    running = command_lines(list(seen))
    assert "valkey-server" in running
    assert "gunicorn portal.wsgi" in running
    assert "manage.py sshd" in running
    assert "manage.py rqworker default --with-scheduler" in running
    assert "manage.py rqworker builds" in running and "manage.py rqworker deploys" in running
    assert ssh_answers(serve)

    password = re.search(r"password: +(\S+)", output).group(1)
    status, location, cookies, opener = log_in(serve, "admin", password)
    assert status == 302, f"login answered {status}"
    assert location == "/"
    assert "sessionid" in cookies
    # The printed password is for the first sign-in only: every page asks for a new one.
    try:
        opener.open(serve.base_url + "/", timeout=10)
    except urllib.error.HTTPError as error:
        assert (error.code, error.headers["Location"]) == (302, "/accounts/password/change/")
    else:
        pytest.fail("the first administrator was not sent to change the password")
    status, _, cookies, _ = log_in(serve, "admin", password + "-wrong")
    assert status == 200
    assert "sessionid" not in cookies

    assert serve.stop(signal.SIGTERM) == 0
    assert "received SIGTERM" in serve.output
    # Every child stopped on SIGTERM by itself: nothing had to be killed.
    assert "did not stop" not in serve.output
    assert_everything_stopped(serve, seen)


def test_a_first_start_is_production_mode_with_the_portals_own_pages(serves, tmp_path):
    serve = serves(tmp_path / "var", tmp_path / "portal.sqlite3")
    seen = wait_until_ready(serve)

    status, _, page = fetch(serve, "/no/such/page/anywhere")
    assert status == 404
    # The portal's own page, not Django's debug page with every URL pattern.
    assert "Page not found" in page and 'class="topbar"' in page
    assert "URLconf" not in page and "Traceback" not in page
    # Static files come from collectstatic's folder through whitenoise, with the favicon.
    assert '<link rel="icon" href="/static/portal/favicon.svg"' in page
    status, headers, css = fetch(serve, "/static/portal/portal.css")
    assert status == 200 and ".topbar" in css
    status, headers, _ = fetch(serve, "/favicon.ico")
    assert status == 301 and headers["Location"] == "/static/portal/favicon.svg"
    assert fetch(serve, "/static/portal/favicon.svg")[0] == 200
    assert "Warning" not in serve.output

    assert serve.stop(signal.SIGTERM) == 0
    assert_everything_stopped(serve, seen)


def test_ctrl_c_stops_every_process_and_a_restart_keeps_the_first_admin(serves, tmp_path):
    var_dir, database = tmp_path / "var", tmp_path / "portal.sqlite3"
    first = serves(var_dir, database)
    seen = wait_until_ready(first)
    assert "First start: created the administrator account." in first.output
    # The password stands out: a block of its own, with no warning around it.
    block = first.output.split("=" * 68)[1]
    assert "username:  admin" in block and "password:  " in block
    assert "Warning" not in first.output
    key_file = var_dir / "secret_key"
    key = key_file.read_text()
    assert key_file.stat().st_mode & 0o777 == 0o600

    assert first.stop(signal.SIGINT) == 0
    assert "received SIGINT" in first.output
    assert_everything_stopped(first, seen)

    again = serves(var_dir, database)
    seen = wait_until_ready(again)
    assert "administrator account" not in again.output
    assert "password:" not in again.output
    assert key_file.read_text() == key
    assert again.stop(signal.SIGINT) == 0
    assert_everything_stopped(again, seen)


def test_a_child_that_dies_is_started_again_and_one_that_keeps_failing_stops_everything(serves, tmp_path):
    # Three failures within a minute are too many; a short backoff keeps the test quick.
    env = {"PORTAL_SERVE_MAX_FAILURES": "3", "PORTAL_SERVE_RESTART_BACKOFF": "0.2"}
    serve = serves(tmp_path / "var", tmp_path / "portal.sqlite3", stop_timeout=3, env=env)
    seen = wait_until_ready(serve)

    for failure in (1, 2):
        ssh = serve.child_pid("ssh")
        os.kill(ssh, signal.SIGKILL)
        serve.wait_for("the SSH server again", lambda ssh=ssh: serve.child_pid("ssh") != ssh and ssh_answers(serve))
        assert f"ssh (pid {ssh}) was killed by SIGKILL; starting it again in" in serve.output
        assert f"(failure {failure} of 3)" in serve.output
        # The others kept running all along.
        assert web_answers(serve)
        seen |= descendants(serve.process.pid)

    ssh = serve.child_pid("ssh")
    os.kill(ssh, signal.SIGKILL)

    assert serve.process.wait(timeout=STOP_TIMEOUT) != 0
    assert (
        f"error: ssh (pid {ssh}) was killed by SIGKILL; ssh failed 3 times within 60 seconds, "
        "so it is not started again: stopping everything"
    ) in serve.output
    assert "a child process kept failing; the portal was stopped" in serve.output
    assert_everything_stopped(serve, seen)


SETUP_PUSHER = """
from datetime import timedelta
from django.utils import timezone
from portal import services as accounts
from portal.models import User
from repos import services as repos
admin = User.objects.get(username="admin")
repos.create_repository(actor=admin, owner=admin, name="project", initialize=True)
_, raw = accounts.create_access_token(
    admin, actor=admin, name="push", scopes=["write:repo"], expires_at=timezone.now() + timedelta(days=1)
)
print(raw)
"""


def test_hooks_reach_the_portal_through_its_socket_and_not_over_tcp(serves, tmp_path):
    var_dir, database = tmp_path / "var", tmp_path / "portal.sqlite3"
    serve = serves(var_dir, database)
    seen = wait_until_ready(serve)
    socket_dir = var_dir / "internal"
    assert (socket_dir / "web.sock").is_socket()
    assert stat.S_IMODE(socket_dir.stat().st_mode) == 0o700

    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_") and "proxy" not in k.lower()}
    env |= {"PORTAL_VAR_DIR": str(var_dir), "DATABASE_URL": f"sqlite:///{database}", "DEBUG": "1"}
    env.pop("PORTAL_INTERNAL_URL", None)
    manage = [sys.executable, str(settings.BASE_DIR / "manage.py")]
    setup = subprocess.run([*manage, "shell", "-c", SETUP_PUSHER], env=env, capture_output=True, text=True, timeout=120)
    assert setup.returncode == 0, setup.stderr
    token = setup.stdout.split()[-1]

    home = tmp_path / "home"
    home.mkdir()
    git_env = env | {
        "HOME": str(home),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_AUTHOR_NAME": "Test",
        "GIT_AUTHOR_EMAIL": "test@example.com",
        "GIT_COMMITTER_NAME": "Test",
        "GIT_COMMITTER_EMAIL": "test@example.com",
    }
    url = f"http://admin:{token}@127.0.0.1:{serve.http_port}/admin/project.git"
    work = tmp_path / "work"
    git = ["git", "-C", str(work)]
    assert subprocess.run(["git", "clone", "-q", url, str(work)], env=git_env, capture_output=True).returncode == 0
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "topic"], env=git_env, check=True)
    push = subprocess.run([*git, "push", url, "HEAD:refs/heads/topic"], env=git_env, capture_output=True, text=True)
    # post-receive answered through the socket: it printed the link to open a pull request and recorded the push.
    assert push.returncode == 0, push.stderr
    assert "Create a pull request for 'topic'" in push.stderr
    with sqlite3.connect(database) as db:
        assert db.execute("select ref, protocol from repos_push").fetchall() == [("refs/heads/topic", "http")]
        assert db.execute("select count(*) from repos_pushsession").fetchone() == (0,)

    # Over the public TCP port the hook endpoint does not exist, whatever the method.
    for method in ("GET", "POST"):
        request = urllib.request.Request(
            f"{serve.base_url}/-/internal/hooks/post-receive", data=b"{}" if method == "POST" else None, method=method
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            no_redirects().open(request, timeout=10)
        assert refused.value.code == 404

    assert serve.stop(signal.SIGTERM) == 0
    assert_everything_stopped(serve, seen)


def test_a_data_directory_too_deep_for_a_unix_socket_is_refused_before_anything_starts(serves, tmp_path):
    var_dir = tmp_path / ("deep-" * 20) / "var"
    serve = serves(var_dir, tmp_path / "portal.sqlite3")
    assert serve.process.wait(timeout=60) != 0
    serve.closed.wait(timeout=10)
    assert "a unix socket's path may have: set PORTAL_VAR_DIR to a shorter directory" in serve.output
    assert "started web" not in serve.output
    assert not (tmp_path / "portal.sqlite3").exists()
