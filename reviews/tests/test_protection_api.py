"""Gitea's branch protection bodies, approval fields included, against real pushes over smart HTTP."""

import pytest
from django.core.exceptions import PermissionDenied

from portal.models import AuditEvent
from repos import git
from repos.tests.api_client import API, send
from reviews import services
from reviews.models import ApprovalRule, BranchProtection, PullRequest

PROJECT = "/repos/alice/project"
PROTECTIONS = f"{PROJECT}/branch_protections"

# What Gitea's Go SDK sends to protect main with one approval: every field of its options, defaults included.
GITEA_MAIN = {
    "branch_name": "main",
    "rule_name": "main",
    "priority": 0,
    "enable_push": False,
    "enable_push_whitelist": False,
    "push_whitelist_usernames": None,
    "push_whitelist_teams": None,
    "push_whitelist_deploy_keys": False,
    "enable_force_push": False,
    "enable_force_push_allowlist": False,
    "force_push_allowlist_usernames": None,
    "force_push_allowlist_teams": None,
    "force_push_allowlist_deploy_keys": False,
    "enable_merge_whitelist": False,
    "merge_whitelist_usernames": None,
    "merge_whitelist_teams": None,
    "enable_status_check": False,
    "status_check_contexts": None,
    "required_approvals": 1,
    "enable_approvals_whitelist": False,
    "approvals_whitelist_username": None,
    "approvals_whitelist_teams": None,
    "block_on_rejected_reviews": True,
    "block_on_official_review_requests": False,
    "block_on_outdated_branch": False,
    "dismiss_stale_approvals": True,
    "ignore_stale_approvals": False,
    "require_signed_commits": False,
    "protected_file_patterns": "",
    "unprotected_file_patterns": "",
    "block_admin_merge_override": False,
}
NEEDS_ONE = "Branch protection 'main' needs 1 approval from anyone with write access; it has 0 (none)."


def protect(client, headers, **changes):
    response = send(client, "POST", PROTECTIONS, GITEA_MAIN | changes, **headers)
    assert response.status_code == 201, response.json()
    return response.json()


def merge(client, headers, head: str):
    return send(client, "POST", f"{PROJECT}/pulls/1/merge", {"Do": "merge", "head_commit_id": head}, **headers)


def review(client, headers, head: str, event: str = "APPROVE"):
    body = {"event": event, "commit_id": head, "body": "Read it."}
    response = send(client, "POST", f"{PROJECT}/pulls/1/reviews", body, **headers)
    assert response.status_code == 200, response.json()
    return response.json()


@pytest.fixture
def bob_clone(clone_as, private_repo, bob):
    return clone_as(bob)


@pytest.fixture
def pushed(client, bob_clone, as_bob) -> str:
    """bob pushes feature over smart HTTP and opens pull request #1 into main; returns its head."""
    bob_clone.git("checkout", "-q", "-b", "feature")
    head = bob_clone.commit("add the parser", parser__py="def parse(text):\n    return text.split()\n")
    bob_clone.push("HEAD:refs/heads/feature")
    opened = send(client, "POST", f"{PROJECT}/pulls", {"title": "Parser", "head": "feature", "base": "main"}, **as_bob)
    assert opened.status_code == 201, opened.json()
    return head


def test_a_gitea_protection_holds_the_merge_until_someone_approves_the_head(
    client, private_repo, bob_clone, pushed, as_alice, as_bob
):
    created = protect(client, as_alice)
    assert (created["required_approvals"], created["dismiss_stale_approvals"]) == (1, True)
    refused = merge(client, as_bob, pushed)
    assert refused.status_code == 405
    assert refused.json()["message"] == NEEDS_ONE
    review(client, as_alice, pushed)

    # New code pushed after the approval: the approval of the older code no longer counts.
    new_head = bob_clone.commit("split on commas", parser__py="def parse(text):\n    return text.split(',')\n")
    bob_clone.push("HEAD:refs/heads/feature")
    stale = merge(client, as_bob, new_head)
    assert stale.status_code == 405
    assert stale.json()["message"] == NEEDS_ONE
    old = client.get(f"{API}{PROJECT}/pulls/1/reviews", **as_bob).json()[0]
    assert (old["commit_id"], old["stale"], old["dismissed"]) == (pushed, True, True)

    review(client, as_alice, new_head)
    merged = merge(client, as_bob, new_head)
    assert merged.status_code == 200, merged.json()
    assert merged.json()["merged"] is True
    assert git.branch_sha(private_repo.path, "main") == merged.json()["merge_commit_sha"]


def test_the_protection_owns_one_approval_rule_that_get_returns_and_changes_follow(
    client, private_repo, alice, carol, as_alice
):
    created = protect(
        client,
        as_alice,
        required_approvals=2,
        enable_approvals_whitelist=True,
        approvals_whitelist_username=["carol", "alice"],
        block_on_official_review_requests=True,
        block_admin_merge_override=True,
    )
    rule = ApprovalRule.objects.get()
    protection = BranchProtection.objects.get()
    assert (rule.branch_protection, rule.repository, rule.branch_pattern) == (protection, private_repo, "main")
    assert (rule.required_approvals, rule.dismissal) == (2, ApprovalRule.Dismissal.NEW_CODE)
    assert sorted(u.username for u in rule.users.all()) == ["alice", "carol"]
    got = client.get(f"{API}{PROTECTIONS}/main", **as_alice).json()
    assert got == created
    assert (got["required_approvals"], got["enable_approvals_whitelist"]) == (2, True)
    assert got["approvals_whitelist_username"] == got["approvals_whitelist_usernames"] == ["alice", "carol"]
    assert (got["block_on_rejected_reviews"], got["block_on_official_review_requests"]) == (True, True)
    assert (got["dismiss_stale_approvals"], got["ignore_stale_approvals"]) == (True, False)
    assert (got["block_admin_merge_override"], got["require_signed_commits"]) == (True, False)
    assert got["approval_rule_id"] == rule.pk
    assert client.get(f"{API}{PROTECTIONS}", **as_alice).json() == [got]

    # The approval rules list it, saying where it comes from; it changes only through its protection.
    listed = client.get(f"{API}{PROJECT}/approval_rules", **as_alice).json()
    assert [(r["id"], r["branch_protection"], r["required_approvals"]) for r in listed] == [(rule.pk, "main", 2)]
    edit = send(client, "PATCH", f"{PROJECT}/approval_rules/{rule.pk}", {"required_approvals": 1}, **as_alice)
    assert edit.status_code == 400
    assert "branch protection 'main'" in edit.json()["message"]
    assert send(client, "DELETE", f"{PROJECT}/approval_rules/{rule.pk}", **as_alice).status_code == 400

    # A PATCH with only the number keeps the pool; no pool (enable_approvals_whitelist false) empties it.
    one = send(client, "PATCH", f"{PROTECTIONS}/main", {"required_approvals": 1}, **as_alice).json()
    assert (one["required_approvals"], one["approvals_whitelist_username"]) == (1, ["alice", "carol"])
    anyone = send(client, "PATCH", f"{PROTECTIONS}/main", {"enable_approvals_whitelist": False}, **as_alice).json()
    assert (anyone["required_approvals"], anyone["approvals_whitelist_username"]) == (1, [])
    assert ApprovalRule.objects.get().pk == rule.pk

    # Zero approvals: the protection requires none, so it keeps no rule.
    none = send(client, "PATCH", f"{PROTECTIONS}/main", {"required_approvals": 0}, **as_alice)
    assert none.status_code == 200
    assert (none.json()["required_approvals"], none.json()["approval_rule_id"]) == (0, None)
    assert not ApprovalRule.objects.exists()
    send(client, "PATCH", f"{PROTECTIONS}/main", {"required_approvals": 1}, **as_alice)
    assert ApprovalRule.objects.get().branch_protection == protection
    assert send(client, "DELETE", f"{PROTECTIONS}/main", **as_alice).status_code == 204
    assert not BranchProtection.objects.exists() and not ApprovalRule.objects.exists()
    assert AuditEvent.objects.filter(action="branch_protection.delete").exists()


def test_a_protection_without_approvals_keeps_the_repositorys_own_rules_alone(client, private_repo, alice, as_alice):
    services.save_approval_rule(None, actor=alice, repository=private_repo, name="Docs", branch_pattern="main")
    created = protect(client, as_alice, required_approvals=0, dismiss_stale_approvals=False)
    assert (created["required_approvals"], created["dismiss_stale_approvals"]) == (0, False)
    assert [r.name for r in ApprovalRule.objects.all()] == ["Docs"]
    assert send(client, "DELETE", f"{PROTECTIONS}/main", **as_alice).status_code == 204
    assert [r.name for r in ApprovalRule.objects.all()] == ["Docs"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("require_signed_commits", True),
        ("protected_file_patterns", "*.go"),
        ("unprotected_file_patterns", "docs/*"),
        ("enable_force_push_allowlist", True),
        ("force_push_allowlist_usernames", ["bob"]),
        ("force_push_allowlist_teams", ["core"]),
        ("force_push_allowlist_deploy_keys", True),
        ("push_whitelist_deploy_keys", True),
        ("priority", 2),
    ],
)
def test_a_gitea_feature_the_portal_lacks_is_refused_by_name_unless_off(client, private_repo, as_alice, field, value):
    response = send(client, "POST", PROTECTIONS, GITEA_MAIN | {field: value}, **as_alice)
    assert response.status_code == 422
    body = response.json()
    assert body["message"].startswith(f"Invalid request: {field}: not supported")
    assert [e["field"] for e in body["errors"]] == [field]
    assert not BranchProtection.objects.exists() and not ApprovalRule.objects.exists()


def test_unknown_fields_are_refused_by_name_and_nothing_is_written(client, private_repo, alice, as_alice):
    response = send(client, "POST", PROTECTIONS, GITEA_MAIN | {"require_code_owner_reviews": True}, **as_alice)
    assert response.status_code == 422
    assert response.json()["message"] == "unknown field: require_code_owner_reviews"
    assert response.json()["errors"][0]["type"] == "extra_forbidden"
    assert not BranchProtection.objects.exists() and not ApprovalRule.objects.exists()
    protect(client, as_alice)
    changed = send(client, "PATCH", f"{PROTECTIONS}/main", {"required_approvals": 3, "colour": "red"}, **as_alice)
    assert changed.status_code == 422
    assert changed.json()["message"] == "unknown field: colour"
    assert ApprovalRule.objects.get().required_approvals == 1


@pytest.mark.parametrize(
    "allow_list", ["enable_push_whitelist", "enable_merge_whitelist", "enable_approvals_whitelist"]
)
def test_an_allow_list_turned_on_without_names_is_refused_not_read_as_everyone(
    client, private_repo, as_alice, allow_list
):
    response = send(client, "POST", PROTECTIONS, GITEA_MAIN | {allow_list: True}, **as_alice)
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == [allow_list]
    assert not BranchProtection.objects.exists()


def test_the_off_values_of_what_the_portal_lacks_are_accepted(client, private_repo, as_alice):
    off = {
        "require_signed_commits": False,
        "protected_file_patterns": "  ",
        "unprotected_file_patterns": None,
        "force_push_allowlist_usernames": [],
        "priority": None,
    }
    created = protect(client, as_alice, **off)
    assert (created["require_signed_commits"], created["protected_file_patterns"], created["priority"]) == (
        False,
        "",
        0,
    )


def test_counting_approvals_of_older_code_is_refused_and_keeping_them_on_the_page_is_not(
    client, private_repo, bob_clone, pushed, alice, as_alice, as_bob
):
    both_off = send(client, "POST", PROTECTIONS, GITEA_MAIN | {"dismiss_stale_approvals": False}, **as_alice)
    assert both_off.status_code == 422
    assert [e["field"] for e in both_off.json()["errors"]] == ["ignore_stale_approvals"]
    assert not BranchProtection.objects.exists()

    kept = protect(client, as_alice, dismiss_stale_approvals=False, ignore_stale_approvals=True)
    assert (kept["dismiss_stale_approvals"], kept["ignore_stale_approvals"]) == (False, True)
    assert ApprovalRule.objects.get().dismissal == ApprovalRule.Dismissal.NEVER
    review(client, as_alice, pushed)
    new_head = bob_clone.commit("split on commas", parser__py="def parse(text):\n    return text.split(',')\n")
    bob_clone.push("HEAD:refs/heads/feature")
    # The approval stays, marked stale, and does not count toward the protection's approvals.
    old = client.get(f"{API}{PROJECT}/pulls/1/reviews", **as_bob).json()[0]
    assert (old["commit_id"], old["stale"], old["dismissed"]) == (pushed, True, False)
    refused = merge(client, as_bob, new_head)
    assert (refused.status_code, refused.json()["message"]) == (405, NEEDS_ONE)
    review(client, as_alice, new_head)
    assert merge(client, as_bob, new_head).status_code == 200


def test_a_change_request_blocks_unless_the_protection_turns_that_off(
    client, private_repo, pushed, carol, as_alice, as_bob, as_carol
):
    protect(client, as_alice)
    review(client, as_alice, pushed)
    review(client, as_carol, pushed, event="REQUEST_CHANGES")
    refused = merge(client, as_bob, pushed)
    assert (refused.status_code, refused.json()["message"]) == (405, "carol requested changes.")
    off = send(client, "PATCH", f"{PROTECTIONS}/main", {"block_on_rejected_reviews": False}, **as_alice)
    assert off.json()["block_on_rejected_reviews"] is False
    assert merge(client, as_bob, pushed).status_code == 200


def test_an_unanswered_review_request_blocks_when_the_protection_says_so(
    client, private_repo, pushed, carol, as_alice, as_bob, as_carol
):
    protect(client, as_alice, block_on_official_review_requests=True)
    review(client, as_alice, pushed)
    pr = PullRequest.objects.get()
    services.request_review(pr, actor=pr.author, users=[carol])
    refused = merge(client, as_bob, pushed)
    assert (refused.status_code, refused.json()["message"]) == (
        405,
        "A review was requested from carol and has not been given yet.",
    )
    review(client, as_carol, pushed, event="COMMENT")
    assert merge(client, as_bob, pushed).status_code == 200


def test_admins_cannot_override_when_the_protection_blocks_it(client, private_repo, pushed, alice, as_alice, as_bob):
    protect(client, as_alice, block_admin_merge_override=False)
    pr = PullRequest.objects.get()
    services.override_approval_rules(pr, actor=alice, reason="hotfix")
    # The protection now blocks overrides: the one given before no longer lets the pull request through...
    send(client, "PATCH", f"{PROTECTIONS}/main", {"block_admin_merge_override": True}, **as_alice)
    refused = merge(client, as_bob, pushed)
    assert (refused.status_code, refused.json()["message"]) == (405, NEEDS_ONE)
    # ...and no admin can give another.
    pr.refresh_from_db()
    with pytest.raises(PermissionDenied, match="does not let admins override its approval rules"):
        services.override_approval_rules(pr, actor=alice, reason="again")
    assert pr.events.filter(kind="override").count() == 1


def test_gitea_clients_open_and_merge_with_their_usual_bodies(client, private_repo, bob_clone, alice, as_alice, as_bob):
    bob_clone.git("checkout", "-q", "-b", "feature")
    head = bob_clone.commit("add the parser", parser__py="def parse(text):\n    return text.split()\n")
    bob_clone.push("HEAD:refs/heads/feature")
    gitea_pull = {
        "head": "feature",
        "base": "main",
        "title": "Parser",
        "body": "",
        "assignee": "",
        "assignees": None,
        "milestone": 0,
        "labels": None,
        "due_date": None,
    }
    labelled = send(client, "POST", f"{PROJECT}/pulls", gitea_pull | {"labels": [3]}, **as_bob)
    assert labelled.status_code == 422
    assert [e["field"] for e in labelled.json()["errors"]] == ["labels"]
    assert send(client, "POST", f"{PROJECT}/pulls", gitea_pull, **as_bob).status_code == 201
    nested = {"event": "COMMENT", "commit_id": head, "comments": [{"path": "parser.py", "body": "x", "position": 1}]}
    refused = send(client, "POST", f"{PROJECT}/pulls/1/reviews", nested, **as_alice)
    assert (refused.status_code, refused.json()["message"]) == (422, "unknown field: comments.0.position")
    gitea_merge = {
        "Do": "merge",
        "MergeCommitID": "",
        "MergeTitleField": "",
        "MergeMessageField": "",
        "delete_branch_after_merge": False,
        "force_merge": False,
        "head_commit_id": head,
        "merge_when_checks_succeed": False,
    }
    forced = send(client, "POST", f"{PROJECT}/pulls/1/merge", gitea_merge | {"force_merge": True}, **as_bob)
    assert forced.status_code == 422
    assert "force_merge: not supported" in forced.json()["message"]
    merged = send(client, "POST", f"{PROJECT}/pulls/1/merge", gitea_merge, **as_bob)
    assert merged.status_code == 200, merged.json()


def test_the_page_offers_no_override_when_the_protection_blocks_it(client, private_repo, pushed, alice, as_alice):
    page = f"/alice/project/pulls/{PullRequest.objects.get().number}"
    protect(client, as_alice, block_admin_merge_override=False)
    client.force_login(alice)
    assert "merge-override" in client.get(page).content.decode()
    send(client, "PATCH", f"{PROTECTIONS}/main", {"block_admin_merge_override": True}, **as_alice)
    assert "merge-override" not in client.get(page).content.decode()
