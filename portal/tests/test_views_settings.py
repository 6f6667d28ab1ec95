"""The user's own settings pages: profile, SSH keys, access tokens, security."""

import asyncssh
import pytest
from django.urls import reverse
from django.utils.html import escape

from portal import services
from portal.models import AccessToken, AuditEvent, SshKey

KEYS_URL = reverse("portal:settings_keys")
TOKENS_URL = reverse("portal:settings_tokens")


def public_key(algorithm: str = "ssh-ed25519", comment: str = "laptop", **kwargs) -> str:
    return asyncssh.generate_private_key(algorithm, comment=comment, **kwargs).export_public_key().decode().strip()


@pytest.fixture
def alice_client(client, alice):
    client.force_login(alice)
    return client


@pytest.mark.parametrize(
    "url",
    [
        reverse("portal:settings_profile"),
        KEYS_URL,
        TOKENS_URL,
        reverse("portal:settings_security"),
    ],
)
def test_settings_pages_send_anonymous_visitors_to_sign_in(client, db, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))


def test_settings_pages_render_with_the_side_nav(alice_client):
    for name in ("settings_profile", "settings_keys", "settings_tokens", "settings_security"):
        response = alice_client.get(reverse(f"portal:{name}"))
        assert response.status_code == 200
        assert b'class="sidenav"' in response.content
        assert b"/accounts/2fa/" in response.content
        assert b"/accounts/sessions/" in response.content


def test_it_saves_the_full_name(alice_client, alice):
    response = alice_client.post(reverse("portal:settings_profile"), {"full_name": "Alice Liddell"})
    assert response.status_code == 302
    alice.refresh_from_db()
    assert alice.full_name == "Alice Liddell"
    assert AuditEvent.objects.filter(action="user.profile", actor=alice).exists()


def test_it_adds_a_key_and_lists_its_fingerprint(alice_client, alice):
    key = public_key(comment="alice@laptop")
    response = alice_client.post(KEYS_URL, {"title": "", "public_key": key}, follow=True)
    stored = SshKey.objects.get(user=alice)
    assert stored.title == "alice@laptop"
    assert stored.added_by == alice
    assert stored.fingerprint.startswith("SHA256:")
    assert stored.fingerprint in response.content.decode()
    assert b"ssh-ed25519" in response.content
    event = AuditEvent.objects.get(action="key.add")
    assert (event.actor, event.subject) == (alice, alice)


def test_key_page_lists_only_own_keys(alice_client, bob):
    services.add_ssh_key(bob, actor=bob, title="bob's", public_key=public_key())
    fingerprint = SshKey.objects.get(user=bob).fingerprint
    assert fingerprint not in alice_client.get(KEYS_URL).content.decode()


@pytest.mark.parametrize(
    "make_text, reason",
    [
        (lambda: public_key("ssh-rsa", key_size=1024), "RSA keys must have at least 2048 bits; this one has 1024."),
        (
            lambda: 'command="/bin/sh",no-pty ' + public_key(),
            "Key options (such as command= or from=) are not allowed: paste the bare key.",
        ),
        (lambda: public_key() + "\n" + public_key(), "Paste one key at a time: this text holds several keys."),
        (
            lambda: asyncssh.generate_private_key("ssh-ed25519").export_private_key().decode(),
            "That is a private key: paste the public key (the .pub file)",
        ),
        (
            lambda: (lambda k: k[:40] + "\n" + k[40:])(public_key()),
            "A public key is a single line; this text has line breaks inside it.",
        ),
    ],
    ids=["rsa-1024", "options", "two-keys", "private-key", "embedded-newline"],
)
def test_it_refuses_a_bad_key_with_the_reason(alice_client, alice, make_text, reason):
    response = alice_client.post(KEYS_URL, {"title": "bad", "public_key": make_text()})
    assert response.status_code == 200
    assert escape(reason) in response.content.decode()
    assert not SshKey.objects.exists()
    assert not AuditEvent.objects.filter(action="key.add").exists()


def test_it_refuses_a_key_already_registered_to_another_user(alice_client, alice, bob):
    key = public_key()
    services.add_ssh_key(bob, actor=bob, title="bob's", public_key=key)
    response = alice_client.post(KEYS_URL, {"title": "mine", "public_key": key})
    assert escape("This key is already registered") in response.content.decode()
    assert not SshKey.objects.filter(user=alice).exists()
    assert SshKey.objects.get().user == bob


def test_it_deletes_own_key(alice_client, alice):
    key = services.add_ssh_key(alice, actor=alice, title="old", public_key=public_key())
    response = alice_client.post(reverse("portal:settings_key_delete", args=[key.pk]), {"confirmed": "1"})
    assert response.status_code == 302
    assert not SshKey.objects.filter(pk=key.pk).exists()
    assert AuditEvent.objects.filter(action="key.remove", actor=alice, subject=alice).exists()


def test_it_does_not_delete_another_users_key(alice_client, bob):
    key = services.add_ssh_key(bob, actor=bob, title="bob's", public_key=public_key())
    response = alice_client.post(reverse("portal:settings_key_delete", args=[key.pk]), {"confirmed": "1"})
    assert response.status_code == 404
    assert SshKey.objects.filter(pk=key.pk).exists()


def test_key_delete_needs_post(alice_client, alice):
    key = services.add_ssh_key(alice, actor=alice, title="k", public_key=public_key())
    assert alice_client.get(reverse("portal:settings_key_delete", args=[key.pk])).status_code == 405
    assert SshKey.objects.filter(pk=key.pk).exists()


def test_a_new_token_is_shown_once_and_stored_hashed(alice_client, alice):
    response = alice_client.post(TOKENS_URL, {"name": "laptop", "scopes": ["read:repo", "write:repo"], "expiry": "30"})
    assert response.status_code == 302
    # The secret never travels in the URL.
    assert response["Location"] == TOKENS_URL
    token = AccessToken.objects.get(user=alice)
    page = alice_client.get(TOKENS_URL).content.decode()
    raw = page.split('id="new-token" value="', 1)[1].split('"', 1)[0]
    assert raw.startswith(AccessToken.PREFIX)
    assert AccessToken.hash(raw) == token.token_hash
    assert raw not in token.token_hash and token.last_eight == raw[-8:]
    assert services.authenticate_token(raw) == token
    assert token.scopes == ["read:repo", "write:repo"]
    assert token.expires_at is not None
    # The next render lists the token by its last eight characters only.
    again = alice_client.get(TOKENS_URL).content.decode()
    assert raw not in again
    assert f"…{token.last_eight}" in again


def test_a_token_may_never_expire(alice_client, alice):
    alice_client.post(TOKENS_URL, {"name": "ci", "scopes": ["api"], "expiry": "never"})
    assert AccessToken.objects.get(user=alice).expires_at is None


def test_the_admin_scope_is_offered_to_site_admins_only(alice_client, alice, client, admin):
    assert b'value="admin"' not in alice_client.get(TOKENS_URL).content
    response = alice_client.post(TOKENS_URL, {"name": "x", "scopes": ["admin"], "expiry": "30"})
    assert response.status_code == 200
    assert not AccessToken.objects.exists()
    client.force_login(admin)
    assert b'value="admin"' in client.get(TOKENS_URL).content
    client.post(TOKENS_URL, {"name": "x", "scopes": ["admin"], "expiry": "30"})
    assert AccessToken.objects.get(user=admin).scopes == ["admin"]


def test_a_duplicate_token_name_shows_why(alice_client, alice):
    services.create_access_token(alice, actor=alice, name="laptop", scopes=["api"], expires_at=None)
    response = alice_client.post(TOKENS_URL, {"name": "laptop", "scopes": ["api"], "expiry": "30"})
    assert escape("You already have a token named 'laptop'.") in response.content.decode()
    assert AccessToken.objects.count() == 1


def test_it_revokes_a_token(alice_client, alice):
    token, raw = services.create_access_token(alice, actor=alice, name="laptop", scopes=["api"], expires_at=None)
    response = alice_client.post(reverse("portal:settings_token_revoke", args=[token.pk]), {"confirmed": "1"})
    assert response.status_code == 302
    assert not AccessToken.objects.exists()
    assert services.authenticate_token(raw) is None
    assert AuditEvent.objects.filter(action="token.revoke", actor=alice).exists()


def test_it_does_not_revoke_another_users_token(alice_client, bob):
    token, _ = services.create_access_token(bob, actor=bob, name="bob", scopes=["api"], expires_at=None)
    assert (
        alice_client.post(reverse("portal:settings_token_revoke", args=[token.pk]), {"confirmed": "1"}).status_code
        == 404
    )
    assert AccessToken.objects.filter(pk=token.pk).exists()


def test_security_page_links_to_two_factor_sessions_password_and_email(alice_client):
    page = alice_client.get(reverse("portal:settings_security")).content.decode()
    for url in ("/accounts/2fa/", "/accounts/sessions/", "/accounts/password/change/", "/accounts/email/"):
        assert url in page


def test_a_user_signs_out_one_other_session_and_keeps_the_current_one(alice, password):
    from allauth.usersessions.models import UserSession
    from django.test import Client

    laptop, phone = Client(), Client(HTTP_USER_AGENT="Phone browser")
    for browser in (laptop, phone):
        response = browser.post("/accounts/login/", {"login": "alice", "password": password})
        assert response.status_code == 302
    phone_session = UserSession.objects.get(user=alice, user_agent="Phone browser")
    page = laptop.get("/accounts/sessions/")
    assert b"Phone browser" in page.content
    assert b"This browser" in page.content

    asked = laptop.post(f"/settings/sessions/{phone_session.pk}/revoke")
    assert asked.status_code == 200 and UserSession.objects.filter(pk=phone_session.pk).exists()
    response = laptop.post(f"/settings/sessions/{phone_session.pk}/revoke", {"confirmed": "1"})
    assert response.status_code == 302
    assert not UserSession.objects.filter(pk=phone_session.pk).exists()
    assert phone.get("/settings/keys").status_code == 302  # sent back to sign in
    assert laptop.get("/settings/keys").status_code == 200
    assert AuditEvent.objects.filter(action="session.revoke", actor=alice, subject=alice).exists()


def test_nobody_signs_out_someone_elses_session(alice, bob, password):
    from allauth.usersessions.models import UserSession
    from django.test import Client

    victim = Client()
    victim.post("/accounts/login/", {"login": "alice", "password": password})
    session = UserSession.objects.get(user=alice)
    attacker = Client()
    attacker.force_login(bob)
    assert attacker.post(f"/settings/sessions/{session.pk}/revoke", {"confirmed": "1"}).status_code == 404
    assert UserSession.objects.filter(pk=session.pk).exists()
