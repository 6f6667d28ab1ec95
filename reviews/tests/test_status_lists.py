"""Commit statuses beside the commits of the commit and branch lists, and the way from comparing two branches to
an open pull request, through the Django client and in Chromium."""

import re

import pytest
from django.test import Client
from playwright.sync_api import expect

from repos import git
from reviews import services
from reviews.models import PullRequest


def make_feature(repo) -> str:
    """A feature branch off main with one commit; returns its head."""
    git.update_ref(repo.path, "refs/heads/feature", git.branch_sha(repo.path, "main"), git.ZERO_SHA)
    return git.commit_files(
        repo.path,
        "feature",
        {"greet.py": b"def greet():\n    return 1\n"},
        "Greet",
        name="bob",
        email="bob@example.com",
    )


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_batch_endpoint_gives_each_commit_its_combined_state(private_repo, bob, carol):
    feature = make_feature(private_repo)
    main = git.branch_sha(private_repo.path, "main")
    services.set_commit_status(private_repo, actor=bob, sha=feature, state="success", context="ci/build")
    services.set_commit_status(private_repo, actor=bob, sha=feature, state="failure", context="ci/lint")
    services.set_commit_status(private_repo, actor=bob, sha=main, state="pending", context="ci/build")
    response = signed_in(carol).get(
        "/alice/project/statuses", {"sha": [feature, main, "0" * 40, "not-a-sha"]}, HTTP_ACCEPT="application/json"
    )
    assert response.status_code == 200 and response["Cache-Control"] == "private, no-cache"
    found = response.json()["statuses"]
    assert set(found) == {feature, main}
    assert (found[feature]["state"], found[feature]["total_count"]) == ("failure", 2)
    assert [s["context"] for s in found[feature]["statuses"]] == ["ci/build", "ci/lint"]
    assert found[main]["state"] == "pending"


def test_the_batch_endpoint_is_as_private_as_the_repository(private_repo, bob, mallory):
    feature = make_feature(private_repo)
    services.set_commit_status(private_repo, actor=bob, sha=feature, state="success")
    assert signed_in(mallory).get("/alice/project/statuses", {"sha": feature}).status_code == 404
    assert Client().get("/alice/project/statuses", {"sha": feature}).status_code in (302, 404)
    assert signed_in(bob).post("/alice/project/statuses", {"sha": feature}).status_code == 405


def test_the_commit_and_branch_lists_have_a_status_slot_per_commit(private_repo, carol):
    feature = make_feature(private_repo)
    client = signed_in(carol)
    commits = client.get("/alice/project/commits/feature").content.decode()
    assert 'data-status-batch-url="/alice/project/statuses"' in commits
    assert f'data-status-sha="{feature}"' in commits
    branches = client.get("/alice/project/branches").content.decode()
    assert 'data-status-batch-url="/alice/project/statuses"' in branches
    assert f'data-status-sha="{feature}"' in branches


# In Chromium.


@pytest.mark.browser
def test_the_lists_show_a_status_icon_per_commit(sign_in_page, private_repo, bob, carol):
    feature = make_feature(private_repo)
    main = git.branch_sha(private_repo.path, "main")
    services.set_commit_status(private_repo, actor=bob, sha=feature, state="failure", context="ci/lint")
    services.set_commit_status(private_repo, actor=bob, sha=main, state="success", context="ci/build")
    page = sign_in_page(carol)
    page.goto("/alice/project/commits/feature")
    icon = page.locator(f'[data-status-sha="{feature}"] .status-icon')
    expect(icon).to_have_class(re.compile(r"status-failure"))
    expect(icon).to_have_attribute("title", re.compile(r"ci/lint: failure"))
    expect(page.locator(f'[data-status-sha="{main}"] .status-icon.status-success')).to_have_text("✓")
    page.goto("/alice/project/branches")
    expect(page.locator(f'.branch-list [data-status-sha="{feature}"] .status-icon.status-failure')).to_have_text("✗")
    expect(page.locator(f'.branch-list [data-status-sha="{main}"] .status-icon.status-success')).to_be_visible()


@pytest.mark.browser
def test_compare_two_branches_then_open_a_pull_request_from_there(sign_in_page, private_repo, bob):
    make_feature(private_repo)
    page = sign_in_page(bob)
    page.goto("/alice/project/compare")
    page.locator("form.compare-pickers select[name=base]").select_option("main")
    # Choosing the second branch goes straight to the comparison.
    page.locator("form.compare-pickers select[name=head]").select_option("feature")
    page.wait_for_url("**/alice/project/compare/main...feature")
    expect(page.locator(".diff-file[data-path='greet.py']")).to_be_visible()
    expect(page.locator(".diff-file[data-path='greet.py'] .line-code span.k").first).to_have_text("def")
    page.locator("a.create-pull", has_text="Create pull request").click()
    page.wait_for_url(re.compile(r".*/alice/project/pulls/new\?base=main&head=feature$"))
    expect(page.locator("#base-pick")).to_have_value("main")
    expect(page.locator("#head-pick")).to_have_value("feature")
    page.fill("input[name=title]", "Greet from the compare page")
    page.click("form.new-pull-form button.primary")
    page.wait_for_url("**/alice/project/pulls/1")
    pr = PullRequest.objects.get(repository=private_repo, number=1)
    assert (pr.base_branch, pr.head_branch, pr.title) == ("main", "feature", "Greet from the compare page")
    assert pr.author == bob
