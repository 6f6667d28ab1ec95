"""Git over SSH: the real `git` and `ssh` clients against the embedded server."""

import hashlib
import os
import resource
import shlex
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from portal import services as accounts
from portal.models import SshKey
from repos import git
from repos import services as repo_services
from repos.models import Push, PushSession
from repos.sshd import SignInFailures, load_host_key
from repos.transport import NOT_FOUND_MESSAGE, CommandRefused, parse_command, safe_git_protocol

HOST = "127.0.0.1"


def run_git(*args, env, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300)


def run_ssh(env, *command: str, tty: bool = False) -> subprocess.CompletedProcess:
    argv = shlex.split(env["GIT_SSH_COMMAND"]) + (["-tt"] if tty else ["-T"]) + [f"git@{HOST}", *command]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


def url(server, path="alice/project") -> str:
    return f"ssh://git@{HOST}:{server.port}/{path}.git"


@pytest.fixture
def key_for(ssh_keypair, git_ssh_env):
    """key_for(user): register a fresh key for user; returns (git environment, SshKey row)."""

    def make(user, **deploy):
        keyfile, public = ssh_keypair(f"{user.username if user else 'deploy'}-{SshKey.objects.count()}")
        if deploy:
            key = repo_services.add_deploy_key(actor=deploy.pop("actor"), title="deploy", public_key=public, **deploy)
        else:
            key = accounts.add_ssh_key(user, actor=user, title="laptop", public_key=public)
        return git_ssh_env(keyfile), key

    return make


def clone(server, env, tmp_path, name="work", path="alice/project"):
    target = tmp_path / name
    result = run_git("clone", url(server, path), str(target), env=env)
    return target, result


def commit_file(work: Path, env, name: str, content: bytes) -> None:
    (work / name).write_bytes(content)
    assert run_git("add", name, env=env, cwd=work).returncode == 0
    assert run_git("commit", "-q", "-m", f"add {name}", env=env, cwd=work).returncode == 0


def test_writer_clones_and_pushes_a_private_repository(ssh_server, private_repo, bob, key_for, tmp_path):
    env, key = key_for(bob)
    work, result = clone(ssh_server, env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert (work / "README.md").exists()
    commit_file(work, env, "hello.txt", b"hello\n")
    result = run_git("push", "origin", "main", env=env, cwd=work)
    assert result.returncode == 0, result.stderr
    local = run_git("rev-parse", "HEAD", env=env, cwd=work).stdout.strip()
    assert git.branch_sha(private_repo.path, "main") == local
    # The hooks called back with the push secret the server put in git's environment.
    push = Push.objects.get(repository=private_repo, new_sha=local)
    assert (push.pusher, push.protocol, push.ref) == (bob, "ssh", "refs/heads/main")
    key.refresh_from_db()
    assert key.last_used is not None


def test_an_abandoned_receive_pack_leaves_no_push_session(ssh_server, private_repo, bob, key_for):
    env, _ = key_for(bob)
    argv = shlex.split(env["GIT_SSH_COMMAND"]) + ["-T", f"git@{HOST}", "git-receive-pack '/alice/project.git'"]
    client = subprocess.Popen(argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        # receive-pack advertises the refs before reading anything: by then the server opened the push session.
        assert client.stdout.read(4) != b""
        assert PushSession.objects.filter(repository=private_repo).count() == 1
    finally:
        # The client goes away without sending a command or a pack.
        client.kill()
        client.wait()
    deadline = time.monotonic() + 30
    while PushSession.objects.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not PushSession.objects.exists()
    assert not Push.objects.exists()


def test_a_push_leaves_no_push_session_behind(ssh_server, private_repo, bob, key_for, tmp_path):
    env, _ = key_for(bob)
    work, result = clone(ssh_server, env, tmp_path)
    assert result.returncode == 0, result.stderr
    commit_file(work, env, "hello.txt", b"hello\n")
    assert run_git("push", "origin", "main", env=env, cwd=work).returncode == 0
    # Refused too: deleting the default branch.
    assert run_git("push", "origin", ":main", env=env, cwd=work).returncode != 0
    assert Push.objects.count() == 1
    assert not PushSession.objects.exists()


def test_reader_can_clone_but_push_is_refused_with_the_reason(ssh_server, private_repo, carol, key_for, tmp_path):
    env, _ = key_for(carol)
    work, result = clone(ssh_server, env, tmp_path)
    assert result.returncode == 0, result.stderr
    before = git.branch_sha(private_repo.path, "main")
    commit_file(work, env, "x.txt", b"x\n")
    result = run_git("push", "origin", "main", env=env, cwd=work)
    assert result.returncode != 0
    assert "This needs write access to the repository." in result.stderr
    assert git.branch_sha(private_repo.path, "main") == before


def test_outsider_sees_not_found_exactly_like_a_missing_repository(
    ssh_server, private_repo, mallory, key_for, tmp_path
):
    env, _ = key_for(mallory)
    _, hidden = clone(ssh_server, env, tmp_path, "hidden")
    _, missing = clone(ssh_server, env, tmp_path, "missing", path="alice/nothing-here")
    assert hidden.returncode != 0 and missing.returncode != 0
    assert NOT_FOUND_MESSAGE in hidden.stderr
    assert hidden.stderr.replace("hidden", "missing") == missing.stderr.replace("alice/nothing-here", "alice/project")


def test_revoked_key_is_refused_at_the_next_push(ssh_server, private_repo, bob, admin, key_for, tmp_path):
    env, key = key_for(bob)
    work, result = clone(ssh_server, env, tmp_path)
    assert result.returncode == 0, result.stderr
    before = git.branch_sha(private_repo.path, "main")
    accounts.revoke_ssh_key(key, actor=admin)
    commit_file(work, env, "after-revoke.txt", b"no\n")
    result = run_git("push", "origin", "main", env=env, cwd=work)
    assert result.returncode != 0
    assert "Permission denied (publickey)" in result.stderr
    assert git.branch_sha(private_repo.path, "main") == before


def test_deactivated_users_key_is_refused(ssh_server, private_repo, bob, admin, key_for, tmp_path):
    env, _ = key_for(bob)
    accounts.set_user_active(bob, actor=admin, active=False)
    _, result = clone(ssh_server, env, tmp_path)
    assert result.returncode != 0
    assert "Permission denied (publickey)" in result.stderr


def test_unregistered_key_and_other_usernames_are_refused(
    ssh_server, private_repo, bob, key_for, ssh_keypair, git_ssh_env
):
    stranger_file, _ = ssh_keypair("stranger")
    result = run_ssh(git_ssh_env(stranger_file), "git-upload-pack 'alice/project.git'")
    assert result.returncode == 255
    assert "Permission denied (publickey)" in result.stderr
    env, _ = key_for(bob)
    argv = shlex.split(env["GIT_SSH_COMMAND"]) + ["-T", f"bob@{HOST}", "git-upload-pack 'alice/project.git'"]
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert result.returncode == 255
    assert "Permission denied (publickey)" in result.stderr


def test_read_only_deploy_key_clones_but_cannot_push(ssh_server, private_repo, alice, key_for, tmp_path):
    env, _ = key_for(None, actor=alice, repository=private_repo)
    work, result = clone(ssh_server, env, tmp_path)
    assert result.returncode == 0, result.stderr
    commit_file(work, env, "deploy.txt", b"d\n")
    result = run_git("push", "origin", "main", env=env, cwd=work)
    assert result.returncode != 0
    assert "This needs write access to the repository." in result.stderr


def test_writable_deploy_key_pushes(ssh_server, private_repo, alice, key_for, tmp_path):
    env, key = key_for(None, actor=alice, repository=private_repo, writable=True)
    work, result = clone(ssh_server, env, tmp_path)
    assert result.returncode == 0, result.stderr
    commit_file(work, env, "deploy.txt", b"d\n")
    result = run_git("push", "origin", "main", env=env, cwd=work)
    assert result.returncode == 0, result.stderr
    local = run_git("rev-parse", "HEAD", env=env, cwd=work).stdout.strip()
    assert git.branch_sha(private_repo.path, "main") == local
    push = Push.objects.get(repository=private_repo, new_sha=local)
    assert (push.pusher, push.deploy_key, push.protocol) == (None, key, "ssh")


def test_deploy_key_of_one_repository_cannot_see_another(ssh_server, private_repo, alice, key_for, tmp_path):
    from repos import services as repo_services

    repo_services.create_repository(actor=alice, owner=alice, name="other", initialize=True)
    env, _ = key_for(None, actor=alice, repository=private_repo, writable=True)
    _, result = clone(ssh_server, env, tmp_path, path="alice/other")
    assert result.returncode != 0
    assert NOT_FOUND_MESSAGE in result.stderr


def test_protocol_v2_is_passed_through(ssh_server, private_repo, bob, key_for):
    env, _ = key_for(bob)
    result = run_git("-c", "protocol.version=2", "ls-remote", url(ssh_server), env=env | {"GIT_TRACE_PACKET": "1"})
    assert result.returncode == 0, result.stderr
    assert "< version 2" in result.stderr
    assert "refs/heads/main" in result.stdout


def test_protocol_v0_still_works_without_git_protocol(ssh_server, private_repo, bob, key_for):
    env, _ = key_for(bob)
    result = run_git("-c", "protocol.version=0", "ls-remote", url(ssh_server), env=env | {"GIT_TRACE_PACKET": "1"})
    assert result.returncode == 0, result.stderr
    assert "< version 2" not in result.stderr
    assert "refs/heads/main" in result.stdout


def test_scp_form_url_works(ssh_server, private_repo, bob, key_for, tmp_path):
    env, _ = key_for(bob)
    result = run_git("clone", f"git@{HOST}:alice/project.git", str(tmp_path / "scp"), env=env)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "scp" / "README.md").read_text().startswith("# project")


@pytest.mark.parametrize("path", ["/alice/pro\x00ject.git", "alice\x00/project.git", "/alice/project\n.git"])
def test_a_repository_path_with_a_control_character_is_refused_before_any_lookup(path):
    # OpenSSH's client cannot send a NUL; another client can, and PostgreSQL refuses one in a query.
    with pytest.raises(CommandRefused, match="Not a repository path"):
        parse_command(f"git-upload-pack {shlex.quote(path)}")


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("sh", "Unknown command 'sh'"),
        ("env", "Unknown command 'env'"),
        ("git-upload-pack '../other.git'", "Not a repository path"),
        ("git-upload-pack --help", "Repository paths cannot start with '-'"),
        ("git-upload-pack '-alice/project.git'", "Repository paths cannot start with '-'"),
        ("git-upload-pack 'alice/project.git' 'alice/project.git'", "takes exactly one repository path"),
        ("git-receive-pack 'alice/project.git' --stateless-rpc", "takes exactly one repository path"),
        ("git-upload-pack 'alice/../../etc/passwd'", "Not a repository path"),
        ("git-upload-pack '~alice/project.git'", "Home-relative paths are not supported"),
        # No shell ever sees the command: this is just a repository name that does not exist.
        ("git-upload-pack 'alice/project.git; sh'", NOT_FOUND_MESSAGE),
        ("git-upload-pack", "takes exactly one repository path"),
    ],
)
def test_it_refuses_anything_but_one_git_service_on_one_path(ssh_server, private_repo, bob, key_for, command, message):
    env, _ = key_for(bob)
    result = run_ssh(env, command)
    assert result.returncode == 1
    assert result.stdout == ""
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("tty", [False, True])
def test_shell_request_gets_a_friendly_line_and_no_shell(ssh_server, bob, key_for, tty):
    env, _ = key_for(bob)
    result = run_ssh(env, tty=tty)
    assert result.returncode == 1
    assert result.stdout.strip() == "Hi bob! You've authenticated, but portal does not provide shell access."


def test_upload_archive_works(ssh_server, private_repo, bob, key_for, tmp_path):
    env, _ = key_for(bob)
    archive = tmp_path / "project.tar"
    result = subprocess.run(
        ["git", "archive", f"--remote={url(ssh_server)}", "--output", str(archive), "main"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    listing = subprocess.run(["tar", "-tf", str(archive)], capture_output=True, text=True, check=True)
    assert "README.md" in listing.stdout.split()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()


def test_a_100_mb_incompressible_file_round_trips_intact(ssh_server, private_repo, bob, key_for, tmp_path):
    env, _ = key_for(bob)
    work, result = clone(ssh_server, env, tmp_path)
    assert result.returncode == 0, result.stderr
    size = 100 * 1024 * 1024
    # Random bytes do not compress, so the pack on the wire is as big as the file.
    with open(work / "big.bin", "wb") as handle:
        for _ in range(size // (1024 * 1024)):
            handle.write(os.urandom(1024 * 1024))
    expected = sha256_of(work / "big.bin")
    assert run_git("add", "big.bin", env=env, cwd=work).returncode == 0
    assert run_git("commit", "-q", "-m", "add big.bin", env=env, cwd=work).returncode == 0
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = run_git("push", "origin", "main", env=env, cwd=work)
    assert result.returncode == 0, result.stderr
    back, result = clone(ssh_server, env, tmp_path, "back")
    assert result.returncode == 0, result.stderr
    peak_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert (back / "big.bin").stat().st_size == size
    assert sha256_of(back / "big.bin") == expected
    # The server (a thread of this process) streams: its peak memory does not grow with the pack.
    assert (peak_after - peak_before) * 1024 < 30 * 1024 * 1024, "the server buffered the pack in memory"


def test_host_key_is_created_private_and_reused(tmp_path):
    path = tmp_path / "var" / "ssh_host_ed25519_key"
    first = load_host_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert first.get_algorithm() == "ssh-ed25519"
    again = load_host_key(path)
    assert again.get_fingerprint("sha256") == first.get_fingerprint("sha256")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("version=2", "version=2"),
        ("version=2:object-format=sha256", "version=2:object-format=sha256"),
        ("version=2; rm -rf /", None),
        ("version=2\nX=1", None),
        ("", None),
        (None, None),
    ],
)
def test_only_well_formed_git_protocol_values_pass(value, expected):
    assert safe_git_protocol(value) == expected


# OpenSSH integration: `authorized_keys` finds the key, `serv` runs git under OpenSSH's forced command.


def authorized_keys_line(public: str) -> str:
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    key_type, key_data = public.split()[:2]
    call_command("authorized_keys", key_type, key_data, stdout=out)
    return out.getvalue().strip()


def test_authorized_keys_prints_a_restricted_forced_command_for_a_registered_key(bob, ssh_keypair):
    _, public = ssh_keypair("bob")
    key = accounts.add_ssh_key(bob, actor=bob, title="laptop", public_key=public)
    line = authorized_keys_line(public)
    manage = Path(__file__).resolve().parents[2] / "manage.py"
    expected_command = f"{shlex.quote(sys.executable)} {shlex.quote(str(manage))} serv key-{key.pk}"
    assert line == f'command="{expected_command}",restrict {key.public_key}'


def test_authorized_keys_prints_nothing_for_unknown_revoked_or_garbage_keys(bob, admin, ssh_keypair):
    _, unknown = ssh_keypair("unknown")
    assert authorized_keys_line(unknown) == ""
    _, public = ssh_keypair("bob")
    key = accounts.add_ssh_key(bob, actor=bob, title="laptop", public_key=public)
    accounts.revoke_ssh_key(key, actor=admin)
    assert authorized_keys_line(public) == ""
    assert authorized_keys_line("ssh-ed25519 bm90IGEga2V5") == ""


def test_authorized_keys_uses_the_given_manage_wrapper(bob, ssh_keypair):
    from io import StringIO

    from django.core.management import call_command

    _, public = ssh_keypair("bob")
    key = accounts.add_ssh_key(bob, actor=bob, title="laptop", public_key=public)
    out = StringIO()
    key_type, key_data = public.split()[:2]
    call_command("authorized_keys", key_type, key_data, manage='/srv/portal/bin/manage "x"', stdout=out)
    assert out.getvalue().startswith(
        f'command="/srv/portal/bin/manage \\"x\\" serv key-{key.pk}",restrict ssh-ed25519 '
    )


@pytest.fixture
def openssh(ssh_server, live_server, django_subprocess_env, ssh_keypair, tmp_path):
    """openssh(user): an environment where git's ssh is a stand-in for OpenSSH running our forced command.

    The stand-in does what sshd does with an authorized_keys line: it puts the client's command in
    SSH_ORIGINAL_COMMAND and runs the `command="…"` that `manage.py authorized_keys` printed."""

    def make(user, **deploy):
        _, public = ssh_keypair(f"{user.username if user else 'deploy'}-openssh")
        if deploy:
            key = repo_services.add_deploy_key(actor=deploy.pop("actor"), title="deploy", public_key=public, **deploy)
        else:
            key = accounts.add_ssh_key(user, actor=user, title="laptop", public_key=public)
        line = authorized_keys_line(public)
        forced = line.removeprefix('command="').split('",restrict ', 1)[0].replace('\\"', '"').replace("\\\\", "\\")
        wrapper = tmp_path / f"fake-sshd-{key.pk}"
        wrapper.write_text(
            f'#!/bin/sh\nfor last; do :; done\nSSH_ORIGINAL_COMMAND="$last" exec sh -c {shlex.quote(forced)}\n'
        )
        wrapper.chmod(0o755)
        home = tmp_path / "home"
        home.mkdir(exist_ok=True)
        env = django_subprocess_env | {
            "HOME": str(home),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_SSH_COMMAND": str(wrapper),
            # The stand-in is not OpenSSH, but takes its options: tell git to pass -p and SendEnv.
            "GIT_SSH_VARIANT": "ssh",
            "GIT_AUTHOR_NAME": "Test",
            "GIT_AUTHOR_EMAIL": "test@example.com",
            "GIT_COMMITTER_NAME": "Test",
            "GIT_COMMITTER_EMAIL": "test@example.com",
            "PORTAL_INTERNAL_URL": live_server.url,
        }
        return env, key

    return make


def test_serv_clones_and_pushes_like_the_embedded_server(openssh, private_repo, bob, tmp_path):
    env, key = openssh(bob)
    target = tmp_path / "work"
    result = run_git("clone", f"git@{HOST}:alice/project.git", str(target), env=env)
    assert result.returncode == 0, result.stderr
    commit_file(target, env, "via-openssh.txt", b"served\n")
    result = run_git("push", "origin", "main", env=env, cwd=target)
    assert result.returncode == 0, result.stderr
    assert git.branch_sha(private_repo.path, "main") == run_git("rev-parse", "HEAD", env=env, cwd=target).stdout.strip()
    key.refresh_from_db()
    assert key.last_used is not None
    # serv deleted the push session once git had exited.
    assert not PushSession.objects.exists()


def test_serv_passes_git_protocol_through(openssh, private_repo, bob):
    env, _ = openssh(bob)
    result = run_git(
        "-c", "protocol.version=2", "ls-remote", f"git@{HOST}:alice/project.git", env=env | {"GIT_TRACE_PACKET": "1"}
    )
    assert result.returncode == 0, result.stderr
    assert "< version 2" in result.stderr


def test_serv_refuses_what_the_embedded_server_refuses(openssh, private_repo, carol, mallory, tmp_path):
    env, _ = openssh(carol)
    target = tmp_path / "work"
    assert run_git("clone", f"git@{HOST}:alice/project.git", str(target), env=env).returncode == 0
    commit_file(target, env, "nope.txt", b"no\n")
    result = run_git("push", "origin", "main", env=env, cwd=target)
    assert result.returncode != 0
    assert "This needs write access to the repository." in result.stderr
    outsider, _ = openssh(mallory)
    result = run_git("ls-remote", f"git@{HOST}:alice/project.git", env=outsider)
    assert result.returncode != 0
    assert NOT_FOUND_MESSAGE in result.stderr


def run_serv(env, key_ref: str, command: str | None) -> subprocess.CompletedProcess:
    manage = Path(__file__).resolve().parents[2] / "manage.py"
    env = dict(env)
    env.pop("SSH_ORIGINAL_COMMAND", None)
    if command is not None:
        env["SSH_ORIGINAL_COMMAND"] = command
    return subprocess.run(
        [sys.executable, str(manage), "serv", key_ref],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("sh", "Unknown command 'sh'"),
        ("env", "Unknown command 'env'"),
        ("git-upload-pack '../other.git'", "Not a repository path"),
        ("git-upload-pack --help", "Repository paths cannot start with '-'"),
        ("git-upload-pack 'alice/project.git' 'x'", "takes exactly one repository path"),
        ("git-upload-pack 'alice/missing.git'", NOT_FOUND_MESSAGE),
    ],
)
def test_serv_refuses_bad_commands_with_one_line(
    django_subprocess_env, private_repo, bob, ssh_keypair, command, message
):
    _, public = ssh_keypair("bob")
    key = accounts.add_ssh_key(bob, actor=bob, title="laptop", public_key=public)
    result = run_serv(django_subprocess_env, f"key-{key.pk}", command)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert message in result.stderr


def test_serv_greets_a_shell_request_and_refuses_unknown_keys(django_subprocess_env, bob, admin, ssh_keypair):
    _, public = ssh_keypair("bob")
    key = accounts.add_ssh_key(bob, actor=bob, title="laptop", public_key=public)
    result = run_serv(django_subprocess_env, f"key-{key.pk}", None)
    assert result.returncode == 1
    assert result.stdout.strip() == "Hi bob! You've authenticated, but portal does not provide shell access."
    key_ref = f"key-{key.pk}"
    accounts.revoke_ssh_key(key, actor=admin)
    result = run_serv(django_subprocess_env, key_ref, "git-upload-pack 'alice/project.git'")
    assert result.returncode == 1
    assert "not registered" in result.stderr
    result = run_serv(django_subprocess_env, "key-../1", "git-upload-pack 'alice/project.git'")
    assert result.returncode == 1
    assert "Unknown key reference" in result.stderr


def test_sshd_command_serves_git_until_sigterm(django_subprocess_env, private_repo, bob, ssh_keypair, tmp_path):
    import signal
    import socket

    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port = probe.getsockname()[1]
    keyfile, public = ssh_keypair("bob")
    accounts.add_ssh_key(bob, actor=bob, title="laptop", public_key=public)
    host_key = tmp_path / "standalone" / "ssh_host_ed25519_key"
    manage = Path(__file__).resolve().parents[2] / "manage.py"
    server = subprocess.Popen(
        [sys.executable, str(manage), "sshd", "--host", HOST, "--port", str(port)],
        env=django_subprocess_env | {"PORTAL_SSH_HOST_KEY": str(host_key)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        # The line comes once the server accepts connections (after a few log lines).
        lines = []
        while not any(f"SSH server for git on {HOST}:{port}" in line for line in lines):
            lines.append(server.stdout.readline())
            assert lines[-1] and len(lines) < 10, lines
        ssh = ["ssh", "-F", "/dev/null", "-i", keyfile, "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none"]
        ssh += ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes"]
        ssh += ["-o", "LogLevel=ERROR", "-p", str(port)]
        env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")} | {"GIT_SSH_COMMAND": shlex.join(ssh)}
        result = subprocess.run(
            ["git", "ls-remote", f"git@{HOST}:alice/project.git"], env=env, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
        assert "refs/heads/main" in result.stdout
    finally:
        server.send_signal(signal.SIGTERM)
        output, _ = server.communicate(timeout=30)
    assert server.returncode == 0, output
    assert "SSH server stopped." in output
    assert stat.S_IMODE(host_key.stat().st_mode) == 0o600


@pytest.mark.parametrize("how", ["revoke the key", "deactivate the user"])
def test_a_connection_kept_open_is_refused_once_the_key_is_revoked_or_its_user_deactivated(
    ssh_server, private_repo, bob, admin, key_for, tmp_path, how
):
    """OpenSSH's ControlMaster runs every later git command as a new session of one open connection."""
    import time

    env, key = key_for(bob)
    control = str(tmp_path / "control.sock")
    ssh = shlex.split(env["GIT_SSH_COMMAND"]) + ["-o", f"ControlPath={control}"]
    master = subprocess.Popen([*ssh, "-o", "ControlMaster=yes", "-N", f"git@{HOST}"], env=env, stdin=subprocess.DEVNULL)
    try:
        # The master is ready once `ssh -O check` answers through its socket (slow on a busy machine).
        deadline = time.monotonic() + 60
        check = [*ssh, "-O", "check", f"git@{HOST}"]
        while subprocess.run(check, env=env, capture_output=True, stdin=subprocess.DEVNULL).returncode != 0:
            assert master.poll() is None and time.monotonic() < deadline, "the SSH master connection did not start"
            time.sleep(0.1)
        env = env | {"GIT_SSH_COMMAND": shlex.join([*ssh, "-o", "ControlMaster=no"])}
        work, result = clone(ssh_server, env, tmp_path)
        assert result.returncode == 0, result.stderr
        before = git.branch_sha(private_repo.path, "main")
        if how == "revoke the key":
            accounts.revoke_ssh_key(key, actor=admin)
        else:
            accounts.set_user_active(bob, actor=admin, active=False)
        listed = run_git("ls-remote", url(ssh_server), env=env)
        assert listed.returncode != 0
        assert "This key is no longer registered with portal" in listed.stderr
        commit_file(work, env, "after.txt", b"no\n")
        pushed = run_git("push", "origin", "main", env=env, cwd=work)
        assert pushed.returncode != 0
        assert git.branch_sha(private_repo.path, "main") == before
        # The refused sessions went over the connection that was open before the change.
        assert master.poll() is None
    finally:
        # What the test checks is done; a master slow to end on a busy machine is killed rather than waited for.
        master.terminate()
        try:
            master.wait(timeout=10)
        except subprocess.TimeoutExpired:
            master.kill()
            master.wait()


@pytest.mark.parametrize("goes_away", ["closes the channel", "is hung up on"])
def test_serv_leaves_no_push_session_when_the_client_goes_away(
    django_subprocess_env, private_repo, bob, ssh_keypair, goes_away
):
    _, public = ssh_keypair("bob")
    key = accounts.add_ssh_key(bob, actor=bob, title="laptop", public_key=public)
    manage = Path(__file__).resolve().parents[2] / "manage.py"
    serv = subprocess.Popen(
        [sys.executable, str(manage), "serv", f"key-{key.pk}"],
        env=django_subprocess_env | {"SSH_ORIGINAL_COMMAND": "git-receive-pack 'alice/project.git'"},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        # receive-pack advertises the refs before reading anything: by then serv opened the push session.
        assert serv.stdout.read(4) != b""
        assert PushSession.objects.filter(repository=private_repo).count() == 1
        if goes_away == "closes the channel":
            serv.stdin.close()
        else:
            serv.send_signal(signal.SIGHUP)
        serv.wait(timeout=60)
    finally:
        if serv.poll() is None:
            serv.kill()
            serv.wait()
    assert not PushSession.objects.exists()
    assert not Push.objects.exists()


def _git_processes_on(repo_path: Path) -> list[int]:
    """The ids of running git processes whose command line names the repository."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if entry.name.isdigit() and any(b"upload-pack" in arg for arg in argv) and str(repo_path).encode() in argv:
            pids.append(int(entry.name))
    return pids


def test_an_ssh_git_session_that_sends_nothing_is_closed_after_the_idle_timeout(
    ssh_server, private_repo, bob, key_for, settings
):
    settings.PORTAL_SSH_IDLE_TIMEOUT = 2
    env, _key = key_for(bob)
    ssh = shlex.split(env["GIT_SSH_COMMAND"])
    # git-upload-pack advertises its refs, then waits for the client, which never answers.
    client = subprocess.Popen(
        [*ssh, f"git@{HOST}", "git-upload-pack '/alice/project.git'"],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        advertisement = client.stdout.readline()
        assert b"refs/heads/main" in advertisement
        assert _git_processes_on(private_repo.path)
        # stdin stays open: the client neither sends anything nor ends.
        client.wait(timeout=60)
        err = client.stderr.read()
    finally:
        client.kill()
        client.stdin.close()
    assert b"Closed after 2 seconds without data." in err
    assert client.returncode != 0
    assert _git_processes_on(private_repo.path) == []


def test_failed_ssh_sign_ins_are_logged_and_slow_down_their_address(ssh_server, ssh_keypair, git_ssh_env, caplog):
    keyfile, _public = ssh_keypair("stranger")
    env = git_ssh_env(keyfile)
    failures = ssh_server.server.sign_in_failures

    def logged() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.getMessage().startswith("failed SSH sign-in")]

    with caplog.at_level("INFO", logger="repos.sshd"):
        for attempt in range(1, SignInFailures.FREE + 2):
            refused = run_ssh(env, "git-upload-pack '/alice/project.git'")
            assert refused.returncode == 255 and "Permission denied" in refused.stderr
            # The server notices the connection is gone just after the client has exited.
            deadline = time.monotonic() + 30
            while len(logged()) < attempt:
                assert time.monotonic() < deadline, "the failed sign-in was not logged"
                time.sleep(0.05)
    assert logged() == ["failed SSH sign-in from 127.0.0.1 as 'git'"] * (SignInFailures.FREE + 1)
    # The last attempt already waited a second before its key was checked; the next waits two.
    assert failures.delay("127.0.0.1") == 2.0
    assert failures.delay("127.0.0.2") == 0.0


def test_sign_in_delays_grow_to_a_limit_and_are_forgotten():
    now = [0.0]
    failures = SignInFailures(clock=lambda: now[0])
    delays = []
    for _attempt in range(12):
        failures.failed("192.0.2.1")
        delays.append(failures.delay("192.0.2.1"))
    assert delays == [0, 0, 1, 2, 4, 8, 16, 30, 30, 30, 30, 30]
    now[0] += SignInFailures.FORGET_AFTER + 1
    assert failures.delay("192.0.2.1") == 0
    failures.failed("192.0.2.1")
    failures.succeeded("192.0.2.1")
    assert failures.delay("192.0.2.1") == 0
