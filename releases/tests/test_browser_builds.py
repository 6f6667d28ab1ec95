"""The build journey in Chromium: main requires the `build` check; bob pushes a branch over HTTP whose build prints
lines with pauses, and opens a pull request; the build shows on it; its page shows the log lines as they are printed,
while a real `manage.py rqworker builds` runs the build in the background; the check turns green and the merge
button, blocked by the required check, turns on."""

import re
import subprocess
import sys
import time

import pytest
from django.conf import settings as django_settings
from playwright.sync_api import expect

from portal.tests.test_browser_accessibility import horizontal_overflow, serious_violations
from releases import logs
from releases.models import Build
from releases.tests.test_build_pages import FULL, JUNIT
from releases.tests.test_builds import push_files
from repos.tests.conftest import git_env, server  # noqa: F401 (fixtures)
from reviews import services as review_services
from reviews.tests.conftest import clone_as  # noqa: F401 (fixtures)

pytestmark = pytest.mark.browser

TICKING = """version: 0.2
phases:
  build:
    commands:
      - seq 1 60 | sed 's/^/warming up /'
      - for i in 1 2 3 4 5 6 7 8; do echo "tick $i"; sleep 1; done
      - printf '\\033[32mall ticks printed\\033[0m\\n'
"""


def start_build_worker(env: dict) -> subprocess.Popen:
    """A real rq worker of the builds queue, in a session of its own; it stops once the queue is empty."""
    return subprocess.Popen(
        [sys.executable, str(django_settings.BASE_DIR / "manage.py"), "rqworker", "builds", "--burst"],
        cwd=django_settings.BASE_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def wait_for(condition, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_a_pull_requests_build_shows_live_and_its_green_check_enables_the_merge(
    live_server,
    settings,
    django_subprocess_env,
    rq_queues,
    builds_root,
    clone_as,  # noqa: F811 (fixtures)
    sign_in_page,
    private_repo,
    alice,
    bob,
):
    settings.PORTAL_BASE_URL = settings.PORTAL_INTERNAL_URL = live_server.url
    settings.PORTAL_BUILDS_ROOT = builds_root
    review_services.save_branch_protection(
        None, actor=alice, repository=private_repo, branch_pattern="main", required_checks=["build"]
    )

    # bob pushes a branch with a buildspec over HTTP; git prints where to watch its build.
    work = clone_as(bob)
    work.git("checkout", "-q", "-b", "ticking")
    head = work.commit("Build with pauses", buildspec__yml=TICKING)
    pushed = work.push("HEAD:refs/heads/ticking")
    assert f"{live_server.url}/alice/project/builds/1" in pushed.stderr
    build = Build.objects.get(repository=private_repo)
    assert (build.head_sha, build.build_status) == (head, "QUEUED")

    # He opens the pull request: the build is on it, pending, and the required check blocks the merge.
    page = sign_in_page(bob)
    page.goto("/alice/project/pulls/new?base=main&head=ticking")
    page.fill("input[name=title]", "Ticking build")
    page.click("form.new-pull-form button.primary")
    page.wait_for_url("**/alice/project/pulls/1")
    check = page.locator("#checks .check", has_text="build")
    expect(check).to_have_class(re.compile(r"check-pending"))
    expect(page.locator(".merge-blocker")).to_contain_text("Required check 'build'")
    expect(page.locator(".merge-box button.primary")).to_be_disabled()

    worker = start_build_worker(
        django_subprocess_env
        | {"PORTAL_BASE_URL": live_server.url, "PORTAL_BUILDS_ROOT": str(builds_root), "PORTAL_JOB_HEARTBEAT": "1"}
    )
    try:
        # The build page, opened from the check's link while the build runs, shows lines as they are printed.
        wait_for(lambda: b"tick 1" in logs.read_all(Build.objects.get(pk=build.pk)))
        check.locator("a", has_text="Details").click()
        page.wait_for_url("**/alice/project/builds/1")
        log = page.locator("#build-log")
        expect(log).to_contain_text("tick 1")
        shown_at_first = log.locator(".log-line").count()
        assert "tick 5" not in log.inner_text()
        expect(log).to_contain_text("tick 3")
        # Lines arrived without a reload, before the build ended, and the log follows its tail.
        assert not Build.objects.get(pk=build.pk).is_ended
        assert log.locator(".log-line").count() > shown_at_first
        assert log.evaluate("el => el.scrollHeight > el.clientHeight")
        assert log.evaluate("el => el.scrollTop + el.clientHeight >= el.scrollHeight - 40")
        # Scrolled up to read, the reader stays where they are while lines keep coming.
        log.evaluate("el => { el.scrollTop = 0; }")
        page.wait_for_timeout(100)
        expect(log).to_contain_text("tick 5")
        assert not Build.objects.get(pk=build.pk).is_ended
        assert log.evaluate("el => el.scrollTop") == 0
        expect(log.locator(".log-phase[data-phase=BUILD]")).to_have_count(1)
        # Once it ends, the page shows its outcome, with the colours of the last line.
        expect(page.locator("[data-build-status]")).to_have_text("Succeeded", timeout=60_000)
        expect(page.locator("#build-log .ansi-fg-2", has_text="all ticks printed")).to_be_visible()
        expect(page.locator("tr.phase[data-phase=BUILD]")).to_contain_text("SUCCEEDED")
        worker.wait(timeout=60)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()

    build.refresh_from_db()
    assert build.build_status == "SUCCEEDED"
    # The check is green on the pull request and the merge button is on.
    page.goto("/alice/project/pulls/1")
    expect(check).to_have_class(re.compile(r"check-success"))
    expect(page.locator(".merge-blocker")).to_have_count(0)
    merge = page.locator("form.merge-form")
    expect(merge.locator("button.primary")).to_be_enabled()
    merge.locator("button.primary").click()
    expect(page.locator(".merge-box.merged")).to_contain_text("merged this")


BUILD_PAGES = [
    ("builds", "/alice/project/builds"),
    ("build", "/alice/project/builds/1"),
    ("build settings", "/alice/project/settings/builds"),
]


@pytest.mark.parametrize("width", [1280, 360])
def test_the_build_pages_pass_axe_and_do_not_scroll_sideways(
    sign_in_page,
    private_repo,
    alice,
    bob,
    run_builds,
    width,
):
    files = {"buildspec.yml": FULL.encode(), "reports/unit.xml": JUNIT.encode()}
    push_files(private_repo, bob, "main", files)
    run_builds()
    assert Build.objects.get(repository=private_repo).build_status == "SUCCEEDED"
    page = sign_in_page(alice)
    page.set_viewport_size({"width": width, "height": 800})
    found = []
    for name, path in BUILD_PAGES:
        page.goto(path)
        page.wait_for_load_state("networkidle")
        found += serious_violations(page, f"{name} ({path})")
        if (extra := horizontal_overflow(page)) > 0:
            found.append(f"{name} ({path}): {extra}px too wide")
    # The run form and a failed test's details, opened.
    page.goto("/alice/project/builds")
    page.locator("details.run-build > summary").click()
    page.goto("/alice/project/builds/1")
    page.locator("details.test-details > summary").first.click()
    found += serious_violations(page, "build, details open")
    assert not found, f"at {width}px wide:\n" + "\n".join(found)
