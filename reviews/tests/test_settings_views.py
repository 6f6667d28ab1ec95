"""Branch protection, approval rule and merging settings pages, and organization rule templates, through the client."""

import pytest

from portal import services as accounts
from portal.models import AuditEvent, Team
from repos import services as repo_services
from repos.models import Role
from reviews.models import ApprovalRule, BranchProtection, ReviewSettings

SETTINGS = "/alice/project/settings"


@pytest.fixture
def acme(alice, bob):
    """acme: alice owns it; bob is in its devs team, which writes to acme/app; reviewers is empty."""
    org = accounts.create_organization(actor=alice, name="acme")
    devs = accounts.create_team(org, actor=alice, name="devs")
    accounts.create_team(org, actor=alice, name="reviewers")
    accounts.add_team_member(devs, bob, actor=alice)
    app = repo_services.create_repository(actor=alice, owner=org, name="app", initialize=True)
    repo_services.set_team_role(app, devs, actor=alice, role=Role.WRITE)
    return org


def _protection_form(**values) -> dict:
    data = {
        "branch_pattern": "main",
        "require_pull_request": "on",
        "required_checks": "ci/build\n\nlint\n",
        "block_force_push": "on",
        "block_deletion": "on",
        "push_users": "",
        "merge_users": "",
    }
    return {**data, **values}


def _rule_form(**values) -> dict:
    data = {"name": "Reviewers", "branch_pattern": "main", "required_approvals": "2", "users": "bob carol"}
    return {**data, "dismissal": "new_code", **values}


def test_the_settings_navigation_links_the_pull_request_pages(client, private_repo, alice):
    client.force_login(alice)
    page = client.get(SETTINGS).content.decode()
    for path in ("branches", "rules", "merging"):
        assert f'href="{SETTINGS}/{path}"' in page


def test_admin_protects_edits_and_unprotects_a_branch(client, private_repo, alice, bob, carol):
    client.force_login(alice)
    assert "No branch is protected." in client.get(f"{SETTINGS}/branches").content.decode()

    response = client.post(f"{SETTINGS}/branches", _protection_form(push_users="bob", merge_users="Bob, carol"))
    assert response["Location"] == f"{SETTINGS}/branches"
    protection = BranchProtection.objects.get(repository=private_repo)
    assert protection.branch_pattern == "main" and protection.required_checks == ["ci/build", "lint"]
    assert protection.require_pull_request and protection.block_force_push and protection.block_deletion
    assert not protection.require_up_to_date
    assert list(protection.push_users.all()) == [bob]
    assert set(protection.merge_users.all()) == {bob, carol}
    page = client.get(f"{SETTINGS}/branches").content.decode()
    assert "checks ci/build, lint must pass" in page and "merge: bob, carol" in page

    edit = f"{SETTINGS}/branches/{protection.pk}"
    form = client.get(edit).content.decode()
    assert 'value="main"' in form and "ci/build\nlint" in form and 'value="bob, carol"' in form
    response = client.post(
        edit, _protection_form(branch_pattern="release/*", required_checks="", require_up_to_date="on")
    )
    assert response["Location"] == f"{SETTINGS}/branches"
    protection.refresh_from_db()
    assert protection.branch_pattern == "release/*" and protection.required_checks == []
    assert protection.require_up_to_date
    assert not protection.push_users.exists() and not protection.merge_users.exists()

    asked = client.post(f"{edit}/delete")
    assert asked.status_code == 200 and BranchProtection.objects.exists()
    response = client.post(f"{edit}/delete", {"confirmed": "1"})
    assert response["Location"] == f"{SETTINGS}/branches"
    assert not BranchProtection.objects.exists()
    actions = AuditEvent.objects.filter(action__startswith="branch_protection.").values_list("action", flat=True)
    assert sorted(actions) == ["branch_protection.delete", "branch_protection.save", "branch_protection.save"]


def test_unknown_usernames_are_named_in_the_form_error(client, private_repo, alice):
    client.force_login(alice)
    response = client.post(f"{SETTINGS}/branches", _protection_form(push_users="bob, zed yan"))
    assert response.status_code == 400
    assert "There is no active users named zed, yan." in response.content.decode()
    response = client.post(f"{SETTINGS}/rules", _rule_form(users="bob acme"))
    assert response.status_code == 400
    assert "There is no active user named acme." in response.content.decode()
    assert not BranchProtection.objects.exists() and not ApprovalRule.objects.exists()


def test_a_pattern_already_protected_is_refused_with_the_services_reason(client, private_repo, alice):
    client.force_login(alice)
    client.post(f"{SETTINGS}/branches", _protection_form())
    response = client.post(f"{SETTINGS}/branches", _protection_form())
    assert response.status_code == 400
    assert "already protected; edit that protection." in response.content.decode()
    assert BranchProtection.objects.count() == 1


def test_a_pattern_with_spaces_is_refused(client, private_repo, alice):
    client.force_login(alice)
    response = client.post(f"{SETTINGS}/rules", _rule_form(branch_pattern="main, release/*"))
    assert response.status_code == 400
    assert "A pattern cannot contain spaces." in response.content.decode()
    assert not ApprovalRule.objects.exists()


def test_admin_adds_edits_and_removes_an_approval_rule(client, private_repo, alice, bob, carol):
    client.force_login(alice)
    response = client.post(f"{SETTINGS}/rules", _rule_form(exclude_committers="on"))
    assert response["Location"] == f"{SETTINGS}/rules"
    rule = ApprovalRule.objects.get(repository=private_repo)
    assert (rule.name, rule.branch_pattern, rule.required_approvals) == ("Reviewers", "main", 2)
    assert set(rule.users.all()) == {bob, carol} and rule.exclude_committers
    assert rule.dismissal == ApprovalRule.Dismissal.NEW_CODE
    page = client.get(f"{SETTINGS}/rules").content.decode()
    assert "2 approvals from bob, carol on main" in page

    edit = f"{SETTINGS}/rules/{rule.pk}"
    assert 'value="Reviewers"' in client.get(edit).content.decode()
    response = client.post(edit, _rule_form(name="Anyone", required_approvals="1", users="", dismissal="always"))
    assert response["Location"] == f"{SETTINGS}/rules"
    rule.refresh_from_db()
    assert (rule.name, rule.required_approvals, rule.dismissal) == ("Anyone", 1, "always")
    assert not rule.users.exists() and not rule.exclude_committers
    assert "1 approval from anyone with write access on main" in client.get(f"{SETTINGS}/rules").content.decode()

    assert client.post(f"{SETTINGS}/rules", _rule_form(required_approvals="51")).status_code == 400
    assert client.post(f"{edit}/delete").status_code == 200 and ApprovalRule.objects.exists()
    assert client.post(f"{edit}/delete", {"confirmed": "1"})["Location"] == f"{SETTINGS}/rules"
    assert not ApprovalRule.objects.exists()


def test_admin_chooses_how_pull_requests_merge(client, private_repo, alice):
    client.force_login(alice)
    assert client.get(f"{SETTINGS}/merging").status_code == 200
    response = client.post(
        f"{SETTINGS}/merging", {"allow_squash": "on", "allow_rebase": "on", "distinct_approvers": "on"}
    )
    assert response["Location"] == f"{SETTINGS}/merging"
    found = ReviewSettings.objects.get(repository=private_repo)
    assert found.allowed_strategies() == ["squash", "rebase"]
    assert found.distinct_approvers and not found.delete_branch_after_merge

    response = client.post(f"{SETTINGS}/merging", {"delete_branch_after_merge": "on"})
    assert response.status_code == 400
    assert "Allow at least one merge strategy." in response.content.decode()
    found.refresh_from_db()
    assert found.allowed_strategies() == ["squash", "rebase"] and not found.delete_branch_after_merge


PAGES = ["branches", "rules", "merging"]


def _existing_pages(repo, alice) -> tuple[list[str], list[str]]:
    from reviews import services

    protection = services.save_branch_protection(None, actor=alice, repository=repo, branch_pattern="main")
    rule = services.save_approval_rule(None, actor=alice, repository=repo, name="Leads")
    pages = [*PAGES, f"branches/{protection.pk}", f"rules/{rule.pk}"]
    return pages, [*pages, f"branches/{protection.pk}/delete", f"rules/{rule.pk}/delete"]


@pytest.mark.parametrize("who", ["bob", "carol"])
def test_writers_and_readers_get_403(client, private_repo, alice, request, who):
    pages, posts = _existing_pages(private_repo, alice)
    client.force_login(request.getfixturevalue(who))
    for page in pages:
        assert client.get(f"{SETTINGS}/{page}").status_code == 403, page
    for page in posts:
        assert client.post(f"{SETTINGS}/{page}", _protection_form(branch_pattern="x") | _rule_form()).status_code == 403
    assert list(BranchProtection.objects.values_list("branch_pattern", flat=True)) == ["main"]
    assert list(ApprovalRule.objects.values_list("name", flat=True)) == ["Leads"]
    assert not ReviewSettings.objects.filter(allow_merge=False).exists()


def test_outsiders_get_404(client, private_repo, alice, mallory):
    pages, posts = _existing_pages(private_repo, alice)
    for user in (None, mallory):
        if user is not None:
            client.force_login(user)
        for page in pages:
            assert client.get(f"{SETTINGS}/{page}").status_code == 404, page
        for page in posts:
            assert client.post(f"{SETTINGS}/{page}", _protection_form(branch_pattern="x")).status_code == 404, page
    assert BranchProtection.objects.count() == 1 and ApprovalRule.objects.count() == 1


def test_an_organization_repository_offers_only_its_own_teams(client, acme, alice, bob):
    other = accounts.create_organization(actor=alice, name="umbrella")
    stranger = accounts.create_team(other, actor=alice, name="strangers")
    devs = Team.objects.get(organization=acme, name="devs")
    client.force_login(alice)
    page = client.get("/acme/app/settings/branches").content.decode()
    assert "acme/devs" in page and "acme/reviewers" in page and "strangers" not in page

    response = client.post("/acme/app/settings/branches", _protection_form(merge_teams=[stranger.pk]))
    assert response.status_code == 400 and not BranchProtection.objects.exists()
    response = client.post("/acme/app/settings/branches", _protection_form(merge_teams=[devs.pk]))
    assert response.status_code == 302
    protection = BranchProtection.objects.get()
    assert list(protection.merge_teams.all()) == [devs] and not protection.push_teams.exists()
    assert "merge: acme/devs" in client.get("/acme/app/settings/branches").content.decode()


def test_org_owners_manage_rule_templates(client, acme, alice, bob):
    reviewers = Team.objects.get(organization=acme, name="reviewers")
    client.force_login(alice)
    assert 'href="/orgs/acme/rules"' in client.get("/orgs/acme/teams").content.decode()
    response = client.post(
        "/orgs/acme/rules", _rule_form(name="Security", users="bob", teams=[reviewers.pk], repository_pattern="ap*")
    )
    assert response["Location"] == "/orgs/acme/rules"
    rule = ApprovalRule.objects.get(organization=acme)
    assert rule.repository is None and rule.repository_pattern == "ap*"
    assert list(rule.users.all()) == [bob] and list(rule.teams.all()) == [reviewers]
    words = "2 approvals from bob, acme/reviewers on main in repositories matching ap*"
    assert words in client.get("/orgs/acme/rules").content.decode()
    assert words in client.get("/acme/app/settings/rules").content.decode()

    response = client.post(
        f"/orgs/acme/rules/{rule.pk}", _rule_form(name="Security", users="bob", repository_pattern="web-*")
    )
    assert response["Location"] == "/orgs/acme/rules"
    rule.refresh_from_db()
    assert rule.repository_pattern == "web-*" and not rule.teams.exists()
    assert "in repositories matching" not in client.get("/acme/app/settings/rules").content.decode()

    assert client.post(f"/orgs/acme/rules/{rule.pk}/delete", {"confirmed": "1"})["Location"] == "/orgs/acme/rules"
    assert not ApprovalRule.objects.exists()


def test_org_members_who_are_not_owners_get_403_and_outsiders_404(client, acme, alice, bob, mallory):
    from reviews import services

    rule = services.save_approval_rule(None, actor=alice, organization=acme, name="Security")
    client.force_login(bob)
    assert 'href="/orgs/acme/rules"' not in client.get("/orgs/acme/teams").content.decode()
    for user, status in ((bob, 403), (mallory, 404)):
        client.force_login(user)
        for page in ("/orgs/acme/rules", f"/orgs/acme/rules/{rule.pk}"):
            assert client.get(page).status_code == status, page
        for page in ("/orgs/acme/rules", f"/orgs/acme/rules/{rule.pk}", f"/orgs/acme/rules/{rule.pk}/delete"):
            assert client.post(page, _rule_form(repository_pattern="*")).status_code == status, page
    rule.refresh_from_db()
    assert rule.name == "Security" and ApprovalRule.objects.count() == 1
