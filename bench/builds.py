"""Builds: push-to-build-start latency, the sandbox's own overhead, builds per minute, and the live log's latency
and cost to other pages, over a running portal.

Run by hand, never by the test suite (as root, as the portal runs builds: each sandbox gets a uid of its own):

    .venv/bin/python bench/builds.py [--pushes 20] [--batch 20] [--viewers 50] [--seconds 15]

Setup, in a throw-away folder: migrate and start the portal as `make run` does (`manage.py serve`: SQLite, embedded
Valkey, gunicorn, the SSH server, one rq worker of every queue and the cron scheduler) on free ports; this process
then opens the same database and Valkey through Django to create the user `bench`, its public repositories `app`
(builds) and `pages` (a pull request), and to watch builds as the portal records them. Measured:

1. Push to build start: push one commit with a trivial buildspec (`echo hello`) over HTTP with the real git, then
   take, from the moment `git push` returns, the build's build_started (the worker's own clock, in the database),
   its first log line and the build's own first line as releases.logs.read returns them (polled every 10 ms).
   A build that started before git returned counts as 0. Each push waits for the previous build to end.
2. The sandbox's own overhead: the runner over a fresh workspace running one `true` command, next to `bash -c true`
   run directly; and the whole job of the pushes above (the worker's claim to its end: checkout, sandbox, storing
   the log), from the job rows.
3. Builds per minute: --batch trivial builds started at once, run by the portal's worker alone, then again with a
   second `manage.py rqworker builds` beside it.
4. The live log, through the build page's log endpoint `/<owner>/<repo>/builds/<number>/log?offset=<bytes>` (JSON
   holding the new lines' text and the offset to ask for next): a build prints `STAMP $(date +%s.%N)` every 200 ms
   and a poller reads it every 500 ms, as the browser does: latency = when the poller sees a line - its stamp.
   Then the page latency of `/`, a repository page and a pull request page for one client, with no viewers and
   with --viewers threads each polling that endpoint every 500 ms. Skipped, with a message, when the endpoint
   answers 404 (a portal older than the build pages).
"""

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from bench.transport import PYTHON, ROOT, migrate, portal_environment, running_portal, sandboxed_folder

TRIVIAL = "version: 0.2\nphases:\n  build:\n    commands:\n      - echo hello\n"
STAMPS = """version: 0.2
phases:
  build:
    commands:
      - for i in $(seq 1 {count}); do echo "STAMP $(date +%s.%N)"; sleep 0.2; done
"""
POLL_SECONDS = 0.5


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def summary(values: list[float]) -> str:
    """p50, p90 and max of seconds, in milliseconds."""
    if not values:
        return "no values"
    ms = [value * 1000 for value in values]
    return f"p50 {percentile(ms, 0.5):7.1f}  p90 {percentile(ms, 0.9):7.1f}  max {max(ms):7.1f}  (n={len(ms)})"


def use_portal_from_here(env: dict[str, str]) -> None:
    """Open the running portal's database and Valkey through Django in this process."""
    os.environ.update(env)
    os.environ["REDIS_URL"] = f"unix://{Path(env['PORTAL_VAR_DIR']) / 'valkey.sock'}"
    os.environ["DJANGO_SETTINGS_MODULE"] = "portal.settings"
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def set_up() -> tuple[object, object, object, str]:
    """The user bench, its token, the repository app (builds) and pages (with pull request #1)."""
    from datetime import timedelta

    from django.utils import timezone

    from portal import services as accounts
    from repos import git
    from repos import services as repos
    from reviews import services as reviews

    user = accounts.create_user(actor=None, username="bench", email="bench@example.com", password="bench-pass-123")
    _, token = accounts.create_access_token(
        user, actor=user, name="bench", scopes=["write:repo"], expires_at=timezone.now() + timedelta(days=1)
    )
    app = repos.create_repository(actor=user, owner=user, name="app", visibility="public", initialize=True)
    pages = repos.create_repository(actor=user, owner=user, name="pages", visibility="public", initialize=True)
    main = git.branch_sha(pages.path, "main")
    git.update_ref(pages.path, "refs/heads/feature", main, git.ZERO_SHA)
    git.commit_files(pages.path, "feature", {"notes.txt": b"a change to review\n"}, "notes", name="b", email="b@x")
    reviews.open_pull_request(pages, actor=user, title="A change", base="main", head="feature")
    return user, app, pages, token


class Clone:
    """A clone of a repository over HTTP that commits a buildspec and pushes it."""

    def __init__(self, url: str, path: Path, env: dict[str, str]):
        self.path, self.env = path, env | {"GIT_TERMINAL_PROMPT": "0"}
        for who in ("AUTHOR", "COMMITTER"):
            self.env |= {f"GIT_{who}_NAME": "bench", f"GIT_{who}_EMAIL": "bench@example.com"}
        subprocess.run(["git", "clone", "-q", url, str(path)], env=self.env, check=True)

    def git(self, *args: str) -> str:
        done = subprocess.run(["git", "-C", str(self.path), *args], env=self.env, check=True, capture_output=True)
        return done.stdout.decode().strip()

    def push(self, buildspec: str, label: str, branch: str = "main") -> tuple[str, float, float]:
        """Commit buildspec (and a counter) and push it to branch: (sha, push start, push end), wall clock."""
        (self.path / "buildspec.yml").write_text(buildspec)
        (self.path / "counter.txt").write_text(label + "\n")
        self.git("add", "buildspec.yml", "counter.txt")
        self.git("commit", "-qm", f"push {label}")
        sha = self.git("rev-parse", "HEAD")
        started = time.time()
        self.git("push", "-q", "origin", f"HEAD:refs/heads/{branch}")
        return sha, started, time.time()


def wait_for(condition, timeout: float = 120, interval: float = 0.01):
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise SystemExit("timed out")
        time.sleep(interval)
    return value


def build_of(repository, sha: str):
    from releases.models import Build

    return Build.objects.filter(repository=repository, head_sha=sha).first()


def ended(build) -> bool:
    """Whether the build ended and its job too (the job's row is done after the build's result is recorded)."""
    build.refresh_from_db()
    return build.is_ended and build.state not in (build.State.QUEUED, build.State.RUNNING)


def push_to_start(clone: Clone, app, pushes: int) -> dict[str, list[float]]:
    """Push, then watch the build start and its log appear."""
    from releases import logs

    times: dict[str, list[float]] = {key: [] for key in ("push", "start", "first line", "hello", "job", "end")}
    for number in range(pushes + 1):
        sha, push_started, push_ended = clone.push(TRIVIAL, str(number))
        build = wait_for(lambda sha=sha: build_of(app, sha))
        first_line = hello = None
        while hello is None:
            data = logs.read(build, 0).data
            now = time.time()
            if data and first_line is None:
                first_line = now
            if b"\nhello\n" in data:
                hello = now
            time.sleep(0.01)
        wait_for(lambda build=build: ended(build))
        if build.build_status != "SUCCEEDED":
            raise SystemExit(f"build #{build.number} ended {build.build_status}: {build.message}")
        if number == 0:
            # The first build warms the worker up, as on a portal that has been running.
            continue
        times["push"].append(push_ended - push_started)
        times["start"].append(max(0.0, build.build_started.timestamp() - push_ended))
        times["first line"].append(max(0.0, first_line - push_ended))
        times["hello"].append(max(0.0, hello - push_ended))
        times["job"].append((build.finished_at - build.started_at).total_seconds())
        times["end"].append(max(0.0, build.build_ended.timestamp() - push_ended))
    return times


def sandbox_overhead(root: Path, runs: int) -> tuple[list[float], list[float]]:
    """The runner over a fresh workspace running `true`, and `bash -c true` run directly."""
    from releases.buildspec import parse_buildspec
    from releases.runner import BuildContext, run_build
    from releases.sandbox import prepare_build_directory, remove_build_directory

    spec = parse_buildspec(TRIVIAL.replace("echo hello", "true"))
    in_sandbox, direct = [], []
    for number in range(runs + 1):
        directory = prepare_build_directory(root / f"overhead-{number}")
        context = BuildContext(
            build_id=f"bench:{number}", build_number=number, source_version="main", resolved_source_version="0" * 40
        )
        started = time.perf_counter()
        result = run_build(spec, directory, context=context, host_uid=3_000_000 + number)
        elapsed = time.perf_counter() - started
        remove_build_directory(directory)
        if str(result.status) != "SUCCEEDED":
            raise SystemExit(f"the trivial build ended {result.status}: {result.message}")
        started = time.perf_counter()
        subprocess.run(["/bin/bash", "-c", "true"], check=True)
        if number:
            in_sandbox.append(elapsed)
            direct.append(time.perf_counter() - started)
    return in_sandbox, direct


def builds_per_minute(user, app, count: int) -> float:
    """Start count trivial builds at once; builds per minute from the first start to the last end."""
    from releases import services
    from repos import git

    sha = git.branch_sha(app.path, "main")
    started = time.time()
    builds = [
        services.start_build(app, sha=sha, ref="refs/heads/main", trigger="manual", initiator=user)
        for _ in range(count)
    ]
    for build in builds:
        wait_for(lambda build=build: ended(build), timeout=600, interval=0.1)
    failed = [b for b in builds if b.build_status != "SUCCEEDED"]
    if failed:
        raise SystemExit(f"build #{failed[0].number} ended {failed[0].build_status}: {failed[0].message}")
    last = max(build.build_ended.timestamp() for build in builds)
    return count / (last - started) * 60


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def strings(value) -> list[str]:
    """Every string in a JSON value."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [text for item in value.values() for text in strings(item)]
    if isinstance(value, list):
        return [text for item in value for text in strings(item)]
    return []


class LogPoller:
    """Follows a build's log through the endpoint every POLL_SECONDS; notes each stamp's latency."""

    def __init__(self, url: str, stop: threading.Event):
        self.url, self.stop = url, stop
        self.offset = 0
        self.latencies: list[float] = []
        self.errors = 0
        # A viewer arriving reads the lines printed before it came in its first poll: those say how long ago they
        # were printed, not how long the log took to show them.
        self.caught_up = False

    def poll(self) -> None:
        status, body = get(f"{self.url}?offset={self.offset}")
        seen = time.time()
        if status != 200:
            self.errors += 1
            return
        answer = json.loads(body)
        if self.caught_up:
            for text in strings(answer):
                self.latencies += [seen - float(stamp) for stamp in re.findall(r"STAMP (\d+\.\d+)", text)]
        self.caught_up = True
        self.offset = int(answer.get("next_offset", answer.get("offset", self.offset)))

    def run(self) -> None:
        while not self.stop.is_set():
            self.poll()
            self.stop.wait(POLL_SECONDS)


def page_latencies(urls: dict[str, str], seconds: float) -> dict[str, list[float]]:
    """One client getting each page in turn for seconds: each page's latencies."""
    times: dict[str, list[float]] = {name: [] for name in urls}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for name, url in urls.items():
            started = time.perf_counter()
            status, _ = get(url)
            if status != 200:
                raise SystemExit(f"{url} answered {status}")
            times[name].append(time.perf_counter() - started)
    return times


def watch_the_log(clone: Clone, app, base: str, viewers: int, seconds: float) -> None:
    """The live log's latency, and the pages' latency with and without viewers of it."""
    count = int((3 * seconds + 20) / 0.2)
    sha, _, _ = clone.push(STAMPS.format(count=count), "stamps", branch="stamps")
    build = wait_for(lambda: build_of(app, sha))
    url = f"{base}/bench/app/builds/{build.number}/log"
    wait_for(lambda: build.refresh_from_db() or build.build_started)
    status, _ = get(f"{url}?offset=0")
    if status == 404:
        print(f"\nlive log and viewers: skipped: {url} answered 404 (the build page's log endpoint is not there yet)")
        return
    if status != 200:
        raise SystemExit(f"{url} answered {status}")
    stop = threading.Event()
    poller = LogPoller(url, stop)
    thread = threading.Thread(target=poller.run)
    thread.start()
    pages = {"/": f"{base}/", "repository": f"{base}/bench/app", "pull request": f"{base}/bench/pages/pulls/1"}
    quiet = page_latencies(pages, seconds)
    crowd = [LogPoller(url, stop) for _ in range(viewers)]
    threads = [threading.Thread(target=viewer.run) for viewer in crowd]
    for viewer_thread in threads:
        viewer_thread.start()
        time.sleep(POLL_SECONDS / viewers)
    watched = page_latencies(pages, seconds)
    stop.set()
    for viewer_thread in [thread, *threads]:
        viewer_thread.join()
    print(f"\nlive log: a line printed -> seen by a poller every {POLL_SECONDS * 1000:.0f} ms (target below 1 s)")
    print(f"  {'stamp -> seen':<28} {summary(poller.latencies)}  ({poller.errors} failed polls)")
    viewer_latencies = [latency for viewer in crowd for latency in viewer.latencies]
    print(
        f"  {'the same, by the viewers':<28} {summary(viewer_latencies)}  "
        f"({sum(viewer.errors for viewer in crowd)} failed polls)"
    )
    print(f"\npage latency for one client, {seconds:.0f} s each, with no viewers / with {viewers} viewers of the log")
    for name in pages:
        print(f"  {name:<14} none: {summary(quiet[name])}")
        print(f"  {'':<14} {viewers:>4}: {summary(watched[name])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pushes", type=int, default=20)
    parser.add_argument("--runs", type=int, default=10, help="trivial builds in the runner for its overhead")
    parser.add_argument("--batch", type=int, default=20, help="builds per builds-per-minute batch")
    parser.add_argument("--viewers", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=15, help="length of each page latency measurement")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root, as the portal runs builds (each sandbox as a uid of its own)")

    with sandboxed_folder() as tmp:
        env, http_port = portal_environment(tmp)
        base = f"http://127.0.0.1:{http_port}"
        migrate(env)
        with running_portal(env, http_port):
            use_portal_from_here(env)
            user, app, _pages, token = set_up()
            clone = Clone(f"http://bench:{token}@127.0.0.1:{http_port}/bench/app.git", tmp / "work", env)

            times = push_to_start(clone, app, args.pushes)
            print(f"push to build start: {args.pushes} pushes over HTTP, one worker (milliseconds from git's return)")
            for key, label in (
                ("push", "git push (whole command)"),
                ("start", "-> build_started"),
                ("first line", "-> first log line readable"),
                ("hello", "-> the build's own first line"),
                ("end", "-> build ended"),
            ):
                print(f"  {label:<30} {summary(times[key])}")

            in_sandbox, direct = sandbox_overhead(tmp / "var" / "builds", args.runs)
            print("\nthe sandbox's own overhead (milliseconds)")
            print(f"  {'runner, one `true` command':<30} {summary(in_sandbox)}")
            print(f"  {'bash -c true, directly':<30} {summary(direct)}")
            print(f"  {'whole job (worker claim->end)':<30} {summary(times['job'])}")

            one = builds_per_minute(user, app, args.batch)
            second = subprocess.Popen(
                [PYTHON, "manage.py", "rqworker", "builds"],
                cwd=ROOT,
                env=dict(os.environ),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            try:
                time.sleep(5)
                two = builds_per_minute(user, app, args.batch)
            finally:
                os.killpg(second.pid, signal.SIGTERM)
                second.wait(timeout=60)
            print(f"\nbuilds per minute, {args.batch} trivial builds started at once")
            print(f"  {'one worker':<30} {one:7.1f}")
            print(f"  {'two workers':<30} {two:7.1f}")

            watch_the_log(clone, app, base, args.viewers, args.seconds)
            from django.db import connections

            connections.close_all()
    print(f"\nmachine: {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
