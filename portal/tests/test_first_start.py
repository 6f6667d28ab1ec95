"""A new site: sign-up closed, people come in by invitation, and a password someone else chose is changed first."""

import re
from urllib.parse import urlsplit

import pytest
from allauth.account.models import EmailAddress
from django.core import mail
from django.test import Client
from django.urls import reverse

from portal import services
from portal.models import AuditEvent, Invitation, SiteSettings, User

SIGNUP_URL = reverse("account_signup")
CHANGE_URL = reverse("account_change_password")


def sign_up(client, email: str, username: str = "dave"):
    secret = "a long enough secret"
    return client.post(SIGNUP_URL, {"username": username, "email": email, "password1": secret, "password2": secret})


def test_a_new_site_has_sign_up_closed(client, db):
    assert SiteSettings.load().open_signup is False
    assert 'href="/accounts/signup/"' not in client.get("/").content.decode()

    response = sign_up(client, "dave@example.com")

    assert "Sign Up Closed" in response.content.decode()
    assert not User.objects.filter(username="dave").exists()


# Must change the password at the first sign-in.


@pytest.fixture
def first_admin(admin):
    return services.require_password_change(admin, actor=None, required=True)


def test_every_page_sends_a_user_who_must_change_the_password_to_the_change_page(client, first_admin, password):
    assert client.post(reverse("account_login"), {"login": "root", "password": password}).status_code == 302

    for url in ("/", reverse("portal:settings_keys"), reverse("portal:admin_users"), "/alice/project"):
        response = client.get(url)
        assert (response.status_code, response["Location"]) == (302, CHANGE_URL), url
    assert client.post(reverse("portal:admin_settings"), {"open_signup": "on"})["Location"] == CHANGE_URL
    assert SiteSettings.load().open_signup is False
    page = client.get(CHANGE_URL)
    assert page.status_code == 200
    assert "Choose a new password" in page.content.decode()


def test_changing_the_password_lets_the_user_in(client, first_admin, password):
    client.force_login(first_admin)

    response = client.post(
        CHANGE_URL, {"oldpassword": password, "password1": "my very own secret", "password2": "my very own secret"}
    )

    assert response.status_code == 302
    first_admin.refresh_from_db()
    assert first_admin.must_change_password is False
    assert first_admin.check_password("my very own secret")
    assert client.get("/").status_code == 200
    assert AuditEvent.objects.filter(action="password.change", actor=first_admin).exists()
    assert AuditEvent.objects.filter(action="user.password_change_done", actor=first_admin).exists()


def test_the_api_and_signing_out_are_not_held_back(client, first_admin):
    _, token = services.create_access_token(
        first_admin, actor=first_admin, name="ci", scopes=["api", "read:user"], expires_at=None
    )

    assert client.get("/api/v1/user", HTTP_AUTHORIZATION=f"token {token}").status_code == 200
    client.force_login(first_admin)
    assert client.get("/api/v1/user").status_code != 302
    assert client.get("/static/portal/portal.css").status_code != 302
    assert client.post(reverse("account_logout"))["Location"] != CHANGE_URL
    assert client.get("/").status_code == 200


# Invitations.


@pytest.fixture
def root_client(admin):
    client = Client()
    client.force_login(admin)
    return client


@pytest.fixture
def invitation_link(root_client, django_capture_on_commit_callbacks):
    """An administrator invites dave@example.com through the admin page; the path of the link in the mail."""
    with django_capture_on_commit_callbacks(execute=True):
        response = root_client.post(reverse("portal:admin_invitations"), {"email": "dave@example.com"})
    assert response.status_code == 302
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["dave@example.com"]
    return urlsplit(re.search(r"http://\S+/accounts/invitation/\S+", mail.outbox[0].body).group(0)).path


def test_an_invitation_lets_its_address_sign_up_once_while_sign_up_is_closed(client, invitation_link, admin):
    response = client.get(invitation_link)
    assert (response.status_code, response["Location"]) == (302, SIGNUP_URL)
    assert 'value="dave@example.com"' in client.get(SIGNUP_URL).content.decode()
    assert sign_up(client, "dave@example.com").status_code == 302

    dave = User.objects.get(username="dave")
    assert EmailAddress.objects.get(user=dave).verified
    invitation = Invitation.objects.get()
    assert (invitation.accepted_by, invitation.accepted_at is not None) == (dave, True)
    assert AuditEvent.objects.filter(action="invitation.create", actor=admin, target_repr="dave@example.com").exists()
    assert AuditEvent.objects.filter(action="invitation.accept", actor=dave).exists()
    # The link works once.
    client.logout()
    page = client.get(invitation_link)
    assert page.status_code == 200 and "This invitation link does not work" in page.content.decode()
    assert "Sign Up Closed" in sign_up(client, "eve@example.com", username="eve").content.decode()


def test_an_invitation_lets_in_no_other_address(client, invitation_link):
    client.get(invitation_link)

    response = sign_up(client, "mallory@example.com", username="mallory")

    assert "This invitation is for dave@example.com." in response.content.decode()
    assert not User.objects.filter(username="mallory").exists()


def test_a_revoked_or_forged_invitation_does_not_work(client, root_client, invitation_link):
    invitation = Invitation.objects.get()
    root_client.post(reverse("portal:admin_invitation_revoke", args=[invitation.pk]), {"confirmed": "1"})

    for link in (invitation_link, invitation_link[:-3] + "abc"):
        page = client.get(link)
        assert "This invitation link does not work" in page.content.decode()
    assert "Sign Up Closed" in sign_up(client, "dave@example.com").content.decode()
    assert AuditEvent.objects.filter(action="invitation.revoke").count() == 1


def test_nobody_is_invited_with_an_address_already_in_use(root_client, alice):
    response = root_client.post(reverse("portal:admin_invitations"), {"email": "alice@example.com"})

    assert "alice@example.com already belongs to an account." in response.content.decode()
    assert not Invitation.objects.exists()


# The portal's own error pages (production mode: never Django's debug pages).


def test_an_unknown_page_and_a_refused_one_get_the_portals_pages(client, private_repo, carol):
    client.force_login(carol)

    missing = client.get("/no/such/page/anywhere")
    refused = client.get("/alice/project/settings")

    assert missing.status_code == 404
    assert "Page not found" in missing.content.decode() and 'class="topbar"' in missing.content.decode()
    assert refused.status_code == 403
    assert "Not allowed" in refused.content.decode() and 'class="topbar"' in refused.content.decode()


def test_the_server_error_page_needs_nothing_to_render():
    from django.template.loader import render_to_string

    page = render_to_string("500.html")

    assert "Something went wrong" in page and "{%" not in page
