"""Gitea's shapes, field by field: every field of Gitea's struct (its swagger, for the version GET /version names)
is in the portal's answer with its type. Fields Gitea leaves out when empty (`omitempty`) are not asked for.

Types: "string", "boolean", "integer", "date-time" (RFC 3339 to the second, with its offset), "array", "object", a
nested shape (a dict of fields), or a tuple of these (one of them, None for null). The shapes of other objects
are checked the same way, with assert_shape and the shapes here that they nest (USER, REPOSITORY)."""

import re
import subprocess

import asyncssh
import pytest

from portal import services as accounts
from repos import git
from repos import services as repo_services
from repos.models import Role
from repos.tests.api_client import send, token_for

TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)$")

USER = {
    "id": "integer",
    "login": "string",
    "login_name": "string",
    "source_id": "integer",
    "full_name": "string",
    "email": "string",
    "avatar_url": "string",
    "html_url": "string",
    "language": "string",
    "is_admin": "boolean",
    "last_login": "date-time",
    "created": "date-time",
    "restricted": "boolean",
    "active": "boolean",
    "prohibit_login": "boolean",
    "location": "string",
    "website": "string",
    "description": "string",
    "visibility": "string",
    "followers_count": "integer",
    "following_count": "integer",
    "starred_repos_count": "integer",
    "username": "string",
}

PERMISSION = {"admin": "boolean", "push": "boolean", "pull": "boolean"}

REPOSITORY = {
    "id": "integer",
    "owner": USER,
    "name": "string",
    "full_name": "string",
    "description": "string",
    "empty": "boolean",
    "private": "boolean",
    "fork": "boolean",
    "template": "boolean",
    "mirror": "boolean",
    "size": "integer",
    "language": "string",
    "languages_url": "string",
    "html_url": "string",
    "url": "string",
    "link": "string",
    "ssh_url": "string",
    "clone_url": "string",
    "original_url": "string",
    "website": "string",
    "stars_count": "integer",
    "forks_count": "integer",
    "watchers_count": "integer",
    "open_issues_count": "integer",
    "open_pr_counter": "integer",
    "release_counter": "integer",
    "default_branch": "string",
    "archived": "boolean",
    "created_at": "date-time",
    "updated_at": "date-time",
    "archived_at": "date-time",
    "permissions": PERMISSION,
    "has_issues": "boolean",
    "has_wiki": "boolean",
    "has_pull_requests": "boolean",
    "has_projects": "boolean",
    "has_releases": "boolean",
    "has_packages": "boolean",
    "has_actions": "boolean",
    "ignore_whitespace_conflicts": "boolean",
    "allow_merge_commits": "boolean",
    "allow_rebase": "boolean",
    "allow_rebase_explicit": "boolean",
    "allow_squash_merge": "boolean",
    "allow_fast_forward_only_merge": "boolean",
    "allow_rebase_update": "boolean",
    "default_delete_branch_after_merge": "boolean",
    "default_merge_style": "string",
    "default_allow_maintainer_edit": "boolean",
    "avatar_url": "string",
    "internal": "boolean",
    "mirror_interval": "string",
    "object_format_name": "string",
    "mirror_updated": "date-time",
}

PAYLOAD_USER = {"name": "string", "email": "string", "username": "string"}
VERIFICATION = {
    "verified": "boolean",
    "reason": "string",
    "signature": "string",
    "signer": (USER, None),
    "payload": "string",
}
PAYLOAD_COMMIT = {
    "id": "string",
    "message": "string",
    "url": "string",
    "author": PAYLOAD_USER,
    "committer": PAYLOAD_USER,
    "verification": (VERIFICATION, None),
    "timestamp": "date-time",
    "added": "array",
    "removed": "array",
    "modified": "array",
}

BRANCH = {
    "name": "string",
    "commit": PAYLOAD_COMMIT,
    "protected": "boolean",
    "required_approvals": "integer",
    "enable_status_check": "boolean",
    "status_check_contexts": "array",
    "user_can_push": "boolean",
    "user_can_merge": "boolean",
    "effective_branch_protection_name": "string",
}

PUBLIC_KEY = {
    "id": "integer",
    "key": "string",
    "url": "string",
    "title": "string",
    "fingerprint": "string",
    "created_at": "date-time",
    "user": USER,
    "read_only": "boolean",
    "key_type": "string",
}

ORGANIZATION = {
    "id": "integer",
    "name": "string",
    "full_name": "string",
    "email": "string",
    "avatar_url": "string",
    "description": "string",
    "website": "string",
    "location": "string",
    "visibility": "string",
    "repo_admin_change_team_access": "boolean",
    "username": "string",
}

TEAM = {
    "id": "integer",
    "name": "string",
    "description": "string",
    "organization": (ORGANIZATION, None),
    "includes_all_repositories": "boolean",
    "permission": "string",
    "units": "array",
    "units_map": "object",
    "can_create_org_repo": "boolean",
}


def _matches(value, kind) -> bool:
    if isinstance(kind, tuple):
        return any(_matches(value, one) for one in kind)
    if kind is None:
        return value is None
    if isinstance(kind, dict):
        return isinstance(value, dict) and not _mismatches(value, kind)
    checks = {
        "string": lambda v: isinstance(v, str),
        "boolean": lambda v: isinstance(v, bool),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "date-time": lambda v: isinstance(v, str) and TIME.match(v) is not None,
        "array": lambda v: isinstance(v, list),
        "object": lambda v: isinstance(v, dict),
    }
    return checks[kind](value)


def _mismatches(body: dict, shape: dict, where: str = "") -> list[str]:
    problems = []
    for name, kind in shape.items():
        if name not in body:
            problems.append(f"{where}{name}: missing")
        elif isinstance(kind, dict) and isinstance(body[name], dict):
            problems += _mismatches(body[name], kind, f"{where}{name}.")
        elif not _matches(body[name], kind):
            problems.append(f"{where}{name}: {body[name]!r} is not {kind}")
    return problems


def assert_shape(body: dict, shape: dict) -> None:
    problems = _mismatches(body, shape)
    assert not problems, "\n".join(problems)


@pytest.fixture
def acme(alice, bob, private_repo):
    org = accounts.create_organization(actor=alice, name="acme", full_name="Acme")
    devs = accounts.create_team(org, actor=alice, name="devs")
    accounts.add_team_member(devs, bob, actor=alice)
    tool = repo_services.create_repository(actor=alice, owner=org, name="tool", initialize=True)
    repo_services.set_team_role(tool, devs, actor=alice, role=Role.WRITE)
    return org


def test_a_repository_has_giteas_shape(client, private_repo, as_bob):
    body = send(client, "GET", "/repos/alice/project", **as_bob).json()
    assert_shape(body, REPOSITORY)
    listed = send(client, "GET", "/users/alice/repos", **as_bob).json()
    assert_shape(listed[0], REPOSITORY)


def test_a_branch_has_giteas_shape(client, private_repo, as_carol):
    body = send(client, "GET", "/repos/alice/project/branches/main", **as_carol).json()
    assert_shape(body, BRANCH)
    assert_shape(send(client, "GET", "/repos/alice/project/branches", **as_carol).json()[0], BRANCH)


def test_a_user_has_giteas_shape_to_themselves_and_to_others(client, alice, private_repo, as_bob):
    me = send(client, "GET", "/user", **token_for(alice, scopes=("api", "read:user"))).json()
    assert_shape(me, USER)
    assert me["email"] == "alice@example.com"
    # Hidden to others: the email is empty and the last sign-in Go's zero time, as Gitea writes them.
    owner = send(client, "GET", "/repos/alice/project", **as_bob).json()["owner"]
    assert_shape(owner, USER)
    assert (owner["email"], owner["last_login"]) == ("", "0001-01-01T00:00:00Z")


def test_an_avatar_url_shows_a_picture(client, alice, settings):
    me = send(client, "GET", "/user", **token_for(alice, scopes=("api", "read:user"))).json()
    assert me["avatar_url"] == f"{settings.PORTAL_BASE_URL}/-/avatars/alice.svg"
    picture = client.get("/-/avatars/alice.svg")
    assert (picture.status_code, picture["Content-Type"]) == (200, "image/svg+xml")
    assert b">A</text>" in picture.content
    assert client.get("/-/avatars/nobody.svg").status_code == 404


def test_a_public_key_has_giteas_shape(client, alice):
    headers = token_for(alice, scopes=("api", "write:user", "write:repo"))
    public = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()
    made = send(client, "POST", "/user/keys", {"key": public, "title": "laptop"}, **headers)
    assert made.status_code == 201
    assert_shape(made.json(), PUBLIC_KEY)
    assert (made.json()["key_type"], made.json()["read_only"]) == ("user", False)
    assert_shape(send(client, "GET", "/user/keys", **headers).json()[0], PUBLIC_KEY)


def test_an_organization_and_a_team_have_giteas_shapes(client, acme, bob):
    headers = token_for(bob, scopes=("api", "read:org"))
    assert_shape(send(client, "GET", "/orgs/acme", **headers).json(), ORGANIZATION)
    assert_shape(send(client, "GET", "/user/orgs", **headers).json()[0], ORGANIZATION)
    teams = send(client, "GET", "/orgs/acme/teams", **headers).json()
    assert [team["name"] for team in teams] == ["devs", "owners"]
    for team in teams:
        assert_shape(team, TEAM)


def test_every_time_is_to_the_second_with_its_offset(client, private_repo, as_alice):
    """The renderer writes every time of every answer the same way; here the ones of a repository and a tag."""
    sha = git.branch_sha(private_repo.path, "main")
    subprocess.run(["git", "--git-dir", str(private_repo.path), "tag", "v1", sha], check=True)
    repository = send(client, "GET", "/repos/alice/project", **as_alice).json()
    tag = send(client, "GET", "/repos/alice/project/tags", **as_alice).json()[0]
    times = [
        repository["created_at"],
        repository["updated_at"],
        repository["owner"]["created"],
        tag["commit"]["created"],
    ]
    assert all(TIME.match(value) for value in times), times
    assert all("." not in value for value in times)
    assert repository["mirror_updated"] == "0001-01-01T00:00:00Z"
    assert repository["archived_at"] == "1970-01-01T00:00:00Z"


def test_times_follow_the_sites_time_zone_with_its_offset(client, private_repo, as_alice, settings):
    settings.TIME_ZONE = "Europe/Paris"
    created = send(client, "GET", "/repos/alice/project", **as_alice).json()["created_at"]
    assert re.match(r".*T\d\d:\d\d:\d\d\+0[12]:00$", created), created
