"""The branch protection page edits "Require N approvals", kept as the protection's own approval rule."""

from reviews import services
from reviews.models import ApprovalRule, BranchProtection, PullRequest
from reviews.rules import merge_blocker
from reviews.tests.conftest import make_branch

SETTINGS = "/alice/project/settings"


def _form(**values) -> dict:
    data = {
        "branch_pattern": "main",
        "require_pull_request": "on",
        "block_force_push": "on",
        "block_deletion": "on",
        "required_approvals": "2",
        "approval_users": "carol, bob",
        "dismiss_stale_approvals": "on",
        "block_on_rejected_reviews": "on",
    }
    return {**data, **values}


def test_the_protection_page_requires_approvals_through_the_rule_it_owns(client, private_repo, alice, bob, carol):
    client.force_login(alice)
    page = client.get(f"{SETTINGS}/branches").content.decode()
    assert 'name="required_approvals"' in page and 'name="approval_users"' in page

    response = client.post(f"{SETTINGS}/branches", _form())
    assert response.status_code == 302
    protection = BranchProtection.objects.get()
    rule = ApprovalRule.objects.get()
    assert (rule.branch_protection, rule.required_approvals, rule.branch_pattern) == (protection, 2, "main")
    assert sorted(u.username for u in rule.users.all()) == ["bob", "carol"]
    assert (protection.dismiss_stale_approvals, protection.block_on_rejected_reviews) == (True, True)
    listed = client.get(f"{SETTINGS}/branches").content.decode()
    assert "2 approvals from bob, carol" in listed

    # The approval rules page lists it as the protection's, with a link to the protection rather than its own form.
    rules_page = client.get(f"{SETTINGS}/rules").content.decode()
    assert "From branch protection 'main': change it there." in rules_page
    assert f"{SETTINGS}/branches/{protection.pk}" in rules_page
    assert client.get(f"{SETTINGS}/rules/{rule.pk}").status_code == 404
    assert client.post(f"{SETTINGS}/rules/{rule.pk}/delete").status_code == 404

    edit_page = client.get(f"{SETTINGS}/branches/{protection.pk}").content.decode()
    assert 'name="required_approvals" value="2"' in edit_page
    client.post(f"{SETTINGS}/branches/{protection.pk}", _form(required_approvals="1", dismiss_stale_approvals=""))
    rule.refresh_from_db()
    protection.refresh_from_db()
    assert (rule.required_approvals, rule.dismissal) == (1, ApprovalRule.Dismissal.NEVER)
    assert (protection.dismiss_stale_approvals, protection.ignore_stale_approvals) == (False, True)

    client.post(f"{SETTINGS}/branches/{protection.pk}", _form(required_approvals="0", approval_users=""))
    assert not ApprovalRule.objects.exists()
    assert BranchProtection.objects.get().pk == protection.pk


def test_the_required_approvals_hold_a_pull_request(client, private_repo, alice, bob):
    client.force_login(alice)
    client.post(f"{SETTINGS}/branches", _form(required_approvals="1", approval_users=""))
    make_branch(private_repo, "feature", {"notes.txt": b"notes\n"})
    pr = services.open_pull_request(private_repo, actor=bob, title="Notes", base="main", head="feature")
    assert merge_blocker(PullRequest.objects.get(pk=pr.pk), bob) == (
        "Branch protection 'main' needs 1 approval from anyone with write access; it has 0 (none)."
    )
    services.submit_review(pr, actor=alice, event="APPROVE", commit_sha=pr.head_sha)
    assert merge_blocker(PullRequest.objects.get(pk=pr.pk), bob) is None


def test_approvers_without_required_approvals_are_refused_with_the_reason(client, private_repo, alice):
    client.force_login(alice)
    response = client.post(f"{SETTINGS}/branches", _form(required_approvals="0"))
    assert response.status_code == 400
    assert "Approvers count only toward required approvals" in response.content.decode()
    assert not BranchProtection.objects.exists()
