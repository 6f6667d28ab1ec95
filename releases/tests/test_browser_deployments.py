"""A deployment in Chromium: bob's build is deployed to dev while a real `manage.py rqworker deploys` runs it in the
background; the deployment's page, opened while a hook prints lines with pauses, shows them arrive in that hook's
section of the target's log, and shows the outcome once the deployment ends."""

import subprocess
import sys

import pytest
from django.conf import settings as django_settings
from playwright.sync_api import expect

from portal.tests.test_browser_accessibility import horizontal_overflow, serious_violations
from releases import deployments, logs
from releases.models import Deployment, DeploymentTarget
from releases.tests.deploying import release_files, set_targets
from releases.tests.test_browser_builds import wait_for

pytestmark = pytest.mark.browser

TICKING = 'for i in 1 2 3 4 5 6 7 8 9 10; do echo "tick $i"; sleep 1; done'


def start_deploy_worker(env: dict) -> subprocess.Popen:
    """A real rq worker of the deploys queue, in a session of its own; it stops once the queue is empty."""
    return subprocess.Popen(
        [sys.executable, str(django_settings.BASE_DIR / "manage.py"), "rqworker", "deploys", "--burst"],
        cwd=django_settings.BASE_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _target_log(deployment: Deployment, name: str) -> bytes:
    run = DeploymentTarget.objects.filter(deployment=deployment, name=name).select_related("deployment").first()
    return logs.read_all(run) if run is not None else b""


def test_a_running_deployment_shows_its_hook_lines_as_they_are_printed(
    live_server, settings, django_subprocess_env, sign_in_page, private_repo, alice, bob, carol, built
):
    settings.PORTAL_BASE_URL = settings.PORTAL_INTERNAL_URL = live_server.url
    build = built(private_repo, bob, release_files("v1", fail={"ApplicationStart": TICKING}))
    dev = set_targets(private_repo, "dev", ["a"], alice)
    deployment = deployments.request_deployment(private_repo, dev, actor=bob, sha=build.head_sha)

    page = sign_in_page(carol)
    worker = start_deploy_worker(
        django_subprocess_env
        | {
            "PORTAL_BASE_URL": live_server.url,
            "PORTAL_BUILDS_ROOT": str(settings.PORTAL_BUILDS_ROOT),
            "PORTAL_TARGETS_ROOT": str(settings.PORTAL_TARGETS_ROOT),
            "PORTAL_DEPLOYS_ROOT": str(settings.PORTAL_DEPLOYS_ROOT),
            "PORTAL_JOB_HEARTBEAT": "1",
        }
    )
    try:
        wait_for(lambda: b"tick 1" in _target_log(deployment, "a") or Deployment.objects.get(pk=deployment.pk).is_ended)
        # A deployment refused at the door ends at once; its message says why.
        assert not Deployment.objects.get(pk=deployment.pk).is_ended, Deployment.objects.get(pk=deployment.pk).message
        page.goto(f"/alice/project/deployments/{deployment.pk}")
        section = page.locator("#log-a .hook-section[data-hook=ApplicationStart]")
        expect(section).to_contain_text("tick 1")
        assert "tick 9" not in section.inner_text()
        shown_at_first = page.locator("#log-a .log-line").count()
        # Lines arrive without a reload, in the hook's own section, before the deployment ends.
        expect(section).to_contain_text("tick 9", timeout=20_000)
        assert not Deployment.objects.get(pk=deployment.pk).is_ended
        assert page.locator("#log-a .log-line").count() > shown_at_first
        assert page.locator("#log-a .hook-section[data-hook=BeforeInstall]").count() == 1
        # Once it ends, the page shows the outcome, with the next hook's section and the lifecycle events.
        expect(page.locator("[data-deployment-status]")).to_have_text("Succeeded", timeout=60_000)
        expect(page.locator("#log-a .hook-section[data-hook=ValidateService]")).to_contain_text("ValidateService of")
        expect(page.locator("tr[data-event=ApplicationStart]")).to_contain_text("SUCCEEDED")
        worker.wait(timeout=60)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert Deployment.objects.get(pk=deployment.pk).deployment_status == Deployment.Status.SUCCEEDED

    # The deployment pages pass axe and do not scroll sideways on a phone.
    page.set_viewport_size({"width": 360, "height": 800})
    found = []
    for path in (
        "/alice/project/environments",
        "/alice/project/environments/dev",
        f"/alice/project/deployments/{deployment.pk}",
    ):
        page.goto(path)
        page.wait_for_load_state("networkidle")
        found += serious_violations(page, path)
        if (extra := horizontal_overflow(page)) > 0:
            found.append(f"{path}: {extra}px too wide")
    admin = sign_in_page(alice)
    admin.set_viewport_size({"width": 360, "height": 800})
    for path in ("/alice/project/settings/environments", "/alice/project/settings/environments/dev"):
        admin.goto(path)
        found += serious_violations(admin, path)
        if (extra := horizontal_overflow(admin)) > 0:
            found.append(f"{path}: {extra}px too wide")
    assert not found, "\n".join(found)
