"""A release's whole journey in Chromium, on real workers: bob merges his pull request from its page, the pipeline
builds it and deploys it to dev, alice is emailed a signed link to uat's approval, opens it signed out, signs in,
reviews what the release changes and approves it with a comment, uat installs the very bytes dev got, and the
release record shows the chain from the commit to alice's answer."""

import hashlib
import io
import re
import zipfile

import pytest
from django.core import mail
from playwright.sync_api import expect

from releases.local_target import LocalTarget
from releases.models import Deployment, PipelineApprovalLink
from releases.storage import artifact_storage
from releases.tests.deploying import deployed_version, latest, uat_runs_v1_and_bobs_v2_waits
from repos import git

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("email_backend")]


def installed(repo, environment: str, path: str) -> bytes:
    """The bytes of a file the app installed on target a of the environment."""
    return (LocalTarget(repo.pk, environment, "a").current / "root/srv" / path).read_bytes()


def test_a_merged_pull_request_goes_to_dev_and_to_uat_once_its_emailed_approver_approves(
    live_server,
    settings,
    new_page,
    sign_in_page,
    password,
    private_repo,
    alice,
    bob,
    environments_of_release,
    drive,
    run_worker,
):

    # The emailed links point at this server.
    settings.PORTAL_BASE_URL = settings.PORTAL_INTERNAL_URL = live_server.url
    repo = private_repo

    # Before the journey: uat runs v1, so the approval shows what v2 changes; bob's v2 is approved by alice.
    uat_before, change, pr = uat_runs_v1_and_bobs_v2_waits(repo, alice, bob, drive)
    run_worker()
    mail.outbox.clear()

    # bob merges it from its page.
    bobs = sign_in_page(bob)
    bobs.goto(f"/alice/project/pulls/{pr.number}")
    bobs.click("form.merge-form button.primary")
    expect(bobs.locator(".merge-box.merged .merge-status")).to_contain_text("bob merged this")
    pr.refresh_from_db()
    merge_sha = pr.merge_commit_sha
    assert git.branch_sha(repo.path, "main") == merge_sha

    # The pipeline builds the merge, deploys it to dev, and waits at uat's approval; alice is emailed.
    drive()
    execution = latest(repo)
    assert execution.number == 2 and execution.source_sha == merge_sha and execution.requester == bob
    assert execution.approvals.get().is_pending
    assert deployed_version(repo, "dev") == "v2" and deployed_version(repo, "uat") == "v1"
    run_worker()
    asking = [message for message in mail.outbox if message.to == [alice.email] and "approval" in message.subject]
    assert len(asking) == 1, [message.subject for message in mail.outbox]
    address = re.escape(live_server.url)
    [link] = re.findall(rf"{address}/alice/project/pipelines/release/executions/2/approval/link/\S+", asking[0].body)

    # alice opens it in a browser that is not signed in: the sign-in form first, then the approval page.
    page = new_page()
    page.goto(link)
    page.wait_for_url(re.compile(r"/accounts/login/\?next="))
    page.fill("input[name=login]", alice.username)
    page.fill("input[name=password]", password)
    page.click("form.stack button[type=submit]")
    approval_page = "/alice/project/pipelines/release/executions/2/approval"
    page.wait_for_url(re.compile(re.escape(approval_page) + "$"))
    # Signed in, she came back through the link, which is now used.
    assert PipelineApprovalLink.objects.get(approval__execution=execution, user=alice).used_at is not None

    # What the release changes: uat's commit now, the commits since, bob's merged pull request with alice's
    # approval, the diff of the app's file, and the artifact's digest.
    expect(page.locator(".approval-summary")).to_contain_text(f"bob asks to release {merge_sha[:7]} to uat")
    expect(page.locator(".approval-summary")).to_contain_text(f"uat runs {uat_before[:7]} now")
    commits = page.locator(".approval-commits .commit .sha")
    expect(commits).to_have_count(2)
    assert sorted(commits.all_inner_texts()) == sorted([change[:7], merge_sha[:7]])
    expect(page.locator(".approval-pull")).to_have_count(1)
    expect(page.locator(".approval-pull")).to_contain_text(f"#{pr.number} Release v2")
    expect(page.locator(".approval-pull")).to_contain_text("by bob; approved by alice")
    version_diff = page.locator('.diff-file[data-path="app/version.txt"]')
    expect(version_diff.locator("tr.diff-del .line-code")).to_have_text("-v1")
    expect(version_diff.locator("tr.diff-add .line-code")).to_have_text("+v2")
    execution.refresh_from_db()
    expect(page.locator(".approval-artifact .artifact-sha256")).to_have_text(f"sha256:{execution.artifact_sha256}")

    # She approves with a comment.
    page.fill("#approval-summary", "v2 notes read; ship it.")
    page.click(".approval-form button[value=Approved]")
    expect(page.locator("body")).to_contain_text("Your answer (approved) is recorded.")
    expect(page.locator(".approval-status")).to_have_text("Approved")
    expect(page.locator(".approval-answer")).to_contain_text("alice: Approved: v2 notes read; ship it.")

    # uat installs the artifact dev got: the same digest, the same bytes as the stored zip holds.
    drive()
    execution.refresh_from_db()
    assert execution.status == "Succeeded", execution.reason
    dev, uat = (
        Deployment.objects.get(pipeline_action__execution=execution, environment__name=name) for name in ("dev", "uat")
    )
    assert dev.deployment_status == uat.deployment_status == "Succeeded"
    assert dev.artifact.sha256 == uat.artifact.sha256 == execution.artifact_sha256
    with artifact_storage().open(execution.artifact.storage_name) as stored:
        content = stored.read()
    assert hashlib.sha256(content).hexdigest() == execution.artifact_sha256
    packed = zipfile.ZipFile(io.BytesIO(content)).read("app/version.txt")
    assert packed == b"v2\n"
    assert installed(repo, "dev", "app/version.txt") == installed(repo, "uat", "app/version.txt") == packed

    # The release record: the source, the pull request, the build and its artifact, both deployments, the answer.
    page.goto("/alice/project/pipelines/release/executions/2/release")
    expect(page.locator(".release-source")).to_contain_text(merge_sha)
    pulls = page.locator(".release-pulls")
    expect(pulls).to_contain_text(f"#{pr.number} Release v2")
    expect(pulls).to_contain_text("by bob, merged by bob")
    expect(pulls.locator(".approver")).to_have_text(["alice"])
    build = page.locator(".release-build")
    expect(build).to_contain_text(f"Build #{execution.build.number}")
    expect(build.locator(".release-digest")).to_have_text(f"sha256:{execution.artifact_sha256}")
    for deployment in (dev, uat):
        row = page.locator(f".release-deployments [data-environment={deployment.environment.name}]")
        expect(row).to_contain_text(f"#{deployment.pk} to {deployment.environment.name} Succeeded")
        expect(row).to_contain_text(f"sha256:{execution.artifact_sha256[:12]}")
    answer = page.locator(".release-approvals .approval-answer")
    expect(answer).to_have_count(1)
    expect(answer).to_contain_text("alice Approved")
    expect(answer).to_contain_text("“v2 notes read; ship it.”")
