"""Browsing the same big repository with the portal and with cgit: latency and throughput of each page, with wrk.

Run by hand, never by the test suite (needs `apt-get install -y cgit lighttpd wrk`):

    .venv/bin/python bench/browse.py --source /path/to/git.git [--duration 10] [--out results.md] [--first-views-only]
        [--first-views 24]

The source must be a complete bare copy of git's own history (no partial clone): the pages are the ones of that
repository (the t/ folder, config.c, refs.c, the tags v2.44.0 and v2.45.0).

Setup, in a throw-away folder: migrate and start the portal as `make run` does (`manage.py serve`: SQLite, embedded
Valkey, gunicorn) on free ports, create the user `bench` and the public repository `bench/git` through the portal's
services, replace its content with a mirror clone of the source and run the portal's maintenance on it (repack with
a bitmap, commit-graph), which leaves it as a push would. cgit (Debian's package, behind lighttpd with mod_cgi) serves
that same repository in three configurations: cache off, cache on (every TTL infinite, so repeat views hit), and
cache off with the Pygments source filter (measured on the blob page only). The portal runs twice: with
PORTAL_CACHE=dummy (nothing is kept, every request is a first view) and with PORTAL_CACHE=redis, which is what
`make run` gets (its embedded Valkey, shared by the gunicorn workers), for repeat views.

First of all, while no page of the repository has been opened, come the first views, the way a reader meets the
pages: 24 distinct small directories, source files, commits and files' histories (none of the pages above), each
asked once of a running portal (PORTAL_CACHE=redis, as under `make run`) and once of cgit with its cache off (a file:
with its Pygments filter), in turn, all the servers running at once so that the machine's load weighs on both alike;
then five repeat views of each, alternating the portal and cgit with its cache on; and the repository's home as the
first page after each of three starts of the portal, its cache emptied before each. Before the first views, the
READMEs of the branch are rendered as a push of it has them rendered (the job that follows a push: the cache was
emptied with the starts), and the report gives each page's time, so that folders with a README can be told from
the others. `--first-views-only` stops there.

In the measurements that follow, only one server runs at a time. Each page is fetched once and checked (status 200
and some text it must show), then warmed with a burst of concurrent requests (so that every gunicorn worker and
cgit's cache have seen it), then measured with wrk: latency percentiles at 1 connection, requests per second at 8. The compare page is also fetched once
without any cache (time to first byte, whole body, size). Requests are anonymous, the repository being public.
"""

import argparse
import concurrent.futures
import html
import http.client
import itertools
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from bench.transport import PYTHON, ROOT, free_port, manage, migrate, portal_environment

CGIT_CGI = Path("/usr/lib/cgit/cgit.cgi")
CGIT_STATIC = Path("/usr/share/cgit")
PYGMENTS_FILTER = Path("/usr/lib/cgit/filters/syntax-highlighting.py")
APT_PACKAGES = "cgit lighttpd wrk"
REF = "master"
COMPARE = ("v2.44.0", "v2.45.0")
COMMIT_FILES = range(200, 251)
# GitHub lists 35 commits a page in its log and 50 in its API; cgit's default is 50, and both sides use it.
LOG_PAGE_SIZE = 50
CGIT_CACHE_TTLS = ("root", "repo", "dynamic", "static", "about", "snapshot", "scanrc")
WARM_REQUESTS = 8
# First views: this many distinct pages of each kind, none of them opened before, each asked once of each server.
# The more pages, the steadier their median: on a small machine a page now and then takes twice its time.
FIRST_VIEWS = 24
# Directories of this many entries count as small; files past this size are left out of the first views.
SMALL_DIRECTORY = range(10, 301)
FIRST_VIEW_FILE_BYTES = 64 * 1024
# Commits of the first views are taken among this many newest non-merge commits.
FIRST_VIEW_COMMITS = 2000
# Repeat views of the first-view pages, alternating the portal and cgit's cache, and restarts of the portal.
REPEAT_ROUNDS = 5
RESTARTS = 3
# Once the web answers, the time its other gunicorn workers may take to finish importing the portal.
WORKERS_BOOT_SECONDS = 3
WRK_TIMEOUT = "120s"
# Between runs, the server counts as idle once its processes use under 5% of a CPU over half a second.
IDLE_WINDOW = 0.5
IDLE_CPU_SHARE = 0.05
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
WRK_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}

# Columns of the tables: the portal's two phases, then cgit's three configurations.
PORTAL_FIRST, PORTAL_REPEAT = "portal first view", "portal repeat view"
CGIT_OFF, CGIT_ON, CGIT_PYGMENTS = "cgit cache off", "cgit cache on", "cgit + Pygments"
COLUMNS = (PORTAL_FIRST, PORTAL_REPEAT, CGIT_OFF, CGIT_ON, CGIT_PYGMENTS)

SETUP = """
import json
from django.conf import settings
from portal import services as s
from repos import services as r
from repos.models import Visibility
u = s.create_user(actor=None, username='bench', email='bench@example.com', password='bench-password-123')
repo = r.create_repository(actor=u, owner=u, name='git', visibility=Visibility.PUBLIC, default_branch='{ref}')
print(json.dumps({{
    'path': str(repo.path),
    'debug': settings.DEBUG,
    'workers': settings.PORTAL_WEB_WORKERS,
    'threads': settings.PORTAL_WEB_THREADS,
}}))
"""

MAINTAIN = """
from repos import git, jobs
from repos.models import Repository
repo = Repository.objects.get(owner__username='{owner}', name='{repo}')
git.set_default_branch(repo.path, '{ref}')
jobs.schedule_maintenance(repo.pk)
jobs.run_repository_maintenance(repo.pk)
"""


# What the job that follows a push of the branch from nothing does for its READMEs (repos.jobs.run_post_receive).
PREPARE_READMES = """
from repos import git, jobs
from repos.models import Push, Repository
repo = Repository.objects.select_related('owner').get(owner__username='{owner}', name='{repo}')
push = Push(repository=repo, ref='refs/heads/{ref}', old_sha=git.ZERO_SHA, new_sha=git.branch_sha(repo.path, '{ref}'))
print(jobs.prepare_readmes(push))
"""


@dataclass(frozen=True)
class Page:
    key: str
    label: str
    portal: str
    cgit: str
    # Text that both renderings must contain, and text only cgit's must (its own wording).
    markers: tuple[str, ...]
    cgit_markers: tuple[str, ...] = ()


@dataclass(frozen=True)
class Sample:
    p50_ms: float | None
    p99_ms: float | None
    requests: int
    rps: float
    errors: int
    # Requests completed in the throughput run (the latency run's count is `requests`).
    rps_requests: int = 0


@dataclass(frozen=True)
class OneShot:
    first_byte_ms: float
    total_ms: float
    size: int


@dataclass(frozen=True)
class Source:
    path: Path
    commits: int
    pack_bytes: int
    commit: str
    commit_files: int
    compare_files: int
    pages: list[Page]


def git(source: Path, *args: str) -> str:
    result = subprocess.run(["git", "-C", str(source), *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"git {' '.join(args)} failed in {source}: {result.stderr.strip()}")
    return result.stdout


def check_tools() -> None:
    """Stop with the apt command when cgit, lighttpd, wrk or Pygments for cgit's filter is missing."""
    missing = [str(CGIT_CGI)] if not CGIT_CGI.exists() else []
    missing += [name for name in ("lighttpd", "wrk") if shutil.which(name) is None]
    if missing:
        raise SystemExit(f"missing {', '.join(missing)}: install them with `apt-get install -y {APT_PACKAGES}`")
    # The filter starts with `#!/usr/bin/env python3`, and lighttpd gives it PATH=/usr/bin:/bin.
    if subprocess.run(["/usr/bin/python3", "-c", "import pygments"], capture_output=True).returncode != 0:
        raise SystemExit("cgit's Pygments filter needs Pygments: install it with `apt-get install -y python3-pygments`")


def changed_files(source: Path, old: str, new: str) -> int:
    """Files changed between two commits as cgit counts them (with rename detection)."""
    return len(git(source, "diff", "--name-only", "-M", old, new).splitlines())


def find_commit(source: Path) -> str:
    """The newest non-merge commit on the branch that touches between 200 and 250 files (no rename detection)."""
    argv = ["git", "-C", str(source), "log", "--no-merges", "--no-renames", "--name-only", "--format=%x00%H", REF]
    log = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    sha, files = None, 0
    try:
        # Each commit is a NUL and its sha on one line, then the files it touches; the end closes the last one.
        for line in itertools.chain(log.stdout, ["\0"]):
            if line.startswith("\0"):
                if sha is not None and files in COMMIT_FILES:
                    return sha
                sha, files = line[1:].strip(), 0
            elif line.strip():
                files += 1
    finally:
        log.kill()
        log.wait()
    raise SystemExit(f"no commit on {REF} touches {COMMIT_FILES.start} to {COMMIT_FILES.stop - 1} files: pass --commit")


def identifier(text: str) -> str:
    """The first snake_case identifier of a source file: no character of it is escaped or split by a highlighter."""
    match = re.search(r"\b[a-z]+_[a-z0-9_]{6,}\b", text)
    if match is None:
        raise SystemExit("found no identifier to look for in a source file")
    return match.group()


def describe_source(source: Path, commit: str | None) -> Source:
    """Check that the source has every object and path the pages need, and derive what each page must show."""
    if git(source, "rev-parse", "--is-bare-repository").strip() != "true":
        raise SystemExit(f"{source} is not a bare repository")
    if list(source.glob("objects/pack/*.promisor")):
        raise SystemExit(f"{source} is a partial clone: make a complete copy with `git clone --bare` first")
    for ref in (REF, *COMPARE):
        git(source, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    if commit is None:
        commit = find_commit(source)
    commit = git(source, "rev-parse", "--verify", "--quiet", f"{commit}^{{commit}}").strip()
    old, new = COMPARE
    subject = git(source, "log", "-1", "--format=%s", REF).strip()
    # cgit escapes &, < and > in text; the first words are enough, and a cut cannot split an entity.
    subject_marker = html.escape(subject[:30], quote=False)
    t_entries = git(source, "ls-tree", "--name-only", f"{REF}:t").splitlines()
    commit_first = git(source, "diff", "--name-only", "-M", f"{commit}^", commit).splitlines()[0]
    compare_first = git(source, "diff", "--name-only", "-M", old, new).splitlines()[0]
    commit_files = changed_files(source, f"{commit}^", commit)
    compare_files = changed_files(source, old, new)
    pages = [
        Page("home", "home (summary)", "/bench/git", "/git/", (subject_marker,)),
        Page("tree", "tree t/", f"/bench/git/tree/{REF}/t", f"/git/tree/t?h={REF}", (max(t_entries, key=len),)),
        Page(
            "blob",
            "blob config.c",
            f"/bench/git/blob/{REF}/config.c",
            f"/git/tree/config.c?h={REF}",
            (identifier(git(source, "show", f"{REF}:config.c")),),
        ),
        Page("log", "log", f"/bench/git/commits/{REF}", f"/git/log/?h={REF}", (subject_marker,)),
        Page(
            "commit",
            f"commit ({commit_files} files)",
            f"/bench/git/commit/{commit}",
            f"/git/commit/?id={commit}",
            (commit_first,),
            (f"{commit_files} files changed",),
        ),
        Page(
            "compare",
            f"compare {old}...{new} ({compare_files} files)",
            f"/bench/git/compare/{old}...{new}",
            f"/git/diff/?id={new}&id2={old}",
            (compare_first,),
            (f"{compare_files} files changed",),
        ),
        Page(
            "blame",
            "blame refs.c",
            f"/bench/git/blame/{REF}/refs.c",
            f"/git/blame/refs.c?h={REF}",
            (identifier(git(source, "show", f"{REF}:refs.c")),),
        ),
    ]
    return Source(
        path=source,
        commits=int(git(source, "rev-list", "--count", REF)),
        pack_bytes=sum(pack.stat().st_size for pack in source.glob("objects/pack/*.pack")),
        commit=commit,
        commit_files=commit_files,
        compare_files=compare_files,
        pages=pages,
    )


def spread(items: list, count: int, offset: float = 0.0) -> list:
    """count items evenly spread over the list (offset, a fraction of a step, shifts them)."""
    if len(items) < count:
        raise SystemExit(f"need {count} candidates, found {len(items)}")
    step = len(items) / count
    return [items[int((n + offset) * step)] for n in range(count)]


def subject_marker(source: Path, *args: str) -> str:
    """The first words of a commit's subject, up to a quote (which cgit and the portal escape each their way)."""
    subject = re.split(r"""['"]""", git(source, "log", "-1", "--format=%s", *args).strip())[0]
    return html.escape(subject[:30], quote=False)


def first_view_pages(source: Path, avoid: set[str]) -> list[Page]:
    """FIRST_VIEWS distinct pages of each kind that the wrk pages do not open: small directories, source files,
    commits, and files' histories; each page's key is its kind."""
    # Directories only (ls-tree -d lists submodules too).
    listing = git(source, "ls-tree", "-r", "-t", "-z", REF).split("\0")
    trees = [line.split("\t", 1)[1] for line in listing if line and line.split()[1] == "tree"]
    small = []
    for folder in trees:
        entries = git(source, "ls-tree", "--name-only", "-z", f"{REF}:{folder}").split("\0")
        entries = [entry for entry in entries if entry]
        if len(entries) in SMALL_DIRECTORY and folder not in avoid:
            small.append((folder, max(entries, key=len)))
    listing = git(source, "ls-tree", "-r", "-l", "-z", REF).split("\0")
    sources = []
    for line in filter(None, listing):
        meta, name = line.split("\t", 1)
        size = meta.split()[3]
        if name.endswith((".c", ".h")) and size.isdigit() and int(size) <= FIRST_VIEW_FILE_BYTES and name not in avoid:
            sources.append(name)
    shas = git(source, "rev-list", "--no-merges", f"--max-count={FIRST_VIEW_COMMITS}", REF).split()
    shas = [sha for sha in shas[1:] if sha not in avoid]
    pages = []
    for folder, entry in spread(small, FIRST_VIEWS):
        pages.append(
            Page(
                "tree",
                f"tree {folder}",
                f"/bench/git/tree/{REF}/{folder}",
                f"/git/tree/{folder}?h={REF}",
                (html.escape(entry, quote=False),),
            )
        )
    for name in spread(sources, FIRST_VIEWS):
        pages.append(
            Page(
                "blob",
                f"blob {name}",
                f"/bench/git/blob/{REF}/{name}",
                f"/git/tree/{name}?h={REF}",
                (name.rsplit("/", 1)[-1],),
            )
        )
    for sha in spread(shas, FIRST_VIEWS):
        pages.append(
            Page(
                "commit",
                f"commit {sha[:10]}",
                f"/bench/git/commit/{sha}",
                f"/git/commit/?id={sha}",
                (subject_marker(source, sha),),
            )
        )
    for name in spread(sources, FIRST_VIEWS, offset=0.5):
        pages.append(
            Page(
                "history",
                f"history {name}",
                f"/bench/git/commits/{REF}/{name}",
                f"/git/log/{name}?h={REF}",
                (subject_marker(source, REF, "--", name),),
            )
        )
    return pages


# HTTP


def get(url: str, timeout: float = 300) -> tuple[int, bytes]:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        connection.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""))
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def time_one_request(url: str) -> OneShot:
    """Time to the status line and headers, and to the end of the body, of one request on a new connection."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=300)
    try:
        start = time.perf_counter()
        connection.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""))
        response = connection.getresponse()
        first_byte = time.perf_counter() - start
        size = 0
        while chunk := response.read(64 * 1024):
            size += len(chunk)
        total = time.perf_counter() - start
    finally:
        connection.close()
    if response.status != 200:
        raise SystemExit(f"{url} answered {response.status}")
    return OneShot(first_byte * 1000, total * 1000, size)


def check_page(url: str, page: Page, *, strict: bool, extra: tuple[str, ...] = ()) -> str:
    """Fetch a page once: fail unless it answers 200, and fail (or warn) unless it shows what it must."""
    status, body = get(url)
    text = body.decode(errors="replace")
    if status != 200:
        head = "\n".join(text.splitlines()[:15])
        raise SystemExit(f"{url} answered {status}, not 200:\n{head}")
    wanted = page.markers + (page.cgit_markers + extra if strict else ())
    missing = [marker for marker in wanted if marker not in text]
    if missing and strict:
        raise SystemExit(f"{url} does not show {missing!r}")
    if missing:
        print(f"warning: {url} does not show {missing!r}", file=sys.stderr)
    return text


def warm(url: str) -> None:
    """Concurrent requests, so that every gunicorn worker (each has its own locmem cache) has rendered the page."""
    with concurrent.futures.ThreadPoolExecutor(WARM_REQUESTS) as pool:
        for status, _ in pool.map(get, [url] * WARM_REQUESTS):
            if status != 200:
                raise SystemExit(f"{url} answered {status} while warming")


def wait_until_up(url: str, process: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server for {url} exited ({process.returncode}):\n{tail(log)}")
        try:
            get(url, timeout=5)
            return
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"nothing answered at {url} after {timeout:.0f} s:\n{tail(log)}")


def tail(log: Path, lines: int = 30) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else "(no log)"


# wrk


def wrk_ms(value: str, unit: str) -> float:
    return float(value) * WRK_UNITS_MS[unit]


def wrk(url: str, *, connections: int, duration: int) -> Sample:
    """Run wrk once; with one connection ask for the latency distribution."""
    argv = ["wrk", f"-t{min(connections, 2)}", f"-c{connections}", f"-d{duration}s", "--timeout", WRK_TIMEOUT]
    if connections == 1:
        argv.append("--latency")
    result = subprocess.run([*argv, url], capture_output=True, text=True)
    out = result.stdout
    if result.returncode != 0 or "requests in" not in out:
        raise SystemExit(f"wrk failed on {url}:\n{out}{result.stderr}")
    percentiles = {
        int(label): wrk_ms(value, unit)
        for label, value, unit in re.findall(r"^\s*(50|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s|m|h)\s*$", out, re.M)
    }
    requests = int(re.search(r"^\s*(\d+) requests in", out, re.M).group(1))
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses:\s+(\d+)", out))
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if socket_errors:
        errors += sum(int(n) for n in socket_errors.groups())
    if errors:
        print(f"warning: {errors} failed requests on {url}:\n{out}", file=sys.stderr)
    return Sample(
        p50_ms=percentiles.get(50) if requests else None,
        p99_ms=percentiles.get(99) if requests else None,
        requests=requests,
        rps=float(re.search(r"^Requests/sec:\s+([\d.]+)", out, re.M).group(1)),
        errors=errors,
    )


def tree_cpu_seconds(root: int) -> float:
    """CPU time used so far by a process and its descendants, counting the children they have already reaped."""
    parents, ticks = {}, {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # The command name is in parentheses and may hold spaces; the numbered fields follow the last ")".
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        pid = int(stat.parent.name)
        parents[pid] = int(fields[1])
        ticks[pid] = sum(int(value) for value in fields[11:15])
    tree, todo = set(), [root]
    while todo:
        pid = todo.pop()
        tree.add(pid)
        todo += [child for child, parent in parents.items() if parent == pid and child not in tree]
    return sum(ticks.get(pid, 0) for pid in tree) / CLOCK_TICKS


def wait_until_idle(server: subprocess.Popen, timeout: float = 600) -> None:
    """Wait until the server has finished the requests wrk left in flight when it stopped.

    Requests still running at the end of a run (cgit processes, gunicorn threads) would otherwise take the CPU from
    the next measurement; on a slow page at 8 connections that is seconds of work."""
    deadline = time.monotonic() + timeout
    before = tree_cpu_seconds(server.pid)
    while time.monotonic() < deadline:
        time.sleep(IDLE_WINDOW)
        after = tree_cpu_seconds(server.pid)
        if after - before < IDLE_WINDOW * IDLE_CPU_SHARE:
            return
        before = after
    print(f"warning: the server was still busy after {timeout:.0f} s", file=sys.stderr)


def measure(base: str, pages: list[Page], column: str, duration: int, results: dict, server: subprocess.Popen) -> None:
    """Latency at 1 connection and throughput at 8, page after page, into results[page key][column]."""
    for page in pages:
        url = base + (page.portal if column.startswith("portal") else page.cgit)
        wait_until_idle(server)
        latency = wrk(url, connections=1, duration=duration)
        wait_until_idle(server)
        throughput = wrk(url, connections=8, duration=duration)
        results.setdefault(page.key, {})[column] = Sample(
            latency.p50_ms,
            latency.p99_ms,
            latency.requests,
            throughput.rps,
            latency.errors + throughput.errors,
            throughput.requests,
        )
        print(f"  {column:<20} {page.label:<44} {cell_latency(results[page.key][column]):>24}", file=sys.stderr)


# Servers


def stop(process: subprocess.Popen, timeout: float = 30) -> None:
    """SIGTERM the process (the portal's supervisor stops its children itself), SIGKILL its group if it lingers."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def start(stack: ExitStack, argv: list[str], *, env: dict[str, str] | None, log: Path, url: str) -> subprocess.Popen:
    with log.open("ab") as out:
        process = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    stack.callback(stop, process)
    wait_until_up(url, process, log)
    return process


def django(env: dict[str, str], code: str) -> str:
    try:
        return manage(env, code)
    except subprocess.CalledProcessError as error:
        raise SystemExit(f"manage.py shell failed:\n{error.stdout}{error.stderr}")


def set_up_repository(tmp: Path, source: Path) -> tuple[Path, dict]:
    """Create bench/git through the portal, put the source's history in it and maintain it as after a push.

    Returns the repository's path and the portal's settings that the report states (DEBUG, workers, threads)."""
    env, _ = portal_environment(tmp)
    migrate(env)
    portal = json.loads(django(env, SETUP.format(ref=REF)).splitlines()[-1])
    path = Path(portal["path"])
    # Clone beside it and swap, keeping the configuration the portal wrote rather than the mirror's remote.
    staging = path.with_name(f"{path.name}.clone")
    subprocess.run(["git", "clone", "-q", "--bare", "--mirror", str(source), str(staging)], check=True)
    shutil.copyfile(path / "config", staging / "config")
    shutil.rmtree(path)
    staging.rename(path)
    started = time.perf_counter()
    django(env, MAINTAIN.format(owner="bench", repo="git", ref=REF))
    print(f"maintenance (repack, commit-graph): {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return path, portal


def cgitrc(repo_path: Path, *, cache_root: Path | None = None, source_filter: Path | None = None) -> str:
    # Global settings go before repo.url: a repository takes the flags and filters in force where it is declared.
    lines = [
        "virtual-root=/",
        "css=/cgit.css",
        "logo=/cgit.png",
        "enable-blame=1",
        f"max-commit-count={LOG_PAGE_SIZE}",
        "enable-commit-graph=0",
    ]
    if cache_root is None:
        lines.append("cache-size=0")
    else:
        # A negative TTL never expires, so every repeat view is served from the cache.
        lines += ["cache-size=1000", f"cache-root={cache_root}", *(f"cache-{kind}-ttl=-1" for kind in CGIT_CACHE_TTLS)]
    if source_filter is not None:
        lines.append(f"source-filter={source_filter}")
    lines += ["repo.url=git", f"repo.path={repo_path}"]
    return "\n".join(lines) + "\n"


def lighttpd_conf(port: int, config: Path, errorlog: Path) -> str:
    return f"""\
server.bind = "127.0.0.1"
server.port = {port}
server.document-root = "{CGIT_STATIC}"
server.errorlog = "{errorlog}"
# Send cgit's output as it comes (lighttpd buffers a whole CGI response by default), so its first byte is timed fairly.
server.stream-response-body = 2
server.modules = ("mod_alias", "mod_setenv", "mod_cgi")
# The Pygments filter runs through /usr/bin/env python3: PATH makes that the system's python3 with Pygments.
setenv.add-environment = ("CGIT_CONFIG" => "{config}", "PATH" => "/usr/bin:/bin", "GIT_CONFIG_NOSYSTEM" => "1")
# Everything but cgit's stylesheet and logo goes to cgit.cgi, which reads the page from PATH_INFO (virtual-root=/).
$HTTP["url"] !~ "^/cgit[.](css|png)$" {{
    alias.url = ("/" => "{CGIT_CGI}/")
    cgi.assign = ("" => "")
}}
"""


def start_cgit(
    stack: ExitStack, tmp: Path, name: str, repo_path: Path, **options: Path
) -> tuple[str, subprocess.Popen]:
    """Start lighttpd with cgit in one configuration; return its base URL and its process."""
    folder = tmp / name
    folder.mkdir()
    port = free_port()
    (folder / "cgitrc").write_text(cgitrc(repo_path, **options))
    conf = folder / "lighttpd.conf"
    conf.write_text(lighttpd_conf(port, folder / "cgitrc", folder / "error.log"))
    test = subprocess.run(["lighttpd", "-tt", "-f", str(conf)], capture_output=True, text=True)
    if test.returncode != 0:
        raise SystemExit(f"lighttpd refuses {conf}:\n{test.stdout}{test.stderr}")
    base = f"http://127.0.0.1:{port}"
    server = start(stack, ["lighttpd", "-D", "-f", str(conf)], env=None, log=folder / "lighttpd.log", url=f"{base}/")
    return base, server


def cgit_version(page: str) -> str:
    match = re.search(r"generated by <a[^>]*>(cgit [^<]+)</a> \(<a[^>]*>(git [^<]+)</a>\)", page)
    return f"{match.group(1)} ({match.group(2)})" if match else "cgit"


def run_cgit(tmp: Path, repo_path: Path, source: Source, duration: int, results: dict, compare: dict) -> str:
    """Measure cgit's three configurations one after the other; return its version."""
    pages = source.pages
    blob = [page for page in pages if page.key == "blob"]
    configurations = [
        (CGIT_OFF, pages, {}, ()),
        (CGIT_ON, pages, {"cache_root": tmp / "cgit-cache"}, ()),
        (CGIT_PYGMENTS, blob, {"source_filter": PYGMENTS_FILTER}, ('class="highlight"',)),
    ]
    (tmp / "cgit-cache").mkdir()
    version = "cgit"
    for column, measured, options, extra in configurations:
        print(f"{column}:", file=sys.stderr)
        with ExitStack() as stack:
            base, server = start_cgit(stack, tmp, column.replace(" ", "-").replace("+", "and"), repo_path, **options)
            for page in measured:
                text = check_page(base + page.cgit, page, strict=True, extra=extra)
                if page.key == "home":
                    version = cgit_version(text)
            if column == CGIT_OFF:
                compare[column] = time_one_request(base + pages_by_key(pages)["compare"].cgit)
            if column == CGIT_ON and not any((tmp / "cgit-cache").iterdir()):
                raise SystemExit("cgit's cache stayed empty: check cache-root and cache-size")
            for page in measured:
                warm(base + page.cgit)
            measure(base, measured, column, duration, results, server)
    return version


def run_portal(tmp: Path, source: Source, duration: int, results: dict, compare: dict, repeat_cache: str) -> None:
    """Measure the portal without a cache (first views), then with one (repeat views)."""
    for column, cache in ((PORTAL_FIRST, "dummy"), (PORTAL_REPEAT, repeat_cache)):
        print(f"{column} (PORTAL_CACHE={cache}):", file=sys.stderr)
        env, port = portal_environment(tmp, cache=cache)
        base = f"http://127.0.0.1:{port}"
        with ExitStack() as stack:
            log = tmp / f"serve-{cache}.log"
            server = start(stack, [PYTHON, "manage.py", "serve"], env=env, log=log, url=f"{base}/")
            for page in source.pages:
                check_page(base + page.portal, page, strict=False)
            if column == PORTAL_FIRST:
                compare[column] = time_one_request(base + pages_by_key(source.pages)["compare"].portal)
            for page in source.pages:
                warm(base + page.portal)
            measure(base, source.pages, column, duration, results, server)


# First views, on running servers, the portal and cgit asked in turn


FIRST_KINDS = {
    "home": "the repository's home, first request after a start",
    "tree": "a small directory",
    "blob": "a source file (cgit: with Pygments)",
    "commit": "a commit",
    "history": "a file's history",
}
PORTAL, CGIT_FIRST, CGIT_CACHED = "portal", "cgit", "cgit cache on"


def timed_get(url: str, page: Page | None = None) -> float:
    """Milliseconds to the end of the body of one request on a new connection; fail unless it answers 200, and
    warn when the page does not show what it must."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=300)
    try:
        start = time.perf_counter()
        connection.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""))
        response = connection.getresponse()
        body = response.read()
        elapsed = (time.perf_counter() - start) * 1000
    finally:
        connection.close()
    if response.status != 200:
        raise SystemExit(f"{url} answered {response.status}")
    text = body.decode(errors="replace")
    missing = [marker for marker in (page.markers if page else ()) if marker not in text]
    if missing:
        print(f"warning: {url} does not show {missing!r}", file=sys.stderr)
    return elapsed


def start_portal_fresh(stack: ExitStack, tmp: Path, cache: str) -> str:
    """Start the portal and wait until its workers have booted, without opening any page: whitenoise answers the
    readiness check from the static files, so the next request is the first page its worker renders."""
    env, port = portal_environment(tmp, cache=cache)
    base = f"http://127.0.0.1:{port}"
    log = tmp / f"serve-first-{cache}.log"
    start(stack, [PYTHON, "manage.py", "serve"], env=env, log=log, url=f"{base}/static/portal/favicon.svg")
    time.sleep(WORKERS_BOOT_SECONDS)
    return base


def run_first_views(tmp: Path, repo_path: Path, pages: list[Page], cache: str) -> dict:
    """Every page asked once of the portal (PORTAL_CACHE=cache, nothing opened before) and once of cgit with its
    cache off (a file: with its Pygments filter), in alternating order, all servers running; then REPEAT_ROUNDS
    repeat views of each, alternating the portal and cgit's cache (primed by one view first). The home page is
    asked after each of RESTARTS starts of the portal (its cache emptied before each), then of cgit.

    Returns {"first"|"repeat": {kind: {server: [ms, ...]}}, "load": [load averages at the start and the end],
    "each": {page label: (portal's first view, cgit's) in ms}}."""
    first: dict[str, dict[str, list[float]]] = {}
    repeat: dict[str, dict[str, list[float]]] = {}
    load = [os.getloadavg()]
    (tmp / "first-cgit-cache").mkdir()
    with ExitStack() as servers:
        cgit_off, _ = start_cgit(servers, tmp, "first-cgit-off", repo_path)
        cgit_on, _ = start_cgit(servers, tmp, "first-cgit-on", repo_path, cache_root=tmp / "first-cgit-cache")
        cgit_pygments, _ = start_cgit(servers, tmp, "first-cgit-pygments", repo_path, source_filter=PYGMENTS_FILTER)
        home = Page("home", "home", "/bench/git", "/git/", ())
        portal = None
        servers.callback(lambda: portal.close() if portal is not None else None)
        for attempt in range(RESTARTS):
            if portal is not None:
                portal.close()
                # The embedded Valkey keeps its data across starts: without it, nothing is cached again.
                shutil.rmtree(tmp / "var" / "valkey", ignore_errors=True)
            portal = ExitStack()
            base = start_portal_fresh(portal, tmp, cache)
            first.setdefault("home", {}).setdefault(PORTAL, []).append(timed_get(base + home.portal))
            first["home"].setdefault(CGIT_FIRST, []).append(timed_get(cgit_off + home.cgit))
            print(
                f"  start {attempt + 1}: home {first['home'][PORTAL][-1]:.1f} ms, "
                f"cgit {first['home'][CGIT_FIRST][-1]:.1f} ms",
                file=sys.stderr,
            )
        started = time.perf_counter()
        env = portal_environment(tmp, cache=cache)[0]
        readmes = django(env, PREPARE_READMES.format(owner="bench", repo="git", ref=REF)).splitlines()[-1]
        print(f"  the push's READMEs: {readmes} folders, {time.perf_counter() - started:.1f} s", file=sys.stderr)
        each: dict[str, tuple[float, float]] = {}
        for index, page in enumerate(pages):
            cgit_base = cgit_pygments if page.key == "blob" else cgit_off
            asks = [(PORTAL, base + page.portal), (CGIT_FIRST, cgit_base + page.cgit)]
            for server, url in asks if index % 2 == 0 else asks[::-1]:
                first.setdefault(page.key, {}).setdefault(server, []).append(timed_get(url, page))
            timed_get(cgit_on + page.cgit)
            for round_ in range(REPEAT_ROUNDS):
                asks = [(PORTAL, base + page.portal), (CGIT_CACHED, cgit_on + page.cgit)]
                for server, url in asks if round_ % 2 == 0 else asks[::-1]:
                    repeat.setdefault(page.key, {}).setdefault(server, []).append(timed_get(url))
            each[page.label] = (first[page.key][PORTAL][-1], first[page.key][CGIT_FIRST][-1])
            print(
                f"  {page.label:<50} portal {each[page.label][0]:7.1f} ms, cgit {each[page.label][1]:7.1f} ms",
                file=sys.stderr,
            )
    load.append(os.getloadavg())
    return {"first": first, "repeat": repeat, "load": load, "each": each}


def first_view_report(found: dict, pages: list[Page], cache: str) -> list[str]:
    def median(values: list[float] | None) -> float | None:
        return statistics.median(values) if values else None

    def spread_of(values: list[float] | None) -> str:
        return f"{ms(median(values))} ({ms(min(values))}–{ms(max(values))})" if values else "—"

    def times(a: float | None, b: float | None) -> str:
        return f"{a / b:.2f}×" if a is not None and b else "—"

    start, end = found["load"]
    lines = [
        "",
        f"First views on running servers: {FIRST_VIEWS} distinct pages of each kind that nothing had opened, "
        f"each asked once of the portal (PORTAL_CACHE={cache}) and once of cgit with its cache off (a file: with "
        "its Pygments filter), in alternating order, each request on a new connection, time to the end of the body; "
        f"then {REPEAT_ROUNDS} repeat views of each page, alternating the portal and cgit with its cache on. The home "
        f"page: the first page asked after each of {RESTARTS} starts of the portal (its cache emptied in between), "
        "and cgit's. "
        f"Load average (1, 5, 15 min): {start[0]:.2f} {start[1]:.2f} {start[2]:.2f} at the start, "
        f"{end[0]:.2f} {end[1]:.2f} {end[2]:.2f} at the end.",
        "",
        "ms: median (min–max)",
        "",
    ]
    rows = []
    for kind, label in FIRST_KINDS.items():
        one, again = found["first"].get(kind, {}), found["repeat"].get(kind, {})
        rows.append(
            [
                label,
                str(len(one.get(PORTAL, []))),
                spread_of(one.get(PORTAL)),
                spread_of(one.get(CGIT_FIRST)),
                times(median(one.get(PORTAL)), median(one.get(CGIT_FIRST))),
                spread_of(again.get(PORTAL)),
                spread_of(again.get(CGIT_CACHED)),
                times(median(again.get(PORTAL)), median(again.get(CGIT_CACHED))),
            ]
        )
    header = [
        "page, first view",
        "pages",
        "portal",
        "cgit, cache off",
        "portal ÷ cgit",
        "portal, repeat view",
        "cgit, cache on",
        "portal ÷ cgit cache",
    ]
    lines += table(header, rows)
    lines += ["", "First-view pages (ms: the portal's first view and cgit's, cache off)", ""]
    each = found["each"]
    rows = [[p.label, f"`{p.portal}`", f"`{p.cgit}`", ms(each[p.label][0]), ms(each[p.label][1])] for p in pages]
    lines += table(["page", "portal", "cgit", "portal ms", "cgit ms"], rows)
    return lines


def pages_by_key(pages: list[Page]) -> dict[str, Page]:
    return {page.key: page for page in pages}


# Report


def ms(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def cell_latency(sample: Sample | None) -> str:
    if sample is None:
        return "—"
    text = f"{ms(sample.p50_ms)} / {ms(sample.p99_ms)} ({sample.requests})"
    return text + (f" ⚠ {sample.errors} failed" if sample.errors else "")


def cell_rps(sample: Sample | None) -> str:
    if sample is None:
        return "—"
    text = f"{sample.rps:.1f} ({sample.rps_requests})"
    return text + (f" ⚠ {sample.errors} failed" if sample.errors else "")


def ratio(numerator: Sample | None, denominator: Sample | None) -> str:
    if not numerator or not denominator or numerator.p50_ms is None or not denominator.p50_ms:
        return "—"
    return f"{numerator.p50_ms / denominator.p50_ms:.1f}×"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def machine() -> str:
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        found = re.search(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.M)
        model = f", {found.group(1).strip()}" if found else ""
    return f"{len(os.sched_getaffinity(0))} CPUs (nproc){model}, {platform.system()} {platform.release()}"


def report(
    source: Source,
    results: dict,
    compare: dict,
    *,
    duration: int,
    cgit: str,
    repeat_cache: str,
    portal: dict,
    first_views: tuple[dict, list[Page]] | None = None,
) -> str:
    lines = [
        "# Browsing: the portal next to cgit",
        "",
        f"- source: `{source.path.name}`, {source.commits:,} commits on {REF}, "
        f"packs {source.pack_bytes / 2**20:,.0f} MiB",
        f"- machine: {machine()}",
        f"- wrk: {duration} s per measurement; latency at 1 connection (`wrk -t1 -c1 --latency`), "
        "throughput at 8 (`wrk -t2 -c8`); each page checked once and warmed with "
        f"{WARM_REQUESTS} concurrent requests first",
        f"- portal: `manage.py serve` (gunicorn gthread, {portal['workers']} workers x {portal['threads']} threads, "
        f"SQLite, embedded Valkey), DEBUG={portal['debug']}; first view PORTAL_CACHE=dummy, "
        f"repeat view PORTAL_CACHE={repeat_cache}",
        f"- cgit: {cgit} under lighttpd mod_cgi (streaming its output); max-commit-count={LOG_PAGE_SIZE}, "
        "enable-commit-graph=0, enable-blame=1; cache on: cache-size=1000 and every cache-*-ttl=-1; "
        "Pygments: source-filter=syntax-highlighting.py (blob page only)",
        f"- commit: {source.commit} ({source.commit_files} files); compare {COMPARE[0]}...{COMPARE[1]}: "
        f"{source.compare_files} files",
    ]
    if first_views is not None:
        lines += first_view_report(*first_views, repeat_cache)
    if not results:
        return "\n".join(lines) + "\n"
    lines += ["", "Latency at 1 connection, ms: p50 / p99 (requests measured)", ""]
    rows = []
    for page in source.pages:
        by = results.get(page.key, {})
        # The portal highlights syntax, so its blob page compares with cgit's highlighted one.
        cgit_first = by.get(CGIT_PYGMENTS) if page.key == "blob" else by.get(CGIT_OFF)
        rows.append(
            [page.label, *(cell_latency(by.get(column)) for column in COLUMNS)]
            + [ratio(by.get(PORTAL_FIRST), cgit_first), ratio(by.get(PORTAL_REPEAT), by.get(CGIT_ON))]
        )
    header = ["page", *COLUMNS, "first ÷ cgit off (blob: ÷ Pygments)", "repeat ÷ cgit on"]
    lines += table(header, rows)
    lines += ["", "Requests per second at 8 connections (requests completed)", ""]
    rows = [
        [page.label, *(cell_rps(results.get(page.key, {}).get(column)) for column in COLUMNS)] for page in source.pages
    ]
    lines += table(["page", *COLUMNS], rows)
    lines += ["", f"One request of the compare page ({source.compare_files} files) with nothing cached", ""]
    rows = [[column, ms(shot.first_byte_ms), ms(shot.total_ms), f"{shot.size:,}"] for column, shot in compare.items()]
    lines += table(["server", "first byte, ms", "whole body, ms", "body bytes"], rows)
    lines += ["", "URLs", ""]
    lines += table(["page", "portal", "cgit"], [[p.label, f"`{p.portal}`", f"`{p.cgit}`"] for p in source.pages])
    return "\n".join(lines) + "\n"


def main() -> None:
    global FIRST_VIEWS
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", required=True, type=Path, help="a complete bare copy of git's repository")
    parser.add_argument("--duration", type=int, default=10, help="seconds of each wrk run (default 10)")
    parser.add_argument("--out", type=Path, help="also write the markdown report to this file")
    parser.add_argument("--commit", help="the commit page's commit (default: the newest touching 200 to 250 files)")
    parser.add_argument("--only", choices=("portal", "cgit"), help="measure one side only")
    parser.add_argument(
        "--first-views-only",
        action="store_true",
        help="measure the first and repeat views of distinct pages only, not each page's latency and throughput",
    )
    parser.add_argument(
        "--first-views",
        type=int,
        default=FIRST_VIEWS,
        help=f"distinct pages of each kind asked once (default {FIRST_VIEWS}; more give steadier medians)",
    )
    parser.add_argument(
        "--repeat-cache",
        choices=("locmem", "redis"),
        default="redis",
        help="PORTAL_CACHE of the repeat-view phase (default redis: the embedded Valkey, as under `make run`)",
    )
    args = parser.parse_args()
    FIRST_VIEWS = args.first_views
    # A SIGTERM unwinds like Ctrl-C, so the servers are stopped on the way out.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))

    check_tools()
    source = describe_source(args.source.resolve(), args.commit)
    results: dict[str, dict[str, Sample]] = {}
    compare: dict[str, OneShot] = {}
    cgit = "cgit"
    with tempfile.TemporaryDirectory(prefix="portal-browse-") as tmp_name:
        tmp = Path(tmp_name)
        repo_path, portal = set_up_repository(tmp, source.path)
        # First, while no page of the repository has been opened.
        print(f"first views (PORTAL_CACHE={args.repeat_cache}) beside cgit:", file=sys.stderr)
        avoid = {"t", "config.c", "refs.c", source.commit}
        first_pages = first_view_pages(source.path, avoid)
        first_views = (run_first_views(tmp, repo_path, first_pages, args.repeat_cache), first_pages)
        if args.only != "portal" and not args.first_views_only:
            cgit = run_cgit(tmp, repo_path, source, args.duration, results, compare)
        if args.only != "cgit" and not args.first_views_only:
            run_portal(tmp, source, args.duration, results, compare, args.repeat_cache)

    text = report(
        source,
        results,
        compare,
        duration=args.duration,
        cgit=cgit,
        repeat_cache=args.repeat_cache,
        portal=portal,
        first_views=first_views,
    )
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
