"""`manage.py keys`: admins list, add and revoke anyone's SSH keys from the shell, on the audit record."""

import subprocess
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from portal import services as accounts
from portal.models import AuditEvent, SshKey
from repos import services as repo_services


def keys(*args, stdin: str | None = None) -> str:
    out = StringIO()
    extra = {"stdin": StringIO(stdin)} if stdin is not None else {}
    call_command("keys", *args, stdout=out, **extra)
    return out.getvalue()


@pytest.fixture
def public_key(tmp_path):
    """public_key(name): a fresh ed25519 public key line made by ssh-keygen."""

    def make(name: str) -> str:
        path = tmp_path / name
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(path)], check=True)
        return (tmp_path / f"{name}.pub").read_text()

    return make


def test_admin_adds_a_key_for_a_user_from_an_argument(admin, bob, public_key):
    output = keys("add", "--user", "bob", "--title", "laptop", "--key", public_key("bob"))
    key = SshKey.objects.get(user=bob)
    assert key.title == "laptop"
    assert f"Added key {key.pk} for bob: {key.fingerprint}" in output
    event = AuditEvent.objects.get(action="key.add")
    assert (event.actor, event.subject, event.after["fingerprint"]) == (admin, bob, key.fingerprint)


def test_it_reads_the_key_from_standard_input_and_records_the_named_actor(admin, bob, public_key):
    second_admin = accounts.create_user(actor=admin, username="ops", email="ops@example.com", is_admin=True)
    keys("add", "--user", "bob", "--title", "desk", "--actor", "ops", stdin=public_key("desk"))
    event = AuditEvent.objects.get(action="key.add")
    assert event.actor == second_admin
    assert event.actor_name == "ops"
    assert event.subject == bob


def test_it_refuses_a_bad_key_with_the_reason_and_adds_nothing(admin, bob):
    with pytest.raises(CommandError, match="private key"):
        keys("add", "--user", "bob", "--title", "x", "--key", "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n")
    assert not SshKey.objects.exists()
    assert not AuditEvent.objects.filter(action="key.add").exists()


def test_it_refuses_an_actor_who_is_not_an_administrator(admin, bob, carol, public_key):
    with pytest.raises(CommandError, match="--actor must name an active administrator"):
        keys("add", "--user", "bob", "--title", "x", "--key", public_key("k"), "--actor", "carol")
    assert not SshKey.objects.exists()


def test_it_needs_an_administrator_to_exist(bob, public_key):
    with pytest.raises(CommandError, match="no active administrator"):
        keys("add", "--user", "bob", "--title", "x", "--key", public_key("k"))


def test_it_refuses_an_unknown_user(admin, public_key):
    with pytest.raises(CommandError, match="No user named 'nobody'"):
        keys("add", "--user", "nobody", "--title", "x", "--key", public_key("k"))


def test_list_shows_every_key_or_one_users(admin, alice, bob, private_repo, public_key):
    bob_key = accounts.add_ssh_key(bob, actor=bob, title="bob-laptop", public_key=public_key("b"))
    alice_key = accounts.add_ssh_key(alice, actor=alice, title="alice-desk", public_key=public_key("a"))
    repo_services.add_deploy_key(
        actor=alice, title="ci", public_key=public_key("d"), repository=private_repo, writable=True
    )
    everything = keys("list")
    assert bob_key.fingerprint in everything and alice_key.fingerprint in everything
    assert "deploy:alice/project (writable)" in everything
    assert "never" in everything
    only_bob = keys("list", "--user", "bob")
    assert bob_key.fingerprint in only_bob
    assert alice_key.fingerprint not in only_bob


@pytest.mark.parametrize("by", ["id", "fingerprint", "bare fingerprint"])
def test_admin_revokes_a_key_by_id_or_fingerprint(admin, bob, public_key, by):
    key = accounts.add_ssh_key(bob, actor=bob, title="laptop", public_key=public_key("b"))
    ref = {
        "id": str(key.pk),
        "fingerprint": key.fingerprint,
        "bare fingerprint": key.fingerprint.removeprefix("SHA256:"),
    }[by]
    output = keys("revoke", ref)
    assert f"of bob: {key.fingerprint}" in output
    assert not SshKey.objects.filter(pk=key.pk).exists()
    event = AuditEvent.objects.get(action="key.revoke")
    assert (event.actor, event.subject, event.before["fingerprint"]) == (admin, bob, key.fingerprint)


def test_revoking_an_unknown_key_says_so(admin):
    with pytest.raises(CommandError, match="No key with id or fingerprint"):
        keys("revoke", "SHA256:nothing")
