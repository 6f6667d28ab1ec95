"""Git over SSH: the real `git` and `ssh` clients against the embedded server."""

import hashlib
import os
import shlex
import stat
import subprocess
from pathlib import Path

import pytest

from portal import services as accounts
from portal.models import SshKey
from repos import git
from repos.sshd import load_host_key
from repos.transport import NOT_FOUND_MESSAGE, safe_git_protocol

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
            key = accounts.add_ssh_key(None, actor=deploy.pop("actor"), title="deploy", public_key=public, **deploy)
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
    key.refresh_from_db()
    assert key.last_used is not None


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
    env, _ = key_for(None, actor=alice, repository=private_repo, writable=True)
    work, result = clone(ssh_server, env, tmp_path)
    assert result.returncode == 0, result.stderr
    commit_file(work, env, "deploy.txt", b"d\n")
    result = run_git("push", "origin", "main", env=env, cwd=work)
    assert result.returncode == 0, result.stderr
    assert git.branch_sha(private_repo.path, "main") == run_git("rev-parse", "HEAD", env=env, cwd=work).stdout.strip()


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


def test_a_100_mb_incompressible_file_round_trips_intact(ssh_server, private_repo, bob, key_for, tmp_path):
    env, _ = key_for(bob)
    work, result = clone(ssh_server, env, tmp_path)
    assert result.returncode == 0, result.stderr
    payload = os.urandom(100 * 1024 * 1024)
    expected = hashlib.sha256(payload).hexdigest()
    commit_file(work, env, "big.bin", payload)
    del payload
    result = run_git("push", "origin", "main", env=env, cwd=work)
    assert result.returncode == 0, result.stderr
    back, result = clone(ssh_server, env, tmp_path, "back")
    assert result.returncode == 0, result.stderr
    digest = hashlib.sha256()
    with open(back / "big.bin", "rb") as handle:
        for block in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(block)
    assert digest.hexdigest() == expected
    assert (back / "big.bin").stat().st_size == 100 * 1024 * 1024


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
