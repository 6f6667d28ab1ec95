"""The release template in Chromium: alice chooses it on "New repository", its first commit builds for real, and
the build's artifact goes to dev and then to uat from the build's page, each deployment's page showing its hooks."""

import re

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect

from releases.models import Build, Deployment
from repos import git
from repos.models import Repository

pytestmark = pytest.mark.browser


def test_a_new_repository_from_the_release_template_builds_and_deploys_to_dev_then_uat(
    live_server, settings, sign_in_page, alice, deploys, run_builds, run_deploys
):
    settings.PORTAL_BASE_URL = settings.PORTAL_INTERNAL_URL = live_server.url
    page = sign_in_page(alice)
    page.goto("/new")
    page.fill("input[name=name]", "shop")
    page.check("input[name=template][value=release]")
    page.click("form.stack button.primary")
    page.wait_for_url(re.compile(r"/alice/shop$"))
    expect(page.locator("body")).to_contain_text("This repository started from the portal's release template")
    for name in ("buildspec.yml", "appspec.yml", "pipeline.yml", "scripts", "src", "tests"):
        expect(page.get_by_role("link", name=name, exact=True).first).to_be_visible()

    repo = Repository.objects.get(owner=alice, name="shop")
    sha = git.branch_sha(repo.path, "main")
    run_builds()
    build = Build.objects.get(repository=repo, head_sha=sha)
    assert build.build_status == Build.BuildStatus.SUCCEEDED, build.message

    for environment in ("dev", "uat"):
        page.goto(f"/alice/shop/builds/{build.number}")
        page.select_option("#deploy-environment", environment)
        page.click("form.deploy-build button.primary")
        page.wait_for_url(re.compile(r"/alice/shop/deployments/\d+$"))
        deployment = Deployment.objects.get(pk=int(page.url.rsplit("/", 1)[1]))
        assert deployment.environment.name == environment
        run_deploys()
        open_again(page, page.url)
        expect(page.locator("[data-deployment-status]")).to_have_text("Succeeded")
        expect(page.locator("#log-local .hook-section[data-hook=ApplicationStart]")).to_contain_text(
            f"Hello, alice/shop from {environment}!"
        )
        expect(page.locator("#log-local .hook-section[data-hook=ValidateService]")).to_contain_text(
            f"version 1.0.0 ({sha[:12]}) is live in {environment}"
        )


def open_again(page, url: str) -> None:
    """Open url again; the page's own script may be reloading it at that moment (it does when a deployment ends),
    which aborts one of the two navigations."""
    for attempt in range(3):
        try:
            page.goto(url)
            return
        except PlaywrightError:
            if attempt == 2:
                raise
