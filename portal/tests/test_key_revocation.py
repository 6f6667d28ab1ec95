"""Remove versus revoke: a removed key may come back, a revoked one is blocked everywhere until an admin lifts
the block; its owner is told in the portal and by email, and the SSH server refuses it whatever the tables say."""

import io
import re
import subprocess
import uuid

import asyncssh
import pytest
from django.core import mail
from django.core.exceptions import PermissionDenied
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from portal import services
from portal.models import AuditEvent, RevokedKeyFingerprint, SshKey
from repos import git
from reviews.models import Notification, NotificationPreference

REVOKED = "An administrator revoked this key on"


def public_key(comment: str = "laptop") -> str:
    return asyncssh.generate_private_key("ssh-ed25519", comment=comment).export_public_key().decode().strip()


@pytest.fixture
def admin_client(admin) -> Client:
    client = Client()
    client.force_login(admin)
    return client


@pytest.fixture
def alice_client(alice) -> Client:
    client = Client()
    client.force_login(alice)
    return client


def admin_remove(client: Client, key: SshKey):
    return client.post(reverse("portal:admin_key_remove", args=[key.pk]), {"confirmed": "1"})


def admin_revoke(client: Client, key: SshKey, reason: str = "laptop stolen"):
    return client.post(reverse("portal:admin_key_revoke", args=[key.pk]), {"confirmed": "1", "reason": reason})


def add_in_settings(client: Client, key_text: str):
    return client.post(reverse("portal:settings_keys"), {"title": "again", "public_key": key_text})


def api_add(user, key_text: str):
    _, raw = services.create_access_token(
        user, actor=user, name=f"keys-{uuid.uuid4()}", scopes=["api", "write:user", "write:repo"], expires_at=None
    )
    return Client().post(
        "/api/v1/user/keys",
        {"key": key_text, "title": "again"},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {raw}",
    )


# Remove: the owner may add the key again.


def test_after_remove_the_owner_adds_the_same_key_again(admin_client, alice_client, alice):
    text = public_key()
    key = services.add_ssh_key(alice, actor=alice, title="laptop", public_key=text)
    assert admin_remove(admin_client, key).status_code == 302
    assert not SshKey.objects.exists() and not RevokedKeyFingerprint.objects.exists()

    assert add_in_settings(alice_client, text).status_code == 302
    assert SshKey.objects.get().fingerprint == key.fingerprint
    event = AuditEvent.objects.get(action="key.remove")
    assert (event.actor.username, event.subject, event.before["fingerprint"]) == ("root", alice, key.fingerprint)


# Revoke: nobody can add it again, by any path, until the block is lifted.


def test_a_revoked_key_is_refused_by_every_way_of_adding_it(admin_client, alice_client, admin, alice, private_repo):
    text = public_key()
    key = services.add_ssh_key(alice, actor=alice, title="laptop", public_key=text)
    assert admin_revoke(admin_client, key).status_code == 302
    assert not SshKey.objects.exists()

    # The owner, in the settings page.
    response = add_in_settings(alice_client, text)
    assert response.status_code == 200
    assert REVOKED in response.content.decode()
    # The owner, through the API.
    response = api_add(alice, text)
    assert response.status_code == 400
    assert response.json()["message"].startswith(REVOKED)
    # As a deploy key, in the repository's settings and through the API.
    response = alice_client.post("/alice/project/settings/keys", {"title": "CI", "public_key": text})
    assert response.status_code == 400 and REVOKED in response.content.decode()
    _, raw = services.create_access_token(
        alice, actor=alice, name="ci", scopes=["api", "write:user", "write:repo"], expires_at=None
    )
    response = Client().post(
        "/api/v1/repos/alice/project/keys",
        {"key": text, "title": "CI"},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {raw}",
    )
    assert response.status_code == 400 and REVOKED in response.json()["message"]
    # An administrator, on the owner's behalf, and from the shell.
    response = admin_client.post(reverse("portal:admin_keys"), {"username": "alice", "title": "", "public_key": text})
    assert REVOKED in response.content.decode()
    with pytest.raises(CommandError, match=REVOKED):
        call_command("keys", "add", "--user", "alice", "--title", "x", "--key", text, stdout=io.StringIO())
    assert not SshKey.objects.exists()

    revocation = RevokedKeyFingerprint.objects.get()
    assert (revocation.fingerprint, revocation.owner_name, revocation.revoked_by) == (key.fingerprint, "alice", admin)
    page = admin_client.get(reverse("portal:admin_keys")).content.decode()
    assert f'id="revoked-{revocation.pk}"' in page and "laptop stolen" in page


def test_lifting_the_block_lets_the_key_be_added_again(admin_client, alice_client, admin, alice):
    text = public_key()
    key = services.add_ssh_key(alice, actor=alice, title="laptop", public_key=text)
    revocation = services.revoke_ssh_key(key, actor=admin, reason="lost")
    url = reverse("portal:admin_key_lift", args=[revocation.pk])

    # Without the confirmation nothing changes.
    assert admin_client.post(url).status_code == 200
    assert RevokedKeyFingerprint.objects.exists()
    assert admin_client.post(url, {"confirmed": "1"}).status_code == 302
    assert not RevokedKeyFingerprint.objects.exists()

    assert add_in_settings(alice_client, text).status_code == 302
    assert SshKey.objects.get(user=alice).fingerprint == key.fingerprint
    actions = list(AuditEvent.objects.filter(action__startswith="key.").values_list("action", flat=True))
    assert sorted(actions) == ["key.add", "key.add", "key.lift", "key.revoke"]
    lift = AuditEvent.objects.get(action="key.lift")
    assert (lift.actor, lift.subject, lift.before["reason"]) == (admin, alice, "lost")


def test_only_site_admins_revoke_or_lift(alice, bob, admin):
    key = services.add_ssh_key(alice, actor=alice, title="laptop", public_key=public_key())
    with pytest.raises(PermissionDenied):
        services.revoke_ssh_key(key, actor=alice)
    revocation = services.revoke_ssh_key(key, actor=admin)
    with pytest.raises(PermissionDenied):
        services.lift_key_revocation(revocation, actor=bob)
    assert RevokedKeyFingerprint.objects.exists()


def test_the_shell_removes_revokes_and_lifts(admin, alice):
    first = services.add_ssh_key(alice, actor=alice, title="one", public_key=public_key())
    second = services.add_ssh_key(alice, actor=alice, title="two", public_key=public_key())
    out = io.StringIO()
    call_command("keys", "remove", str(first.pk), stdout=out)
    call_command("keys", "revoke", second.fingerprint, "--reason", "leaked", stdout=out)
    assert not SshKey.objects.exists()
    assert RevokedKeyFingerprint.objects.get().fingerprint == second.fingerprint
    call_command("keys", "lift", second.fingerprint, stdout=out)
    assert not RevokedKeyFingerprint.objects.exists()
    actions = AuditEvent.objects.filter(actor=admin).order_by("id").values_list("action", flat=True)
    assert list(actions) == ["key.remove", "key.revoke", "key.lift"]


def test_the_admin_api_removes_revokes_and_lifts(admin, alice):
    _, raw = services.create_access_token(admin, actor=admin, name="ops", scopes=["api", "admin"], expires_at=None)
    auth = {"HTTP_AUTHORIZATION": f"Bearer {raw}"}
    removed = services.add_ssh_key(alice, actor=alice, title="one", public_key=public_key())
    revoked = services.add_ssh_key(alice, actor=alice, title="two", public_key=public_key())
    assert Client().delete(f"/api/v1/admin/users/alice/keys/{removed.pk}", **auth).status_code == 204
    url = f"/api/v1/admin/users/alice/keys/{revoked.pk}?revoke=true&reason=leaked"
    assert Client().delete(url, **auth).status_code == 204
    assert list(RevokedKeyFingerprint.objects.values_list("fingerprint", "reason")) == [(revoked.fingerprint, "leaked")]

    [listed] = Client().get("/api/v1/admin/revoked_keys", **auth).json()
    assert (listed["fingerprint"], listed["owner"], listed["reason"]) == (revoked.fingerprint, "alice", "leaked")
    assert listed["revoked_by"] == "root"
    assert Client().delete(f"/api/v1/admin/revoked_keys/{listed['id']}", **auth).status_code == 204
    assert not RevokedKeyFingerprint.objects.exists()
    assert Client().delete(f"/api/v1/admin/revoked_keys/{listed['id']}", **auth).status_code == 404
    actions = AuditEvent.objects.filter(actor=admin).order_by("id").values_list("action", flat=True)
    assert list(actions)[-3:] == ["key.remove", "key.revoke", "key.lift"]


# The owner is told, in the portal and by email.


@pytest.mark.parametrize("how", ["remove", "revoke"])
def test_the_owner_is_told_in_the_portal_and_by_email(
    admin_client, alice_client, alice, rq_queues, email_backend, django_capture_on_commit_callbacks, how, run_worker
):
    key = services.add_ssh_key(alice, actor=alice, title="laptop", public_key=public_key())
    with django_capture_on_commit_callbacks(execute=True):
        (admin_remove if how == "remove" else admin_revoke)(admin_client, key)
    run_worker()

    notice = Notification.objects.get(user=alice)
    assert notice.kind == ("ssh_key_removed" if how == "remove" else "ssh_key_revoked")
    assert notice.pull_request is None and notice.actor.username == "root"
    assert key.fingerprint in notice.text
    page = alice_client.get(reverse("notifications:list")).content.decode()
    assert key.fingerprint in page
    [message] = mail.outbox
    assert message.to == ["alice@example.com"]
    assert key.fingerprint in message.body and "https://git.example.com/settings/keys" in message.body
    if how == "revoke":
        assert "revoked" in message.subject and "laptop stolen" in message.body
        assert "cannot be added again" in message.body
    else:
        assert "removed" in message.subject and "you may add it again" in message.body
    assert rq_queues["default"].failed_job_registry.count == 0


def test_nobody_is_told_when_owners_delete_their_own_key(alice_client, alice, django_capture_on_commit_callbacks):
    key = services.add_ssh_key(alice, actor=alice, title="laptop", public_key=public_key())
    with django_capture_on_commit_callbacks(execute=True):
        alice_client.post(reverse("portal:settings_key_delete", args=[key.pk]), {"confirmed": "1"})
    assert not SshKey.objects.exists()
    assert not Notification.objects.exists()


def test_the_owner_can_turn_the_email_off(
    admin_client, alice, rq_queues, email_backend, django_capture_on_commit_callbacks
):
    NotificationPreference.objects.create(user=alice, web_off=[], email_off=["ssh_key_revoked"])
    key = services.add_ssh_key(alice, actor=alice, title="laptop", public_key=public_key())
    with django_capture_on_commit_callbacks(execute=True):
        admin_revoke(admin_client, key)
    assert Notification.objects.get(user=alice).emailed_at is None
    assert rq_queues["default"].count == 0


# A pasted private key is never sent back.


@pytest.mark.parametrize(
    "url, extra",
    [
        (reverse("portal:settings_keys"), {}),
        (reverse("portal:admin_keys"), {"username": "alice"}),
        ("/alice/project/settings/keys", {}),
    ],
    ids=["settings", "admin-on-behalf", "deploy-key"],
)
def test_a_pasted_private_key_is_refused_and_not_echoed(admin, alice, private_repo, url, extra):
    private = asyncssh.generate_private_key("ssh-ed25519").export_private_key().decode()
    client = Client()
    client.force_login(admin if "admin" in url else alice)
    response = client.post(url, {"title": "oops", "public_key": private} | extra)
    page = response.content.decode()
    assert "That is a private key: paste the public key (the .pub file)" in page
    for line in private.strip().splitlines():
        assert line not in page
    assert re.search(r'<textarea[^>]*name="public_key"[^>]*>\s*</textarea>', page)
    assert not SshKey.objects.exists()


def test_the_api_does_not_echo_a_bad_key(alice):
    private = asyncssh.generate_private_key("ssh-ed25519").export_private_key().decode()
    for text in (private, "AAAAC3NzaC1lZDI1NTE5AAAAIBogus secret-looking-text"):
        response = api_add(alice, text)
        assert response.status_code == 400
        message = response.json()["message"]
        assert "AAAA" not in message and "secret-looking" not in message
        for line in text.splitlines():
            assert line not in response.content.decode()
    assert "private key" in api_add(alice, private).json()["message"]


# The SSH server.


def _push(env, work, name: str) -> subprocess.CompletedProcess:
    (work / name).write_text(name)
    subprocess.run(["git", "add", name], env=env, cwd=work, check=True)
    subprocess.run(["git", "commit", "-q", "-m", name], env=env, cwd=work, check=True)
    return subprocess.run(["git", "push", "origin", "main"], env=env, cwd=work, capture_output=True, text=True)


def test_removed_then_added_again_pushes_and_revoked_is_refused(
    ssh_server, private_repo, bob, admin, ssh_keypair, git_ssh_env, tmp_path
):
    keyfile, text = ssh_keypair("bob")
    env = git_ssh_env(keyfile)
    admin_client = Client()
    admin_client.force_login(admin)
    key = services.add_ssh_key(bob, actor=bob, title="laptop", public_key=text)
    work = tmp_path / "work"
    url = f"ssh://git@127.0.0.1:{ssh_server.port}/alice/project.git"
    subprocess.run(["git", "clone", "-q", url, str(work)], env=env, check=True, capture_output=True)

    admin_remove(admin_client, key)
    assert _push(env, work, "removed.txt").returncode != 0
    key = services.add_ssh_key(bob, actor=bob, title="laptop", public_key=text)
    pushed = _push(env, work, "again.txt")
    assert pushed.returncode == 0, pushed.stderr

    before = git.branch_sha(private_repo.path, "main")
    admin_revoke(admin_client, key)
    refused = _push(env, work, "revoked.txt")
    assert refused.returncode != 0 and "Permission denied (publickey)" in refused.stderr
    assert git.branch_sha(private_repo.path, "main") == before


def test_the_ssh_server_refuses_a_revoked_fingerprint_even_if_its_row_is_back(
    ssh_server, private_repo, bob, ssh_keypair, git_ssh_env, tmp_path
):
    keyfile, text = ssh_keypair("bob")
    env = git_ssh_env(keyfile)
    key = services.add_ssh_key(bob, actor=bob, title="laptop", public_key=text)
    work = tmp_path / "work"
    url = f"ssh://git@127.0.0.1:{ssh_server.port}/alice/project.git"
    subprocess.run(["git", "clone", "-q", url, str(work)], env=env, check=True, capture_output=True)
    before = git.branch_sha(private_repo.path, "main")

    # Say a backup brought the key's row back after it was revoked.
    RevokedKeyFingerprint.objects.create(fingerprint=key.fingerprint, owner_name="bob")
    assert SshKey.objects.filter(pk=key.pk).exists()
    refused = _push(env, work, "after.txt")
    assert refused.returncode != 0 and "Permission denied (publickey)" in refused.stderr
    assert git.branch_sha(private_repo.path, "main") == before
