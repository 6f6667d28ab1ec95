"""A pipeline's live picture in Chromium: the page, opened while the execution waits at its approval, shows the
approval's stage pass and UAT's deployment start once a reviewer answers, without a reload."""

import pytest
from playwright.sync_api import expect

from releases import pipelines
from releases.tests.deploying import latest, release_files
from releases.tests.test_builds import push_files

pytestmark = pytest.mark.browser


def test_a_stage_box_changes_state_without_a_reload(
    live_server, settings, sign_in_page, private_repo, alice, bob, carol, environments_of_release, drive
):
    settings.PORTAL_BASE_URL = settings.PORTAL_INTERNAL_URL = live_server.url
    push_files(private_repo, bob, "main", release_files("v1"))
    drive()
    execution = latest(private_repo)

    page = sign_in_page(carol)
    page.goto("/alice/project/pipelines/release")
    approval = page.locator(".pipeline-stage[data-stage=Approval]")
    uat = page.locator(".pipeline-stage[data-stage=Deploy-uat]")
    expect(approval).to_have_attribute("data-state", "InProgress")
    expect(uat).to_have_attribute("data-state", "")
    expect(approval.locator(".approval-state")).to_contain_text("Pending")
    # A mark on the window: a reload would wipe it.
    page.evaluate("window.stillTheSamePage = true")

    pipelines.answer_approval(execution, "Approval", "Approve", user=alice, status="Approved", summary="Go.")

    expect(approval).to_have_attribute("data-state", "Succeeded", timeout=10_000)
    expect(approval.locator(".approval-answer")).to_contain_text("alice: Approved")
    expect(uat).to_have_attribute("data-state", "InProgress")
    assert page.evaluate("window.stillTheSamePage") is True
