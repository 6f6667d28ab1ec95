"""Gitea's everyday endpoints: organizations and teams, someone's repositories, branches, files, commits, tags, one
collaborator, transfers, and the routes of features the portal does not have. Who may call each is also in the
access matrix (portal/tests/test_access_matrix.py); here, what each answers."""

import base64
import subprocess

import pytest
from allauth.account.models import EmailAddress

from portal import services as accounts
from portal.models import Team
from repos import git
from repos import services as repo_services
from repos.models import Push, Repository, Role, Visibility
from repos.tests.api_client import API, send, token_for

ORG_SCOPES = ("api", "read:org", "write:org")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture
def acme(alice, bob, carol):
    """acme: alice owns it, bob is in devs, which writes to acme/tool; carol is not a member."""
    org = accounts.create_organization(actor=alice, name="acme")
    devs = accounts.create_team(org, actor=alice, name="devs")
    accounts.add_team_member(devs, bob, actor=alice)
    tool = repo_services.create_repository(actor=alice, owner=org, name="tool", initialize=True)
    repo_services.set_team_role(tool, devs, actor=alice, role=Role.WRITE)
    repo_services.create_repository(actor=alice, owner=org, name="open", visibility=Visibility.PUBLIC)
    return org


@pytest.fixture
def protect(client, alice):
    """Protect a branch pattern of alice/project through the API, as its admin would."""

    def protect(**rule):
        response = send(client, "POST", "/repos/alice/project/branch_protections", rule, **token_for(alice))
        assert response.status_code == 201, response.content
        return response.json()

    return protect


def test_the_version_is_giteas_and_needs_no_credentials(client):
    response = client.get(f"{API}/version")
    assert response.status_code == 200
    assert response.json() == {"version": "1.22.1"}


# Organizations and teams.


def test_organizations_are_listed_and_read(client, acme, bob, carol):
    as_bob, as_carol = token_for(bob, ORG_SCOPES), token_for(carol, ORG_SCOPES)
    assert [o["username"] for o in send(client, "GET", "/orgs", **as_carol).json()] == ["acme"]
    assert send(client, "GET", "/orgs/acme", **as_carol).json()["full_name"] == ""
    assert send(client, "GET", "/orgs/nobody", **as_carol).status_code == 404
    assert [o["username"] for o in send(client, "GET", "/user/orgs", **as_bob).json()] == ["acme"]
    assert send(client, "GET", "/user/orgs", **as_carol).json() == []
    # Who belongs to an organization is for its members to see.
    assert [o["username"] for o in send(client, "GET", "/users/bob/orgs", **as_bob).json()] == ["acme"]
    assert send(client, "GET", "/users/bob/orgs", **as_carol).json() == []


def test_reading_organizations_needs_the_read_org_scope(client, acme, bob):
    response = send(client, "GET", "/orgs/acme", **token_for(bob, ("api", "read:repo")))
    assert response.status_code == 403
    assert "read:org" in response.json()["message"]


def test_a_site_admin_creates_an_organization_owned_by_someone(client, admin, carol):
    headers = token_for(admin, ("api", "admin", "write:org"))
    response = send(client, "POST", "/admin/users/carol/orgs", {"username": "guild", "full_name": "Guild"}, **headers)
    assert response.status_code == 201
    assert response.json()["username"] == "guild"
    owners = Team.objects.get(organization__username="guild", name=Team.OWNERS)
    assert list(owners.members.values_list("username", flat=True)) == ["carol"]
    refused = send(client, "POST", "/admin/users/bob/orgs", {"username": "x"}, **token_for(carol, ORG_SCOPES))
    assert refused.status_code == 403


def test_teams_are_listed_to_members_and_created_by_owners(client, acme, alice, bob, carol):
    teams = send(client, "GET", "/orgs/acme/teams", **token_for(bob, ORG_SCOPES)).json()
    by_name = {team["name"]: team for team in teams}
    # The owners team owns everything; devs writes to what it was given.
    assert (by_name["owners"]["permission"], by_name["owners"]["can_create_org_repo"]) == ("owner", True)
    assert (by_name["devs"]["permission"], by_name["devs"]["includes_all_repositories"]) == ("write", False)
    assert by_name["devs"]["units_map"]["repo.code"] == "write" and by_name["devs"]["units_map"]["repo.wiki"] == "none"
    assert send(client, "GET", "/orgs/acme/teams", **token_for(carol, ORG_SCOPES)).status_code == 404

    made = send(
        client, "POST", "/orgs/acme/teams", {"name": "ops", "description": "Ops"}, **token_for(alice, ORG_SCOPES)
    )
    assert made.status_code == 201
    assert (made.json()["name"], made.json()["permission"]) == ("ops", "none")
    assert send(client, "POST", "/orgs/acme/teams", {"name": "qa"}, **token_for(bob, ORG_SCOPES)).status_code == 403


@pytest.mark.parametrize(
    "field, value",
    [
        ("permission", "write"),
        ("includes_all_repositories", True),
        ("units", ["repo.code"]),
        ("can_create_org_repo", True),
    ],
)
def test_a_team_field_the_portal_lacks_is_refused_by_name(client, acme, alice, field, value):
    response = send(client, "POST", "/orgs/acme/teams", {"name": "qa", field: value}, **token_for(alice, ORG_SCOPES))
    assert response.status_code == 422
    assert field in response.json()["message"]
    assert not Team.objects.filter(name="qa").exists()


# Someone's repositories.


def test_a_users_and_an_organizations_repositories_as_each_caller_may_see_them(
    client, acme, private_repo, bob, mallory
):
    as_bob, as_mallory = token_for(bob), token_for(mallory)
    assert [r["full_name"] for r in send(client, "GET", "/users/alice/repos", **as_bob).json()] == ["alice/project"]
    assert send(client, "GET", "/users/alice/repos", **as_mallory).json() == []
    assert [r["name"] for r in send(client, "GET", "/orgs/acme/repos", **as_bob).json()] == ["open", "tool"]
    assert [r["name"] for r in send(client, "GET", "/orgs/acme/repos", **as_mallory).json()] == ["open"]
    assert send(client, "GET", "/users/nobody/repos", **as_bob).status_code == 404


def test_a_repository_carries_its_pull_requests_and_merge_settings(client, private_repo, bob, as_bob):
    body = send(client, "GET", "/repos/alice/project", **as_bob).json()
    assert (body["has_pull_requests"], body["open_pr_counter"], body["allow_squash_merge"]) == (True, 0, True)
    assert (body["has_issues"], body["has_wiki"], body["stars_count"], body["fork"]) == (False, False, 0, False)
    assert body["size"] > 0
    git.update_ref(private_repo.path, "refs/heads/feature", git.branch_sha(private_repo.path, "main"), git.ZERO_SHA)
    git.commit_files(private_repo.path, "feature", {"f.txt": b"f\n"}, "f", name="Bob", email="bob@example.com")
    opened = send(
        client, "POST", "/repos/alice/project/pulls", {"title": "F", "head": "feature", "base": "main"}, **as_bob
    )
    assert opened.status_code == 201
    assert send(client, "GET", "/repos/alice/project", **as_bob).json()["open_pr_counter"] == 1


# Branches.


def test_a_branch_is_read_with_what_the_caller_may_do(client, private_repo, as_bob, as_carol):
    body = send(client, "GET", "/repos/alice/project/branches/main", **as_bob).json()
    assert body["commit"]["id"] == git.branch_sha(private_repo.path, "main")
    assert (body["protected"], body["user_can_push"], body["user_can_merge"]) == (False, True, True)
    reader = send(client, "GET", "/repos/alice/project/branches/main", **as_carol).json()
    assert (reader["user_can_push"], reader["user_can_merge"]) == (False, False)
    assert send(client, "GET", "/repos/alice/project/branches/nope", **as_bob).status_code == 404


def test_a_branchs_flags_come_from_its_protection(client, private_repo, protect, as_bob, alice):
    protect(
        rule_name="main",
        required_approvals=2,
        enable_status_check=True,
        status_check_contexts=["build"],
        enable_merge_whitelist=True,
        merge_whitelist_usernames=["alice"],
    )
    body = send(client, "GET", "/repos/alice/project/branches/main", **as_bob).json()
    assert (body["protected"], body["effective_branch_protection_name"]) == (True, "main")
    assert (body["required_approvals"], body["enable_status_check"], body["status_check_contexts"]) == (
        2,
        True,
        ["build"],
    )
    # A pull request is required, so nobody pushes; only alice may merge.
    assert (body["user_can_push"], body["user_can_merge"]) == (False, False)
    mine = send(client, "GET", "/repos/alice/project/branches/main", **token_for(alice)).json()
    assert (mine["user_can_push"], mine["user_can_merge"]) == (False, True)


def test_a_branch_is_created_from_a_ref_and_recorded_as_a_push(client, private_repo, bob, as_bob):
    sha = git.branch_sha(private_repo.path, "main")
    subprocess.run(["git", "--git-dir", str(private_repo.path), "tag", "v1", sha], check=True)
    response = send(
        client, "POST", "/repos/alice/project/branches", {"new_branch_name": "fix", "old_ref_name": "v1"}, **as_bob
    )
    assert response.status_code == 201
    assert response.json()["name"] == "fix" and response.json()["commit"]["id"] == sha
    assert git.branch_sha(private_repo.path, "fix") == sha
    push = Push.objects.get(repository=private_repo, ref="refs/heads/fix")
    assert (push.pusher, push.new_sha) == (bob, sha)
    again = send(client, "POST", "/repos/alice/project/branches", {"new_branch_name": "fix"}, **as_bob)
    assert again.status_code == 409


def test_creating_a_branch_is_refused_like_its_push_would_be(client, private_repo, protect, as_bob, as_carol, bob):
    protect(rule_name="release/*")
    refused = send(client, "POST", "/repos/alice/project/branches", {"new_branch_name": "release/1"}, **as_bob)
    assert refused.status_code == 403
    assert "branch protection 'release/*'" in refused.json()["message"]
    assert git.ref_target(private_repo.path, "refs/heads/release/1") is None
    assert (
        send(client, "POST", "/repos/alice/project/branches", {"new_branch_name": "x"}, **as_carol).status_code == 403
    )
    read_only = token_for(bob, ("api", "read:repo"))
    scoped = send(client, "POST", "/repos/alice/project/branches", {"new_branch_name": "x"}, **read_only)
    assert scoped.status_code == 403 and "write:repo" in scoped.json()["message"]


# Files.


def test_a_file_and_a_folder_are_read_at_a_ref(client, private_repo, as_carol):
    first = git.branch_sha(private_repo.path, "main")
    git.commit_files(private_repo.path, "main", {"src/a.py": b"a = 1\n"}, "a", name="Bob", email="bob@example.com")
    body = send(client, "GET", "/repos/alice/project/contents/src/a.py", **as_carol).json()
    assert (body["type"], body["encoding"], base64.b64decode(body["content"])) == ("file", "base64", b"a = 1\n")
    assert body["sha"] == git.entry(private_repo.path, git.branch_sha(private_repo.path, "main"), "src/a.py").sha
    assert body["download_url"].endswith("/alice/project/raw/main/src/a.py")
    assert body["_links"] == {"self": body["url"], "git": body["git_url"], "html": body["html_url"]}
    folder = send(client, "GET", "/repos/alice/project/contents/src", **as_carol).json()
    assert [(e["name"], e["type"], e["content"]) for e in folder] == [("a.py", "file", None)]
    root = send(client, "GET", "/repos/alice/project/contents", **as_carol).json()
    assert sorted(e["path"] for e in root) == ["README.md", "src"]
    # Each entry names the last commit that changed it.
    last = {e["path"]: e["last_commit_sha"] for e in root}
    assert last == {"README.md": first, "src": git.branch_sha(private_repo.path, "main")}
    assert body["last_commit_sha"] == git.branch_sha(private_repo.path, "main")
    old = send(client, "GET", f"/repos/alice/project/contents/src/a.py?ref={first}", **as_carol)
    assert old.status_code == 404
    assert send(client, "GET", "/repos/alice/project/contents/README.md?ref=nope", **as_carol).status_code == 404


def test_a_files_bytes_are_read_raw(client, private_repo, as_carol):
    git.commit_files(private_repo.path, "dev", {"bin.dat": b"\x00\x01"}, "bin", name="Bob", email="bob@example.com")
    raw = send(client, "GET", "/repos/alice/project/raw/bin.dat?ref=dev", **as_carol)
    assert (raw.status_code, raw.content) == (200, b"\x00\x01")
    # Gitea's older form names the ref in the path.
    assert send(client, "GET", "/repos/alice/project/raw/dev/bin.dat", **as_carol).content == b"\x00\x01"
    assert send(client, "GET", "/repos/alice/project/raw/README.md", **as_carol).content.startswith(b"# project")
    assert send(client, "GET", "/repos/alice/project/raw/bin.dat", **as_carol).status_code == 404


def test_an_outsider_reads_no_file_of_a_private_repository(client, private_repo, mallory):
    as_mallory = token_for(mallory)
    for path in (
        "/contents/README.md",
        "/contents",
        "/raw/README.md",
        "/commits",
        "/tags",
        "/branches/main",
        "/topics",
    ):
        response = send(client, "GET", f"/repos/alice/project{path}", **as_mallory)
        assert response.status_code == 404, path


def test_a_file_is_created_with_its_author_and_recorded_as_a_push(client, private_repo, bob, as_bob):
    body = {
        "content": b64(b"hello\n"),
        "message": "Add hello",
        "author": {"name": "Ada", "email": "ada@example.com"},
    }
    response = send(client, "POST", "/repos/alice/project/contents/docs/hello.md", body, **as_bob)
    assert response.status_code == 201, response.content
    made = response.json()
    sha = git.branch_sha(private_repo.path, "main")
    assert made["commit"]["sha"] == sha and made["content"]["path"] == "docs/hello.md"
    commit = git.commit(private_repo.path, sha)
    assert (commit.author.name, commit.author.email, commit.message) == ("Ada", "ada@example.com", "Add hello\n")
    assert commit.committer.name == "Ada"
    assert git.read_blob(private_repo.path, git.entry(private_repo.path, sha, "docs/hello.md").sha)[0] == b"hello\n"
    assert Push.objects.filter(repository=private_repo, new_sha=sha, pusher=bob).exists()
    again = send(client, "POST", "/repos/alice/project/contents/docs/hello.md", body, **as_bob)
    assert again.status_code == 409
    assert "already exists" in again.json()["message"]


def test_creating_a_file_goes_through_the_push_rules(client, private_repo, protect, as_bob, as_carol):
    protect(rule_name="main")
    before = git.branch_sha(private_repo.path, "main")
    body = {"content": b64(b"x\n")}
    refused = send(client, "POST", "/repos/alice/project/contents/x.txt", body, **as_bob)
    assert refused.status_code == 403
    assert "changes must go through a pull request (rule: branch protection 'main')" in refused.json()["message"]
    assert git.branch_sha(private_repo.path, "main") == before
    assert send(client, "POST", "/repos/alice/project/contents/x.txt", body, **as_carol).status_code == 403
    on_branch = send(client, "POST", "/repos/alice/project/contents/x.txt", body | {"new_branch": "x"}, **as_bob)
    assert on_branch.status_code == 201
    assert git.commit(private_repo.path, git.branch_sha(private_repo.path, "x")).parents == (before,)


@pytest.mark.parametrize(
    "body, named",
    [
        ({"content": b64(b"x"), "signoff": True}, "signoff"),
        ({"content": b64(b"x"), "dates": {"author": "2026-01-01T00:00:00Z"}}, "dates"),
        ({"content": b64(b"x"), "from_path": "y"}, "from_path"),
        ({"content": "not base64!"}, "content"),
    ],
)
def test_a_file_field_the_portal_does_not_implement_is_refused_by_name(client, private_repo, as_bob, body, named):
    before = git.branch_sha(private_repo.path, "main")
    response = send(client, "POST", "/repos/alice/project/contents/x.txt", body, **as_bob)
    assert response.status_code == 422
    assert named in response.json()["message"]
    assert git.branch_sha(private_repo.path, "main") == before


# Commits and tags.


def test_commits_are_listed_newest_first_with_their_authors(client, private_repo, alice, as_carol):
    EmailAddress.objects.filter(user=alice).update(verified=True)
    for n in range(3):
        content = f"file {n}\n".encode() * (n + 1)
        git.commit_files(
            private_repo.path, "main", {f"{n}.txt": content}, f"c{n}", name="Alice", email="alice@example.com"
        )
    body = send(client, "GET", "/repos/alice/project/commits?limit=2", **as_carol)
    assert [c["commit"]["message"] for c in body.json()] == ["c2", "c1"]
    assert (body["X-HasMore"], body["X-Total-Count"]) == ("true", "4")
    assert body.json()[0]["author"]["login"] == "alice"
    rest = send(client, "GET", "/repos/alice/project/commits?limit=2&page=2", **as_carol).json()
    assert [c["commit"]["message"].strip() for c in rest] == ["c0", "Initial commit"]
    touched = send(client, "GET", "/repos/alice/project/commits?path=1.txt", **as_carol).json()
    assert [c["commit"]["message"] for c in touched] == ["c1"]
    one = send(client, "GET", f"/repos/alice/project/git/commits/{rest[0]['sha']}", **as_carol).json()
    assert [p["sha"] for p in one["parents"]] == [rest[1]["sha"]]
    assert send(client, "GET", f"/repos/alice/project/git/commits/{'0' * 40}", **as_carol).status_code == 404


def test_an_empty_repository_has_no_commits_to_list(client, alice):
    repo_services.create_repository(actor=alice, owner=alice, name="blank")
    response = send(client, "GET", "/repos/alice/blank/commits", **token_for(alice))
    assert response.status_code == 409


def test_tags_are_listed_with_their_commits(client, private_repo, as_carol):
    sha = git.branch_sha(private_repo.path, "main")
    run = ["git", "--git-dir", str(private_repo.path), "-c", "user.name=T", "-c", "user.email=t@example.com"]
    subprocess.run([*run, "tag", "-a", "-m", "First release", "v1", sha], check=True)
    (tag,) = send(client, "GET", "/repos/alice/project/tags", **as_carol).json()
    assert (tag["name"], tag["message"].strip(), tag["commit"]["sha"]) == ("v1", "First release", sha)
    assert tag["id"] == git.ref_target(private_repo.path, "refs/tags/v1") != sha
    assert tag["zipball_url"].endswith("/alice/project/archive/v1.zip")


# Collaborators, topics, transfers.


def test_one_collaborator_is_checked_and_their_permission_read(client, private_repo, alice, as_bob, as_carol):
    assert send(client, "GET", "/repos/alice/project/collaborators/carol", **as_bob).status_code == 204
    assert send(client, "GET", "/repos/alice/project/collaborators/mallory", **as_bob).status_code == 404
    own = send(client, "GET", "/repos/alice/project/collaborators/carol/permission", **as_carol).json()
    assert (own["permission"], own["role_name"], own["user"]["login"]) == ("read", "read", "carol")
    assert send(client, "GET", "/repos/alice/project/collaborators/bob/permission", **as_carol).status_code == 403
    as_alice = token_for(alice)
    assert (
        send(client, "GET", "/repos/alice/project/collaborators/bob/permission", **as_alice).json()["permission"]
        == "write"
    )
    assert (
        send(client, "GET", "/repos/alice/project/collaborators/alice/permission", **as_alice).json()["permission"]
        == "owner"
    )


def test_topics_are_always_none(client, private_repo, as_carol):
    assert send(client, "GET", "/repos/alice/project/topics", **as_carol).json() == {"topics": []}


def test_a_repository_is_transferred_by_its_owner(client, private_repo, acme, alice, as_bob):
    assert send(client, "POST", "/repos/alice/project/transfer", {"new_owner": "acme"}, **as_bob).status_code == 403
    as_alice = token_for(alice)
    same = send(client, "POST", "/repos/alice/project/transfer", {"new_owner": "alice"}, **as_alice)
    assert same.status_code == 409
    teams = send(client, "POST", "/repos/alice/project/transfer", {"new_owner": "acme", "team_ids": [1]}, **as_alice)
    assert teams.status_code == 422 and "team_ids" in teams.json()["message"]
    moved = send(client, "POST", "/repos/alice/project/transfer", {"new_owner": "acme"}, **as_alice)
    assert moved.status_code == 202
    assert moved.json()["full_name"] == "acme/project"
    assert Repository.objects.get(pk=private_repo.pk).owner == acme


# Features the portal does not have.


def test_absent_features_answer_empty_lists_and_404s_that_say_so(client, private_repo, as_carol, mallory, bob):
    for path in ("issues", "labels", "milestones", "forks", "stargazers", "wiki/pages"):
        response = send(client, "GET", f"/repos/alice/project/{path}", **as_carol)
        assert (response.status_code, response.json(), response["X-Total-Count"]) == (200, [], "0"), path
        assert send(client, "GET", f"/repos/alice/project/{path}", **token_for(mallory)).status_code == 404
    made = send(client, "POST", "/repos/alice/project/issues", {"title": "Bug"}, **token_for(bob))
    assert made.status_code == 404
    assert made.json()["message"] == "The portal has no issues: it has pull requests."
    fork = send(client, "POST", "/repos/alice/project/forks", {}, **token_for(bob))
    assert (fork.status_code, "no forks" in fork.json()["message"]) == (404, True)
    star = send(client, "PUT", "/user/starred/alice/project", **token_for(bob, ("api", "write:user")))
    assert (star.status_code, "no stars" in star.json()["message"]) == (404, True)
