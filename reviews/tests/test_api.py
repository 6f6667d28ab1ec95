"""The pull request API: real branches and commits on disk, real tokens, the base branch read back after merges."""

from urllib.parse import urlsplit

import pytest

from portal import services as accounts
from portal.models import AuditEvent
from repos import git
from repos import services as repo_services
from repos.tests.api_client import API, REPO_SCOPES, send, token_for
from reviews import services
from reviews.models import ApprovalRule, BranchProtection, Comment, CommitStatus, PullRequest, Review

PROJECT = "/repos/alice/project"
NOTES = b"one\ntwo\nthree\nfour\n"


def start_branch(repo, name: str, files: dict[str, bytes], message: str = "Add notes") -> str:
    """A branch off main with one commit (by bob) writing files; returns its head."""
    git.update_ref(repo.path, f"refs/heads/{name}", git.branch_sha(repo.path, "main"), git.ZERO_SHA)
    return git.commit_files(repo.path, name, files, message, name="Bob", email="bob@example.com")


@pytest.fixture
def feature(private_repo) -> str:
    """alice/project's branch feature: notes.txt added and the README changed; returns its head."""
    start_branch(private_repo, "feature", {"notes.txt": NOTES})
    return git.commit_files(
        private_repo.path,
        "feature",
        {"README.md": b"# project\n\nNow with notes.\n"},
        "Mention notes",
        name="Bob",
        email="bob@example.com",
    )


@pytest.fixture
def pull(client, feature, as_alice) -> dict:
    """alice's open pull request #1 from feature into main."""
    response = send(
        client, "POST", f"{PROJECT}/pulls", {"title": "Add notes", "head": "feature", "base": "main"}, **as_alice
    )
    assert response.status_code == 201, response.json()
    return response.json()


def merge(client, headers, head: str | None, do: str = "merge", **extra):
    body = {"Do": do, **({"head_commit_id": head} if head else {}), **extra}
    return send(client, "POST", f"{PROJECT}/pulls/1/merge", body, **headers)


def approve(client, headers, head: str, event: str = "APPROVE", **extra):
    return send(client, "POST", f"{PROJECT}/pulls/1/reviews", {"event": event, "commit_id": head, **extra}, **headers)


# Opening, reading and editing.


def test_a_writer_opens_a_pull_request_with_reviewers(client, private_repo, feature, bob, as_bob):
    main = git.branch_sha(private_repo.path, "main")
    response = send(
        client,
        "POST",
        f"{PROJECT}/pulls",
        {"title": "Add notes", "body": "Notes file.", "head": "feature", "base": "main", "reviewers": ["carol"]},
        **as_bob,
    )
    assert response.status_code == 201
    body = response.json()
    assert (body["number"], body["title"], body["body"], body["state"]) == (1, "Add notes", "Notes file.", "open")
    assert (body["draft"], body["merged"], body["mergeable"], body["merge_commit_sha"]) == (False, False, True, None)
    assert body["user"]["login"] == "bob"
    head = {key: value for key, value in body["head"].items() if key != "repo"}
    assert head == {"label": "feature", "ref": "feature", "sha": feature, "repo_id": private_repo.pk}
    # The repository as bob sees it: he may push, not administer.
    assert (body["head"]["repo"]["full_name"], body["base"]["repo"]["id"]) == ("alice/project", private_repo.pk)
    assert body["head"]["repo"]["permissions"] == {"admin": False, "push": True, "pull": True}
    assert body["base"]["sha"] == main and body["merge_base"] == main
    assert [u["login"] for u in body["requested_reviewers"]] == ["carol"]
    assert [p["number"] for p in client.get(f"{API}{PROJECT}/pulls?reviewer=carol", **as_bob).json()] == [1]
    assert client.get(f"{API}{PROJECT}/pulls?reviewer=alice", **as_bob).json() == []
    assert body["html_url"].endswith("/alice/project/pulls/1")
    assert body["url"].endswith("/api/v1/repos/alice/project/pulls/1")
    pr = PullRequest.objects.get()
    assert (pr.author, pr.head_sha, pr.revisions.count()) == (bob, feature, 1)
    assert AuditEvent.objects.filter(action="pull_request.open", actor=bob).exists()


def test_opening_refuses_a_missing_branch_and_a_read_only_token(client, private_repo, feature, alice, as_alice):
    missing = send(client, "POST", f"{PROJECT}/pulls", {"title": "x", "head": "nope", "base": "main"}, **as_alice)
    assert missing.status_code == 400
    assert "nope" in missing.json()["message"]
    read_only = token_for(alice, scopes=("api", "read:repo"))
    refused = send(client, "POST", f"{PROJECT}/pulls", {"title": "x", "head": "feature", "base": "main"}, **read_only)
    assert refused.status_code == 403
    assert "write:repo" in refused.json()["message"]
    assert not PullRequest.objects.exists()


def test_readers_list_and_get_pull_requests_and_outsiders_see_nothing(client, pull, as_carol, as_mallory):
    listed = client.get(f"{API}{PROJECT}/pulls", **as_carol)
    assert [p["number"] for p in listed.json()] == [1]
    assert listed["X-Total-Count"] == "1"
    assert client.get(f"{API}{PROJECT}/pulls?poster=alice", **as_carol).json()[0]["number"] == 1
    assert client.get(f"{API}{PROJECT}/pulls?poster=bob", **as_carol).json() == []
    assert client.get(f"{API}{PROJECT}/pulls?state=closed", **as_carol).json() == []
    got = client.get(f"{API}{PROJECT}/pulls/1", **as_carol).json()
    assert got["title"] == "Add notes"
    # Reading is not merging: the reader is told why they could not.
    assert got["merge_blocker"] == "carol may not merge into main."
    assert client.get(f"{API}{PROJECT}/pulls/2", **as_carol).status_code == 404
    for path in ("/pulls", "/pulls/1", "/pulls/1/files", "/pulls/1/commits", "/pulls/1/reviews", "/pulls/1/merge"):
        response = client.get(f"{API}{PROJECT}{path}", **as_mallory)
        assert response.status_code == 404, path
        assert response.json()["message"] == "Repository not found"


def test_the_author_edits_closes_and_reopens(client, private_repo, pull, as_alice):
    response = send(
        client, "PATCH", f"{PROJECT}/pulls/1", {"title": "Add the notes", "body": "b", "draft": True}, **as_alice
    )
    assert response.status_code == 200
    assert (response.json()["title"], response.json()["body"], response.json()["draft"]) == ("Add the notes", "b", True)
    closed = send(client, "PATCH", f"{PROJECT}/pulls/1", {"state": "closed"}, **as_alice).json()
    assert (closed["state"], closed["merged"], closed["mergeable"]) == ("closed", False, False)
    assert closed["closed_at"] is not None
    assert [p["number"] for p in client.get(f"{API}{PROJECT}/pulls?state=closed", **as_alice).json()] == [1]
    reopened = send(client, "PATCH", f"{PROJECT}/pulls/1", {"state": "open", "draft": False}, **as_alice).json()
    assert (reopened["state"], reopened["draft"]) == ("open", False)
    pr = PullRequest.objects.get()
    assert (pr.title, pr.description, pr.state, pr.draft) == ("Add the notes", "b", "open", False)
    assert list(pr.events.values_list("kind", flat=True)) == [
        "opened",
        "renamed",
        "draft",
        "closed",
        "reopened",
        "ready",
    ]


def test_a_reader_who_did_not_open_it_cannot_edit_or_close_it(client, pull, as_carol):
    response = send(client, "PATCH", f"{PROJECT}/pulls/1", {"state": "closed", "title": "mine"}, **as_carol)
    assert response.status_code == 403
    pr = PullRequest.objects.get()
    assert (pr.state, pr.title) == ("open", "Add notes")


def test_files_and_commits_list_what_the_branch_changes(client, private_repo, pull, feature, carol, as_carol):
    files = client.get(f"{API}{PROJECT}/pulls/1/files", **as_carol)
    assert files["X-Total-Count"] == "2"
    assert [
        (f["filename"], f["status"], f["additions"], f["deletions"], f["changes"], f["previous_filename"])
        for f in files.json()
    ] == [("README.md", "modified", 1, 1, 2, None), ("notes.txt", "added", 4, 0, 4, None)]
    second = client.get(f"{API}{PROJECT}/pulls/1/files?page=2&limit=1", **as_carol).json()
    assert [f["filename"] for f in second] == ["notes.txt"]
    assert second[0]["contents_url"].endswith(f"/api/v1/repos/alice/project/contents/notes.txt?ref={feature}")
    client.force_login(carol)
    raw = client.get(urlsplit(second[0]["raw_url"]).path)
    assert (raw.status_code, b"".join(raw.streaming_content) if raw.streaming else raw.content) == (200, NOTES)
    commits = client.get(f"{API}{PROJECT}/pulls/1/commits", **as_carol).json()
    assert [c["commit"]["message"].strip() for c in commits] == ["Add notes", "Mention notes"]
    assert commits[1]["sha"] == feature
    assert commits[0]["commit"]["author"]["email"] == "bob@example.com"
    assert commits[1]["parents"] == [{"sha": commits[0]["sha"]}]


# Reviews and inline comments.


def test_a_writer_approves_the_head_they_saw(client, pull, feature, bob, as_bob):
    response = approve(client, as_bob, feature, body="Looks right.")
    assert response.status_code == 200
    body = response.json()
    assert (body["state"], body["commit_id"], body["stale"], body["dismissed"]) == ("APPROVED", feature, False, False)
    assert (body["user"]["login"], body["body"]) == ("bob", "Looks right.")
    review = Review.objects.get()
    assert (review.author, review.state, review.commit_sha) == (bob, Review.State.APPROVED, feature)
    listed = client.get(f"{API}{PROJECT}/pulls/1/reviews", **as_bob).json()
    assert [(r["id"], r["state"]) for r in listed] == [(review.pk, "APPROVED")]
    assert client.get(f"{API}{PROJECT}/pulls/1/reviews/{review.pk}", **as_bob).json()["commit_id"] == feature


def test_the_author_cannot_approve_their_own_pull_request(client, pull, feature, as_alice):
    response = approve(client, as_alice, feature)
    assert response.status_code == 403
    assert response.json()["message"] == "You cannot approve your own pull request."
    assert not Review.objects.exclude(state=Review.State.PENDING).exists()


def test_an_approval_of_an_older_head_turns_stale_after_a_push(client, private_repo, pull, feature, bob, as_bob):
    approve(client, as_bob, feature)
    new_head = git.commit_files(private_repo.path, "feature", {"more.txt": b"x\n"}, "More", name="Bob", email="b@x")
    services.record_branch_update(
        private_repo, ref="refs/heads/feature", old_sha=feature, new_sha=new_head, forced=False, pusher=bob
    )
    review = client.get(f"{API}{PROJECT}/pulls/1/reviews", **as_bob).json()[0]
    assert (review["commit_id"], review["stale"], review["dismissed"]) == (feature, True, True)
    assert client.get(f"{API}{PROJECT}/pulls/1", **as_bob).json()["head"]["sha"] == new_head


def test_a_review_with_inline_comments_places_them_on_their_lines(client, pull, feature, as_bob, as_carol):
    merge_base = pull["merge_base"]
    comments = [
        {"path": "notes.txt", "line": 2, "body": "Why two?"},
        {"path": "notes.txt", "new_position": 4, "body": "Gitea style."},
        {"path": "notes.txt", "start_line": 1, "line": 3, "side": "RIGHT", "body": "A range."},
        {"path": "README.md", "line": 1, "side": "LEFT", "body": "The old title."},
    ]
    response = approve(client, as_bob, feature, event="COMMENT", body="Some notes.", comments=comments)
    assert response.status_code == 200
    assert (response.json()["state"], response.json()["comments_count"]) == ("COMMENT", 4)
    listed = client.get(f"{API}{PROJECT}/pulls/1/comments", **as_carol).json()
    assert [(c["path"], c["side"], c["start_line"], c["line"], c["commit_id"], c["body"]) for c in listed] == [
        ("notes.txt", "RIGHT", None, 2, feature, "Why two?"),
        ("notes.txt", "RIGHT", None, 4, feature, "Gitea style."),
        ("notes.txt", "RIGHT", 1, 3, feature, "A range."),
        ("README.md", "LEFT", None, 1, merge_base, "The old title."),
    ]
    assert listed[0]["original_commit_id"] == feature and listed[0]["position"] == 2
    assert listed[3]["original_position"] == 1 and listed[3]["position"] == 0
    assert {c["pull_request_review_id"] for c in listed} == {response.json()["id"]}
    assert not any(c["outdated"] or c["resolved"] for c in listed)
    assert Comment.objects.filter(path="notes.txt", line=2, side="RIGHT").count() == 1


def test_pending_comments_are_seen_only_by_their_author(client, pull, feature, carol, as_bob, as_carol):
    pr = PullRequest.objects.get()
    services.add_comment(pr, actor=carol, body="Draft", path="notes.txt", line=1, pending=True)
    mine = client.get(f"{API}{PROJECT}/pulls/1/comments", **as_carol).json()
    assert [(c["body"], c["line"]) for c in mine] == [("Draft", 1)]
    assert [r["state"] for r in client.get(f"{API}{PROJECT}/pulls/1/reviews", **as_carol).json()] == ["PENDING"]
    assert client.get(f"{API}{PROJECT}/pulls/1/comments", **as_bob).json() == []
    assert client.get(f"{API}{PROJECT}/pulls/1/reviews", **as_bob).json() == []


def test_a_comment_on_a_line_outside_the_file_refuses_the_whole_review(client, pull, feature, as_bob):
    comments = [{"path": "notes.txt", "line": 2, "body": "fine"}, {"path": "notes.txt", "line": 99, "body": "no"}]
    response = approve(client, as_bob, feature, comments=comments)
    assert response.status_code == 400
    assert "Line 99" in response.json()["message"]
    assert not Comment.objects.exists()
    assert not Review.objects.exists()


# Merging.


def test_merged_is_404_before_and_204_after_a_merge(client, private_repo, pull, feature, as_alice, as_carol):
    assert client.get(f"{API}{PROJECT}/pulls/1/merge", **as_carol).status_code == 404
    main = git.branch_sha(private_repo.path, "main")
    response = merge(client, as_alice, feature)
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["state"], body["merged"], body["merged_by"]["login"], body["merge_style"]) == (
        "closed",
        True,
        "alice",
        "merge",
    )
    merged = git.branch_sha(private_repo.path, "main")
    assert body["merge_commit_sha"] == merged
    assert git.commit(private_repo.path, merged).parents == (main, feature)
    assert git.commit(private_repo.path, merged).summary == "Merge pull request #1 from feature"
    assert client.get(f"{API}{PROJECT}/pulls/1/merge", **as_carol).status_code == 204


def test_a_merge_of_a_head_that_moved_is_a_conflict_and_main_stays(
    client, private_repo, pull, feature, alice, as_alice
):
    main = git.branch_sha(private_repo.path, "main")
    pushed = git.commit_files(private_repo.path, "feature", {"late.txt": b"late\n"}, "Late", name="Bob", email="b@x")
    services.record_branch_update(
        private_repo, ref="refs/heads/feature", old_sha=feature, new_sha=pushed, forced=False, pusher=alice
    )
    response = merge(client, as_alice, feature)
    assert response.status_code == 409
    assert "changed since you looked" in response.json()["message"]
    assert git.branch_sha(private_repo.path, "main") == main
    assert PullRequest.objects.get().state == "open"


def test_a_squash_merge_writes_one_commit_with_the_given_message(client, private_repo, pull, feature, as_alice):
    main = git.branch_sha(private_repo.path, "main")
    response = merge(
        client, as_alice, feature, do="squash", MergeTitleField="Add notes (#1)", MergeMessageField="Squashed."
    )
    assert response.status_code == 200, response.json()
    squashed = git.commit(private_repo.path, git.branch_sha(private_repo.path, "main"))
    assert squashed.parents == (main,)
    assert squashed.message == "Add notes (#1)\n\nSquashed.\n"
    assert squashed.author.email == "alice@example.com"
    assert (
        git.entry(private_repo.path, squashed.sha, "notes.txt").sha
        == git.entry(private_repo.path, feature, "notes.txt").sha
    )
    assert response.json()["merge_commit_sha"] == squashed.sha


def test_a_merge_that_deletes_the_branch(client, private_repo, pull, feature, as_alice):
    response = merge(client, as_alice, feature, do="fast-forward-only", delete_branch_after_merge=True)
    assert response.status_code == 200, response.json()
    assert git.branch_sha(private_repo.path, "main") == feature
    assert [b.name for b in git.branches(private_repo.path)] == ["main"]


def test_a_protection_that_keeps_the_head_branch_does_not_undo_the_merge(
    client, private_repo, alice, pull, feature, as_alice
):
    services.save_branch_protection(None, actor=alice, repository=private_repo, branch_pattern="feature")
    response = merge(client, as_alice, feature, delete_branch_after_merge=True)
    assert response.status_code == 200, response.json()
    assert response.json()["merged"] is True
    assert git.branch_sha(private_repo.path, "feature") == feature
    assert git.is_ancestor(private_repo.path, feature, git.branch_sha(private_repo.path, "main"))


def test_a_reader_cannot_merge(client, private_repo, pull, feature, as_carol):
    response = merge(client, as_carol, feature)
    assert response.status_code == 403
    assert PullRequest.objects.get().state == "open"


def test_conflicts_refuse_the_merge_with_the_files(client, private_repo, pull, feature, as_alice):
    git.commit_files(private_repo.path, "main", {"README.md": b"# other\n"}, "Retitle", name="A", email="a@x")
    main = git.branch_sha(private_repo.path, "main")
    assert client.get(f"{API}{PROJECT}/pulls/1", **as_alice).json()["mergeable"] is False
    response = merge(client, as_alice, feature)
    assert response.status_code == 405
    assert response.json()["message"] == "Conflicts in README.md must be resolved first."
    assert git.branch_sha(private_repo.path, "main") == main


# Commit statuses.


def test_a_writer_reports_statuses_and_the_combined_state_follows(client, private_repo, feature, bob, as_bob, as_carol):
    statuses = f"{PROJECT}/statuses/{feature}"
    assert client.get(f"{API}{PROJECT}/commits/feature/status", **as_carol).json()["state"] == "pending"
    created = send(
        client,
        "POST",
        statuses,
        {"state": "success", "context": "ci/build", "target_url": "https://ci.example.com/1", "description": "ok"},
        **as_bob,
    )
    assert created.status_code == 201
    assert (created.json()["state"], created.json()["context"], created.json()["creator"]["login"]) == (
        "success",
        "ci/build",
        "bob",
    )
    combined = client.get(f"{API}{PROJECT}/commits/feature/status", **as_carol).json()
    assert (combined["state"], combined["sha"], combined["total_count"]) == ("success", feature, 1)
    send(client, "POST", statuses, {"state": "pending", "context": "ci/lint"}, **as_bob)
    assert client.get(f"{API}{PROJECT}/commits/{feature}/status", **as_carol).json()["state"] == "pending"
    send(client, "POST", statuses, {"state": "error", "context": "ci/lint"}, **as_bob)
    assert client.get(f"{API}{PROJECT}/commits/feature/status", **as_carol).json()["state"] == "failure"
    listed = client.get(f"{API}{statuses}", **as_carol).json()
    assert [(s["context"], s["state"]) for s in listed] == [("ci/build", "success"), ("ci/lint", "error")]
    assert CommitStatus.objects.get(context="ci/lint").creator == bob


def test_statuses_need_write_access_and_a_known_commit(client, private_repo, feature, as_carol, as_bob, as_mallory):
    body = {"state": "success", "context": "ci"}
    refused = send(client, "POST", f"{PROJECT}/statuses/{feature}", body, **as_carol)
    assert refused.status_code == 403
    assert send(client, "POST", f"{PROJECT}/statuses/{feature}", body, **as_mallory).status_code == 404
    assert send(client, "POST", f"{PROJECT}/statuses/{'1' * 40}", body, **as_bob).status_code == 404
    invalid = send(client, "POST", f"{PROJECT}/statuses/{feature}", {"state": "great"}, **as_bob)
    assert invalid.status_code == 422
    assert not CommitStatus.objects.exists()


def test_a_status_posted_on_a_short_sha_is_kept_on_the_full_one(client, private_repo, feature, as_bob):
    response = send(client, "POST", f"{PROJECT}/statuses/{feature[:12]}", {"state": "success"}, **as_bob)
    assert response.status_code == 201
    assert CommitStatus.objects.get().sha == feature
    assert client.get(f"{API}{PROJECT}/commits/{feature}/status", **as_bob).json()["state"] == "success"
    refused = send(client, "POST", f"{PROJECT}/statuses/feature", {"state": "success"}, **as_bob)
    assert refused.status_code == 404
    assert CommitStatus.objects.count() == 1


def test_a_required_check_blocks_the_merge_until_it_succeeds(client, private_repo, pull, feature, as_alice, as_bob):
    protection = {"rule_name": "main", "enable_status_check": True, "status_check_contexts": ["ci/build"]}
    assert send(client, "POST", f"{PROJECT}/branch_protections", protection, **as_alice).status_code == 201
    main = git.branch_sha(private_repo.path, "main")
    refused = merge(client, as_alice, feature)
    assert refused.status_code == 405
    assert refused.json()["message"] == f"Required check 'ci/build' has not reported on {feature[:10]}."
    send(client, "POST", f"{PROJECT}/statuses/{feature}", {"state": "pending", "context": "ci/build"}, **as_bob)
    assert merge(client, as_alice, feature).json()["message"] == "Required check 'ci/build' is pending."
    assert git.branch_sha(private_repo.path, "main") == main
    send(client, "POST", f"{PROJECT}/statuses/{feature}", {"state": "success", "context": "ci/build"}, **as_bob)
    assert merge(client, as_alice, feature).status_code == 200
    assert git.is_ancestor(private_repo.path, feature, git.branch_sha(private_repo.path, "main"))


# Branch protection.


def test_the_admin_manages_branch_protections_with_gitea_fields(client, private_repo, bob, as_alice):
    created = send(
        client,
        "POST",
        f"{PROJECT}/branch_protections",
        {
            "rule_name": "release/*",
            "enable_push": True,
            "enable_push_whitelist": True,
            "push_whitelist_usernames": ["bob"],
            "enable_status_check": True,
            "status_check_contexts": ["ci/build"],
            "block_on_outdated_branch": True,
        },
        **as_alice,
    )
    assert created.status_code == 201
    body = created.json()
    assert (body["rule_name"], body["enable_push"], body["require_pull_request"]) == ("release/*", True, False)
    assert (body["push_whitelist_usernames"], body["status_check_contexts"]) == (["bob"], ["ci/build"])
    assert (body["block_on_outdated_branch"], body["block_force_push"], body["block_deletion"]) == (True, True, True)
    protection = BranchProtection.objects.get()
    assert (protection.require_pull_request, protection.require_up_to_date) == (False, True)
    assert list(protection.push_users.all()) == [bob]
    got = client.get(f"{API}{PROJECT}/branch_protections/release/*", **as_alice)
    assert got.status_code == 200 and got.json()["rule_name"] == "release/*"
    changed = send(client, "PATCH", f"{PROJECT}/branch_protections/release/*", {"block_deletion": False}, **as_alice)
    assert changed.status_code == 200
    # What the change left out stays as it was.
    assert (changed.json()["block_deletion"], changed.json()["push_whitelist_usernames"]) == (False, ["bob"])
    assert changed.json()["status_check_contexts"] == ["ci/build"]
    cleared = send(
        client, "PATCH", f"{PROJECT}/branch_protections/release/*", {"enable_push_whitelist": False}, **as_alice
    )
    assert cleared.json()["push_whitelist_usernames"] == [] and cleared.json()["enable_push_whitelist"] is False
    assert [p["rule_name"] for p in client.get(f"{API}{PROJECT}/branch_protections", **as_alice).json()] == [
        "release/*"
    ]
    assert send(client, "DELETE", f"{PROJECT}/branch_protections/release/*", **as_alice).status_code == 204
    assert not BranchProtection.objects.exists()
    assert client.get(f"{API}{PROJECT}/branch_protections/release/*", **as_alice).status_code == 404


def test_branch_protections_are_for_admins_only(client, private_repo, alice, as_bob, as_carol, as_mallory):
    services.save_branch_protection(None, actor=alice, repository=private_repo, branch_pattern="main")
    body = {"rule_name": "dev"}
    for headers in (as_bob, as_carol):
        assert send(client, "POST", f"{PROJECT}/branch_protections", body, **headers).status_code == 403
        assert client.get(f"{API}{PROJECT}/branch_protections", **headers).status_code == 403
        assert send(client, "DELETE", f"{PROJECT}/branch_protections/main", **headers).status_code == 403
    assert send(client, "POST", f"{PROJECT}/branch_protections", body, **as_mallory).status_code == 404
    assert client.get(f"{API}{PROJECT}/branch_protections/main", **as_mallory).status_code == 404
    read_only = token_for(alice, scopes=("api", "read:repo"))
    assert send(client, "POST", f"{PROJECT}/branch_protections", body, **read_only).status_code == 403
    assert list(BranchProtection.objects.values_list("branch_pattern", flat=True)) == ["main"]


def test_a_protection_refuses_contradicting_fields_and_unknown_people(client, private_repo, as_alice):
    contradiction = {"rule_name": "main", "enable_push": True, "require_pull_request": True}
    response = send(client, "POST", f"{PROJECT}/branch_protections", contradiction, **as_alice)
    assert response.status_code == 400
    unknown = {"rule_name": "main", "merge_whitelist_usernames": ["nobody"]}
    response = send(client, "POST", f"{PROJECT}/branch_protections", unknown, **as_alice)
    assert response.status_code == 400
    assert "nobody" in response.json()["message"]
    assert not BranchProtection.objects.exists()


# Approval rules.


def test_the_admin_manages_approval_rules(client, private_repo, carol, as_alice):
    created = send(
        client,
        "POST",
        f"{PROJECT}/approval_rules",
        {"name": "Docs team", "branch_pattern": "main", "required_approvals": 1, "users": ["carol"]},
        **as_alice,
    )
    assert created.status_code == 201
    body = created.json()
    assert (body["name"], body["branch_pattern"], body["required_approvals"], body["users"]) == (
        "Docs team",
        "main",
        1,
        ["carol"],
    )
    assert (body["teams"], body["exclude_committers"], body["dismissal"]) == ([], False, "new_code")
    rule = ApprovalRule.objects.get()
    assert (rule.repository, list(rule.users.all())) == (private_repo, [carol])
    changed = send(
        client,
        "PATCH",
        f"{PROJECT}/approval_rules/{rule.pk}",
        {"required_approvals": 2, "dismissal": "always"},
        **as_alice,
    )
    assert changed.status_code == 200
    assert (changed.json()["required_approvals"], changed.json()["dismissal"], changed.json()["users"]) == (
        2,
        "always",
        ["carol"],
    )
    assert [r["id"] for r in client.get(f"{API}{PROJECT}/approval_rules", **as_alice).json()] == [rule.pk]
    assert client.get(f"{API}{PROJECT}/approval_rules/{rule.pk}", **as_alice).json()["required_approvals"] == 2
    invalid = send(client, "PATCH", f"{PROJECT}/approval_rules/{rule.pk}", {"required_approvals": 0}, **as_alice)
    assert invalid.status_code == 400
    assert send(client, "DELETE", f"{PROJECT}/approval_rules/{rule.pk}", **as_alice).status_code == 204
    assert not ApprovalRule.objects.exists()


def test_approval_rules_are_for_admins_only(client, private_repo, alice, as_bob, as_mallory):
    rule = services.save_approval_rule(None, actor=alice, repository=private_repo, name="Two")
    refused = send(client, "POST", f"{PROJECT}/approval_rules", {"name": "Mine"}, **as_bob)
    assert refused.status_code == 403
    assert client.get(f"{API}{PROJECT}/approval_rules", **as_bob).status_code == 403
    assert send(client, "PATCH", f"{PROJECT}/approval_rules/{rule.pk}", {"name": "x"}, **as_bob).status_code == 403
    assert send(client, "POST", f"{PROJECT}/approval_rules", {"name": "Mine"}, **as_mallory).status_code == 404
    assert send(client, "DELETE", f"{PROJECT}/approval_rules/{rule.pk}", **as_mallory).status_code == 404
    assert list(ApprovalRule.objects.values_list("name", flat=True)) == ["Two"]


def test_an_approval_outside_the_rules_pool_does_not_count(
    client, private_repo, pull, feature, as_alice, as_bob, as_carol
):
    rule = {"name": "Docs", "branch_pattern": "main", "required_approvals": 1, "users": ["carol"]}
    assert send(client, "POST", f"{PROJECT}/approval_rules", rule, **as_alice).status_code == 201
    main = git.branch_sha(private_repo.path, "main")
    assert approve(client, as_bob, feature).status_code == 200
    refused = merge(client, as_alice, feature)
    assert refused.status_code == 405
    assert refused.json()["message"] == "Rule 'Docs' needs 1 approval from carol; it has 0 (none)."
    assert client.get(f"{API}{PROJECT}/pulls/1", **as_alice).json()["merge_blocker"] == refused.json()["message"]
    assert git.branch_sha(private_repo.path, "main") == main
    # carol only reads the repository, but the rule names her: her approval is the one it needs.
    assert approve(client, as_carol, feature).status_code == 200
    assert client.get(f"{API}{PROJECT}/pulls/1", **as_alice).json()["merge_blocker"] is None
    assert merge(client, as_alice, feature).status_code == 200
    assert git.is_ancestor(private_repo.path, feature, git.branch_sha(private_repo.path, "main"))


def test_organization_owners_manage_rule_templates(client, alice, bob, carol):
    # Tokens that may manage organizations, so that what is refused below is refused for the person's role.
    as_alice, as_bob, as_carol = (token_for(user, scopes=(*REPO_SCOPES, "write:org")) for user in (alice, bob, carol))
    org = accounts.create_organization(actor=alice, name="acme")
    team = accounts.create_team(org, actor=alice, name="reviewers")
    accounts.add_team_member(team, bob, actor=alice)
    repo_services.create_repository(actor=alice, owner=org, name="site", initialize=True)
    created = send(
        client,
        "POST",
        "/orgs/acme/approval_rule_templates",
        {"name": "Reviewers", "teams": ["reviewers"], "repository_pattern": "site*", "required_approvals": 2},
        **as_alice,
    )
    assert created.status_code == 201
    body = created.json()
    assert (body["organization"], body["repository_pattern"], body["teams"], body["required_approvals"]) == (
        "acme",
        "site*",
        ["reviewers"],
        2,
    )
    template = ApprovalRule.objects.get()
    assert (template.organization, template.repository) == (org, None)
    changed = send(client, "PATCH", f"/orgs/acme/approval_rule_templates/{template.pk}", {"name": "All"}, **as_alice)
    assert (changed.json()["name"], changed.json()["repository_pattern"]) == ("All", "site*")
    assert [t["name"] for t in client.get(f"{API}/orgs/acme/approval_rule_templates", **as_alice).json()] == ["All"]
    # A member who does not own the organization is refused; an outsider does not even see it.
    assert client.get(f"{API}/orgs/acme/approval_rule_templates", **as_bob).status_code == 403
    assert send(client, "POST", "/orgs/acme/approval_rule_templates", {"name": "x"}, **as_bob).status_code == 403
    assert client.get(f"{API}/orgs/acme/approval_rule_templates/{template.pk}", **as_carol).status_code == 404
    unknown_team = send(
        client, "POST", "/orgs/acme/approval_rule_templates", {"name": "x", "teams": ["ghosts"]}, **as_alice
    )
    assert unknown_team.status_code == 400
    assert send(client, "DELETE", f"/orgs/acme/approval_rule_templates/{template.pk}", **as_alice).status_code == 204
    assert not ApprovalRule.objects.exists()
