"""Escape attempts from inside a build, each failing, and the limits that bound a build."""

import json
import os
import random
import shlex
import socket
import subprocess
from dataclasses import replace

import pytest

from releases.buildspec import parse_buildspec
from releases.runner import BuildContext, Status, run_build
from releases.sandbox import (
    Limits,
    Sandbox,
    SandboxError,
    _pid_namespace,
    check_reachable,
    prepare_build_directory,
    remove_build_directory,
    sandbox_command,
)

from .conftest import SMALL_LIMITS, processes_of


def attempts(*commands: str, **phases: str) -> str:
    """A buildspec running each command in BUILD, where a failing one does not stop the next (JSON is YAML)."""
    listed = "".join(f"      - {json.dumps(command + '; echo exit $?')}\n" for command in commands)
    return f"version: 0.2\nphases:\n  build:\n    commands:\n{listed}"


def test_the_build_runs_unprivileged_with_no_capability(build, host_uid):
    built = build(attempts("id -u", "grep -E '^Cap(Eff|Prm|Bnd)' /proc/self/status", "touch mine && stat -c %u mine"))

    assert built.result.status == Status.SUCCEEDED
    assert "1000" in built.lines
    assert "CapEff:\t0000000000000000" in built.lines
    assert "CapBnd:\t0000000000000000" in built.lines
    # On the host the build's files belong to its own unprivileged uid, never to the portal.
    assert (built.directory.workspace / "mine").stat().st_uid == (host_uid if os.geteuid() == 0 else os.geteuid())


def test_it_cannot_read_the_portals_data_or_another_build(build, builds_root, monkeypatch):
    var = builds_root / "var"
    var.mkdir()
    (var / "db.sqlite3").write_text("portal database rows\n")
    other = builds_root / "other-build" / "src"
    other.mkdir(parents=True)
    (other / "private.txt").write_text("another repository's code\n")
    monkeypatch.setenv("PORTAL_SECRET_KEY", "host-only-secret-key")

    built = build(
        attempts(
            f"cat {var}/db.sqlite3",
            "cat ../var/db.sqlite3 ../../var/db.sqlite3",
            f"cat {other}/private.txt",
            "cat ../other-build/src/private.txt",
            "find / -xdev -name db.sqlite3 -o -name private.txt 2>/dev/null; echo searched",
            "cat /proc/1/environ /proc/*/environ | tr '\\0' '\\n'; echo environ-read",
            "ls /proc | grep -c '^[0-9]' ; echo listed",
            "cat /etc/shadow",
        )
    )

    assert "portal database rows" not in built.log
    assert "another repository's code" not in built.log
    assert "host-only-secret-key" not in built.log
    assert f"cat: {var}/db.sqlite3: No such file or directory" in built.lines
    assert "cat: /etc/shadow: No such file or directory" in built.lines


def test_writes_outside_the_workspace_change_nothing_on_the_host(build, builds_root, tmp_path):
    target = tmp_path / "outside.txt"
    built = build(
        attempts(
            "touch /usr/pwned || echo usr-refused",
            "touch /etc/passwd || echo etc-refused",
            f"mkdir -p {tmp_path} && echo pwned > {target}; echo written-inside-only",
            f"echo pwned > {builds_root}/pwned || echo builds-root-refused",
            "echo pwned > /home/build/../pwned || echo root-refused",
        )
    )

    assert "usr-refused" in built.lines
    assert "etc-refused" in built.lines
    assert not target.exists()
    assert not (builds_root / "pwned").exists()
    assert not os.path.exists("/usr/pwned")


@pytest.fixture
def listener():
    """A socket listening on the host's loopback, standing for the database, Redis or the web port."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.setblocking(False)
    yield server
    server.close()


@pytest.mark.parametrize("network", [False, True])
def test_it_cannot_reach_the_hosts_loopback_with_the_network_off_or_on(build, listener, network):
    port = listener.getsockname()[1]
    connect = "python3 -c 'import socket, sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2)'"

    built = build(
        attempts(
            "grep -c tap0 /proc/net/dev",
            f"{connect} 127.0.0.1 {port} 2>&1 | tail -1",
            f"{connect} 10.0.2.2 {port} 2>&1 | tail -1",
        ),
        network=network,
    )

    assert built.result.status == Status.SUCCEEDED
    # With the network on, the sandbox has slirp4netns' tap0 and a route out; either way its 127.0.0.1 is its own
    # loopback, and 10.0.2.2 (slirp's name for the host's loopback) is unreachable.
    assert ("1" if network else "0") in built.lines
    assert "ConnectionRefusedError: [Errno 111] Connection refused" in built.lines
    assert "OSError: [Errno 101] Network is unreachable" in built.lines
    with pytest.raises(BlockingIOError):
        listener.accept()


def test_a_fork_bomb_is_bounded_by_the_process_limit(build, host_uid):
    limits = replace(SMALL_LIMITS, processes=40, timeout_seconds=2, kill_grace_seconds=0.2)
    fork_loop = (
        "import os, time\n"
        "count = 0\n"
        "while True:\n"
        "    try:\n"
        "        pid = os.fork()\n"
        "    except OSError:\n"
        "        break\n"
        "    if pid == 0:\n"
        "        time.sleep(60)\n"
        "        os._exit(0)\n"
        "    count += 1\n"
        "print('forked', count)\n"
    )
    built = build(
        attempts(f"python3 -c {shlex.quote(fork_loop)}", "bomb() { bomb | bomb & }; bomb; sleep 30"), limits=limits
    )

    forked = next(int(line.split()[1]) for line in built.lines if line.startswith("forked "))
    assert 0 < forked < 40
    assert built.result.status == Status.TIMED_OUT
    assert processes_of(host_uid) == []


def test_a_huge_file_is_bounded_by_the_file_size_limit(build):
    limits = replace(SMALL_LIMITS, file_size_bytes=1024**2)

    built = build(attempts("head -c 10G /dev/zero > big.bin; echo status $?"), limits=limits)

    assert "status 153" in built.lines  # killed by SIGXFSZ
    assert (built.directory.workspace / "big.bin").stat().st_size == 1024**2


def test_memory_is_bounded_per_process(build):
    limits = replace(SMALL_LIMITS, memory_bytes=256 * 1024**2)

    built = build(attempts("python3 -c 'bytearray(512 * 1024 * 1024)' 2>&1 | tail -1"), limits=limits)

    assert "MemoryError" in built.lines


def test_a_huge_log_is_bounded_by_the_log_limit(build):
    limits = replace(SMALL_LIMITS, log_bytes=64 * 1024)

    built = build(attempts("yes 'a line of log'", "echo never"), limits=limits)

    assert built.result.status == Status.FAILED
    assert built.result.phase("BUILD").status == Status.FAILED
    assert built.result.message == "the log passed its limit of 65536 bytes"
    assert built.result.log_bytes == 64 * 1024
    assert "never" not in built.lines
    assert sum(len(line) + 1 for line in built.lines if line == "a line of log") <= 64 * 1024


def test_sleeping_past_the_time_limit_times_out(build, host_uid):
    limits = replace(SMALL_LIMITS, timeout_seconds=1, kill_grace_seconds=0.5)

    built = build(
        "version: 0.2\nphases:\n  build:\n    commands:\n      - sleep 60\n"
        "  post_build:\n    commands:\n      - echo post\nartifacts:\n  files: ['**/*']\n",
        limits=limits,
    )

    assert built.result.status == Status.TIMED_OUT
    assert built.statuses == {"INSTALL": "SUCCEEDED", "PRE_BUILD": "SUCCEEDED", "BUILD": "TIMED_OUT"}
    assert built.result.artifacts == ()
    assert processes_of(host_uid) == []


def test_a_process_ignoring_sigterm_is_killed(build, host_uid):
    limits = replace(SMALL_LIMITS, timeout_seconds=1, kill_grace_seconds=0.5)

    built = build(
        attempts(
            "(setsid bash -c 'trap \"\" TERM; while :; do sleep 1; done' > /dev/null 2>&1 &)",
            "trap '' TERM; sleep 60",
        ),
        limits=limits,
    )

    assert built.result.status == Status.TIMED_OUT
    assert processes_of(host_uid) == []


def test_a_build_directory_is_removed_with_what_the_build_locked(build):
    built = build(attempts("mkdir -p locked/inner && touch locked/inner/file && chmod 0 locked/inner locked"))

    remove_build_directory(built.directory)

    assert not built.directory.root.exists()


def test_a_build_directory_the_uid_cannot_reach_is_refused(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o700)

    with pytest.raises(SandboxError, match="is not reachable by uid 4242"):
        check_reachable(locked, 4242)


def test_as_root_a_build_needs_an_unprivileged_uid(tmp_path):
    directory = prepare_build_directory(tmp_path / "build")
    if os.geteuid() == 0:
        with pytest.raises(SandboxError, match="unprivileged host uid"):
            sandbox_command(directory, ["true"], limits=Limits(), host_uid=0)
    else:
        assert "setpriv" not in " ".join(sandbox_command(directory, ["true"], limits=Limits(), host_uid=0))


def test_processes_left_running_end_with_the_build(build, host_uid):
    built = build("version: 0.2\nphases:\n  build:\n    commands:\n      - (setsid sleep 60 &)\n      - sleep 60 &\n")

    assert built.result.status == Status.SUCCEEDED
    assert processes_of(host_uid) == []


def test_a_sandbox_that_cannot_start_ends_the_build_as_fault(build, builds_root):
    directory = prepare_build_directory(builds_root / "broken")
    (directory.etc / "passwd").unlink()
    lines = []
    result = run_build(
        parse_buildspec("version: 0.2\nphases:\n  build:\n    commands: [echo hi]\n"),
        directory,
        context=BuildContext("p:1", 1, "main", "a" * 40),
        limits=SMALL_LIMITS,
        host_uid=random.randrange(200_000, 2**31 - 2),
        on_line=lines.append,
    )

    assert result.status == Status.FAULT
    assert result.phases == ()
    assert any("bwrap: Can't find source path" in line and "passwd" in line for line in lines)


def test_a_sandbox_whose_command_ended_before_it_was_looked_at_still_starts_and_stops(builds_root, host_uid):
    directory = prepare_build_directory(builds_root / "quick")
    try:
        # `true` often ends before the portal reads the init's namespace: that is a sandbox whose processes all ended.
        for _ in range(20):
            sandbox = Sandbox(directory, ["/bin/true"], limits=SMALL_LIMITS, host_uid=host_uid)
            assert sandbox.wait() == 0
            sandbox.stop()
    finally:
        remove_build_directory(directory)


def test_an_init_that_exited_or_whose_pid_was_reused_has_no_namespace_to_look_in():
    ended = subprocess.Popen(["/bin/true"])
    ended.wait()
    assert _pid_namespace(ended.pid) is None
    # A pid of the host's own namespace is never a sandbox's init.
    assert _pid_namespace(os.getpid()) is None
