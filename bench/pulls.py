"""Reviewing a big pull request in the portal: its conversation, its files page and its whole diff, as a reviewer.

Run by hand, never by the test suite:

    .venv/bin/python bench/pulls.py --source /path/to/git.git [--repeat 5] [--out results.md]

The source must be a bare copy of git's own history with every object (a partial clone will not do): the pull
request is the one from v2.44.0 to v2.45.0, about 500 changed files.

Setup, in a throw-away folder: migrate as `make run` does, create the users alice and bob and alice's private
repository alice/git through the portal's services (bob may write), replace its content with a mirror clone of the
source, point the branches `base` at v2.44.0 and `next` at v2.45.0, and run the portal's maintenance on it (repack
with a bitmap, commit-graph), which leaves it as a push would. Then bob opens the pull request "next into base"
asking alice for a review and comments on it; alice requests changes with one inline comment on the first changed
file, and bob answers in that thread.

The portal is started as `make run` starts it (`manage.py serve`: SQLite, embedded Valkey, gunicorn) on free ports,
twice, with PORTAL_CACHE=redis, which is what `make run` gets (its embedded Valkey, shared by the gunicorn workers,
behind each worker's own memory). For first views, each worker's own memory is off and the Valkey is emptied before
the conversation, before the whole diff, before the whole diff fetched 4 at a time and before the commits, so each
is the first look at a pull request nobody has opened yet (what the files page computes, its batches may find in
the cache, as they would). For repeat views nothing is emptied. Each phase starts
with one unmeasured pass (it fills the cache, or warms the workers before the first run). Requests are alice's, signed in
through /accounts/login/, each on a new connection and accepting gzip as browsers do. One run measures, one after
the other:

1. the conversation page: time to the status line and headers, to the end of the body, and its size;
2. the files page, the first paint: the same, and how many files it holds in full (the others are placeholders);
3. the whole diff as a browser scrolling to the end fetches it: the files page, then every lazy batch its
   placeholders name (their `data-fragment-url`, each batch once, in page order) one after another;
4. the same with the batches fetched 4 at a time;
5. the commits page.

Each run is repeated --repeat times; the report gives the median and the maximum of each. Before each run the
benchmark waits (up to --quiet-timeout seconds) until the portal is idle and other processes leave the CPUs alone,
and the report states how much CPU they took during the runs anyway: a busy machine slows the portal down, the
concurrent requests most.
"""

import argparse
import concurrent.futures
import gzip
import html
import http.client
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from bench.browse import (
    CLOCK_TICKS,
    MAINTAIN,
    django,
    git,
    machine,
    ms,
    start,
    table,
    tree_cpu_seconds,
    wait_until_idle,
)
from bench.transport import PYTHON, migrate, portal_environment

OWNER, AUTHOR = "alice", "bob"
PASSWORD = "bench-password-123"
REPO = "git"
BASE, HEAD = ("base", "v2.44.0"), ("next", "v2.45.0")
CONCURRENCY = 4
REQUEST_TIMEOUT = 600
# A run counts as disturbed when other processes took more than a fifth of a CPU during it.
NOISY = 0.2
QUIET_WINDOW = 2.0

# Columns of the table: a pull request nobody has looked at yet (the cache emptied), then one looked at before.
FIRST, REPEAT = "first view", "repeat view"

SETUP = """
import json
from django.conf import settings
from portal import services as s
from repos import services as r
from repos.models import Role, Visibility
alice = s.create_user(actor=None, username='{owner}', email='{owner}@example.com', password='{password}')
bob = s.create_user(actor=None, username='{author}', email='{author}@example.com', password='{password}')
repo = r.create_repository(
    actor=alice, owner=alice, name='{repo}', visibility=Visibility.PRIVATE, default_branch='master'
)
r.set_collaborator(repo, bob, actor=alice, role=Role.WRITE)
print(json.dumps({{
    'path': str(repo.path),
    'debug': settings.DEBUG,
    'workers': settings.PORTAL_WEB_WORKERS,
    'threads': settings.PORTAL_WEB_THREADS,
}}))
"""

# The notifications' e-mails go to a queue that nothing serves yet: the services log that and carry on.
PULL = """
import json, logging
logging.disable(logging.CRITICAL)
from portal.models import User
from repos.models import Repository
from reviews import services as v
alice, bob = User.objects.get(username='{owner}'), User.objects.get(username='{author}')
repo = Repository.objects.get(owner=alice, name='{repo}')
pr = v.open_pull_request(
    repo, actor=bob, title='Everything from v2.44.0 to v2.45.0', base='{base}', head='{head}',
    description='All of the 2.45 cycle, to review before it goes in.', reviewers=[alice],
)
v.add_comment(pr, actor=bob, body='The release notes are in Documentation/RelNotes/2.45.0.txt.')
review = v.submit_review(
    pr, actor=alice, event='REQUEST_CHANGES', body='A first pass: one question on {path}.',
    comments=[v.InlineComment(path='{path}', line={line}, body='Why this change?')],
)
thread = review.comments.get()
v.add_comment(pr, actor=bob, body='See the commit message.', reply_to=thread)
print(json.dumps({{'number': pr.number}}))
"""


@dataclass(frozen=True)
class Scenario:
    source: Path
    merge_base: str
    head: str
    files: int
    additions: int
    deletions: int
    comment_path: str
    comment_line: int


@dataclass(frozen=True)
class Shot:
    first_byte: float
    total: float
    body: bytes
    # Bytes on the wire, and whether they were compressed (the body is always the decoded one).
    sent: int
    compressed: bool


@dataclass
class Run:
    """One pass over the pages; times in seconds."""

    conversation: Shot
    files: Shot
    commits: Shot
    # Files shown in full in the files page, files listed in it, and the URLs of its lazy batches.
    files_in_page: int
    files_listed: int
    batch_urls: list[str]
    batches: list[Shot]
    sequential_total: float
    concurrent_total: float
    concurrent_bytes: int
    # Files shown in full once every batch is in, and files left behind a "Load diff" button (too large).
    files_loaded: int
    files_held_back: int
    # Wall-clock seconds of the run, and CPU seconds that processes other than the portal and this script used then.
    wall: float = 0.0
    others_cpu: float = 0.0


@dataclass
class Phase:
    runs: list[Run] = field(default_factory=list)


def machine_busy_seconds() -> float:
    """CPU seconds every process of the machine has used since boot (/proc/stat: all but idle and iowait)."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    # user nice system idle iowait irq softirq steal; guest time is already in user.
    return (sum(fields[:8]) - fields[3] - fields[4]) / CLOCK_TICKS


def own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def others_cpu_seconds(server: subprocess.Popen) -> float:
    """CPU seconds used since boot by every process but the portal's and this script's (a running total)."""
    return machine_busy_seconds() - tree_cpu_seconds(server.pid) - own_cpu_seconds()


def wait_until_quiet(server: subprocess.Popen, timeout: float) -> None:
    """Wait until the portal is idle and other processes leave the CPUs alone, for at most timeout seconds.

    On a shared machine a test suite running beside the benchmark takes a CPU from the portal."""
    wait_until_idle(server)
    deadline = time.monotonic() + timeout
    before = others_cpu_seconds(server)
    while time.monotonic() < deadline:
        time.sleep(QUIET_WINDOW)
        after = others_cpu_seconds(server)
        if after - before < NOISY * QUIET_WINDOW:
            return
        before = after
    if timeout:
        print(f"warning: other processes were still busy after {timeout:.0f} s; measuring anyway", file=sys.stderr)


def describe_source(source: Path) -> Scenario:
    """Check the source and find what the pull request changes, and an added line to comment on."""
    if git(source, "rev-parse", "--is-bare-repository").strip() != "true":
        raise SystemExit(f"{source} is not a bare repository")
    # A partial clone lacks objects (a .promisor file alone may be left over from a fetch and is harmless).
    missing = [
        line for line in git(source, "rev-list", "--objects", "--missing=print", "--all").splitlines() if line[0] == "?"
    ]
    if missing:
        raise SystemExit(f"{source} lacks {len(missing):,} objects: make a complete copy with `git clone --bare` first")
    base = git(source, "rev-parse", "--verify", "--quiet", f"{BASE[1]}^{{commit}}").strip()
    head = git(source, "rev-parse", "--verify", "--quiet", f"{HEAD[1]}^{{commit}}").strip()
    merge_base = git(source, "merge-base", base, head).strip()
    additions = deletions = files = 0
    for line in git(source, "diff", "--numstat", "-M", merge_base, head).splitlines():
        added, deleted, _path = line.split("\t", 2)
        files += 1
        # Binary files show "-" for both counts.
        additions += int(added) if added != "-" else 0
        deletions += int(deleted) if deleted != "-" else 0
    path, line = first_added_line(source, merge_base, head)
    return Scenario(source, merge_base, head, files, additions, deletions, path, line)


def first_added_line(source: Path, old: str, new: str) -> tuple[str, int]:
    """The first added line of the first modified text file, so the inline comment sits in the first paint."""
    path = None
    for line in git(source, "diff", "-U0", "--diff-filter=M", old, new).splitlines():
        if line.startswith("+++ b/"):
            path = line[len("+++ b/") :]
        elif path and (hunk := re.match(r"@@ -\S+ \+(\d+)(?:,(\d+))? @@", line)):
            if hunk.group(2) != "0":
                return path, int(hunk.group(1))
    raise SystemExit("found no added line to comment on")


# HTTP: a signed-in browser, one new connection per request.


class Browser:
    def __init__(self, base: str) -> None:
        self.base = base
        parts = urlsplit(base)
        self.host, self.port = parts.hostname, parts.port
        self.cookies: dict[str, str] = {}

    def request(
        self, method: str, path: str, *, form: dict[str, str] | None = None, fetch: bool = False
    ) -> tuple[int, Shot]:
        """One request on a new connection, timed to the status line and headers and to the end of the body."""
        connection = http.client.HTTPConnection(self.host, self.port, timeout=REQUEST_TIMEOUT)
        cookies = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        headers = {"Cookie": cookies, "Accept-Encoding": "gzip"}
        if fetch:
            # What code.js sends with its fragment requests.
            headers["X-Requested-With"] = "fetch"
        body = None
        if form is not None:
            body = urlencode(form)
            headers |= {"Content-Type": "application/x-www-form-urlencoded", "Referer": self.base + path}
        try:
            started = time.perf_counter()
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            first_byte = time.perf_counter() - started
            content = response.read()
            total = time.perf_counter() - started
        finally:
            connection.close()
        for value in response.headers.get_all("Set-Cookie") or []:
            for name, morsel in SimpleCookie(value).items():
                self.cookies[name] = morsel.value
        compressed = response.getheader("Content-Encoding") == "gzip"
        body = gzip.decompress(content) if compressed else content
        return response.status, Shot(first_byte, total, body, len(content), compressed)

    def get(self, path: str, *, fetch: bool = False) -> Shot:
        """GET a page that must answer 200."""
        status, shot = self.request("GET", path, fetch=fetch)
        if status != 200:
            head = "\n".join(shot.body.decode(errors="replace").splitlines()[:15])
            raise SystemExit(f"{path} answered {status}, not 200:\n{head}")
        return shot

    def log_in(self, username: str, password: str) -> None:
        status, shot = self.request("GET", "/accounts/login/")
        token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', shot.body)
        if status != 200 or token is None:
            raise SystemExit(f"the login page answered {status} without a CSRF token")
        form = {"csrfmiddlewaretoken": token.group(1).decode(), "login": username, "password": password}
        status, shot = self.request("POST", "/accounts/login/", form=form)
        if status != 302 or "sessionid" not in self.cookies:
            raise SystemExit(f"signing in as {username} failed ({status}):\n{shot.body.decode(errors='replace')[:500]}")


# Reading the pages.

PENDING = re.compile(r'<div class="diff-file diff-pending"[^>]*>')
FRAGMENT_URL = re.compile(r'data-fragment-url="([^"]+)"')
FILE_START = re.compile(r'(?=<div class="diff-file[ "])')
RENDERED_FILE = re.compile(r'<div class="diff-file" id="diff-(\d+)"')
LOAD_BUTTON = '<button type="button" class="diff-load"'


def rendered_files(text: str) -> tuple[set[int], set[int]]:
    """Indexes of the files rendered in the text: those shown in full, and those too large, behind a button."""
    full, held_back = set(), set()
    for part in FILE_START.split(text):
        if found := RENDERED_FILE.match(part):
            (held_back if LOAD_BUTTON in part else full).add(int(found.group(1)))
    return full, held_back


def batch_urls(page: str) -> list[str]:
    """Each lazy batch the placeholders name, once, in page order (several files share a batch)."""
    urls = []
    for tag in PENDING.findall(page):
        found = FRAGMENT_URL.search(tag)
        if found and (url := html.unescape(found.group(1))) not in urls:
            urls.append(url)
    return urls


def fetch_all(browser: Browser, urls: list[str], workers: int) -> list[Shot]:
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda url: browser.get(url, fetch=True), urls))


def one_run(browser: Browser, prefix: str, *, fresh: Callable[[], None] = lambda: None) -> Run:
    """One reviewer's pass: conversation, files (then every batch, in order, then 4 at a time), commits.

    fresh() runs before each of the four (the conversation, the whole diff, the whole diff 4 at a time, the
    commits): emptying the cache there makes each the first page a reviewer opens."""
    fresh()
    conversation = browser.get(prefix)
    if b"Why this change?" not in conversation.body:
        raise SystemExit(f"{prefix} does not show the inline comment")
    fresh()
    files = browser.get(f"{prefix}/files")
    page = files.body.decode()
    urls = batch_urls(page)
    batches = [browser.get(url, fetch=True) for url in urls]
    sequential_total = files.total + sum(shot.total for shot in batches)

    fresh()
    started = time.perf_counter()
    again = browser.get(f"{prefix}/files")
    concurrent_batches = fetch_all(browser, batch_urls(again.body.decode()), CONCURRENCY)
    concurrent_total = time.perf_counter() - started
    concurrent_bytes = again.sent + sum(shot.sent for shot in concurrent_batches)

    fresh()
    commits = browser.get(f"{prefix}/commits")
    in_page, held_back = rendered_files(page)
    loaded = set(in_page)
    for shot in batches:
        full, large = rendered_files(shot.body.decode())
        loaded |= full
        held_back |= large
    return Run(
        conversation=conversation,
        files=files,
        commits=commits,
        files_in_page=len(in_page),
        files_listed=page.count("data-file-anchor"),
        batch_urls=urls,
        batches=batches,
        sequential_total=sequential_total,
        concurrent_total=concurrent_total,
        concurrent_bytes=concurrent_bytes,
        files_loaded=len(loaded),
        files_held_back=len(held_back),
    )


# Setup and phases.


def set_up(tmp: Path, scenario: Scenario) -> tuple[dict, int]:
    """Create alice/git through the portal with the source's history, its two branches and the pull request.

    Returns the portal's settings that the report states (DEBUG, workers, threads) and the pull request's number."""
    env, _ = portal_environment(tmp)
    migrate(env)
    names = {"owner": OWNER, "author": AUTHOR, "repo": REPO}
    portal = json.loads(django(env, SETUP.format(password=PASSWORD, **names)).splitlines()[-1])
    path = Path(portal["path"])
    # Clone beside it and swap, keeping the configuration the portal wrote rather than the mirror's remote.
    staging = path.with_name(f"{path.name}.clone")
    subprocess.run(["git", "clone", "-q", "--bare", "--mirror", str(scenario.source), str(staging)], check=True)
    shutil.copyfile(path / "config", staging / "config")
    shutil.rmtree(path)
    staging.rename(path)
    # git.git has a branch called next already: the pull request's branches are the two releases.
    git(path, "update-ref", f"refs/heads/{BASE[0]}", f"{BASE[1]}^{{commit}}")
    git(path, "update-ref", f"refs/heads/{HEAD[0]}", f"{HEAD[1]}^{{commit}}")
    started = time.perf_counter()
    django(env, MAINTAIN.format(ref="master", **names))
    print(f"maintenance (repack, commit-graph): {time.perf_counter() - started:.0f} s", file=sys.stderr)
    started = time.perf_counter()
    code = PULL.format(base=BASE[0], head=HEAD[0], path=scenario.comment_path, line=scenario.comment_line, **names)
    number = json.loads(django(env, code).splitlines()[-1])["number"]
    print(f"pull request opened, reviewed, commented: {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return portal, number


def empty_cache(tmp: Path) -> None:
    """Empty the portal's embedded Valkey (the cache; the sessions live in the database)."""
    import redis

    redis.Redis(unix_socket_path=str(tmp / "var" / "valkey.sock")).flushall()


def run_phase(tmp: Path, number: int, *, repeat: int, quiet_timeout: float, cold: bool) -> Phase:
    """Start the portal as `make run` does, sign in as the reviewer and time `repeat` passes after an unmeasured one.

    cold: each worker's own memory cache is off and the shared cache is emptied before each page a run starts with."""
    env, port = portal_environment(tmp, cache="redis")
    if cold:
        env["PORTAL_LOCAL_CACHE_MB"] = "0"
    base = f"http://127.0.0.1:{port}"
    prefix = f"/{OWNER}/{REPO}/pulls/{number}"
    phase = Phase()
    with ExitStack() as stack:
        server = start(
            stack,
            [PYTHON, "manage.py", "serve"],
            env=env,
            log=tmp / f"serve-{'cold' if cold else 'warm'}.log",
            url=f"{base}/",
        )
        browser = Browser(base)
        browser.log_in(OWNER, PASSWORD)
        # An unmeasured pass: it fills the cache, and spares the first run the workers' own start (imports,
        # templates, the repository opened and its packs read into the page cache).
        wait_until_idle(server)
        one_run(browser, prefix)
        for index in range(repeat):
            wait_until_quiet(server, quiet_timeout)
            started, others = time.perf_counter(), others_cpu_seconds(server)
            run = one_run(browser, prefix, fresh=(lambda: empty_cache(tmp)) if cold else (lambda: None))
            run.wall = time.perf_counter() - started
            run.others_cpu = others_cpu_seconds(server) - others
            phase.runs.append(run)
            if run.others_cpu > NOISY * run.wall:
                print(
                    f"warning: other processes used {run.others_cpu:.1f} CPU seconds in this {run.wall:.1f} s run",
                    file=sys.stderr,
                )
            if run.files_loaded + run.files_held_back != run.files_listed:
                print(
                    f"warning: {run.files_listed} files listed, {run.files_loaded} shown in full after every batch "
                    f"and {run.files_held_back} behind a button",
                    file=sys.stderr,
                )
            print(
                f"  {'cold' if cold else 'warm'} run {index + 1}: conversation {ms(run.conversation.total * 1000)} ms, "
                f"files {ms(run.files.total * 1000)} ms, whole diff {ms(run.sequential_total * 1000)} ms "
                f"({len(run.batches)} batches), {CONCURRENCY} at a time {ms(run.concurrent_total * 1000)} ms",
                file=sys.stderr,
            )
    return phase


# Report


def cell(values: list[float]) -> str:
    """Median / max, in milliseconds."""
    if not values:
        return "—"
    return f"{ms(statistics.median(values) * 1000)} / {ms(max(values) * 1000)}"


def compression(run: Run) -> str:
    """What the bytes column counts: which pages came gzip-compressed (the requests accept gzip, as browsers do)."""
    pages = {"conversation": [run.conversation], "files": [run.files], "batches": run.batches, "commits": [run.commits]}
    compressed = [name for name, shots in pages.items() if shots and all(shot.compressed for shot in shots)]
    plain = [name for name in pages if name not in compressed]
    return (
        f"- bytes as sent (the requests accept gzip, as browsers do): compressed: {', '.join(compressed) or 'none'}; "
        f"uncompressed: {', '.join(plain) or 'none'}"
    )


def disturbance(phase: Phase) -> str:
    shares = [run.others_cpu / run.wall for run in phase.runs if run.wall]
    return f"median {statistics.median(shares):.0%} of a CPU, max {max(shares):.0%}" if shares else "—"


def size(values: list[int]) -> str:
    low, high = min(values), max(values)
    return f"{low:,}" if low == high else f"{low:,}–{high:,}"


def report(scenario: Scenario, phases: dict[str, Phase], *, repeat: int, portal: dict) -> str:
    first = next(iter(phases.values())).runs[0]
    batch_files = [len(set.union(*rendered_files(shot.body.decode()))) for shot in first.batches]
    lines = [
        "# Reviewing a big pull request",
        "",
        f"- source: `{scenario.source.name}`; pull request {HEAD[0]} ({HEAD[1]}) into {BASE[0]} ({BASE[1]}): "
        f"{scenario.files:,} files changed, +{scenario.additions:,} −{scenario.deletions:,} lines "
        f"(`git diff --numstat -M` from the merge base); the files page lists {first.files_listed:,}",
        f"- machine: {machine()}",
        f"- portal: `manage.py serve` (gunicorn gthread, {portal['workers']} workers x {portal['threads']} threads, "
        f"SQLite, embedded Valkey), DEBUG={portal['debug']}; first view with the cache emptied "
        "before each run, repeat view with it kept; each after one unmeasured pass",
        f"- signed in as the reviewer ({OWNER}, owner of the private repository); one new connection per request; "
        f"{repeat} runs of each, cells are median / max in ms",
        f"- first paint: {first.files_in_page} files in full in the files page; the rest in {len(first.batch_urls)} "
        f"lazy batches of {min(batch_files, default=0)} to {max(batch_files, default=0)} files; after every batch "
        f'{first.files_loaded:,} files are in full, {first.files_held_back} more behind a "Load diff" button',
        compression(first),
        "- other processes' CPU during the runs (the portal's and this script's own left out): "
        + "; ".join(f"{name} {disturbance(phase)}" for name, phase in phases.items()),
        "",
    ]
    rows = []

    def add(label: str, pick_first_byte, pick_total, pick_size) -> None:
        runs = [run for phase in phases.values() for run in phase.runs]
        row = [label, size([pick_size(run) for run in runs])]
        for phase in phases.values():
            row.append(cell([pick_first_byte(run) for run in phase.runs]) if pick_first_byte else "—")
            row.append(cell([pick_total(run) for run in phase.runs]))
        rows.append(row)

    add(
        "conversation",
        lambda run: run.conversation.first_byte,
        lambda run: run.conversation.total,
        lambda run: run.conversation.sent,
    )
    add(
        f"files changed, first paint ({first.files_in_page} files in full)",
        lambda run: run.files.first_byte,
        lambda run: run.files.total,
        lambda run: run.files.sent,
    )
    add(
        f"whole diff: files page + {len(first.batch_urls)} batches one after another",
        None,
        lambda run: run.sequential_total,
        lambda run: run.files.sent + sum(shot.sent for shot in run.batches),
    )
    add(
        f"whole diff: files page + batches {CONCURRENCY} at a time",
        None,
        lambda run: run.concurrent_total,
        lambda run: run.concurrent_bytes,
    )
    rows.append(
        [
            "one lazy batch (every batch of every run)",
            size([shot.sent for phase in phases.values() for run in phase.runs for shot in run.batches]),
            *(
                value
                for phase in phases.values()
                for value in (
                    cell([shot.first_byte for run in phase.runs for shot in run.batches]),
                    cell([shot.total for run in phase.runs for shot in run.batches]),
                )
            ),
        ]
    )
    add("commits", lambda run: run.commits.first_byte, lambda run: run.commits.total, lambda run: run.commits.sent)
    header = ["page", "bytes"]
    for name in phases:
        header += [f"{name}: first byte", f"{name}: whole"]
    lines += table(header, rows)
    prefix = f"/{OWNER}/{REPO}/pulls/N"
    lines += ["", f"URLs: `{prefix}`, `{prefix}/files`, `{prefix}/files/diff?old=…&new=…&start=…&count=…`, "]
    lines[-1] += f"`{prefix}/commits`"
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", required=True, type=Path, help="a complete bare copy of git's repository")
    parser.add_argument("--repeat", type=int, default=5, help="runs of each measurement (default 5)")
    parser.add_argument("--out", type=Path, help="also write the markdown report to this file")
    parser.add_argument(
        "--quiet-timeout",
        type=float,
        default=300,
        help="seconds to wait before each run for other processes to leave the CPUs alone (default 300, 0: never)",
    )
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    # A SIGTERM unwinds like Ctrl-C, so the servers are stopped on the way out.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))

    scenario = describe_source(args.source.resolve())
    phases: dict[str, Phase] = {}
    with tempfile.TemporaryDirectory(prefix="portal-pulls-") as tmp_name:
        tmp = Path(tmp_name)
        portal, number = set_up(tmp, scenario)
        for column, cold in ((FIRST, True), (REPEAT, False)):
            print(f"{column}:", file=sys.stderr)
            phases[column] = run_phase(tmp, number, repeat=args.repeat, quiet_timeout=args.quiet_timeout, cold=cold)

    text = report(scenario, phases, repeat=args.repeat, portal=portal)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
