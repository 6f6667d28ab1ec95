"""Faults under the real `manage.py serve`, with real clients: git over HTTP, the REST API, a browser's GETs and an
SMTP client. A part is killed with SIGKILL while people use the portal; nobody sees a 5xx, nothing is lost, and
every email goes out exactly once after the part is back. Short heartbeats, backoffs and reconciler intervals
come through the environment, so each test runs in tens of seconds."""

import json
import os
import signal
import socketserver
import sqlite3
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings

from portal.tests.test_serve import (
    Serve,
    assert_everything_stopped,
    descendants,
    serves,  # noqa: F401 (the fixture)
    wait_until_ready,
)

# The world every fault test starts from: alice's public project with her pull request, which bob (who writes to
# the project) reviews, and a token for bob that can use the API and push.
SETUP_WORLD = """
import json
from datetime import timedelta
from django.utils import timezone
from portal import services as accounts
from repos import git
from repos import services as repos
from repos.models import Role, Visibility
from reviews import services as reviews
from reviews.services.pulls import open_pull_request
people = {}
for name in ("alice", "bob"):
    people[name] = accounts.create_user(
        actor=None, username=name, email=f"{name}@example.com", password="correct horse battery staple"
    )
alice, bob = people["alice"], people["bob"]
repo = repos.create_repository(
    actor=alice, owner=alice, name="project", visibility=Visibility.PUBLIC, initialize=True
)
repos.set_collaborator(repo, bob, actor=alice, role=Role.WRITE)
main = git.branch_sha(repo.path, "main")
git.update_ref(repo.path, "refs/heads/feature", main, git.ZERO_SHA)
git.commit_files(repo.path, "feature", {"parser.py": b"print(1)\\n"}, "parser", name="alice", email="alice@example.com")
pr = open_pull_request(repo, actor=alice, title="Fix the parser", base="main", head="feature")
_, token = accounts.create_access_token(
    bob, actor=bob, name="faults", scopes=["api", "read:repo", "write:repo"],
    expires_at=timezone.now() + timedelta(days=1),
)
print(json.dumps({"token": token, "number": pr.number}))
"""


# What the worker logs when it runs the job reconciler.
RECONCILER_RUN = "portal.jobs.run_reconciler()"


class MailServer(socketserver.ThreadingTCPServer):
    """A small SMTP server that keeps every message it is given; held, it takes connections and says nothing."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, *, held: bool = False) -> None:
        super().__init__(("127.0.0.1", 0), SmtpSession)
        self.messages: list[bytes] = []
        self.connected = threading.Event()
        self.released = threading.Event()
        if not held:
            self.released.set()
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def port(self) -> int:
        return self.server_address[1]

    def close(self) -> None:
        self.released.set()
        self.shutdown()
        self.server_close()


class SmtpSession(socketserver.StreamRequestHandler):
    def reply(self, line: str) -> None:
        self.wfile.write(f"{line}\r\n".encode())
        self.wfile.flush()

    def handle(self) -> None:
        server: MailServer = self.server
        server.connected.set()
        server.released.wait()
        try:
            self.converse(server)
        except OSError:
            # The client died while we held it.
            pass

    def converse(self, server: MailServer) -> None:
        self.reply("220 mail.example.com ESMTP")
        while line := self.rfile.readline():
            command = line.decode(errors="replace").strip().upper()
            if command.startswith(("EHLO", "HELO")):
                self.reply("250 mail.example.com")
            elif command == "DATA":
                self.reply("354 go on")
                message = b""
                while (data := self.rfile.readline()) not in (b".\r\n", b""):
                    message += data
                server.messages.append(message)
                self.reply("250 kept")
            elif command == "QUIT":
                self.reply("221 bye")
                return
            else:
                self.reply("250 ok")


def manage_env(serve: Serve) -> dict[str, str]:
    """The environment of a `manage.py` command run beside serve, on its database and its Valkey."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_") and "proxy" not in k.lower()}
    return env | {
        "PORTAL_VAR_DIR": str(serve.var_dir),
        "DATABASE_URL": f"sqlite:///{serve.database}",
        "REDIS_URL": f"unix://{serve.var_dir / 'valkey.sock'}",
        "DEBUG": "1",
    }


def set_up_world(serve: Serve) -> dict:
    manage = [sys.executable, str(settings.BASE_DIR / "manage.py"), "shell", "-c", SETUP_WORLD]
    setup = subprocess.run(manage, env=manage_env(serve), capture_output=True, text=True, timeout=120)
    assert setup.returncode == 0, setup.stderr
    return json.loads(setup.stdout.strip().splitlines()[-1])


def query(serve: Serve, sql: str, *params) -> list[tuple]:
    with sqlite3.connect(serve.database, timeout=20) as db:
        return db.execute(sql, params).fetchall()


def request(serve: Serve, path: str, *, token: str = "", body: dict | None = None) -> tuple[int, bytes]:
    """GET (or POST body as JSON) and answer the status and body; a refused connection raises."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = None
    if body is not None:
        data, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
    try:
        with urllib.request.urlopen(
            urllib.request.Request(serve.base_url + path, data=data, headers=headers), timeout=30
        ) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def health(serve: Serve) -> tuple[int, dict]:
    status, body = request(serve, "/-/health")
    return status, json.loads(body)


def post_review(serve: Serve, world: dict, text: str) -> int:
    path = f"/api/v1/repos/alice/project/pulls/{world['number']}/reviews"
    status, _ = request(serve, path, token=world["token"], body={"event": "COMMENT", "body": text})
    return status


class Browsing:
    """A visitor reading pages over and over in a thread; every answer (or refusal) is kept."""

    PAGES = ("/", "/alice/project", "/alice/project/pulls/1", "/-/health")

    def __init__(self, serve: Serve) -> None:
        self.serve = serve
        self.answers: list[tuple[str, int | str]] = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.browse, daemon=True)
        self.thread.start()

    def browse(self) -> None:
        while not self.done.is_set():
            for page in self.PAGES:
                try:
                    self.answers.append((page, request(self.serve, page)[0]))
                except OSError as error:
                    self.answers.append((page, type(error).__name__))

    def stop(self) -> list[tuple[str, int | str]]:
        self.done.set()
        self.thread.join(timeout=60)
        return self.answers


def fault_env(mail: MailServer, **more: str) -> dict[str, str]:
    return {
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(mail.port),
        "EMAIL_USE_TLS": "0",
        "PORTAL_JOB_HEARTBEAT": "1",
        "PORTAL_JOB_HEARTBEAT_LIMIT": "3",
        "PORTAL_JOB_RECONCILE_INTERVAL": "2",
        "PORTAL_JOB_ENQUEUE_GRACE": "1",
        "PORTAL_JOB_RETRY_DELAY": "0",
        "PORTAL_MAINTENANCE_DELAY": "0",
        **more,
    }


@pytest.fixture
def mail_server():
    servers: list[MailServer] = []

    def start(held: bool = False) -> MailServer:
        servers.append(MailServer(held=held))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def git_env(home: Path) -> dict[str, str]:
    home.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_") and "proxy" not in k.lower()}
    return env | {
        "HOME": str(home),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_AUTHOR_NAME": "Bob",
        "GIT_AUTHOR_EMAIL": "bob@example.com",
        "GIT_COMMITTER_NAME": "Bob",
        "GIT_COMMITTER_EMAIL": "bob@example.com",
    }


def test_a_worker_killed_during_a_push_is_started_again_and_the_job_it_held_runs_once(
    serves,  # noqa: F811
    mail_server,
    tmp_path,
):
    # The mail server takes the first connection and says nothing: the email job hangs in it, claimed.
    mail = mail_server(held=True)
    # A backoff long enough to see the worker missing in the health answer before it is back.
    env = fault_env(mail, PORTAL_SERVE_RESTART_BACKOFF="3")
    serve = serves(tmp_path / "var", tmp_path / "portal.sqlite3", stop_timeout=5, env=env)
    seen = wait_until_ready(serve)
    world = set_up_world(serve)
    status, answer = health(serve)
    assert status == 200 and answer["checks"]["worker"]["status"] == "up"

    # bob's review makes an email to alice; the worker's job claims it and waits for the mail server.
    assert post_review(serve, world, "Looks good") == 200
    assert mail.connected.wait(timeout=60), "the email job never reached the mail server"
    ((horse,),) = query(serve, "select worker from reviews_notificationemail where state = 'running'")
    worker = serve.child_pid("worker")

    url = f"http://bob:{world['token']}@127.0.0.1:{serve.http_port}/alice/project.git"
    genv, work = git_env(tmp_path / "home"), tmp_path / "work"
    assert subprocess.run(["git", "clone", "-q", url, str(work)], env=genv, capture_output=True).returncode == 0
    (work / "notes.txt").write_text("pushed while the worker died\n")
    subprocess.run(["git", "-C", str(work), "add", "notes.txt"], env=genv, check=True)
    subprocess.run(["git", "-C", str(work), "commit", "-q", "-m", "notes"], env=genv, check=True)
    pushed = subprocess.run(["git", "-C", str(work), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    browsing = Browsing(serve)
    push = subprocess.Popen(
        ["git", "-C", str(work), "push", url, "HEAD:refs/heads/main"],
        env=genv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )

    # The whole worker dies, as with its machine: rq's work horse running the job, and the worker that forked it.
    os.kill(int(horse.rsplit(":", 1)[1]), signal.SIGKILL)
    os.kill(worker, signal.SIGKILL)
    serve.wait_for(
        "the health answer to miss the worker", lambda: health(serve)[1]["checks"]["worker"]["status"] == "down"
    )
    status, answer = health(serve)
    assert (status, answer["status"]) == (200, "degraded")

    output, _ = push.communicate(timeout=120)
    assert push.returncode == 0, output
    assert query(serve, "select new_sha from repos_push where ref = 'refs/heads/main'") == [(pushed.strip(),)]

    serve.wait_for("the worker again", lambda: serve.child_pid("worker") != worker)
    assert f"worker (pid {worker}) was killed by SIGKILL; starting it again in 3 seconds" in serve.output
    mail.released.set()
    # The reconciler ends the run that stopped beating and queues it again; the new worker sends the email.
    serve.wait_for("the email", lambda: query(serve, "select state from reviews_notificationemail") == [("done",)])
    ((attempts, last_error),) = query(serve, "select attempts, last_error from reviews_notificationemail")
    assert attempts == 2 and "stopped sending heartbeats" in last_error
    assert len(mail.messages) == 1 and b"To: alice@example.com" in mail.messages[0]
    # The push's follow-up ran on the new worker too: the repository was maintained.
    serve.wait_for(
        "the maintenance run", lambda: query(serve, "select state from repos_repositorymaintenance") == [("done",)]
    )
    serve.wait_for(
        "the health answer to see the worker", lambda: health(serve)[1]["checks"]["worker"]["status"] == "up"
    )

    answers = browsing.stop()
    assert answers and all(isinstance(status, int) and status < 500 for _, status in answers), answers
    assert len(mail.messages) == 1
    seen |= descendants(serve.process.pid)
    assert serve.stop(signal.SIGTERM) == 0
    assert_everything_stopped(serve, seen)


def test_valkey_killed_while_people_read_and_review_loses_nothing_and_every_email_goes_out_once(
    serves,  # noqa: F811
    mail_server,
    tmp_path,
):
    mail = mail_server()
    # A backoff long enough for reviews to be posted while Valkey is away.
    env = fault_env(mail, PORTAL_SERVE_RESTART_BACKOFF="4", PORTAL_CACHE="redis")
    serve = serves(tmp_path / "var", tmp_path / "portal.sqlite3", stop_timeout=5, env=env)
    seen = wait_until_ready(serve)
    world = set_up_world(serve)
    assert post_review(serve, world, "review 0") == 200
    serve.wait_for("the first email", lambda: len(mail.messages) == 1)
    # The anonymous code pages are in the cache now.
    assert all(request(serve, page)[0] == 200 for page in Browsing.PAGES)

    valkey = serve.child_pid("valkey")
    browsing = Browsing(serve)
    os.kill(valkey, signal.SIGKILL)
    posted, outage = 1, []
    while "restarted valkey" not in serve.output:
        assert serve.process.poll() is None, serve.output
        status, answer = health(serve)
        if answer["checks"]["redis"]["status"] == "down":
            outage.append((status, answer["status"], answer["checks"]["database"]["status"]))
        # Reviews posted without the queue commit; their emails wait in the database.
        assert post_review(serve, world, f"review {posted}") == 200
        posted += 1
    # A few more once it is back.
    for _ in range(3):
        assert post_review(serve, world, f"review {posted}") == 200
        posted += 1
    answers = browsing.stop()

    assert f"valkey (pid {valkey}) was killed by SIGKILL; starting it again in 4 seconds" in serve.output
    # The health answer said Redis was down, and the portal degraded, not down.
    assert outage and all(sample == (200, "degraded", "up") for sample in outage), outage
    assert answers and all(isinstance(status, int) and status < 500 for _, status in answers), answers
    assert query(serve, "select count(*) from reviews_review")[0][0] == posted

    serve.wait_for("every email", lambda: len(mail.messages) >= posted)
    serve.wait_for(
        "every email row done",
        lambda: query(serve, "select distinct state from reviews_notificationemail") == [("done",)],
    )
    # Another pass of the reconciler sends nothing more: each email went out exactly once.
    passes = serve.output.count(RECONCILER_RUN)
    serve.wait_for("two more reconciler passes", lambda: serve.output.count(RECONCILER_RUN) >= passes + 2)
    texts = sorted(message.split(b"\r\n\r\n", 1)[1] for message in mail.messages)
    assert len(mail.messages) == posted, texts
    status, answer = health(serve)
    assert status == 200
    assert {name: answer["checks"][name]["status"] for name in ("database", "redis", "worker", "ssh")} == {
        "database": "up",
        "redis": "up",
        "worker": "up",
        "ssh": "up",
    }

    seen |= descendants(serve.process.pid)
    assert serve.stop(signal.SIGTERM) == 0
    assert_everything_stopped(serve, seen)
