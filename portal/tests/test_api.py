import base64
import json
from datetime import timedelta

import asyncssh
import pytest
from django.test import Client
from django.utils import timezone

from portal import services
from portal.models import AccessToken, AuditEvent, SshKey, Team, User
from portal.tests.api_schema import api_operations, schema_operations

API = "/api/v1"


def new_public_key(comment: str = "laptop") -> str:
    key = asyncssh.generate_private_key("ssh-ed25519", comment=comment)
    return key.export_public_key().decode().strip()


def token_for(user: User, scopes=("api",), name: str = "cli") -> str:
    _, raw = services.create_access_token(user, actor=user, name=name, scopes=list(scopes), expires_at=None)
    return raw


def bearer(raw: str, scheme: str = "Bearer") -> dict:
    return {"HTTP_AUTHORIZATION": f"{scheme} {raw}"}


def basic(username: str, password: str) -> dict:
    return {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()}


def send(client: Client, method: str, path: str, body=None, **headers):
    data = json.dumps(body) if body is not None else None
    return getattr(client, method.lower())(API + path, data=data, content_type="application/json", **headers)


@pytest.fixture
def client():
    return Client()


@pytest.fixture
def alice_token(alice):
    """A token for alice's own account: her profile, settings and keys (write:user includes read:user)."""
    return token_for(alice, scopes=("api", "write:user"))


@pytest.fixture
def alice_keys_token(alice):
    """Adding an SSH key needs write:repo besides write:user: the key can push wherever alice can."""
    return token_for(alice, scopes=("api", "write:user", "write:repo"), name="keys")


@pytest.fixture
def admin_token(admin):
    return token_for(admin, scopes=("api", "admin"))


# The document and the routes.

EXPECTED_OPERATIONS = {
    ("GET", "/api/v1/user"),
    ("GET", "/api/v1/user/keys"),
    ("POST", "/api/v1/user/keys"),
    ("GET", "/api/v1/user/keys/{id}"),
    ("DELETE", "/api/v1/user/keys/{id}"),
    ("GET", "/api/v1/admin/users"),
    ("POST", "/api/v1/admin/users"),
    ("GET", "/api/v1/admin/users/{username}/keys"),
    ("POST", "/api/v1/admin/users/{username}/keys"),
    ("DELETE", "/api/v1/admin/users/{username}/keys/{id}"),
    ("GET", "/api/v1/admin/audit"),
    ("POST", "/api/v1/user/repos"),
    ("GET", "/api/v1/user/repos"),
    ("POST", "/api/v1/orgs"),
    ("POST", "/api/v1/orgs/{org}/repos"),
    ("GET", "/api/v1/repos/{owner}/{repo}"),
    ("PATCH", "/api/v1/repos/{owner}/{repo}"),
    ("DELETE", "/api/v1/repos/{owner}/{repo}"),
    ("GET", "/api/v1/repos/{owner}/{repo}/collaborators"),
    ("PUT", "/api/v1/repos/{owner}/{repo}/collaborators/{username}"),
    ("DELETE", "/api/v1/repos/{owner}/{repo}/collaborators/{username}"),
    ("GET", "/api/v1/repos/{owner}/{repo}/keys"),
    ("POST", "/api/v1/repos/{owner}/{repo}/keys"),
    ("DELETE", "/api/v1/repos/{owner}/{repo}/keys/{id}"),
    ("GET", "/api/v1/repos/{owner}/{repo}/branches"),
    ("POST", "/api/v1/users/{username}/tokens"),
    ("GET", "/api/v1/users/{username}/tokens"),
    ("DELETE", "/api/v1/users/{username}/tokens/{id}"),
}


def test_openapi_document_is_json_listing_every_endpoint(client):
    response = client.get(f"{API}/openapi.json")
    assert response.status_code == 200
    schema = json.loads(response.content)
    assert schema["info"] == {"title": "portal", "version": "1", "description": schema["info"]["description"]}
    served = set(schema_operations(schema))
    assert EXPECTED_OPERATIONS <= served
    assert set(api_operations()) == served


def test_docs_page_uses_the_bundled_swagger_assets(client):
    page = client.get(f"{API}/docs")
    assert page.status_code == 200
    assert b"/api/v1/docs/assets/swagger-ui-bundle.js" in page.content
    assert b"cdn" not in page.content.lower()
    asset = client.get(f"{API}/docs/assets/swagger-ui-bundle.js")
    assert asset.status_code == 200
    assert asset["Content-Type"].startswith("text/javascript")
    assert client.get(f"{API}/docs/assets/..%2Fmain.py").status_code == 404


def test_unknown_routes_under_the_api_get_json_404(client, alice_token):
    response = client.get(f"{API}/no/such/thing", **bearer(alice_token))
    assert response.status_code == 404
    assert response.json() == {"message": "No such API endpoint."}


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE"])
@pytest.mark.parametrize("authenticated", [False, True])
def test_unknown_routes_get_json_404_for_every_method(alice_token, method, authenticated):
    # CSRF checks are on, as for a browser: an unknown route must not look like a permission problem.
    client = Client(enforce_csrf_checks=True)
    headers = bearer(alice_token) if authenticated else {}
    response = client.generic(method, f"{API}/nonexistent", b"{}", content_type="application/json", **headers)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"message": "No such API endpoint."}


def test_a_wrong_method_gets_json_405(client, alice_token):
    response = send(client, "PUT", "/user", {}, **bearer(alice_token))
    assert response.status_code == 405
    assert "GET" in response.json()["message"]


# Authentication.


@pytest.mark.parametrize("scheme", ["Bearer", "token", "bearer"])
def test_a_token_works_in_both_header_forms(client, alice, alice_token, scheme):
    response = client.get(f"{API}/user", **bearer(alice_token, scheme))
    assert response.status_code == 200
    body = response.json()
    assert body["login"] == body["username"] == "alice"
    assert body["email"] == "alice@example.com"
    assert body["is_admin"] is False
    assert AccessToken.objects.get(user=alice).last_used is not None


def test_anonymous_calls_get_401_with_a_message(client):
    response = client.get(f"{API}/user")
    assert response.status_code == 401
    assert "Authorization: Bearer" in response.json()["message"]
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_an_unknown_token_gets_401(client, alice):
    response = client.get(f"{API}/user", **bearer("ptl_notarealtoken"))
    assert response.status_code == 401
    assert response.json()["message"] == "The token is invalid, expired or revoked."


def test_an_expired_token_gets_401(client, alice, alice_token):
    AccessToken.objects.filter(user=alice).update(expires_at=timezone.now() - timedelta(minutes=1))
    assert client.get(f"{API}/user", **bearer(alice_token)).status_code == 401


def test_a_revoked_token_gets_401(client, alice, alice_token):
    assert client.get(f"{API}/user", **bearer(alice_token)).status_code == 200
    services.revoke_access_token(AccessToken.objects.get(user=alice), actor=alice)
    assert client.get(f"{API}/user", **bearer(alice_token)).status_code == 401


def test_a_deactivated_users_token_gets_401(client, alice, admin, alice_token):
    services.set_user_active(alice, actor=admin, active=False)
    assert client.get(f"{API}/user", **bearer(alice_token)).status_code == 401


def test_a_token_without_the_api_scope_gets_403(client, alice):
    raw = token_for(alice, scopes=("read:repo", "write:repo"))
    response = client.get(f"{API}/user", **bearer(raw))
    assert response.status_code == 403
    assert "api scope" in response.json()["message"]


def test_a_password_is_not_accepted_outside_the_token_endpoints(client, alice, password):
    assert client.get(f"{API}/user", **basic("alice", password)).status_code == 401


def test_the_browser_session_works_and_writes_need_the_csrf_token(alice):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(alice)
    assert browser.get(f"{API}/user").json()["login"] == "alice"

    refused = send(browser, "POST", "/user/keys", {"key": new_public_key()})
    assert refused.status_code == 403
    assert "CSRF" in refused.json()["message"]
    assert not SshKey.objects.exists()

    browser.cookies["csrftoken"] = "a" * 32
    accepted = send(browser, "POST", "/user/keys", {"key": new_public_key()}, HTTP_X_CSRFTOKEN="a" * 32)
    assert accepted.status_code == 201


# The signed-in user's keys.


def test_a_user_adds_lists_reads_and_deletes_their_keys(client, alice, alice_keys_token):
    public_key = new_public_key("work laptop")
    created = send(client, "POST", "/user/keys", {"key": public_key, "title": ""}, **bearer(alice_keys_token))
    assert created.status_code == 201
    key = created.json()
    stored = SshKey.objects.get()
    assert key["id"] == stored.pk
    assert key["key"] == " ".join(public_key.split()[:2])
    assert key["title"] == "work laptop"
    assert key["fingerprint"] == stored.fingerprint and key["fingerprint"].startswith("SHA256:")
    assert key["read_only"] is False
    assert key["last_used_at"] is None
    assert key["url"].endswith(f"/api/v1/user/keys/{stored.pk}")
    assert set(key) >= {"id", "key", "url", "title", "fingerprint", "created_at", "read_only", "last_used_at"}
    assert AuditEvent.objects.filter(action="key.add", actor=alice, subject=alice).exists()

    listed = client.get(f"{API}/user/keys", **bearer(alice_keys_token)).json()
    assert [k["id"] for k in listed] == [stored.pk]
    assert (
        client.get(f"{API}/user/keys/{stored.pk}", **bearer(alice_keys_token)).json()["fingerprint"]
        == key["fingerprint"]
    )

    deleted = client.delete(f"{API}/user/keys/{stored.pk}", **bearer(alice_keys_token))
    assert deleted.status_code == 204
    assert not SshKey.objects.exists()
    assert AuditEvent.objects.filter(action="key.remove", actor=alice).exists()


BAD_KEYS = [
    ("-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----", "private key"),
    ('command="ls" ' + new_public_key(), "options"),
    (new_public_key() + "\n" + new_public_key(), "one key at a time"),
    ("ssh-dss AAAAB3NzaC1kc3MAAACBAP", "not accepted"),
    ("", "Paste a public key"),
]


# Named by the reason: the keys are new on every collection, and xdist's workers must collect the same tests.
@pytest.mark.parametrize(("text", "reason"), BAD_KEYS, ids=[reason for _, reason in BAD_KEYS])
def test_a_bad_key_is_refused_with_the_reason(client, alice_keys_token, text, reason):
    response = send(client, "POST", "/user/keys", {"key": text}, **bearer(alice_keys_token))
    assert response.status_code == 400
    assert reason in response.json()["message"]
    assert not SshKey.objects.exists()


def test_a_key_registered_to_someone_else_is_refused(client, bob, alice_keys_token):
    public_key = new_public_key()
    services.add_ssh_key(bob, actor=bob, title="bob", public_key=public_key)
    response = send(client, "POST", "/user/keys", {"key": public_key}, **bearer(alice_keys_token))
    assert response.status_code == 400
    assert "already registered" in response.json()["message"]


def test_a_token_that_cannot_write_cannot_add_a_key(client, alice_token):
    response = send(client, "POST", "/user/keys", {"key": new_public_key()}, **bearer(alice_token))
    assert response.status_code == 403
    assert "write:repo" in response.json()["message"]
    assert not SshKey.objects.exists()


def test_a_missing_key_field_gets_422_naming_it(client, alice_keys_token):
    response = send(client, "POST", "/user/keys", {"title": "x"}, **bearer(alice_keys_token))
    assert response.status_code == 422
    assert "key" in response.json()["message"]


def test_someone_elses_key_is_not_found(client, bob, alice_keys_token):
    key = services.add_ssh_key(bob, actor=bob, title="bob", public_key=new_public_key())
    assert client.get(f"{API}/user/keys/{key.pk}", **bearer(alice_keys_token)).status_code == 404
    assert client.delete(f"{API}/user/keys/{key.pk}", **bearer(alice_keys_token)).status_code == 404
    assert SshKey.objects.filter(pk=key.pk).exists()


def test_a_user_changes_their_full_name(client, alice, alice_token):
    response = send(client, "PATCH", "/user/settings", {"full_name": "Alice Liddell"}, **bearer(alice_token))
    assert response.status_code == 200
    assert response.json()["full_name"] == "Alice Liddell"
    alice.refresh_from_db()
    assert alice.full_name == "Alice Liddell"
    assert AuditEvent.objects.filter(action="user.profile", actor=alice).exists()


# Tokens.


def test_a_token_is_created_with_the_password_shown_once_and_stored_hashed(client, alice, password):
    response = send(
        client,
        "POST",
        "/users/alice/tokens",
        {"name": "ci", "scopes": ["api", "read:repo"]},
        **basic("alice", password),
    )
    assert response.status_code == 201
    body = response.json()
    raw = body["sha1"]
    assert raw.startswith(AccessToken.PREFIX)
    assert body["token_last_eight"] == raw[-8:]
    assert body["scopes"] == ["api", "read:repo"]
    token = AccessToken.objects.get(pk=body["id"])
    assert token.token_hash == AccessToken.hash(raw)
    assert raw not in json.dumps(list(AccessToken.objects.values()), default=str)
    assert AuditEvent.objects.filter(action="token.create", actor=alice, subject=alice).exists()

    assert client.get(f"{API}/repos/alice/nothing", **bearer(raw)).status_code == 404
    listed = client.get(f"{API}/users/alice/tokens", **basic("alice", password)).json()
    assert [(t["name"], t["sha1"]) for t in listed] == [("ci", "")]


def test_a_token_with_an_expiry_stops_working_after_it(client, alice, password):
    expires = (timezone.now() + timedelta(days=1)).isoformat()
    body = send(
        client,
        "POST",
        "/users/alice/tokens",
        {"name": "t", "scopes": ["api"], "expires_at": expires},
        **basic("alice", password),
    ).json()
    assert body["expires_at"] is not None
    AccessToken.objects.filter(pk=body["id"]).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert client.get(f"{API}/user", **bearer(body["sha1"])).status_code == 401


def test_a_wrong_password_creates_no_token(client, alice):
    response = send(client, "POST", "/users/alice/tokens", {"name": "ci", "scopes": ["api"]}, **basic("alice", "nope"))
    assert response.status_code == 401
    assert response.json()["message"] == "Wrong username or password."
    assert not AccessToken.objects.exists()


@pytest.mark.parametrize("header", ["Basic !!!not-base64", "Basic " + base64.b64encode(b"no-colon").decode(), "x y z"])
def test_a_malformed_basic_header_is_refused_with_one_log_line(client, alice, settings, caplog, header):
    settings.DEBUG = True
    with caplog.at_level("INFO"):
        response = send(
            client, "POST", "/users/alice/tokens", {"name": "ci", "scopes": ["api"]}, HTTP_AUTHORIZATION=header
        )
    assert response.status_code == 401
    # Django's own "Unauthorized" line for the 401 aside: one line of ours, and no traceback anywhere.
    logged = [record.getMessage() for record in caplog.records if record.name != "django.request"]
    assert logged == ["malformed Basic authorization header from 127.0.0.1"]
    assert not [record for record in caplog.records if record.exc_info]


def test_a_token_cannot_create_tokens(client, alice, alice_token):
    response = send(client, "POST", "/users/alice/tokens", {"name": "more", "scopes": ["api"]}, **bearer(alice_token))
    assert response.status_code == 401
    assert AccessToken.objects.count() == 1


def test_nobody_creates_tokens_for_someone_else(client, alice, bob, password):
    response = send(client, "POST", "/users/bob/tokens", {"name": "x", "scopes": ["api"]}, **basic("alice", password))
    assert response.status_code == 403
    assert not AccessToken.objects.filter(user=bob).exists()


def test_bad_token_requests_say_why(client, alice, password):
    unknown_scope = send(
        client, "POST", "/users/alice/tokens", {"name": "x", "scopes": ["root"]}, **basic("alice", password)
    )
    assert unknown_scope.status_code == 422
    assert "scopes" in unknown_scope.json()["message"]
    admin_scope = send(
        client, "POST", "/users/alice/tokens", {"name": "x", "scopes": ["admin"]}, **basic("alice", password)
    )
    assert admin_scope.status_code == 400
    assert "administrators" in admin_scope.json()["message"]
    send(client, "POST", "/users/alice/tokens", {"name": "dup", "scopes": ["api"]}, **basic("alice", password))
    duplicate = send(
        client, "POST", "/users/alice/tokens", {"name": "dup", "scopes": ["api"]}, **basic("alice", password)
    )
    assert duplicate.status_code == 409
    assert AccessToken.objects.filter(user=alice).count() == 1


def test_a_second_factor_is_needed_with_the_password_when_enabled(client, alice, password):
    from allauth.mfa.totp.internal.auth import TOTP, format_hotp_value, hotp_value, yield_hotp_counters_from_time

    secret = "JBSWY3DPEHPK3PXP"
    TOTP.activate(alice, secret)
    body = {"name": "ci", "scopes": ["api"]}
    without = send(client, "POST", "/users/alice/tokens", body, **basic("alice", password))
    assert without.status_code == 401
    assert "X-Portal-OTP" in without.json()["message"]
    code = format_hotp_value(hotp_value(secret, next(iter(yield_hotp_counters_from_time()))))
    with_code = send(client, "POST", "/users/alice/tokens", body, HTTP_X_PORTAL_OTP=code, **basic("alice", password))
    assert with_code.status_code == 201


def test_tokens_are_listed_and_revoked_with_the_password_never_a_token(client, alice, alice_token, password):
    other = token_for(alice, name="other")
    listed = client.get(f"{API}/users/alice/tokens", **basic("alice", password))
    assert sorted(t["name"] for t in listed.json()) == ["cli", "other"]
    other_id = AccessToken.objects.get(name="other").pk
    # Even a token for alice's whole account cannot list or revoke her tokens: a leaked token must not do that.
    assert client.get(f"{API}/users/alice/tokens", **bearer(alice_token)).status_code == 401
    assert client.delete(f"{API}/users/alice/tokens/{other_id}", **bearer(alice_token)).status_code == 401
    assert AccessToken.objects.filter(pk=other_id).exists()
    assert client.delete(f"{API}/users/alice/tokens/{other_id}", **basic("alice", password)).status_code == 204
    assert client.get(f"{API}/repos/alice/nothing", **bearer(other)).status_code == 401
    assert AuditEvent.objects.filter(action="token.revoke", actor=alice).exists()
    assert client.delete(f"{API}/users/alice/tokens/{other_id}", **basic("alice", password)).status_code == 404


def test_someone_elses_tokens_are_off_limits(client, alice, bob, password):
    bobs = AccessToken.objects.get(
        pk=services.create_access_token(bob, actor=bob, name="b", scopes=["api"], expires_at=None)[0].pk
    )
    assert client.get(f"{API}/users/bob/tokens", **basic("alice", password)).status_code == 403
    assert client.delete(f"{API}/users/bob/tokens/{bobs.pk}", **basic("alice", password)).status_code == 403
    assert AccessToken.objects.filter(pk=bobs.pk).exists()


# Organizations.


def test_a_user_creates_an_organization_and_owns_it(client, alice):
    alice_token = token_for(alice, scopes=("api", "write:org"))
    response = send(client, "POST", "/orgs", {"username": "acme", "full_name": "Acme Inc."}, **bearer(alice_token))
    assert response.status_code == 201
    assert response.json()["username"] == "acme"
    org = User.objects.get(username="acme", is_organization=True)
    assert Team.objects.get(organization=org, name="owners").members.filter(pk=alice.pk).exists()
    again = send(client, "POST", "/orgs", {"username": "ACME"}, **bearer(alice_token))
    assert again.status_code == 409
    assert "already taken" in again.json()["message"]
    reserved = send(client, "POST", "/orgs", {"username": "settings"}, **bearer(alice_token))
    assert reserved.status_code == 400


# Site administration.

ADMIN_CALLS = [
    ("GET", "/admin/users", None),
    ("POST", "/admin/users", {"username": "dave", "email": "dave@example.com"}),
    ("GET", "/admin/keys", None),
    ("GET", "/admin/users/bob/keys", None),
    ("POST", "/admin/users/bob/keys", {"key": "ssh-ed25519 AAAA"}),
    ("DELETE", "/admin/users/bob/keys/1", None),
    ("GET", "/admin/audit", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_CALLS)
def test_non_admins_get_403_on_admin_endpoints(client, alice, bob, method, path, body):
    # A token can only carry the admin scope if its user is a site admin; signed in, the role itself is refused.
    raw = token_for(alice, scopes=("api", "read:repo", "write:repo"))
    response = send(client, method, path, body, **bearer(raw))
    assert (response.status_code, response.json()["message"]) == (403, "This token lacks the admin scope.")
    client.force_login(alice)
    signed_in = send(client, method, path, body)
    assert (signed_in.status_code, signed_in.json()["message"]) == (403, "Only site administrators can do this.")
    assert not User.objects.filter(username="dave").exists()


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_CALLS)
def test_an_admins_token_needs_the_admin_scope(client, admin, bob, method, path, body):
    response = send(client, method, path, body, **bearer(token_for(admin, scopes=("api",))))
    assert response.status_code == 403
    assert "admin scope" in response.json()["message"]


def test_an_admin_manages_a_users_keys(client, admin, alice, admin_token):
    created = send(
        client, "POST", "/admin/users/alice/keys", {"key": new_public_key(), "title": "given"}, **bearer(admin_token)
    )
    assert created.status_code == 201
    key = SshKey.objects.get()
    assert key.user == alice and key.added_by == admin
    assert created.json()["user"]["login"] == "alice"
    event = AuditEvent.objects.get(action="key.add")
    assert (event.actor, event.subject) == (admin, alice)

    listed = client.get(f"{API}/admin/users/alice/keys", **bearer(admin_token)).json()
    assert [k["fingerprint"] for k in listed] == [key.fingerprint]
    found = client.get(f"{API}/admin/keys", {"fingerprint": key.fingerprint[7:20]}, **bearer(admin_token))
    assert [k["id"] for k in found.json()] == [key.pk]
    assert found["X-Total-Count"] == "1"
    assert client.get(f"{API}/admin/keys", {"user": "nobody"}, **bearer(admin_token)).json() == []

    assert client.delete(f"{API}/admin/users/bob/keys/{key.pk}", **bearer(admin_token)).status_code == 404
    assert client.delete(f"{API}/admin/users/alice/keys/{key.pk}", **bearer(admin_token)).status_code == 204
    assert not SshKey.objects.exists()
    removed = AuditEvent.objects.get(action="key.remove")
    assert (removed.actor, removed.subject) == (admin, alice)


def test_an_admin_adding_a_bad_key_gets_the_reason(client, admin, alice, admin_token):
    response = send(client, "POST", "/admin/users/alice/keys", {"key": BAD_KEYS[0][0]}, **bearer(admin_token))
    assert response.status_code == 400
    assert "private key" in response.json()["message"]


def test_an_admin_creates_and_lists_users(client, admin, alice, admin_token):
    created = send(
        client,
        "POST",
        "/admin/users",
        {"username": "dave", "email": "dave@example.com", "password": "a long enough password"},
        **bearer(admin_token),
    )
    assert created.status_code == 201
    assert created.json()["email"] == "dave@example.com"
    dave = User.objects.get(username="dave")
    assert dave.check_password("a long enough password")
    assert AuditEvent.objects.filter(action="user.create", actor=admin, target_id=str(dave.pk)).exists()

    taken = send(client, "POST", "/admin/users", {"username": "Dave", "email": "d2@example.com"}, **bearer(admin_token))
    assert taken.status_code == 409
    bad_email = send(
        client, "POST", "/admin/users", {"username": "erin", "email": "not-an-email"}, **bearer(admin_token)
    )
    assert bad_email.status_code == 400
    assert not User.objects.filter(username="erin").exists()

    page = client.get(f"{API}/admin/users", {"limit": 2, "page": 1}, **bearer(admin_token))
    assert page["X-Total-Count"] == "3"
    assert [u["login"] for u in page.json()] == ["alice", "dave"]
    assert [u["login"] for u in client.get(f"{API}/admin/users", {"q": "roo"}, **bearer(admin_token)).json()] == [
        "root"
    ]


def test_the_audit_log_is_filtered_and_paginated(client, admin, alice, bob, admin_token):
    alice_token = token_for(alice, scopes=("api", "write:user", "write:repo"))
    send(client, "POST", "/user/keys", {"key": new_public_key()}, **bearer(alice_token))
    send(client, "POST", "/user/keys", {"key": new_public_key()}, **bearer(alice_token))

    by_alice = client.get(f"{API}/admin/audit", {"actor": "alice", "action": "key."}, **bearer(admin_token))
    assert by_alice.status_code == 200
    events = by_alice.json()
    assert [e["action"] for e in events] == ["key.add", "key.add"]
    assert events[0]["actor"] == "alice" and events[0]["subject"] == "alice"
    assert events[0]["after"]["fingerprint"].startswith("SHA256:")
    assert by_alice["X-Total-Count"] == "2"

    second_page = client.get(
        f"{API}/admin/audit", {"actor": "alice", "action": "key.add", "limit": 1, "page": 2}, **bearer(admin_token)
    ).json()
    assert [e["id"] for e in second_page] == [events[1]["id"]]

    tokens = client.get(
        f"{API}/admin/audit", {"action": "token.create", "target": "cli", "actor": "alice"}, **bearer(admin_token)
    ).json()
    assert {e["subject"] for e in tokens} == {"alice"}
    future = (timezone.now() + timedelta(hours=1)).isoformat()
    assert client.get(f"{API}/admin/audit", {"since": future}, **bearer(admin_token)).json() == []
    assert (
        len(client.get(f"{API}/admin/audit", {"until": future}, **bearer(admin_token)).json())
        == AuditEvent.objects.count()
    )

    bad_page = client.get(f"{API}/admin/audit", {"page": 0}, **bearer(admin_token))
    assert bad_page.status_code == 422
    assert "page" in bad_page.json()["message"]


def test_an_organization_name_that_looks_like_an_existing_user_is_refused(client, alice, bob):
    # "bob" followed by a line break would show as bob on every page.
    alice_token = token_for(alice, scopes=("api", "write:org"))
    response = send(client, "POST", "/orgs", {"username": "bob\n"}, **bearer(alice_token))
    assert response.status_code == 400
    assert "may only use letters, digits" in response.json()["message"]
    assert not User.objects.organizations().exists()


def test_an_admin_cannot_create_a_user_name_with_a_line_break(client, admin_token):
    response = send(
        client, "POST", "/admin/users", {"username": "carol\n", "email": "c@example.com"}, **bearer(admin_token)
    )
    assert response.status_code == 400
    assert not User.objects.filter(username__startswith="carol").exists()


def test_organizations_get_no_tokens_or_keys_even_from_an_admin(admin, alice):
    from django.core.exceptions import ValidationError

    from portal.keys import InvalidKey

    org = services.create_organization(actor=alice, name="acme")
    with pytest.raises(ValidationError, match="Organizations cannot have access tokens"):
        services.create_access_token(org, actor=admin, name="ci", scopes=["api"], expires_at=None)
    with pytest.raises(InvalidKey, match="Organizations cannot have SSH keys"):
        services.add_ssh_key(org, actor=admin, title="ci", public_key=new_public_key())
    assert not AccessToken.objects.filter(user=org).exists()
    assert not SshKey.objects.filter(user=org).exists()


def test_a_token_stored_for_an_organization_does_not_authenticate(client, alice):
    # Organizations never sign in by any path; a row left by older data must not change that.
    org = services.create_organization(actor=alice, name="acme")
    raw = AccessToken.PREFIX + "organization-token"
    AccessToken.objects.create(
        user=org, name="old", token_hash=AccessToken.hash(raw), last_eight=raw[-8:], scopes=["admin"]
    )
    assert services.authenticate_token(raw) is None
    assert send(client, "GET", "/user", **bearer(raw)).status_code == 401


def test_a_password_an_admin_chose_is_changed_at_the_first_sign_in_unless_gitea_says_not(client, admin, admin_token):
    body = {"username": "dave", "email": "dave@example.com", "password": "chosen by the admin"}
    assert send(client, "POST", "/admin/users", body, **bearer(admin_token)).status_code == 201
    erin = body | {"username": "erin", "email": "erin@example.com", "must_change_password": False}
    assert send(client, "POST", "/admin/users", erin, **bearer(admin_token)).status_code == 201
    frank = {"username": "frank", "email": "frank@example.com"}
    assert send(client, "POST", "/admin/users", frank, **bearer(admin_token)).status_code == 201
    changes = dict(
        User.objects.filter(username__in=["dave", "erin", "frank"]).values_list("username", "must_change_password")
    )
    # Without a password there is nothing to change: frank sets his own through a reset.
    assert changes == {"dave": True, "erin": False, "frank": False}
