import subprocess

import asyncssh
import pytest

from portal import services as accounts
from portal.models import AuditEvent, SshKey
from repos import git
from repos import services as repo_services
from repos.models import Collaborator, Repository, Role, Visibility
from repos.tests.api_client import API, send, token_for


def new_public_key() -> str:
    return asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()


# Creating and listing.


def test_a_user_creates_a_private_repository_with_a_readme(client, alice, as_alice, settings):
    response = send(client, "POST", "/user/repos", {"name": "tool", "auto_init": True}, **as_alice)
    assert response.status_code == 201
    body = response.json()
    repo = Repository.objects.get(name="tool")
    assert body["id"] == repo.pk
    assert body["full_name"] == "alice/tool"
    assert body["owner"]["login"] == "alice"
    assert (body["private"], body["internal"], body["visibility"]) == (True, False, "private")
    assert body["default_branch"] == "main"
    assert body["empty"] is False
    assert body["clone_url"] == repo.http_url and body["ssh_url"] == repo.ssh_url
    assert body["html_url"] == repo.web_url
    assert body["permissions"] == {"admin": True, "push": True, "pull": True}
    assert [b.name for b in git.branches(settings.GIT_ROOT / f"{repo.pk}.git")] == ["main"]
    assert AuditEvent.objects.filter(action="repo.create", actor=alice, target_id=str(repo.pk)).exists()


def test_gitea_private_false_makes_a_public_repository(client, as_alice):
    body = send(client, "POST", "/user/repos", {"name": "open", "private": False}, **as_alice).json()
    assert (body["private"], body["visibility"], body["empty"]) == (False, "public", True)


@pytest.mark.parametrize("name", ["..", "-x", "a/b", "rеpo", "x.git"])
def test_a_bad_repository_name_is_refused_with_the_reason(client, as_alice, name):
    response = send(client, "POST", "/user/repos", {"name": name}, **as_alice)
    assert response.status_code == 400
    assert "name" in response.json()["message"].lower()
    assert not Repository.objects.exists()


def test_a_taken_repository_name_is_a_conflict(client, private_repo, as_alice):
    response = send(client, "POST", "/user/repos", {"name": "Project"}, **as_alice)
    assert response.status_code == 409
    assert "already has a repository" in response.json()["message"]
    assert Repository.objects.count() == 1


def test_creating_a_repository_needs_the_write_repo_scope(client, alice):
    response = send(client, "POST", "/user/repos", {"name": "tool"}, **token_for(alice, scopes=("api", "read:repo")))
    assert response.status_code == 403
    assert "write:repo" in response.json()["message"]
    assert not Repository.objects.exists()


def test_an_organization_owner_creates_repositories_in_it(client, alice, mallory, as_alice, as_mallory):
    accounts.create_organization(actor=alice, name="acme")
    created = send(client, "POST", "/orgs/acme/repos", {"name": "site", "visibility": "internal"}, **as_alice)
    assert created.status_code == 201
    assert created.json()["owner"]["login"] == "acme"
    assert created.json()["internal"] is True
    refused = send(client, "POST", "/orgs/acme/repos", {"name": "evil"}, **as_mallory)
    assert refused.status_code == 403
    assert send(client, "POST", "/orgs/nope/repos", {"name": "x"}, **as_alice).status_code == 404
    assert list(Repository.objects.values_list("name", flat=True)) == ["site"]


def test_user_repos_lists_own_and_granted_repositories(client, private_repo, alice, as_alice, as_carol, as_mallory):
    repo_services.create_repository(actor=alice, owner=alice, name="public", visibility=Visibility.PUBLIC)
    mine = client.get(f"{API}/user/repos", **as_alice)
    assert [r["name"] for r in mine.json()] == ["project", "public"]
    assert mine["X-Total-Count"] == "2"
    granted = client.get(f"{API}/user/repos", **as_carol).json()
    assert [(r["full_name"], r["permissions"]) for r in granted] == [
        ("alice/project", {"admin": False, "push": False, "pull": True})
    ]
    assert client.get(f"{API}/user/repos", **as_mallory).json() == []


# Reading and access.


def test_a_reader_gets_the_repository_with_read_permissions(client, private_repo, as_carol):
    body = client.get(f"{API}/repos/alice/project", **as_carol).json()
    assert body["full_name"] == "alice/project"
    assert body["permissions"] == {"admin": False, "push": False, "pull": True}
    assert body["owner"]["email"] == ""


OUTSIDER_CALLS = [
    ("GET", "", None),
    ("PATCH", "", {"description": "pwned"}),
    ("DELETE", "", None),
    ("GET", "/collaborators", None),
    ("PUT", "/collaborators/mallory", {"permission": "admin"}),
    ("DELETE", "/collaborators/bob", None),
    ("GET", "/branches", None),
    ("GET", "/keys", None),
    ("POST", "/keys", {"key": "ssh-ed25519 AAAA"}),
    ("DELETE", "/keys/1", None),
]


@pytest.mark.parametrize(("method", "suffix", "body"), OUTSIDER_CALLS)
def test_an_outsider_cannot_tell_a_private_repository_from_a_missing_one(
    client, private_repo, as_mallory, method, suffix, body
):
    private = send(client, method, f"/repos/alice/project{suffix}", body, **as_mallory)
    missing = send(client, method, f"/repos/alice/missing{suffix}", body, **as_mallory)
    assert private.status_code == missing.status_code == 404
    assert private.json() == missing.json() == {"message": "Repository not found"}
    private_repo.refresh_from_db()
    assert private_repo.description == ""
    assert not Collaborator.objects.filter(user__username="mallory").exists()


def test_a_token_without_repository_scopes_cannot_see_private_repositories(client, private_repo, alice):
    api_only = token_for(alice, scopes=("api",))
    # Refused before any repository is looked up, so the answer is the same for one that does not exist.
    private = client.get(f"{API}/repos/alice/project", **api_only)
    missing = client.get(f"{API}/repos/alice/missing", **api_only)
    assert private.status_code == missing.status_code == 403
    assert private.json() == missing.json() == {"message": "This token lacks the read:repo scope."}


@pytest.mark.parametrize("who", ["as_carol", "as_bob"])
def test_readers_and_writers_cannot_change_settings(client, private_repo, request, who):
    headers = request.getfixturevalue(who)
    response = send(client, "PATCH", "/repos/alice/project", {"description": "changed"}, **headers)
    assert response.status_code == 403
    assert "admin access" in response.json()["message"]
    assert send(client, "DELETE", "/repos/alice/project", **headers).status_code == 403
    assert (
        send(client, "PUT", "/repos/alice/project/collaborators/mallory", {"permission": "read"}, **headers).status_code
        == 403
    )
    private_repo.refresh_from_db()
    assert private_repo.description == ""


def test_a_read_only_token_cannot_change_the_owners_repository(client, private_repo, alice):
    read_only = token_for(alice, scopes=("api", "read:repo"))
    assert client.get(f"{API}/repos/alice/project", **read_only).json()["permissions"]["admin"] is False
    assert send(client, "PATCH", "/repos/alice/project", {"description": "x"}, **read_only).status_code == 403


# Changing and deleting.


def test_the_owner_renames_and_changes_settings_in_one_call(client, private_repo, alice, as_alice):
    git.commit_files(private_repo.path, "dev", {"DEV.md": b"dev\n"}, "Start dev", name="Alice", email="a@example.com")
    response = send(
        client,
        "PATCH",
        "/repos/alice/project",
        {"name": "renamed", "description": "A tool", "private": False, "default_branch": "dev"},
        **as_alice,
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["full_name"], body["description"], body["visibility"], body["default_branch"]) == (
        "alice/renamed",
        "A tool",
        "public",
        "dev",
    )
    private_repo.refresh_from_db()
    assert (private_repo.name, private_repo.visibility, private_repo.default_branch) == ("renamed", "public", "dev")
    head = subprocess.run(
        ["git", "symbolic-ref", "HEAD"], cwd=private_repo.path, capture_output=True, text=True, check=True
    )
    assert head.stdout.strip() == "refs/heads/dev"
    actions = set(
        AuditEvent.objects.filter(actor=alice, target_id=str(private_repo.pk)).values_list("action", flat=True)
    )
    assert {"repo.rename", "repo.visibility", "repo.update"} <= actions
    assert client.get(f"{API}/repos/alice/renamed", **as_alice).status_code == 200
    assert client.get(f"{API}/repos/alice/project", **as_alice).status_code == 404


def test_a_refused_patch_changes_nothing(client, private_repo, alice, as_alice):
    repo_services.create_repository(actor=alice, owner=alice, name="other")
    response = send(client, "PATCH", "/repos/alice/project", {"name": "other", "description": "new"}, **as_alice)
    assert response.status_code == 409
    private_repo.refresh_from_db()
    assert (private_repo.name, private_repo.description) == ("project", "")
    assert not AuditEvent.objects.filter(action__in=["repo.rename", "repo.update"]).exists()


def test_a_bad_visibility_gets_422(client, private_repo, as_alice):
    response = send(client, "PATCH", "/repos/alice/project", {"visibility": "secret"}, **as_alice)
    assert response.status_code == 422
    assert "visibility" in response.json()["message"]


def test_the_owner_deletes_the_repository_and_its_directory(
    client, private_repo, alice, as_alice, django_capture_on_commit_callbacks
):
    path = private_repo.path
    with django_capture_on_commit_callbacks(execute=True):
        response = client.delete(f"{API}/repos/alice/project", **as_alice)
    assert response.status_code == 204
    assert not Repository.objects.exists()
    assert not path.exists()
    assert AuditEvent.objects.filter(action="repo.delete", actor=alice).exists()


# Collaborators.


def test_collaborators_are_listed_with_their_roles(client, private_repo, as_carol):
    body = client.get(f"{API}/repos/alice/project/collaborators", **as_carol).json()
    assert [(c["login"], c["role_name"], c["permissions"]["push"]) for c in body] == [
        ("bob", "write", True),
        ("carol", "read", False),
    ]


def test_the_owner_adds_changes_and_removes_a_collaborator(client, private_repo, alice, mallory, as_alice, as_mallory):
    added = send(client, "PUT", "/repos/alice/project/collaborators/mallory", {"permission": "read"}, **as_alice)
    assert added.status_code == 204
    assert Collaborator.objects.get(user=mallory).role == Role.READ
    assert client.get(f"{API}/repos/alice/project", **as_mallory).json()["permissions"]["pull"] is True
    event = AuditEvent.objects.get(action="repo.collaborator_set", subject=mallory)
    assert event.actor == alice and event.after == {"user": "mallory", "role": "read"}

    send(client, "PUT", "/repos/alice/project/collaborators/mallory", {"permission": "maintain"}, **as_alice)
    assert Collaborator.objects.get(user=mallory).role == Role.MAINTAIN

    removed = client.delete(f"{API}/repos/alice/project/collaborators/mallory", **as_alice)
    assert removed.status_code == 204
    assert not Collaborator.objects.filter(user=mallory).exists()
    assert client.get(f"{API}/repos/alice/project", **as_mallory).status_code == 404
    assert AuditEvent.objects.filter(action="repo.collaborator_remove", subject=mallory).exists()


def test_an_invalid_permission_is_refused_clearly(client, private_repo, mallory, as_alice):
    response = send(client, "PUT", "/repos/alice/project/collaborators/mallory", {"permission": "owner"}, **as_alice)
    assert response.status_code == 422
    message = response.json()["message"]
    assert "permission" in message and "'read'" in message and "'admin'" in message
    assert not Collaborator.objects.filter(user=mallory).exists()


def test_an_unknown_collaborator_is_not_found(client, private_repo, as_alice):
    response = send(client, "PUT", "/repos/alice/project/collaborators/nobody", {"permission": "read"}, **as_alice)
    assert response.status_code == 404


def test_an_organization_cannot_be_a_collaborator(client, private_repo, alice, as_alice):
    accounts.create_organization(actor=alice, name="acme")
    response = send(client, "PUT", "/repos/alice/project/collaborators/acme", {"permission": "read"}, **as_alice)
    assert response.status_code == 404


# Deploy keys.


def test_deploy_keys_are_read_only_unless_asked(client, private_repo, alice, as_alice):
    created = send(client, "POST", "/repos/alice/project/keys", {"key": new_public_key(), "title": "ci"}, **as_alice)
    assert created.status_code == 201
    body = created.json()
    assert body["read_only"] is True and body["title"] == "ci" and body["key_id"] == body["id"]
    assert body["url"].endswith(f"/api/v1/repos/alice/project/keys/{body['id']}")
    writable = send(
        client, "POST", "/repos/alice/project/keys", {"key": new_public_key(), "read_only": False}, **as_alice
    )
    assert writable.json()["read_only"] is False
    assert SshKey.objects.get(pk=writable.json()["id"]).writable is True
    assert AuditEvent.objects.filter(action="deploy_key.add", actor=alice).count() == 2

    listed = client.get(f"{API}/repos/alice/project/keys", **as_alice).json()
    assert sorted(k["id"] for k in listed) == sorted([body["id"], writable.json()["id"]])
    assert client.get(f"{API}/repos/alice/project/keys/{body['id']}", **as_alice).json()["title"] == "ci"

    assert client.delete(f"{API}/repos/alice/project/keys/{body['id']}", **as_alice).status_code == 204
    assert not SshKey.objects.filter(pk=body["id"]).exists()
    assert AuditEvent.objects.filter(action="deploy_key.remove", actor=alice).exists()


def test_a_bad_deploy_key_is_refused_with_the_reason(client, private_repo, as_alice):
    response = send(client, "POST", "/repos/alice/project/keys", {"key": "ssh-rsa AAAAnotakey"}, **as_alice)
    assert response.status_code == 400
    assert "could not be read" in response.json()["message"]
    assert not SshKey.objects.exists()


def test_readers_cannot_see_or_add_deploy_keys(client, private_repo, as_carol):
    assert client.get(f"{API}/repos/alice/project/keys", **as_carol).status_code == 403
    response = send(client, "POST", "/repos/alice/project/keys", {"key": new_public_key()}, **as_carol)
    assert response.status_code == 403
    assert not SshKey.objects.exists()


def test_a_deploy_key_of_another_repository_is_not_found(client, private_repo, alice, as_alice):
    other = repo_services.create_repository(actor=alice, owner=alice, name="other")
    key = repo_services.add_deploy_key(other, actor=alice, title="x", public_key=new_public_key())
    assert client.delete(f"{API}/repos/alice/project/keys/{key.pk}", **as_alice).status_code == 404
    assert SshKey.objects.filter(pk=key.pk).exists()


# Branches.


def test_branches_show_their_latest_commit(client, private_repo, as_carol):
    sha = git.commit_files(
        private_repo.path, "feature", {"F.md": b"f\n"}, "Add F\n\nBody.", name="Bob", email="b@example.com"
    )
    body = client.get(f"{API}/repos/alice/project/branches", **as_carol).json()
    by_name = {b["name"]: b for b in body}
    assert set(by_name) == {"main", "feature"}
    assert by_name["feature"]["commit"]["id"] == sha
    assert by_name["feature"]["commit"]["message"].startswith("Add F")
    # Nobody's verified address: Gitea's PayloadUser without a username.
    assert by_name["feature"]["commit"]["author"] == {"name": "Bob", "email": "b@example.com", "username": ""}
    assert by_name["main"]["commit"]["id"] == git.branch_sha(private_repo.path, "main")
    assert by_name["main"]["user_can_push"] is False


def test_an_empty_repository_has_no_branches(client, alice, as_alice):
    repo_services.create_repository(actor=alice, owner=alice, name="empty")
    assert client.get(f"{API}/repos/alice/empty/branches", **as_alice).json() == []


@pytest.mark.parametrize("name", ["project\n", "tool\n", "x\ny"])
def test_a_repository_name_with_a_line_break_is_refused(client, alice, as_alice, name):
    response = send(client, "POST", "/user/repos", {"name": name}, **as_alice)
    assert response.status_code == 400
    assert "may only use letters, digits" in response.json()["message"]
    assert not Repository.objects.filter(owner=alice).exists()


def test_a_rename_to_a_name_with_a_line_break_is_refused(client, private_repo, as_alice):
    response = send(client, "PATCH", "/repos/alice/project", {"name": "project\n"}, **as_alice)
    assert response.status_code == 400
    private_repo.refresh_from_db()
    assert private_repo.name == "project"


@pytest.mark.parametrize("branch", ["a\nb", "release.lock", "a//b", "x@{1}", "trailing.", "feature/"])
def test_a_default_branch_git_would_refuse_is_refused_with_the_reason(client, alice, as_alice, settings, branch):
    response = send(
        client, "POST", "/user/repos", {"name": "tool", "default_branch": branch, "auto_init": True}, **as_alice
    )
    assert response.status_code == 400
    assert "is not a valid branch name" in response.json()["message"]
    assert not Repository.objects.exists()
    assert not any(settings.GIT_ROOT.iterdir())


@pytest.mark.parametrize("branch", ["a\nb", "release.lock", "x@{1}"])
def test_changing_the_default_branch_to_a_name_git_would_refuse_is_refused(client, private_repo, as_alice, branch):
    head = (private_repo.path / "HEAD").read_text()
    response = send(client, "PATCH", "/repos/alice/project", {"default_branch": branch}, **as_alice)
    assert response.status_code == 400
    assert "is not a valid branch name" in response.json()["message"]
    private_repo.refresh_from_db()
    assert private_repo.default_branch == "main"
    assert (private_repo.path / "HEAD").read_text() == head
