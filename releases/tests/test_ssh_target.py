"""The ssh target's transport against a real OpenSSH sshd on a loopback port, with its own host key and config.

sshd logs in only the user it runs as unless it runs as root, so the deployment logs in as the user running the
tests (root in CI) and works in a temporary directory. Nothing of the machine's own sshd is used: not its config,
host keys or authorized_keys; only, as root, the empty privilege separation directory sshd insists on.
"""

import asyncio
import hashlib
import os
import re
import stat
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import asyncssh
import pytest

from releases.ssh_target import (
    CommandTimedOut,
    HostKeyMismatch,
    RemoteFileError,
    SshTarget,
    SshTargetError,
    TargetLayout,
    fingerprint,
    generate_deploy_key,
    parse_host_key,
    scan_host_key,
)
from releases.tests.conftest import alive, free_port


def connect(sshd, private_key, host_key):
    return SshTarget.connect("127.0.0.1", sshd.port, sshd.user, private_key, host_key, connect_timeout=10)


def bundle(root: Path, marker: str) -> Path:
    """A bundle like an artifact's: a hook script, a data file, a subdirectory and a relative symbolic link."""
    (root / "scripts").mkdir(parents=True)
    hook = root / "scripts" / "after_install.sh"
    hook.write_text(
        "#!/bin/sh\n"
        'echo "event $LIFECYCLE_EVENT of deployment $DEPLOYMENT_ID"\n'
        'echo "secret: $SECRET"\n'
        'echo "to stderr" >&2\n'
        "cat ../VERSION\n"
    )
    hook.chmod(0o750)
    (root / "VERSION").write_text(marker + "\n")
    (root / "VERSION").chmod(0o640)
    (root / "latest").symlink_to("VERSION")
    return root


def test_a_deployment_uploads_runs_hooks_and_switches_current_atomically(sshd, deploy_key, tmp_path):
    host_key = scan_host_key("127.0.0.1", sshd.port)
    assert fingerprint(host_key) == asyncssh.read_private_key(sshd.host_key).get_fingerprint("sha256")

    layout = TargetLayout(str(tmp_path / "target"))
    with connect(sshd, deploy_key, host_key) as target:
        assert target.read_link(layout.current) is None
        for deployment_id in (41, 42):
            revision = layout.revision(deployment_id)
            target.upload_tree(bundle(tmp_path / f"bundle-{deployment_id}", f"v{deployment_id}"), revision)

            lines = []
            status = target.run(
                "./after_install.sh",
                env={
                    "LIFECYCLE_EVENT": "AfterInstall",
                    "DEPLOYMENT_ID": str(deployment_id),
                    "SECRET": 'it\'s "quoted" $HOME `id`; echo pwned',
                },
                cwd=f"{revision}/scripts",
                timeout=30,
                on_line=lines.append,
            )
            assert status == 0
            assert lines == [
                f"event AfterInstall of deployment {deployment_id}",
                'secret: it\'s "quoted" $HOME `id`; echo pwned',
                "to stderr",
                f"v{deployment_id}",
            ]

            target.switch(layout.current, layout.current_target(deployment_id))
            assert target.read_link(layout.current) == f"revisions/{deployment_id}"
            assert (Path(layout.current) / "VERSION").read_text() == f"v{deployment_id}\n"

        for unsafe in ("/", f"{layout.base}/revisions/../..", "relative"):
            with pytest.raises(SshTargetError, match="not an absolute, normalised path"):
                target.remove_tree(unsafe)
        failing = target.run("echo failing; exit 3", timeout=30)
        assert failing == 3
        assert target.health(f"test -x {layout.current}/scripts/after_install.sh").healthy
        unhealthy = target.health("echo not ready; false")
        assert not unhealthy.healthy and unhealthy.detail == "not ready"

    # What landed on the host: modes kept, the link still a link, both revisions beside each other.
    revision = Path(layout.revision(42))
    assert (revision / "scripts" / "after_install.sh").stat().st_mode & 0o777 == 0o750
    assert (revision / "VERSION").stat().st_mode & 0o777 == 0o640
    assert os.readlink(revision / "latest") == "VERSION"
    assert sorted(os.listdir(layout.revisions)) == ["41", "42"]
    # No temporary link was left behind by the switches.
    assert sorted(os.listdir(layout.base)) == ["current", "revisions"]


def test_a_hook_past_its_timeout_is_killed_with_its_children(sshd, deploy_key, tmp_path):
    host_key = scan_host_key("127.0.0.1", sshd.port)
    pids = tmp_path / "pids"
    lines = []
    started = time.monotonic()
    with connect(sshd, deploy_key, host_key) as target:
        with pytest.raises(CommandTimedOut, match="did not finish within 2 seconds") as timed_out:
            target.run(
                f"sleep 300 & echo $$ $! > {pids}; echo started; wait",
                timeout=2,
                on_line=lines.append,
            )
        # The connection is still usable afterwards.
        assert target.run("true", timeout=10) == 0
    assert timed_out.value.timeout == 2
    assert time.monotonic() - started < 20
    assert lines == ["started"]
    shell, child = (int(pid) for pid in pids.read_text().split())
    deadline = time.monotonic() + 5
    while (alive(shell) or alive(child)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(shell) and not alive(child)


def test_a_failing_callback_stops_the_command(sshd, deploy_key, tmp_path):
    pid_file = tmp_path / "pid"

    def on_line(line):
        raise RuntimeError("the log store is down")

    with connect(sshd, deploy_key, scan_host_key("127.0.0.1", sshd.port)) as target:
        with pytest.raises(RuntimeError, match="the log store is down"):
            target.run(f"echo $$ > {pid_file}; echo output; sleep 300", timeout=60, on_line=on_line)
    shell = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while alive(shell) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(shell)


def test_the_blocking_api_works_in_a_thread_that_runs_an_event_loop(sshd, deploy_key):
    lines = []

    async def inside_a_running_loop():
        host_key = scan_host_key("127.0.0.1", sshd.port)
        with connect(sshd, deploy_key, host_key) as target:
            return target.run("echo from the host", timeout=10, on_line=lines.append)

    # A thread of its own, since the test's thread may already run a loop (the browser tests' Playwright does).
    results = []
    thread = threading.Thread(target=lambda: results.append(asyncio.run(inside_a_running_loop())))
    thread.start()
    thread.join(60)
    assert results == [0]
    assert lines == ["from the host"]


def test_a_changed_host_key_is_refused_naming_both_fingerprints(sshd, deploy_key, tmp_path):
    pinned = scan_host_key("127.0.0.1", sshd.port)
    sshd.stop()
    new_host_key = sshd.new_host_keys()
    sshd.start()

    with pytest.raises(HostKeyMismatch) as mismatch:
        with connect(sshd, deploy_key, pinned) as target:
            target.run(f"touch {tmp_path / 'reached'}", timeout=10)
    assert mismatch.value.expected == fingerprint(pinned)
    assert mismatch.value.offered == fingerprint(new_host_key)
    assert fingerprint(pinned) in str(mismatch.value) and fingerprint(new_host_key) in str(mismatch.value)
    assert not (tmp_path / "reached").exists()

    # Pinned anew, the same key and host work again.
    with connect(sshd, deploy_key, scan_host_key("127.0.0.1", sshd.port)) as target:
        assert target.run("true", timeout=10) == 0


def test_a_host_without_a_key_of_the_pinned_type_is_refused(sshd, deploy_key):
    rsa_line = asyncssh.generate_private_key("ssh-rsa", key_size=2048).export_public_key().decode()
    with pytest.raises(HostKeyMismatch) as mismatch:
        with connect(sshd, deploy_key, rsa_line):
            pass
    assert mismatch.value.expected == fingerprint(rsa_line)
    assert mismatch.value.offered == asyncssh.read_private_key(sshd.host_key).get_fingerprint("sha256")


def test_a_key_not_authorized_on_the_host_is_refused(sshd, deploy_key):
    host_key = scan_host_key("127.0.0.1", sshd.port)
    other_key, _ = generate_deploy_key()
    expected = asyncssh.import_private_key(other_key).get_fingerprint("sha256")
    with pytest.raises(SshTargetError, match=re.escape(f"refused the deploy key ({expected})")):
        with connect(sshd, other_key, host_key):
            pass


def test_a_large_file_arrives_intact(sshd, deploy_key, tmp_path):
    local = tmp_path / "bundle"
    local.mkdir()
    data = os.urandom(20 * 1024 * 1024 + 12345)
    (local / "big.bin").write_bytes(data)
    remote = tmp_path / "target" / "revisions" / "1"
    with connect(sshd, deploy_key, scan_host_key("127.0.0.1", sshd.port)) as target:
        target.upload_tree(local, str(remote))
        # A second upload into the same revision is refused rather than mixed with the first.
        with pytest.raises(SshTargetError, match="already exists"):
            target.upload_tree(local, str(remote))
        target.remove_tree(str(remote))
        assert not remote.exists()
        target.upload_tree(local, str(remote))
    received = (remote / "big.bin").read_bytes()
    assert len(received) == len(data)
    assert hashlib.sha256(received).hexdigest() == hashlib.sha256(data).hexdigest()


def test_single_file_operations_never_replace_or_follow_what_is_there(sshd, deploy_key, tmp_path):
    local = tmp_path / "local.txt"
    local.write_text("hello\n")
    local.chmod(0o640)
    remote = tmp_path / "remote"
    with connect(sshd, deploy_key, scan_host_key("127.0.0.1", sshd.port)) as target:
        assert target.mode(str(remote)) is None
        assert target.make_directory(str(remote)) is True
        assert target.make_directory(str(remote)) is False
        target.upload_file(local, f"{remote}/file.txt")
        assert (remote / "file.txt").stat().st_mode & 0o777 == 0o640
        with pytest.raises(RemoteFileError) as exists:
            target.upload_file(local, f"{remote}/file.txt")
        assert exists.value.path == f"{remote}/file.txt"
        target.make_link("file.txt", f"{remote}/link")
        assert stat.S_ISLNK(target.mode(f"{remote}/link"))
        assert target.read_file(f"{remote}/file.txt", 3) == b"hel"
        with pytest.raises(RemoteFileError, match="not a regular file"):
            target.read_file(f"{remote}/link", 100)
        assert target.read_file(f"{remote}/missing", 100) is None
        target.write_file(f"{remote}/written.json", b"[]")
        target.set_mode(f"{remote}/written.json", 0o600)
        assert (remote / "written.json").stat().st_mode & 0o777 == 0o600
        assert (remote / "written.json").read_text() == "[]"
        # A directory with files in it stays.
        assert target.remove_directory(str(remote)) is False
        for name in ("file.txt", "link", "written.json"):
            target.remove_file(f"{remote}/{name}")
        with pytest.raises(RemoteFileError) as missing:
            target.remove_file(f"{remote}/file.txt")
        assert missing.value.reason
        assert target.remove_directory(str(remote)) is True
    assert not remote.exists()


class _HealthHandler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (the name http.server calls)
        self.send_response(200 if self.path == "/healthy" else 503)
        self.end_headers()

    def log_message(self, format, *args):
        pass


def test_health_checks_run_a_command_or_fetch_a_url_on_the_host(sshd, deploy_key):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _HealthHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with connect(sshd, deploy_key, scan_host_key("127.0.0.1", sshd.port)) as target:
            assert target.health(f"{base}/healthy").healthy
            failing = target.health(f"{base}/starting")
            assert not failing.healthy and "503" in failing.detail
            slow = target.health("sleep 30", timeout=1)
            assert not slow.healthy and "did not finish within 1 seconds" in slow.detail
    finally:
        server.shutdown()
        server.server_close()


def test_a_connection_lost_in_the_middle_of_a_command_is_reported(sshd, deploy_key):
    with connect(sshd, deploy_key, scan_host_key("127.0.0.1", sshd.port)) as target:
        lines = []
        # The login shell's parent is sshd's process for this connection: killing it drops the connection.
        with pytest.raises(SshTargetError, match="connection") as lost:
            target.run("echo before; sleep 1; kill -9 $PPID; sleep 30", timeout=20, on_line=lines.append)
    assert lines[:1] == ["before"]
    assert not isinstance(lost.value, CommandTimedOut)


def test_an_unreachable_host_is_reported():
    closed_port = free_port()
    with pytest.raises(SshTargetError, match=f"127.0.0.1:{closed_port}"):
        scan_host_key("127.0.0.1", closed_port, timeout=5)


def test_host_key_lines_in_either_style_are_read_and_others_refused():
    _, public = generate_deploy_key(comment="host")
    assert parse_host_key(f"[203.0.113.5]:2222,example.org {public}") == parse_host_key(public)
    assert parse_host_key(f"example.org\t{public}") == parse_host_key(public)
    for bad in ("", "not a key", "@cert-authority *.example.org " + public, f"{public}\n{public}"):
        with pytest.raises(SshTargetError):
            parse_host_key(bad)


def test_paths_that_could_reach_outside_a_target_are_refused():
    with pytest.raises(SshTargetError):
        TargetLayout("relative/base")
    layout = TargetLayout("/srv/app")
    for bad in ("", "..", "../x", "a/b"):
        with pytest.raises(SshTargetError):
            layout.revision(bad)
    assert layout.current_target(7) == "revisions/7"


def test_variables_reach_the_command_without_ever_being_on_a_command_line_of_the_host(sshd, deploy_key):
    host_key = scan_host_key("127.0.0.1", sshd.port)
    # Every command line of the host while the command runs (the pattern's brackets keep grep from finding itself).
    look = (
        "for f in /proc/[0-9]*/cmdline; do { tr '\\0' ' ' < \"$f\"; } 2>/dev/null; echo; done"
        " | grep -c 'S3CRET-[V]ALUE'; echo \"$TOKEN\""
    )
    output: list[str] = []
    with connect(sshd, deploy_key, host_key) as target:
        status = target.run(
            look, env={"TOKEN": "S3CRET-VALUE", "QUOTED": "it's $HOME"}, timeout=30, on_line=output.append
        )
    assert (status, output) == (0, ["0", "S3CRET-VALUE"])
