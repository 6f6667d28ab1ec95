"""Request bodies of the whole API: an unknown field is refused by name; Gitea's clients' usual bodies still pass."""

import asyncssh
import pytest

from portal.models import SshKey
from repos.models import Repository
from repos.tests.api_client import send, token_for


def _request_bodies(schema: dict) -> list[tuple[str, str, str]]:
    """(method, path, schema name) of every operation of the OpenAPI document that takes a JSON body."""
    found = []
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            body = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            # An optional body is "anyOf" its schema and null.
            refs = [part["$ref"] for part in [body or {}, *(body or {}).get("anyOf", [])] if "$ref" in part]
            if refs:
                found.append((method.upper(), path, refs[0].rsplit("/", 1)[-1]))
    return found


def _objects_in(schema: dict, name: str, seen: set[str]) -> set[str]:
    """The schema name and every object schema it holds, followed through $ref."""
    if name in seen:
        return seen
    seen.add(name)
    text = str(schema["components"]["schemas"][name])
    for ref in text.split("'$ref': '#/components/schemas/")[1:]:
        _objects_in(schema, ref.split("'", 1)[0], seen)
    return seen


def test_every_request_body_of_the_api_refuses_fields_it_does_not_declare():
    import portal.api_urls  # noqa: F401  (mounting the URLs adds the repository and pull request routes)
    from portal.api import api

    schema = api.get_openapi_schema()
    bodies = _request_bodies(schema)
    assert len(bodies) > 15
    names = set()
    for _method, _path, name in bodies:
        names |= _objects_in(schema, name, set())
    open_ended = sorted(n for n in names if schema["components"]["schemas"][n].get("additionalProperties") is not False)
    assert open_ended == []


@pytest.fixture
def alice_keys_token(alice):
    return token_for(alice, scopes=("api", "write:user", "write:repo"))


def public_key() -> str:
    return asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()


def test_a_misspelt_field_is_named_and_nothing_is_written(client, alice_keys_token):
    response = send(client, "POST", "/user/keys", {"key": public_key(), "titel": "laptop"}, **alice_keys_token)
    assert response.status_code == 422
    body = response.json()
    assert body["message"] == "unknown field: titel"
    assert [(e["field"], e["type"]) for e in body["errors"]] == [("titel", "extra_forbidden")]
    assert not SshKey.objects.exists()


def test_several_unknown_fields_and_other_mistakes_are_all_named(client, alice_keys_token):
    response = send(client, "POST", "/user/keys", {"colour": "red", "size": 1}, **alice_keys_token)
    assert response.status_code == 422
    message = response.json()["message"]
    assert message.startswith("Invalid request: ")
    assert "key: Field required" in message
    assert "unknown field: colour" in message and "unknown field: size" in message


def test_gitea_clients_create_keys_and_repositories_with_their_usual_bodies(client, alice, alice_keys_token):
    # Gitea's Go SDK sends every field of its options, the ones the portal lacks as false, 0, "" or null.
    key = send(
        client, "POST", "/user/keys", {"key": public_key(), "title": "ci", "read_only": False}, **alice_keys_token
    )
    assert key.status_code == 201, key.json()
    gitea_repo = {
        "name": "tool",
        "description": "",
        "private": True,
        "issue_labels": "",
        "auto_init": True,
        "template": False,
        "gitignores": "",
        "license": "",
        "readme": "Default",
        "default_branch": "main",
        "trust_model": "default",
        "object_format_name": "",
    }
    headers = token_for(alice)
    created = send(client, "POST", "/user/repos", gitea_repo, **headers)
    assert created.status_code == 201, created.json()
    refused = send(client, "POST", "/user/repos", gitea_repo | {"name": "other", "license": "MIT"}, **headers)
    assert refused.status_code == 422
    assert refused.json()["message"].startswith("Invalid request: license: not supported")
    assert list(Repository.objects.values_list("name", flat=True)) == ["tool"]


def test_a_text_with_a_nul_byte_is_refused_by_name_and_nothing_is_written(client, alice):
    # PostgreSQL refuses to keep a NUL: without the check, the request failed with 500 there.
    headers = token_for(alice)
    response = send(client, "POST", "/user/repos", {"name": "tool", "description": "one\x00two"}, **headers)
    assert response.status_code == 422
    assert response.json()["message"] == "Invalid request: description: holds a NUL byte, which no text here may"
    assert not Repository.objects.exists()
    assert send(client, "POST", "/user/repos", {"name": "tool"}, **headers).status_code == 201
    # In a list, too.
    rule = {"branch_name": "main", "enable_push_whitelist": True, "push_whitelist_usernames": ["bob", "ca\x00rol"]}
    response = send(client, "POST", "/repos/alice/tool/branch_protections", rule, **headers)
    assert response.status_code == 422
    assert [error["field"] for error in response.json()["errors"]] == ["push_whitelist_usernames"]


def test_an_address_with_a_nul_byte_is_not_found(client, alice):
    headers = token_for(alice)
    assert send(client, "POST", "/user/repos", {"name": "tool"}, **headers).status_code == 201
    # A filter's value reached PostgreSQL, which refused the NUL (500).
    for path in ("/repos/alice%00/tool", "/repos/alice/tool/pulls?poster=al%00ice"):
        assert send(client, "GET", path, **headers).status_code == 404, path
    # An encoded percent sign followed by zeros is no NUL.
    assert send(client, "GET", "/repos/alice/tool/pulls?poster=al%2500ice", **headers).json() == []
