"""Accounts through django-allauth: our frame around its pages, closed sign-up, and the audit trail it leaves."""

import re

import pytest
from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import format_hotp_value, hotp_value, yield_hotp_counters_from_time
from django.core import mail
from django.core.cache import cache
from django.urls import reverse

from portal import services
from portal.models import AuditEvent, User

LOGIN_URL = reverse("account_login")
SIGNUP_URL = reverse("account_signup")


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    """allauth counts failed logins in the cache; each test starts with none."""
    cache.clear()
    yield
    cache.clear()


def sign_in(client, username: str, password: str):
    return client.post(LOGIN_URL, {"login": username, "password": password})


@pytest.mark.parametrize(
    "url_name", ["account_login", "account_signup", "account_reset_password", "account_email", "mfa_index"]
)
def test_allauth_pages_wear_the_portal_frame(client, alice, url_name):
    if url_name in ("account_email", "mfa_index"):
        client.force_login(alice)
    page = client.get(reverse(url_name)).content.decode()
    assert 'class="topbar"' in page
    assert "portal/portal.css" in page
    assert "<title>" in page and "· Portal</title>" in page


def test_account_management_pages_show_the_settings_nav(client, alice):
    client.force_login(alice)
    for url_name in ("account_email", "account_change_password", "mfa_index", "usersessions_list"):
        page = client.get(reverse(url_name)).content.decode()
        assert 'class="sidenav"' in page, url_name
        assert 'class="active" aria-current="page"' in page, url_name


def test_sign_up_works_while_open(client, admin):
    services.set_open_signup(actor=admin, open_signup=True)
    response = client.post(
        SIGNUP_URL,
        {
            "username": "dave",
            "email": "dave@example.com",
            "password1": "a long enough secret",
            "password2": "a long enough secret",
        },
    )
    assert response.status_code == 302
    dave = User.objects.get(username="dave")
    assert AuditEvent.objects.filter(action="user.signup", actor=dave).exists()


def test_closed_sign_up_refuses_sign_up(client, admin):
    services.set_open_signup(actor=admin, open_signup=True)
    assert 'href="/accounts/signup/"' in client.get("/").content.decode()
    services.set_open_signup(actor=admin, open_signup=False)
    assert 'href="/accounts/signup/"' not in client.get("/").content.decode()
    page = client.get(SIGNUP_URL).content.decode()
    assert "Sign Up Closed" in page
    response = client.post(
        SIGNUP_URL,
        {
            "username": "dave",
            "email": "dave@example.com",
            "password1": "a long enough secret",
            "password2": "a long enough secret",
        },
    )
    assert "Sign Up Closed" in response.content.decode()
    assert not User.objects.filter(username="dave").exists()


def test_login_by_username_or_email(client, alice, password):
    assert sign_in(client, "alice", password).status_code == 302
    client.logout()
    assert sign_in(client, "alice@example.com", password).status_code == 302
    assert AuditEvent.objects.filter(action="login", actor=alice).count() == 2


def test_a_failed_login_is_recorded_with_name_and_address_but_no_password(client, alice):
    response = sign_in(client, "alice", "not her password")
    assert response.status_code == 200
    event = AuditEvent.objects.get(action="login.failed")
    assert event.actor is None
    assert event.target_repr == "alice"
    assert event.subject == alice
    assert event.ip_address == "127.0.0.1"
    assert "not her password" not in str(event.before) + str(event.after) + event.target_repr


def test_a_failed_login_for_an_unknown_name_is_recorded_too(client, db):
    sign_in(client, "ghost", "whatever")
    event = AuditEvent.objects.get(action="login.failed")
    assert (event.target_repr, event.subject) == ("ghost", None)


def test_failed_logins_are_rate_limited(client, alice, password):
    for _ in range(5):
        assert "Too many failed login attempts" not in sign_in(client, "alice", "wrong").content.decode()
    # Even the right password is refused until the limit expires.
    response = sign_in(client, "alice", password)
    assert response.status_code == 200
    assert "Too many failed login attempts. Try again later." in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_a_deactivated_user_cannot_sign_in(client, admin, alice, password):
    services.set_user_active(alice, actor=admin, active=False)
    response = sign_in(client, "alice", password)
    assert "_auth_user_id" not in client.session
    assert response.status_code in (200, 302)


def _current_totp_code(secret: str) -> str:
    counter = next(yield_hotp_counters_from_time())
    return format_hotp_value(hotp_value(secret, counter))


def test_totp_needs_a_verified_email_first(client, alice, password):
    sign_in(client, "alice", password)
    assert client.get(reverse("mfa_activate_totp"))["Location"] == reverse("mfa_index")


def test_activating_and_removing_totp_is_audited(client, alice, password, django_capture_on_commit_callbacks):
    # allauth lets only verified addresses add a second factor, so nobody can lock the real owner out.
    EmailAddress.objects.filter(user=alice).update(verified=True)
    sign_in(client, "alice", password)
    # Changing a second factor asks for the password again.
    assert client.get(reverse("mfa_activate_totp"))["Location"].startswith(reverse("account_reauthenticate"))
    client.post(reverse("account_reauthenticate"), {"password": password})
    client.get(reverse("mfa_activate_totp"))
    secret = client.session["mfa.totp.secret"]
    # allauth sends its MFA signals after the transaction commits.
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("mfa_activate_totp"), {"code": _current_totp_code(secret)})
    assert response.status_code == 302
    assert Authenticator.objects.filter(user=alice, type=Authenticator.Type.TOTP).exists()
    # Recovery codes come along with the first authenticator app.
    added = AuditEvent.objects.filter(action="mfa.add", actor=alice, subject=alice)
    assert sorted(event.after["type"] for event in added) == ["recovery_codes", "totp"]
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("mfa_deactivate_totp"))
    assert not Authenticator.objects.filter(user=alice, type=Authenticator.Type.TOTP).exists()
    assert AuditEvent.objects.filter(action="mfa.remove", actor=alice, after={"type": "totp"}).exists()


def test_password_change_is_audited(client, alice, password):
    sign_in(client, "alice", password)
    response = client.post(
        reverse("account_change_password"),
        {"oldpassword": password, "password1": "another long secret", "password2": "another long secret"},
    )
    assert response.status_code == 302
    alice.refresh_from_db()
    assert alice.check_password("another long secret")
    assert AuditEvent.objects.filter(action="password.change", actor=alice).exists()


def test_password_reset_by_mail_is_audited(client, alice):
    client.post(reverse("account_reset_password"), {"email": "alice@example.com"})
    assert len(mail.outbox) == 1
    link = re.search(r"https?://[^/\s]+(/accounts/password/reset/key/\S+)", mail.outbox[0].body).group(1)
    form_url = client.get(link)["Location"]
    response = client.post(form_url, {"password1": "a brand new secret", "password2": "a brand new secret"})
    assert response.status_code == 302
    alice.refresh_from_db()
    assert alice.check_password("a brand new secret")
    assert AuditEvent.objects.filter(action="password.reset", subject=alice).exists()


def test_sessions_page_lists_own_sessions(client, alice, password):
    sign_in(client, "alice", password)
    page = client.get(reverse("usersessions_list")).content.decode()
    assert "127.0.0.1" in page
    assert "This browser" in page
