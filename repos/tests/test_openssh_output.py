"""What OpenSSH runs (`manage.py serv`, `manage.py authorized_keys`) prints only git's protocol and messages.

A warning from a dependency (cryptography's deprecations, through asyncssh) on stderr would reach the git client
of every push and fetch, so these commands run here as OpenSSH runs them: without PYTHONWARNINGS."""

import subprocess
import sys

import pytest
from django.conf import settings

from portal import services as accounts


def manage(
    env: dict[str, str], *args: str, command: str | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess:
    env = {name: value for name, value in env.items() if name not in ("PYTHONWARNINGS", "SSH_ORIGINAL_COMMAND")}
    if command is not None:
        env["SSH_ORIGINAL_COMMAND"] = command
    return subprocess.run(
        [sys.executable, str(settings.BASE_DIR / "manage.py"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        **({"input": stdin} if stdin is not None else {"stdin": subprocess.DEVNULL}),
    )


@pytest.fixture
def bob_key(bob, ssh_keypair):
    _, public = ssh_keypair("bob")
    return accounts.add_ssh_key(bob, actor=bob, title="laptop", public_key=public)


def test_authorized_keys_prints_its_line_and_nothing_else(django_subprocess_env, bob_key):
    key_type, key_data = bob_key.public_key.split()[:2]

    result = manage(django_subprocess_env, "authorized_keys", key_type, key_data)

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.startswith(f'command="{sys.executable} ') and result.stdout.count("\n") <= 1


def test_authorized_keys_prints_nothing_at_all_for_an_unknown_key(django_subprocess_env, db):
    result = manage(django_subprocess_env, "authorized_keys", "ssh-ed25519", "AAAAC3NzaC1lZDI1NTE5AAAAIBad")

    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_serv_shows_a_refused_command_its_one_line_and_no_warning(django_subprocess_env, private_repo, bob_key):
    result = manage(django_subprocess_env, "serv", f"key-{bob_key.pk}", command="git-upload-pack 'alice/missing.git'")

    assert result.returncode == 1
    assert "Warning" not in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr


def test_serv_serves_git_with_nothing_of_its_own_on_stderr(django_subprocess_env, private_repo, bob_key):
    # git-upload-pack advertises its refs; a flush packet, as `git ls-remote` sends, ends the talk cleanly.
    result = manage(
        django_subprocess_env,
        "serv",
        f"key-{bob_key.pk}",
        command="git-upload-pack 'alice/project.git'",
        stdin="0000",
    )

    assert "refs/heads/main" in result.stdout
    assert result.stderr == ""


def test_the_warnings_are_in_the_log_file_with_log_level_debug(django_subprocess_env, bob_key):
    probe = subprocess.run(
        [sys.executable, "-W", "always", "-c", "import asyncssh"], capture_output=True, text=True, timeout=60
    )
    if "Warning" not in probe.stderr:
        pytest.skip("this asyncssh and cryptography raise no warning on import")

    result = manage(django_subprocess_env | {"LOG_LEVEL": "DEBUG"}, "serv", f"key-{bob_key.pk}")

    assert "Warning" not in result.stdout + result.stderr
    assert "Warning" in (settings.VAR_DIR / "log" / "openssh.log").read_text()
