"""A team's everyday script, written with a real Gitea client library (py-gitea, unpatched) against the live portal.

The fixtures give what any step needs: `gitea_as(user)` (a client with that person's token), the team (alice owns the
organization acme, bob writes, carol reads, mallory is an outsider) and `service` (acme/service, private, seeded with
a README, a second commit and a tag). Steps that only the client's raw requests reach (tags, keys, branch protection,
and py-gitea 0.2.10 has no methods for pull requests, reviews or statuses) go through its own request methods, as a
script would.
"""

import base64
import json
import subprocess
from datetime import datetime

import pytest
from gitea import Branch, Gitea, NotFoundException, Organization, Repository
from gitea.exceptions import Unauthorized

from portal import services as accounts
from repos import git
from repos import services as repo_services
from repos.models import Role

SCOPES = ["api", "read:repo", "write:repo", "read:user", "write:user", "read:org", "write:org"]


@pytest.fixture
def portal_url(live_server, settings, monkeypatch):
    """The live portal, with git hooks and links pointing at it; the client reaches it without any proxy."""
    settings.PORTAL_INTERNAL_URL = live_server.url
    settings.PORTAL_BASE_URL = live_server.url
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    return live_server.url


@pytest.fixture
def gitea_as(portal_url):
    """A py-gitea client for a person, with a token of the scopes a team's script has (or those given)."""

    def client(user, scopes=SCOPES) -> Gitea:
        _, raw = accounts.create_access_token(
            user, actor=user, name=f"script-{len(scopes)}", scopes=scopes, expires_at=None
        )
        return Gitea(portal_url, token_text=raw)

    return client


@pytest.fixture
def acme(alice, bob, carol):
    """The organization acme: alice owns it, bob is in its team devs."""
    org = accounts.create_organization(actor=alice, name="acme", full_name="Acme")
    devs = accounts.create_team(org, actor=alice, name="devs", description="The developers")
    accounts.add_team_member(devs, bob, actor=alice)
    return org


@pytest.fixture
def service(acme, alice, bob, carol):
    """acme/service: private, bob writes (through devs) and carol reads; a README, a second commit and a tag v1."""
    repo = repo_services.create_repository(actor=alice, owner=acme, name="service", initialize=True)
    devs = acme.teams.get(name="devs")
    repo_services.set_team_role(repo, devs, actor=alice, role=Role.WRITE)
    repo_services.set_collaborator(repo, carol, actor=alice, role=Role.READ)
    second = git.commit_files(
        repo.path, "main", {"src/app.py": b"print('hello')\n"}, "Add the app", name="Bob", email="bob@example.com"
    )
    subprocess.run(["git", "--git-dir", str(repo.path), "tag", "v1", second], check=True, capture_output=True)
    return repo


def _json_error(gitea: Gitea, method: str, path: str, body: dict) -> tuple[int, str]:
    """What the portal answered to a refused write, through the client's own session and headers."""
    answer = gitea.requests.request(method, f"{gitea.url}/api/v1{path}", headers=gitea.headers, data=json.dumps(body))
    return answer.status_code, answer.json()["message"]


def _is_collaborator(gitea: Gitea, username: str) -> bool:
    """Gitea's answer is 204 or 404. py-gitea 0.2.10's is_collaborator() takes only 200 as success, so it says False
    to Gitea itself too: the script asks through the client's session instead."""
    url = f"{gitea.url}/api/v1/repos/acme/service/collaborators/{username}"
    status = gitea.requests.get(url, headers=gitea.headers).status_code
    assert status in (204, 404)
    return status == 204


def test_the_client_knows_the_server_and_who_it_is(gitea_as, alice):
    gitea = gitea_as(alice)
    assert gitea.get_version() == "1.22.1"
    me = gitea.get_user()
    assert (me.login, me.username, me.email) == ("alice", "alice", "alice@example.com")
    assert isinstance(me.avatar_url, str)


def test_lists_and_reads_repositories(gitea_as, bob, service):
    gitea = gitea_as(bob)
    acme = Organization.request(gitea, "acme")
    assert acme.username == "acme" and acme.full_name == "Acme"
    assert [repo.name for repo in acme.get_repositories()] == ["service"]
    repo = Repository.request(gitea, "acme", "service")
    assert repo.full_name == "acme/service"
    assert repo.private and not repo.fork and not repo.mirror and not repo.empty
    # The client parses Gitea's times: the portal's are in Gitea's format.
    assert isinstance(repo.updated_at, datetime)
    assert repo.permissions == {"admin": False, "push": True, "pull": True}
    assert repo.has_pull_requests and repo.allow_merge_commits and repo.default_merge_style == "merge"
    assert repo.clone_url.endswith("/acme/service.git")


def test_an_outsider_cannot_find_the_private_repository(gitea_as, mallory, service):
    gitea = gitea_as(mallory)
    with pytest.raises(NotFoundException):
        Repository.request(gitea, "acme", "service")
    assert Organization.request(gitea, "acme").get_repositories() == []


def test_creates_a_repository_in_the_organization(gitea_as, alice, acme):
    gitea = gitea_as(alice)
    org = Organization.request(gitea, "acme")
    org.create_repo("tool", description="A tool", private=True, autoInit=True, default_branch="main")
    repo = Repository.request(gitea, "acme", "tool")
    assert (repo.description, repo.default_branch, repo.empty) == ("A tool", "main", False)
    assert [b.name for b in repo.get_branches()] == ["main"]
    assert [o.username for o in gitea.get_user().get_orgs()] == ["acme"]
    assert [o.username for o in gitea.get_orgs()] == ["acme"]
    # And one of her own, listed among her repositories.
    me = gitea.get_user()
    me.create_repo("notes", autoInit=False)
    assert [repo.full_name for repo in me.get_repositories()] == ["alice/notes"]
    assert Repository.request(gitea, "alice", "notes").empty


def test_reads_and_creates_branches(gitea_as, bob, service):
    gitea = gitea_as(bob)
    repo = Repository.request(gitea, "acme", "service")
    (main,) = repo.get_branches()
    assert main.name == "main" and main.user_can_push and not main.protected
    feature = repo.add_branch(main, "feature")
    assert feature.name == "feature"
    assert feature.commit["id"] == main.commit["id"] == git.branch_sha(service.path, "feature")
    one = Branch.parse_response(gitea, gitea.requests_get("/repos/acme/service/branches/feature"))
    assert one.commit["id"] == main.commit["id"]


def test_reads_a_files_contents_and_creates_one(gitea_as, bob, service):
    gitea = gitea_as(bob)
    repo = Repository.request(gitea, "acme", "service")
    top = {content.name: content for content in repo.get_git_content()}
    assert {"README.md": "file", "src": "dir"} == {name: c.type for name, c in top.items()}
    readme = base64.b64decode(repo.get_file_content(top["README.md"]))
    assert readme.startswith(b"# service")
    assert [c.path for c in repo.get_file_content(top["src"])] == ["src/app.py"]
    made = repo.create_file("docs/notes.md", base64.b64encode(b"notes\n").decode(), {"message": "Add notes"})
    assert made["content"]["path"] == "docs/notes.md"
    assert git.branch_sha(service.path, "main") == made["commit"]["sha"]
    assert gitea.requests_get_raw("/repos/acme/service/raw/docs/notes.md") == "notes\n"


def test_lists_commits_and_tags(gitea_as, carol, service):
    gitea = gitea_as(carol)
    repo = Repository.request(gitea, "acme", "service")
    commits = repo.get_commits()
    assert [c.inner_commit["message"].strip() for c in commits] == ["Add the app", "Initial commit"]
    assert commits[0].sha == git.branch_sha(service.path, "main")
    (tag,) = gitea.requests_get("/repos/acme/service/tags")
    assert (tag["name"], tag["commit"]["sha"]) == ("v1", commits[0].sha)
    one = gitea.requests_get(f"/repos/acme/service/git/commits/{commits[1].sha}")
    assert one["parents"] == []


def test_protects_a_branch_and_the_rules_answer(gitea_as, alice, bob, service):
    admin, writer = gitea_as(alice), gitea_as(bob)
    rule = {"rule_name": "main", "required_approvals": 1, "enable_status_check": True, "status_check_contexts": ["ci"]}
    admin.requests_post("/repos/acme/service/branch_protections", data=rule)
    main = Branch.parse_response(writer, writer.requests_get("/repos/acme/service/branches/main"))
    assert main.protected and main.effective_branch_protection_name == "main"
    assert (main.required_approvals, main.enable_status_check, main.status_check_contexts) == (1, True, ["ci"])
    assert not main.user_can_push and main.user_can_merge
    repo = Repository.request(writer, "acme", "service")
    with pytest.raises(Unauthorized):
        repo.create_file("direct.md", base64.b64encode(b"x\n").decode())
    status, message = _json_error(
        writer, "POST", "/repos/acme/service/contents/direct.md", {"content": base64.b64encode(b"x\n").decode()}
    )
    assert status == 403 and "branch protection 'main'" in message
    # Through a branch of its own, the same file goes in.
    repo.create_file("direct.md", base64.b64encode(b"x\n").decode(), {"new_branch": "direct"})
    assert git.entry(service.path, git.branch_sha(service.path, "direct"), "direct.md").kind == "blob"


def test_manages_keys_and_collaborators(gitea_as, alice, carol, service, tmp_path):
    admin = gitea_as(alice)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "key")], check=True)
    public = (tmp_path / "key.pub").read_text().strip()
    added = admin.requests_post("/user/keys", data={"key": public, "title": "laptop", "read_only": False})
    assert [key["title"] for key in admin.requests_get("/user/keys")] == ["laptop"]
    admin.requests_delete(f"/user/keys/{added['id']}")
    # The client reads an empty list ("[]") as an empty dict.
    assert not admin.requests_get("/user/keys")
    deploy = admin.requests_post("/repos/acme/service/keys", data={"key": public, "title": "ci", "read_only": True})
    assert deploy["read_only"]

    repo = Repository.request(admin, "acme", "service")
    assert _is_collaborator(admin, "carol")
    assert repo.get_user_permission("carol").permission == "read"
    admin.requests_put("/repos/acme/service/collaborators/carol", data={"permission": "write"})
    assert repo.get_user_permission("carol").permission == "write"
    repo.remove_collaborator("carol")
    assert not _is_collaborator(admin, "carol")
    with pytest.raises(NotFoundException):
        Repository.request(gitea_as(carol), "acme", "service")


def test_opens_reviews_checks_and_merges_a_pull_request(gitea_as, alice, bob, carol, service):
    """The review half of the script: main protected (one approval, the check ci/build), bob's branch and pull
    request, alice's review, CI's status, and the merge, without head_commit_id, of the head alice approved."""
    admin, writer, reader = gitea_as(alice), gitea_as(bob), gitea_as(carol)
    base = "/repos/acme/service"
    rule = {
        "rule_name": "main",
        "required_approvals": 1,
        "enable_status_check": True,
        "status_check_contexts": ["ci/build"],
    }
    assert admin.requests_post(f"{base}/branch_protections", data=rule)["required_approvals"] == 1

    repo = Repository.request(writer, "acme", "service")
    (main,) = repo.get_branches()
    repo.add_branch(main, "feature")
    repo.create_file("NOTES.md", base64.b64encode(b"notes\n").decode(), {"message": "Add notes", "branch": "feature"})
    opened = writer.requests_post(
        f"{base}/pulls", data={"title": "Add notes", "head": "feature", "base": "main", "body": "Notes."}
    )
    number, head = opened["number"], opened["head"]["sha"]
    assert head == git.branch_sha(service.path, "feature")
    assert (opened["state"], opened["head"]["repo"]["full_name"], opened["mergeable"]) == ("open", "acme/service", True)
    assert [pull["number"] for pull in reader.requests_get_paginated(f"{base}/pulls", {"state": "open"})] == [number]

    # What a reviewer reads: the pull request, its diff and patch (the client's raw text), files and commits.
    pull = reader.requests_get(f"{base}/pulls/{number}")
    assert (pull["title"], pull["additions"], pull["changed_files"]) == ("Add notes", 1, 1)
    assert pull["base"]["repo"]["permissions"] == {"admin": False, "push": False, "pull": True}
    assert reader.requests_get_raw(f"{base}/pulls/{number}.diff").startswith("diff --git a/NOTES.md b/NOTES.md")
    assert reader.requests_get_raw(f"{base}/pulls/{number}.patch").startswith(f"From {head}")
    assert [changed["filename"] for changed in reader.requests_get(f"{base}/pulls/{number}/files")] == ["NOTES.md"]
    assert [commit["sha"] for commit in reader.requests_get(f"{base}/pulls/{number}/commits")] == [head]

    # Not mergeable yet: no approval, no check.
    status, message = _json_error(admin, "POST", f"{base}/pulls/{number}/merge", {"Do": "merge"})
    assert status == 405 and "approval" in message.lower(), message

    review = admin.requests_post(
        f"{base}/pulls/{number}/reviews", data={"event": "APPROVE", "body": "Fine.", "commit_id": head}
    )
    assert (review["state"], review["commit_id"]) == ("APPROVED", head)
    assert [(r["user"]["login"], r["state"]) for r in reader.requests_get(f"{base}/pulls/{number}/reviews")] == [
        ("alice", "APPROVED")
    ]

    posted = writer.requests_post(
        f"{base}/statuses/{head}",
        data={"state": "success", "context": "ci/build", "target_url": "https://ci.example.com/1", "description": "ok"},
    )
    assert (posted["status"], posted["state"], posted["context"]) == ("success", "success", "ci/build")
    combined = reader.requests_get(f"{base}/commits/{head}/status")
    assert (combined["state"], combined["total_count"], combined["repository"]["full_name"]) == (
        "success",
        1,
        "acme/service",
    )
    assert [s["status"] for s in reader.requests_get(f"{base}/commits/feature/statuses")] == ["success"]

    # Merged as Gitea's clients ask, without head_commit_id: the head alice approved.
    writer.requests_post(f"{base}/pulls/{number}/merge", data={"Do": "merge", "delete_branch_after_merge": True})
    merged = reader.requests_get(f"{base}/pulls/{number}")
    assert merged["merged"] and merged["merge_commit_sha"] == git.branch_sha(service.path, "main")
    assert [branch["name"] for branch in reader.requests_get(f"{base}/branches")] == ["main"]
