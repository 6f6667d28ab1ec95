"""The admin key journey in a real browser: a user adds a key, an admin revokes it (confirming, with a reason), the
user sees it gone and cannot add it again, the admin lifts the block and the user adds it back."""

import asyncssh
import pytest

from portal.models import AuditEvent, RevokedKeyFingerprint, SshKey

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def add_key(page, public_key: str, title: str) -> None:
    page.goto("/settings/keys")
    page.fill("textarea[name=public_key]", public_key)
    page.fill("input[name=title]", title)
    page.click("text=Add key")


def test_admin_revokes_a_key_the_user_added_and_lifts_the_block(sign_in_page, alice, admin):
    public_key = asyncssh.generate_private_key("ssh-ed25519", comment="alice@laptop").export_public_key().decode()

    user_page = sign_in_page(alice)
    add_key(user_page, public_key, "Work laptop")
    fingerprint = SshKey.objects.get(user=alice).fingerprint
    keys_table = user_page.locator("table.keys")
    keys_table.get_by_text(fingerprint).wait_for()
    assert "Work laptop" in keys_table.inner_text()

    admin_page = sign_in_page(admin)
    admin_page.goto("/-/admin/keys")
    row = admin_page.locator("tr", has_text=fingerprint)
    assert "alice" in row.inner_text()
    row.get_by_role("button", name="Revoke").click()
    # The confirmation page: nothing has changed yet.
    admin_page.get_by_role("heading", name="Revoke alice's key Work laptop?").wait_for()
    assert SshKey.objects.filter(fingerprint=fingerprint).exists()
    admin_page.fill("textarea[name=reason]", "laptop stolen")
    admin_page.get_by_role("button", name="Yes, revoke this key").click()
    admin_page.get_by_text(f"Revoked key {fingerprint} of alice").wait_for()
    assert admin_page.locator("table.keys:not(.revoked) tr", has_text=fingerprint).count() == 0
    revoked_row = admin_page.locator("#revoked-keys tr", has_text=fingerprint)
    assert "laptop stolen" in revoked_row.inner_text()

    user_page.reload()
    user_page.get_by_text("You have no SSH keys yet.").wait_for()
    add_key(user_page, public_key, "Work laptop")
    user_page.get_by_text("An administrator revoked this key on").wait_for()
    assert user_page.locator("textarea[name=public_key]").input_value().strip() == public_key.strip()
    assert not SshKey.objects.filter(fingerprint=fingerprint).exists()
    user_page.goto("/notifications/")
    user_page.get_by_text(fingerprint).first.wait_for()

    revoked_row.get_by_role("button", name="Lift").click()
    admin_page.get_by_role("button", name="Yes, lift the block").click()
    admin_page.get_by_text(f"Lifted the block on {fingerprint}").wait_for()
    assert not RevokedKeyFingerprint.objects.exists()

    add_key(user_page, public_key, "Work laptop")
    user_page.locator("table.keys").get_by_text(fingerprint).wait_for()
    event = AuditEvent.objects.get(action="key.revoke")
    assert (event.actor, event.subject) == (admin, alice)
    assert AuditEvent.objects.filter(action="key.lift", actor=admin).exists()
