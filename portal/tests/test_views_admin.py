"""Site administration pages: users, every SSH key, the audit log and site settings."""

from datetime import timedelta

import asyncssh
import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from portal import services
from portal.models import AuditEvent, RevokedKeyFingerprint, SiteSettings, SshKey, User

ADMIN_PAGES = [
    ("get", "portal:admin", []),
    ("get", "portal:admin_users", []),
    ("get", "portal:admin_user_create", []),
    ("post", "portal:admin_user_active", ["alice"]),
    ("post", "portal:admin_user_admin", ["alice"]),
    ("get", "portal:admin_keys", []),
    ("post", "portal:admin_key_remove", [1]),
    ("post", "portal:admin_key_revoke", [1]),
    ("post", "portal:admin_key_lift", [1]),
    ("get", "portal:admin_audit", []),
    ("get", "portal:admin_settings", []),
]


def public_key(comment: str = "laptop") -> str:
    return asyncssh.generate_private_key("ssh-ed25519", comment=comment).export_public_key().decode().strip()


@pytest.fixture
def admin_client(client, admin):
    client.force_login(admin)
    return client


@pytest.mark.parametrize("method, name, args", ADMIN_PAGES)
@pytest.mark.parametrize("who", ["anonymous", "mallory", "deactivated admin"])
def test_admin_pages_are_404_for_everyone_but_site_admins(client, alice, mallory, method, name, args, who):
    if who == "mallory":
        client.force_login(mallory)
    elif who == "deactivated admin":
        former = services.create_user(actor=None, username="former", email="", password="x" * 12, is_admin=True)
        client.force_login(former)
        User.objects.filter(pk=former.pk).update(is_active=False)
    response = getattr(client, method)(reverse(name, args=args))
    assert response.status_code == 404
    alice.refresh_from_db()
    assert alice.is_active and not alice.is_superuser


def test_admin_lists_and_searches_users(admin_client, alice, bob):
    page = admin_client.get(reverse("portal:admin_users"), {"q": "ali"}).content.decode()
    assert 'id="user-alice"' in page
    assert 'id="user-bob"' not in page


def test_admin_creates_a_user(admin_client, admin):
    response = admin_client.post(
        reverse("portal:admin_user_create"),
        {"username": "dave", "email": "dave@example.com", "password": "a long enough secret", "is_admin": ""},
    )
    assert response.status_code == 302
    dave = User.objects.get(username="dave")
    assert dave.check_password("a long enough secret") and not dave.is_superuser
    assert AuditEvent.objects.filter(action="user.create", actor=admin, target_repr="dave").exists()


def test_admin_create_user_shows_why_a_name_is_refused(admin_client, alice):
    response = admin_client.post(reverse("portal:admin_user_create"), {"username": "alice", "email": ""})
    assert escape("The name 'alice' is already taken.") in response.content.decode()
    response = admin_client.post(reverse("portal:admin_user_create"), {"username": "settings", "email": ""})
    assert escape("'settings' is reserved.") in response.content.decode()
    assert not User.objects.filter(username="settings").exists()


def test_admin_deactivates_reactivates_promotes_and_demotes(admin_client, admin, alice):
    active_url = reverse("portal:admin_user_active", args=["alice"])
    admin_url = reverse("portal:admin_user_admin", args=["alice"])
    admin_client.post(active_url, {"active": "0"})
    alice.refresh_from_db()
    assert not alice.is_active
    admin_client.post(active_url, {"active": "1"})
    admin_client.post(admin_url, {"admin": "1"})
    alice.refresh_from_db()
    assert alice.is_active and alice.is_superuser
    admin_client.post(admin_url, {"admin": "0"})
    alice.refresh_from_db()
    assert not alice.is_superuser
    actions = list(AuditEvent.objects.filter(actor=admin, target_repr="alice").values_list("action", flat=True))
    assert sorted(actions) == ["user.activate", "user.deactivate", "user.demote", "user.promote"]


def test_admin_cannot_deactivate_themselves(admin_client, admin):
    response = admin_client.post(
        reverse("portal:admin_user_active", args=[admin.username]), {"active": "0"}, follow=True
    )
    assert "You cannot deactivate your own account." in response.content.decode()
    admin.refresh_from_db()
    assert admin.is_active


def test_admin_sees_every_users_keys_and_searches_them(admin_client, alice, bob):
    alice_key = services.add_ssh_key(alice, actor=alice, title="alice laptop", public_key=public_key())
    bob_key = services.add_ssh_key(bob, actor=bob, title="bob laptop", public_key=public_key())
    page = admin_client.get(reverse("portal:admin_keys")).content.decode()
    assert alice_key.fingerprint in page and bob_key.fingerprint in page
    page = admin_client.get(reverse("portal:admin_keys"), {"q": "bob"}).content.decode()
    assert bob_key.fingerprint in page and alice_key.fingerprint not in page
    page = admin_client.get(reverse("portal:admin_keys"), {"q": alice_key.fingerprint[7:20]}).content.decode()
    assert alice_key.fingerprint in page and bob_key.fingerprint not in page


def test_admin_adds_a_key_for_a_user_and_the_audit_names_both(admin_client, admin, alice):
    response = admin_client.post(
        reverse("portal:admin_keys"), {"username": "alice", "title": "given", "public_key": public_key()}
    )
    assert response.status_code == 302
    key = SshKey.objects.get()
    assert (key.user, key.added_by) == (alice, admin)
    event = AuditEvent.objects.get(action="key.add")
    assert (event.actor, event.actor_name, event.subject, event.subject_name) == (admin, "root", alice, "alice")
    page = admin_client.get(reverse("portal:admin_audit"), {"action": "key.add"}).content.decode()
    assert key.fingerprint in page


def test_admin_add_key_shows_why_it_is_refused(admin_client, alice):
    url = reverse("portal:admin_keys")
    response = admin_client.post(url, {"username": "nobody", "title": "", "public_key": public_key()})
    assert escape("There is no user named 'nobody'.") in response.content.decode()
    response = admin_client.post(url, {"username": "alice", "title": "", "public_key": "ssh-dss AAAA"})
    assert "Key type ssh-dss is not accepted." in response.content.decode()
    assert not SshKey.objects.exists()


def test_admin_revokes_any_key(admin_client, admin, alice):
    key = services.add_ssh_key(alice, actor=alice, title="laptop", public_key=public_key())
    response = admin_client.post(
        reverse("portal:admin_key_revoke", args=[key.pk]), {"confirmed": "1", "reason": "laptop stolen"}
    )
    assert response.status_code == 302
    assert not SshKey.objects.filter(pk=key.pk).exists()
    revocation = RevokedKeyFingerprint.objects.get()
    assert (revocation.fingerprint, revocation.revoked_by, revocation.reason) == (
        key.fingerprint,
        admin,
        "laptop stolen",
    )
    event = AuditEvent.objects.get(action="key.revoke")
    assert (event.actor, event.subject) == (admin, alice)
    assert event.before["fingerprint"] == key.fingerprint
    assert event.after == {"blocked": True, "reason": "laptop stolen"}


def test_admin_revoke_redirects_only_within_the_site(admin_client, alice):
    key = services.add_ssh_key(alice, actor=alice, title="laptop", public_key=public_key())
    url = reverse("portal:admin_key_revoke", args=[key.pk])
    response = admin_client.post(url, {"next": "https://evil.example/", "confirmed": "1"})
    assert response["Location"] == reverse("portal:admin_keys")


@pytest.fixture
def audit_trail(admin, alice, bob):
    """A few events at known times: alice adds a key, admin revokes it, bob creates a token."""
    key = services.add_ssh_key(alice, actor=alice, title="alice-key", public_key=public_key())
    services.revoke_ssh_key(key, actor=admin)
    services.create_access_token(bob, actor=bob, name="bob-token", scopes=["api"], expires_at=None)
    long_ago = timezone.now() - timedelta(days=40)
    AuditEvent.objects.filter(action="key.add").update(created=long_ago)
    return long_ago


def _rows(client, **filters) -> list[str]:
    response = client.get(reverse("portal:admin_audit"), filters)
    assert response.status_code == 200
    return [f"{e.actor_name}:{e.action}" for e in response.context["page"]]


def test_audit_log_filters(admin_client, audit_trail):
    assert _rows(admin_client, actor="root", action="key") == ["root:key.revoke"]
    assert _rows(admin_client, action="key") == ["root:key.revoke", "alice:key.add"]
    assert _rows(admin_client, subject="bob") == ["bob:token.create"]
    assert _rows(admin_client, target="bob-token") == ["bob:token.create"]
    today = timezone.now().date()
    assert "alice:key.add" not in _rows(admin_client, date_from=today.isoformat())
    old = (audit_trail.date()).isoformat()
    assert _rows(admin_client, date_from=old, date_to=old) == ["alice:key.add"]


def test_audit_log_paginates_and_keeps_filters(admin_client, admin, alice):
    for n in range(60):
        services.update_profile(alice, actor=alice, full_name=f"Alice {n}")
    first = admin_client.get(reverse("portal:admin_audit"), {"action": "user.profile"})
    assert len(first.context["page"]) == 50
    assert "action=user.profile&amp;page=2" in first.content.decode()
    second = admin_client.get(reverse("portal:admin_audit"), {"action": "user.profile", "page": 2})
    assert len(second.context["page"]) == 10


def test_admin_closes_and_opens_sign_up(admin_client, admin):
    admin_client.post(reverse("portal:admin_settings"), {})
    assert SiteSettings.load().open_signup is False
    admin_client.post(reverse("portal:admin_settings"), {"open_signup": "on"})
    assert SiteSettings.load().open_signup is True
    events = AuditEvent.objects.filter(action="site.signup", actor=admin).order_by("id")
    assert [e.after["open_signup"] for e in events] == [False, True]


def test_users_command_creates_promotes_deactivates_and_lists(db, capsys):
    call_command("users", "create", "erin", "--email", "erin@example.com")
    out = capsys.readouterr().out
    assert "Password (shown once):" in out
    password = out.split("Password (shown once): ", 1)[1].strip()
    erin = User.objects.get(username="erin")
    assert erin.check_password(password)
    call_command("users", "promote", "erin")
    call_command("users", "deactivate", "erin")
    erin.refresh_from_db()
    assert erin.is_superuser and not erin.is_active
    capsys.readouterr()
    call_command("users", "list")
    line = next(row for row in capsys.readouterr().out.splitlines() if "erin@example.com" in row)
    assert line.split()[2:4] == ["yes", "no"]
    call_command("users", "activate", "erin")
    call_command("users", "demote", "erin")
    erin.refresh_from_db()
    assert erin.is_active and not erin.is_superuser
    assert AuditEvent.objects.filter(target_repr="erin", actor=None).count() == 5


def test_users_command_says_why_it_refuses(db):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="There is no user named 'ghost'"):
        call_command("users", "promote", "ghost")
    with pytest.raises(CommandError, match="'settings' is reserved"):
        call_command("users", "create", "settings")


def test_the_audit_log_shows_changes_field_by_field(admin_client, admin, alice):
    services.set_site_admin(alice, actor=admin, admin=True)
    page = admin_client.get(reverse("portal:admin_audit"), {"action": "user.promote"}).content.decode()
    assert "<del>false</del> → <ins>true</ins>" in page
