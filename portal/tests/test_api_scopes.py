"""Token scopes mean what they say: every API operation declares one, and a token without it changes nothing."""

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import Client

from portal import services
from portal.api_scopes import OPENAPI_KEY, ScopedRouter
from portal.models import AccessToken, SshKey, User
from portal.tests.api_schema import HTTP_METHODS
from portal.tests.test_api import basic, bearer, new_public_key, send, token_for


@pytest.fixture
def client():
    return Client()


def _operations():
    """Every operation ninja serves, with the view it runs, walked from the API's routers (not from the document)."""
    import portal.api_urls  # noqa: F401  (mounting the URLs adds the repository and review routers)
    from portal.api import api

    for prefix, router in api._routers:
        for path, path_view in router.path_operations.items():
            for operation in path_view.operations:
                for method in operation.methods:
                    yield method, prefix + path, operation.view_func


def test_every_api_operation_declares_its_token_scope():
    from portal.api import api

    operations = list(_operations())
    assert len(operations) > 60
    undeclared = [f"{method} {path}" for method, path, view in operations if not getattr(view, "token_scopes", None)]
    assert not undeclared, "operations without a token scope:\n" + "\n".join(undeclared)
    schema = api.get_openapi_schema()
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            if method in HTTP_METHODS:
                assert operation.get(OPENAPI_KEY), f"{method.upper()} {path} shows no token scope"


def test_an_operation_without_a_scope_cannot_be_registered():
    router = ScopedRouter()

    def view(request):
        return {}

    with pytest.raises(TypeError):
        router.get("/nothing")(view)
    with pytest.raises(ImproperlyConfigured):
        router.api_operation(["GET"], "/nothing")(view)
    with pytest.raises(ImproperlyConfigured):
        router.get("/nothing", scope="write:everything")(view)


@pytest.fixture
def weak(alice):
    """A token with read:repo and api: enough to read repositories through the API, and nothing else."""
    return bearer(token_for(alice, scopes=("read:repo", "api"), name="weak"))


def test_a_read_token_cannot_revoke_tokens(client, alice, weak, password):
    other, _ = services.create_access_token(alice, actor=alice, name="ci", scopes=["api"], expires_at=None)
    for method, path in [("DELETE", f"/users/alice/tokens/{other.pk}"), ("GET", "/users/alice/tokens")]:
        response = send(client, method, path, **weak)
        assert response.status_code in (401, 403), (method, path, response.status_code)
    assert AccessToken.objects.filter(pk=other.pk).exists()
    # The password still manages tokens, as it creates them.
    assert send(client, "DELETE", f"/users/alice/tokens/{other.pk}", **basic("alice", password)).status_code == 204
    assert not AccessToken.objects.filter(pk=other.pk).exists()


def test_a_read_token_cannot_delete_keys_and_write_user_can(client, alice, weak):
    key = services.add_ssh_key(alice, actor=alice, title="laptop", public_key=new_public_key())
    response = send(client, "DELETE", f"/user/keys/{key.pk}", **weak)
    assert (response.status_code, response.json()["message"]) == (403, "This token lacks the write:user scope.")
    assert SshKey.objects.filter(pk=key.pk).exists()
    writer = bearer(token_for(alice, scopes=("write:user", "api"), name="account"))
    assert send(client, "GET", "/user/keys", **writer).status_code == 200
    assert send(client, "DELETE", f"/user/keys/{key.pk}", **writer).status_code == 204
    assert not SshKey.objects.filter(pk=key.pk).exists()


def test_adding_a_key_needs_write_user_and_write_repo(client, alice):
    for scopes in [("write:user", "api"), ("write:repo", "api")]:
        token = bearer(token_for(alice, scopes=scopes, name=" ".join(scopes)))
        assert send(client, "POST", "/user/keys", {"key": new_public_key(), "title": "x"}, **token).status_code == 403
    assert not SshKey.objects.filter(user=alice).exists()
    both = bearer(token_for(alice, scopes=("write:user", "write:repo", "api"), name="both"))
    assert send(client, "POST", "/user/keys", {"key": new_public_key(), "title": "x"}, **both).status_code == 201


@pytest.mark.parametrize("scopes", [("read:repo", "api"), ("api",), ("write:repo", "read:org", "api")])
def test_only_write_org_creates_organizations(client, alice, scopes):
    token = bearer(token_for(alice, scopes=scopes, name="weak"))
    assert send(client, "POST", "/orgs", {"username": "acme"}, **token).status_code == 403
    assert not User.objects.filter(username="acme").exists()
    writer = bearer(token_for(alice, scopes=("write:org", "api"), name="orgs"))
    assert send(client, "POST", "/orgs", {"username": "acme"}, **writer).status_code == 201
    assert User.objects.get(username="acme").is_organization


def test_a_read_token_cannot_change_settings(client, alice, weak):
    before = send(client, "GET", "/user/settings", **bearer(token_for(alice, scopes=("read:user", "api")))).json()
    response = send(client, "PATCH", "/user/settings", {"full_name": "Mallory"}, **weak)
    assert response.status_code == 403
    alice.refresh_from_db()
    assert alice.full_name != "Mallory"
    assert send(client, "GET", "/user/settings", **weak).status_code == 403
    writer = bearer(token_for(alice, scopes=("write:user", "api"), name="account"))
    assert (
        send(client, "PATCH", "/user/settings", {"full_name": "Alice L."}, **writer).json()["full_name"] == "Alice L."
    )
    assert before["full_name"] != "Alice L."


def test_a_read_token_reads_repositories_but_cannot_write_them(client, private_repo, alice, weak):
    assert send(client, "GET", "/repos/alice/project", **weak).status_code == 200
    response = send(client, "PATCH", "/repos/alice/project", {"description": "defaced"}, **weak)
    assert response.status_code == 403
    private_repo.refresh_from_db()
    assert private_repo.description != "defaced"
