"""The release template in Chromium, from "New repository" to uat through the pipeline: alice makes the repository
in acme, whose owners are alice and bob; its first commit builds for real and the release pipeline deploys it to
dev by itself; bob, not alice who requested it, approves uat from the pipeline's page; uat gets the same artifact,
and each deployment's page shows its hooks."""

import re

import pytest
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import expect

from portal import services as accounts
from portal.models import Team
from releases.models import Build, Deployment, PipelineExecution
from repos import git
from repos.models import Repository

pytestmark = pytest.mark.browser


def test_a_new_repository_from_the_release_template_goes_to_dev_and_to_uat_once_another_owner_approves(
    live_server, settings, sign_in_page, alice, bob, drive
):
    settings.PORTAL_BASE_URL = settings.PORTAL_INTERNAL_URL = live_server.url
    acme = accounts.create_organization(actor=alice, name="acme")
    accounts.add_team_member(Team.objects.get(organization=acme, name=Team.OWNERS), bob, actor=alice)

    # alice makes acme/shop from the template.
    page = sign_in_page(alice)
    page.goto("/new")
    page.select_option("select[name=owner]", "acme")
    page.fill("input[name=name]", "shop")
    page.check("input[name=template][value=release]")
    page.click("form.stack button.primary")
    page.wait_for_url(re.compile(r"/acme/shop$"))
    expect(page.locator("body")).to_contain_text("This repository started from the portal's release template")
    expect(page.locator("body")).to_contain_text("One of the acme/owners team approves it, with a comment.")
    for name in ("buildspec.yml", "appspec.yml", "pipeline.yml", "scripts", "src", "tests"):
        expect(page.get_by_role("link", name=name, exact=True).first).to_be_visible()

    # Its first commit builds, and the release pipeline deploys the build to dev and waits at uat's approval.
    repo = Repository.objects.get(owner=acme, name="shop")
    sha = git.branch_sha(repo.path, "main")
    drive()
    build = Build.objects.get(repository=repo, head_sha=sha)
    assert build.build_status == Build.BuildStatus.SUCCEEDED, build.message
    execution = PipelineExecution.objects.get(pipeline__repository=repo)
    assert (execution.source_sha, execution.requester) == (sha, alice)
    dev = Deployment.objects.get(pipeline_action__execution=execution, environment__name="dev")
    assert dev.deployment_status == Deployment.Status.SUCCEEDED, dev.message
    assert execution.approvals.get().is_pending
    assert not Deployment.objects.filter(environment__name="uat").exists()

    # bob opens the approval from the pipeline's page and approves it with a comment.
    bobs = sign_in_page(bob)
    bobs.goto("/acme/shop/pipelines/release")
    approval = bobs.locator(".pipeline-stage[data-stage=Approval]")
    expect(approval).to_have_attribute("data-state", "InProgress")
    approval.get_by_role("link", name="Review and answer").click()
    bobs.wait_for_url(re.compile(r"/acme/shop/pipelines/release/executions/1/approval$"))
    expect(bobs.locator(".approval-summary")).to_contain_text(f"alice asks to release {sha[:7]} to uat")
    expect(bobs.locator(".approval-artifact .artifact-sha256")).to_have_text(f"sha256:{execution.artifact_sha256}")
    expect(bobs.locator(".approval-tests .build-report[data-group=unit-tests]")).to_contain_text("3 succeeded")
    bobs.fill("#approval-summary", "Greets as it should.")
    bobs.click(".approval-form button[value=Approved]")
    expect(bobs.locator("body")).to_contain_text("Your answer (approved) is recorded.")

    # uat gets the same artifact.
    drive()
    execution.refresh_from_db()
    assert execution.status == PipelineExecution.Status.SUCCEEDED, execution.reason
    uat = Deployment.objects.get(pipeline_action__execution=execution, environment__name="uat")
    assert uat.deployment_status == Deployment.Status.SUCCEEDED, uat.message
    assert uat.artifact == dev.artifact and uat.artifact.sha256 == execution.artifact_sha256

    # The pipeline's page shows the approval answered and links each deployment, whose page shows its hooks.
    bobs.goto("/acme/shop/pipelines/release")
    expect(approval.locator(".approval-answer")).to_have_text("bob: Approved — “Greets as it should.”")
    for deployment in (dev, uat):
        stage = bobs.locator(f".pipeline-stage[data-stage=Deploy-{deployment.environment.name}]")
        expect(stage).to_have_attribute("data-state", "Succeeded")
        expect(stage.get_by_role("link", name=f"deployment #{deployment.pk}")).to_have_attribute(
            "href", f"/acme/shop/deployments/{deployment.pk}"
        )
    for deployment in (dev, uat):
        environment = deployment.environment.name
        open_again(bobs, f"/acme/shop/deployments/{deployment.pk}")
        expect(bobs.locator("[data-deployment-status]")).to_have_text("Succeeded")
        expect(bobs.locator("#log-local .hook-section[data-hook=ApplicationStart]")).to_contain_text(
            f"Hello, acme/shop from {environment}!"
        )
        expect(bobs.locator("#log-local .hook-section[data-hook=ValidateService]")).to_contain_text(
            f"version 1.0.0 ({sha[:12]}) is live in {environment}"
        )


def open_again(page, url: str) -> None:
    """Open url; the page shown may be reloading itself at that moment (a deployment's page does when the deployment
    ends), which aborts one of the two navigations."""
    for attempt in range(3):
        try:
            page.goto(url)
            return
        except PlaywrightError:
            if attempt == 2:
                raise
