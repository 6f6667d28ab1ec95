"""The admin key journey in a real browser: a user adds a key, an admin revokes it, the user sees it gone."""

import asyncssh
import pytest

from portal.models import AuditEvent, SshKey

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_admin_revokes_a_key_the_user_added_and_it_disappears_from_the_users_page(sign_in_page, alice, admin):
    public_key = asyncssh.generate_private_key("ssh-ed25519", comment="alice@laptop").export_public_key().decode()

    user_page = sign_in_page(alice)
    user_page.goto("/settings/keys")
    user_page.fill("textarea[name=public_key]", public_key)
    user_page.fill("input[name=title]", "Work laptop")
    user_page.click("text=Add key")
    fingerprint = SshKey.objects.get(user=alice).fingerprint
    keys_table = user_page.locator("table.keys")
    keys_table.get_by_text(fingerprint).wait_for()
    assert "Work laptop" in keys_table.inner_text()

    admin_page = sign_in_page(admin)
    admin_page.goto("/-/admin/keys")
    row = admin_page.locator("tr", has_text=fingerprint)
    assert "alice" in row.inner_text()
    row.get_by_role("button", name="Revoke").click()
    admin_page.get_by_text(f"Revoked key {fingerprint} of alice.").wait_for()
    assert admin_page.locator("tr", has_text=fingerprint).count() == 0

    user_page.reload()
    user_page.get_by_text("You have no SSH keys yet.").wait_for()
    assert fingerprint not in user_page.content()
    assert not SshKey.objects.filter(fingerprint=fingerprint).exists()
    event = AuditEvent.objects.get(action="key.revoke")
    assert (event.actor, event.subject) == (admin, alice)
