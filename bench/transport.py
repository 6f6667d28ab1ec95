"""Clone and push timings over the embedded SSH server and smart HTTP, next to file://.

Run by hand, never by the test suite:

    .venv/bin/python bench/transport.py --source /path/to/a/big/bare/repo.git [--runs 3]

It starts `manage.py serve` on free ports with a throw-away var directory (SQLite, embedded Valkey),
creates a user with an SSH key and a token, pushes every branch and tag of the source repository
over SSH and over HTTP into two new repositories (and over file:// into a plain bare repository),
waits for the worker's maintenance (repack with a bitmap, commit-graph), then clones each back (bare)
over SSH, HTTP and file://, and runs `git ls-remote` 20 times over each, and prints a table of
wall-clock seconds (medians).
"""

import argparse
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def timed(argv: list[str], env: dict[str, str], cwd: Path | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(argv, env=env, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def wait_for_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except Exception:
            time.sleep(0.3)
    raise SystemExit(f"portal did not answer at {url}")


def wait_for_maintenance(git_root: Path, count: int, timeout: float = 300) -> None:
    """Wait until the worker has repacked the pushed repositories (their multi-pack bitmaps exist)."""
    deadline = time.monotonic() + timeout
    while len(list(git_root.glob("*.git/objects/pack/multi-pack-index*.bitmap"))) < count:
        if time.monotonic() > deadline:
            raise SystemExit("the worker did not maintain the pushed repositories in time")
        time.sleep(1)


def manage(env: dict[str, str], code: str) -> str:
    result = subprocess.run(
        [PYTHON, "manage.py", "shell", "-c", code], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    )
    return result.stdout.strip()


SETUP = """
from datetime import timedelta
from django.utils import timezone
from portal import services as s
from portal.models import User
from repos import services as r
u = User.objects.filter(username='bench').first() or s.create_user(actor=None, username='bench', email='bench@example.com', password='bench-password-123')
s.add_ssh_key(u, actor=u, title='bench', public_key=open('{pub}').read())
_, raw = s.create_access_token(u, actor=u, name='bench', scopes=['write:repo'], expires_at=timezone.now() + timedelta(days=1))
for name in ('via-ssh', 'via-http'):
    r.create_repository(actor=u, owner=u, name=name)
print(raw)
"""


def portal_environment(tmp: Path, *, cache: str | None = None) -> tuple[dict[str, str], int]:
    """The environment of a portal on free ports in tmp/var, as `make run` would start it there."""
    http_port, ssh_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL", "PORTAL_CACHE")}
    env |= {
        "PORTAL_VAR_DIR": str(tmp / "var"),
        "PORTAL_HTTP_PORT": str(http_port),
        "PORTAL_SSH_PORT": str(ssh_port),
        "PORTAL_BASE_URL": f"http://127.0.0.1:{http_port}",
        "HOME": str(tmp),
        "GIT_CONFIG_NOSYSTEM": "1",
    }
    if cache:
        env["PORTAL_CACHE"] = cache
    return env, http_port


def migrate(env: dict[str, str]) -> None:
    """Migrate the database of the portal in env, as `make run` does."""
    subprocess.run([PYTHON, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)


@contextmanager
def sandboxed_folder() -> Iterator[Path]:
    """A throw-away folder for a portal that runs builds or deployments: the sandboxes' and hooks' uids must
    traverse it down to their workspaces and targets."""
    with tempfile.TemporaryDirectory(prefix="portal-bench-") as name:
        folder = Path(name)
        folder.chmod(0o711)
        yield folder


@contextmanager
def running_portal(env: dict[str, str], http_port: int) -> Iterator[subprocess.Popen]:
    """`manage.py serve` in env, from the moment its web answers until the block ends (then SIGTERM, as Ctrl-C)."""
    server = subprocess.Popen(
        [PYTHON, "manage.py", "serve"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for_http(f"http://127.0.0.1:{http_port}/")
        yield server
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", required=True, type=Path, help="a bare repository to push and clone")
    parser.add_argument("--runs", type=int, default=3, help="clones per transport (median reported)")
    args = parser.parse_args()
    source = args.source.resolve()

    with tempfile.TemporaryDirectory(prefix="portal-bench-") as tmp_name:
        tmp = Path(tmp_name)
        env, http_port = portal_environment(tmp)
        ssh_port = int(env["PORTAL_SSH_PORT"])
        # Maintain right after the pushes, so the clones measure a repository in its steady state.
        env["PORTAL_MAINTENANCE_DELAY"] = "0"
        migrate(env)
        key = tmp / "id_ed25519"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        token = manage(env, SETUP.format(pub=f"{key}.pub")).splitlines()[-1]

        with running_portal(env, http_port):
            git_env = env | {
                "GIT_SSH_COMMAND": f"ssh -i {key} -o IdentitiesOnly=yes -o StrictHostKeyChecking=no "
                f"-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -p {ssh_port}",
                "GIT_TERMINAL_PROMPT": "0",
            }
            ssh_base = f"ssh://git@127.0.0.1:{ssh_port}/bench"
            http_base = f"http://bench:{token}@127.0.0.1:{http_port}/bench"
            refspecs = ["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"]
            size = subprocess.run(["du", "-sh", str(source)], capture_output=True, text=True).stdout.split()[0]
            commits = subprocess.run(
                ["git", "-C", str(source), "rev-list", "--count", "--all"], capture_output=True, text=True
            ).stdout.strip()
            rows = [
                (
                    "push over SSH",
                    timed(["git", "-C", str(source), "push", "-q", f"{ssh_base}/via-ssh.git", *refspecs], git_env),
                ),
                (
                    "push over HTTP",
                    timed(["git", "-C", str(source), "push", "-q", f"{http_base}/via-http.git", *refspecs], git_env),
                ),
            ]
            local = tmp / "local.git"
            subprocess.run(["git", "init", "-q", "--bare", str(local)], check=True)
            rows.append(
                (
                    "push over file://",
                    timed(["git", "-C", str(source), "push", "-q", f"file://{local}", *refspecs], git_env),
                )
            )
            wait_for_maintenance(tmp / "var" / "git", count=2)
            clones = {
                "clone over SSH": f"{ssh_base}/via-ssh.git",
                "clone over HTTP": f"{http_base}/via-http.git",
                "clone over file://": f"file://{source}",
            }
            for label, url in clones.items():
                times = []
                for run in range(args.runs):
                    slug = re.sub(r"\W", "", label)
                    target = tmp / f"clone-{slug}-{run}"
                    times.append(timed(["git", "clone", "-q", "--bare", url, str(target)], git_env))
                    subprocess.run(["rm", "-rf", str(target)], check=True)
                rows.append((f"{label} (median of {args.runs})", statistics.median(times)))
            # What every fetch and push pays before any pack moves: authentication, the access check
            # and the ref advertisement of the 1,000+ refs.
            for label, url in clones.items():
                label = label.replace("clone", "ls-remote")
                times = [timed(["git", "ls-remote", url], git_env) for _ in range(20)]
                rows.append((f"{label} (median of 20)", statistics.median(times)))

    print(f"source: {source.name}, {commits} commits, {size} on disk")
    print(f"{'operation':<36} {'seconds':>8}")
    for label, seconds in rows:
        print(f"{label:<36} {seconds:>8.2f}")


if __name__ == "__main__":
    main()
