"""Webhook delivery latency: from a push to the receiver's first byte, over real pushes to a running portal.

Run by hand, never by the test suite:

    .venv/bin/python bench/webhooks.py [--pushes 100]

Setup, in a throw-away folder: migrate and start the portal as `make run` does (`manage.py serve`: SQLite, embedded
Valkey, gunicorn, the SSH server, an rq worker and the cron scheduler) on free ports, create the user `bench`, its
repository and a webhook of it (events: push) to a receiver on 127.0.0.1, which the site allows
(PORTAL_WEBHOOK_ALLOWED_HOSTS). Then push one new commit at a time over HTTP with the real git, and for each push
take three times: when `git push` starts, when it returns, and when the receiver reads the request's first byte.
Reported: the push itself, and from the push's start and from its end to the receiver's first byte (p50, p90, p99,
max). A delivery that arrives before git returns counts as 0 from the push's end.
"""

import argparse
import statistics
import subprocess
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from bench.transport import manage, migrate, portal_environment, running_portal

SETUP = """
from datetime import timedelta
from django.utils import timezone
from portal import services as s
from repos import services as r
from reviews import webhooks
u = s.create_user(actor=None, username='bench', email='bench@example.com', password='bench-password-123')
_, raw = s.create_access_token(u, actor=u, name='bench', scopes=['write:repo'], expires_at=timezone.now() + timedelta(days=1))
repo = r.create_repository(actor=u, owner=u, name='hooked', initialize=True)
webhooks.save_webhook(None, actor=u, repository=repo, url='{url}', events=['push'], secret='bench', active=True)
print(raw)
"""


class FirstByteReceiver(ThreadingHTTPServer):
    """Notes when each delivery's first byte arrives (its request line), keyed by the pushed commit."""

    daemon_threads = True

    def __init__(self) -> None:
        arrivals: dict[str, float] = {}

        class Handler(BaseHTTPRequestHandler):
            def parse_request(handler) -> bool:
                handler.arrived = time.monotonic()
                return super().parse_request()

            def do_POST(handler) -> None:
                body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
                after = body.split(b'"after": "', 1)[1][:40].decode()
                arrivals[after] = handler.arrived
                handler.send_response(204)
                handler.end_headers()

            def log_message(handler, *args) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.arrivals = arrivals
        threading.Thread(target=self.serve_forever, daemon=True).start()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pushes", type=int, default=100)
    args = parser.parse_args()
    receiver = FirstByteReceiver()
    url = f"http://127.0.0.1:{receiver.server_address[1]}/hook"

    with tempfile.TemporaryDirectory(prefix="portal-bench-") as tmp_name:
        tmp = Path(tmp_name)
        env, http_port = portal_environment(tmp)
        env["PORTAL_WEBHOOK_ALLOWED_HOSTS"] = "127.0.0.1"
        migrate(env)
        token = manage(env, SETUP.format(url=url)).splitlines()[-1]
        rows = []
        with running_portal(env, http_port):
            remote = f"http://bench:{token}@127.0.0.1:{http_port}/bench/hooked.git"
            work = tmp / "work"
            git_env = env | {"GIT_TERMINAL_PROMPT": "0", "GIT_AUTHOR_NAME": "bench", "GIT_COMMITTER_NAME": "bench"}
            git_env |= {"GIT_AUTHOR_EMAIL": "bench@example.com", "GIT_COMMITTER_EMAIL": "bench@example.com"}
            subprocess.run(["git", "clone", "-q", remote, str(work)], env=git_env, check=True)
            # One push first, so that every worker and process has warmed up as on a server that has been running.
            pushes = [("warm-up", True)] + [(str(n), False) for n in range(args.pushes)]
            for label, warm_up in pushes:
                (work / "counter.txt").write_text(label + "\n")
                subprocess.run(["git", "-C", str(work), "add", "counter.txt"], env=git_env, check=True)
                subprocess.run(["git", "-C", str(work), "commit", "-qm", f"push {label}"], env=git_env, check=True)
                sha = subprocess.run(
                    ["git", "-C", str(work), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
                ).stdout.strip()
                started = time.monotonic()
                subprocess.run(["git", "-C", str(work), "push", "-q", "origin", "HEAD:main"], env=git_env, check=True)
                ended = time.monotonic()
                deadline = ended + 60
                while sha not in receiver.arrivals:
                    if time.monotonic() > deadline:
                        raise SystemExit(f"no delivery for push {label} within 60 s")
                    time.sleep(0.001)
                if not warm_up:
                    arrived = receiver.arrivals[sha]
                    rows.append((ended - started, arrived - started, max(0.0, arrived - ended)))

    print(f"{len(rows)} pushes over HTTP, one commit each; a webhook (push) to a receiver on 127.0.0.1")
    print(f"{'milliseconds':<38} {'p50':>7} {'p90':>7} {'p99':>7} {'max':>7}")
    for index, label in enumerate(
        ("git push (whole command)", "push start -> receiver first byte", "push end -> receiver first byte")
    ):
        values = [row[index] * 1000 for row in rows]
        stats = [percentile(values, 0.5), percentile(values, 0.9), percentile(values, 0.99), max(values)]
        print(f"{label:<38} " + " ".join(f"{value:>7.1f}" for value in stats))
    print(f"mean push start -> first byte: {statistics.mean(row[1] for row in rows) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
