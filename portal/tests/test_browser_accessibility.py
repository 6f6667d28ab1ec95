"""The main pages in Chromium on a phone-sized screen and under axe-core: the top bar keeps the user menu in reach at
360 and 390 px, no page scrolls sideways (wide code scrolls inside its own box), and axe finds no serious or
critical violation on any of them."""

import asyncssh
import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import expect

from portal import services as accounts
from repos import git
from repos import services as repo_services
from repos.models import Visibility
from reviews import services as reviews

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# A line long enough to overflow any phone, so the blob and the diff must scroll inside their own box.
LONG_LINE = "message = '" + "a very long string that does not wrap " * 8 + "'\n"
APP = b"def greet(name):\n    return 'hello ' + name\n" + LONG_LINE.encode()
APP_CHANGED = b"def greet(name):\n    return f'hello {name}'\n" + LONG_LINE.encode()

# (name, who looks: None for an anonymous visitor or a fixture name, path)
PAGES = [
    ("home, anonymous", None, "/"),
    ("repository home, anonymous", None, "/alice/project"),
    ("home", "alice", "/"),
    ("repository home", "alice", "/alice/project"),
    ("blob", "alice", "/alice/project/blob/main/app.py"),
    ("pull request conversation", "alice", "/alice/project/pulls/1"),
    ("pull request files", "alice", "/alice/project/pulls/1/files"),
    ("settings: SSH keys", "alice", "/settings/keys"),
    ("site admin: keys", "admin", "/-/admin/keys"),
    ("pull request files, anonymous", None, "/alice/project/pulls/1/files"),
]

# The rest of the pages a person reaches from those, checked for sideways scrolling only.
OTHER_PAGES = [
    ("sign in", None, "/accounts/login/"),
    ("sign up", None, "/accounts/signup/"),
    ("owner", "alice", "/alice"),
    ("new repository", "alice", "/new"),
    ("tree", "alice", "/alice/project/tree/main"),
    ("commits", "alice", "/alice/project/commits/main"),
    ("compare", "alice", "/alice/project/compare/main...greeting"),
    ("branches", "alice", "/alice/project/branches"),
    ("tags", "alice", "/alice/project/tags"),
    ("blame", "alice", "/alice/project/blame/main/app.py"),
    ("repository settings", "alice", "/alice/project/settings"),
    ("collaborators", "alice", "/alice/project/settings/collaborators"),
    ("deploy keys", "alice", "/alice/project/settings/keys"),
    ("approval rules", "alice", "/alice/project/settings/rules"),
    ("branch protection", "alice", "/alice/project/settings/branches"),
    ("pull requests", "alice", "/alice/project/pulls"),
    ("new pull request", "alice", "/alice/project/pulls/new?head=greeting"),
    ("pull request commits", "alice", "/alice/project/pulls/1/commits"),
    ("pull requests dashboard", "alice", "/pulls"),
    ("notifications", "alice", "/notifications/"),
    ("settings: profile", "alice", "/settings/profile"),
    ("settings: tokens", "alice", "/settings/tokens"),
    ("settings: sessions", "alice", "/accounts/sessions/"),
    ("new organization", "alice", "/orgs/new"),
    ("site admin: users", "admin", "/-/admin/users"),
    ("site admin: audit log", "admin", "/-/admin/audit"),
]


@pytest.fixture
def project(private_repo, alice, bob, admin):
    """alice/project, public, with app.py on main, bob's pull request changing it, a comment on a line, a general
    comment, and an SSH key of alice's."""
    git.commit_files(private_repo.path, "main", {"app.py": APP}, "Add app", name="alice", email="alice@example.com")
    main = git.branch_sha(private_repo.path, "main")
    git.update_ref(private_repo.path, "refs/heads/greeting", main, git.ZERO_SHA)
    git.commit_files(
        private_repo.path, "greeting", {"app.py": APP_CHANGED}, "Use an f-string", name="bob", email="bob@example.com"
    )
    repo_services.update_repository(private_repo, actor=alice, visibility=Visibility.PUBLIC)
    pr = reviews.open_pull_request(
        private_repo,
        actor=bob,
        title="Greet with an f-string",
        base="main",
        head="greeting",
        description="Reads **better**.",
    )
    reviews.add_comment(pr, actor=alice, body="Nice.", path="app.py", line=2, commit_sha=pr.head_sha)
    reviews.add_comment(pr, actor=alice, body="Looks good overall.")
    public_key = asyncssh.generate_private_key("ssh-ed25519", comment="alice@laptop").export_public_key().decode()
    accounts.add_ssh_key(alice, actor=alice, title="Work laptop", public_key=public_key)
    return private_repo


@pytest.fixture
def pages_as(project, new_page, sign_in_page, request):
    """pages_as(name): a tab for an anonymous visitor (None) or signed in as the named person, one per person."""
    tabs = {}

    def get(who):
        if who not in tabs:
            tabs[who] = new_page() if who is None else sign_in_page(request.getfixturevalue(who))
        return tabs[who]

    return get


def horizontal_overflow(page) -> int:
    """How many pixels the document is wider than the viewport, less its scroll bar (0: it does not scroll sideways)."""
    return page.evaluate("document.scrollingElement.scrollWidth - document.documentElement.clientWidth")


def overflowing_pages(pages_as, pages, width: int) -> list[str]:
    """The pages of the list that scroll sideways at this width, and by how much."""
    found = []
    for name, who, path in pages:
        tab = pages_as(who)
        tab.set_viewport_size({"width": width, "height": 800})
        tab.goto(path)
        if (extra := horizontal_overflow(tab)) > 0:
            found.append(f"{name} ({path}): {extra}px too wide")
    return found


def inside(locator, width: int) -> bool:
    box = locator.bounding_box()
    return box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width


@pytest.mark.parametrize("width", [390, 360])
def test_at_phone_widths_the_user_menu_is_in_reach_and_no_page_scrolls_sideways(pages_as, width):
    page = pages_as("alice")
    page.set_viewport_size({"width": width, "height": 800})
    page.goto("/")
    menu = page.locator("header.topbar details.user-menu")
    summary = menu.locator("summary")
    expect(summary).to_be_visible()
    assert inside(summary, width)

    # It opens, Escape closes it again, and it opens once more to reach the settings.
    summary.click()
    settings = menu.get_by_role("link", name="Settings")
    sign_out = menu.get_by_role("button", name="Sign out")
    expect(settings).to_be_visible()
    expect(sign_out).to_be_visible()
    assert inside(settings, width) and inside(sign_out, width)
    page.keyboard.press("Escape")
    expect(settings).to_be_hidden()
    expect(summary).to_be_focused()
    summary.click()
    settings.click()
    page.wait_for_url("**/settings/keys")

    overflowing = overflowing_pages(pages_as, PAGES, width)
    assert not overflowing, f"Pages that scroll sideways at {width}px:\n" + "\n".join(overflowing)

    # Signing out from the menu works on a phone too.
    page.goto("/")
    summary.click()
    sign_out.click()
    expect(page.locator("header.topbar").get_by_role("link", name="Sign in")).to_be_visible()


def test_at_360_px_no_other_page_scrolls_sideways_either(pages_as):
    overflowing = overflowing_pages(pages_as, OTHER_PAGES, 360)
    assert not overflowing, "Pages that scroll sideways at 360px:\n" + "\n".join(overflowing)


def serious_violations(page, label: str, context: str | None = None) -> list[str]:
    """axe-core's serious and critical violations on the page as it is now, one line per rule: id, impact, targets."""
    found = []
    for violation in Axe().run(page, context=context).response["violations"]:
        if violation["impact"] in ("serious", "critical"):
            targets = ", ".join(" ".join(map(str, node["target"])) for node in violation["nodes"])
            found.append(f"{label}: {violation['id']} [{violation['impact']}] at {targets}")
    return found


# Narrow screens make code, diffs and tables scroll inside their boxes, which axe checks too (a scrolling box must be
# reachable by keyboard), so the pages are checked at a desktop width and at a phone width.
@pytest.mark.parametrize("width", [1280, 390])
def test_axe_finds_no_serious_or_critical_violation_on_the_main_pages(pages_as, width):
    found = []
    for name, who, path in PAGES:
        tab = pages_as(who)
        tab.set_viewport_size({"width": width, "height": 800})
        tab.goto(path)
        tab.wait_for_load_state("networkidle")
        found += serious_violations(tab, f"{name} ({path})")
    # The user menu's items are hidden until it opens: check them open.
    tab = pages_as("alice")
    tab.goto("/")
    tab.locator("details.user-menu summary").click()
    found += serious_violations(tab, "user menu, open (/)", context="header")
    assert not found, f"axe-core found at {width}px wide:\n" + "\n".join(found)


def test_the_first_tab_stop_is_a_link_that_skips_the_top_bar(pages_as):
    page = pages_as(None)
    page.goto("/")
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    expect(skip).to_be_focused()
    expect(skip).to_be_visible()
    assert inside(skip, page.viewport_size["width"])
    page.keyboard.press("Enter")
    page.wait_for_url("**/#main")
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="alice/project")).to_be_focused()
