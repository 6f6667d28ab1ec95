"""Reading code in a real browser: selecting a line range in a blob, and scrolling a big compare until lazily
loaded files arrive."""

import re

import pytest

from repos import services as repo_services
from repos.tests.worktree import commit_all, run

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def big_repo(alice, work):
    """alice/big: main with a 40-line file, and a branch that changes 120 files."""
    repo = repo_services.create_repository(actor=alice, owner=alice, name="big")
    (work / "lines.py").write_text("".join(f"value_{n} = {n}\n" for n in range(1, 41)))
    commit_all(work, "Forty lines")
    run(work, "checkout", "-q", "-b", "many")
    for n in range(120):
        (work / f"file{n:03}.txt").write_text("".join(f"line {k} of file {n}\n" for k in range(30)))
    commit_all(work, "Add 120 files")
    run(work, "push", "-q", str(repo.path), "main", "many")
    return repo


def selected_lines(page) -> list[str]:
    return page.eval_on_selector_all("tr.selected", "rows => rows.map(row => row.id)")


def test_clicking_and_shift_clicking_line_numbers_selects_a_range(sign_in_page, alice, big_repo):
    page = sign_in_page(alice)
    page.goto("/alice/big/blob/main/lines.py")
    page.locator('td[data-line="10"]').click()
    page.wait_for_function("location.hash === '#L10'")
    assert selected_lines(page) == ["L10"]
    page.locator('td[data-line="20"]').click(modifiers=["Shift"])
    page.wait_for_function("location.hash === '#L10-L20'")
    assert selected_lines(page) == [f"L{n}" for n in range(10, 21)]
    # Opening the URL highlights the range on load.
    other = sign_in_page(alice)
    other.goto("/alice/big/blob/main/lines.py#L3-L5")
    other.wait_for_selector("tr#L3.selected")
    assert selected_lines(other) == ["L3", "L4", "L5"]


def test_scrolling_a_big_compare_loads_the_files_not_yet_shown(sign_in_page, alice, big_repo):
    page = sign_in_page(alice)
    page.goto("/alice/big/compare/main...many")
    assert "120 changed files" in page.locator(".diff-toolbar").inner_text()
    last = page.locator("#diff-119")
    assert "diff-pending" in last.get_attribute("class")
    assert page.locator("#diff-0 .diff-table").count() == 1
    # Scroll down until the last file has been fetched and rendered in place.
    for _ in range(200):
        if "diff-pending" not in (last.get_attribute("class") or ""):
            break
        page.mouse.wheel(0, 4000)
        page.wait_for_timeout(50)
    page.wait_for_selector("#diff-119 .diff-table")
    assert re.search(r"line 29 of file 119", page.locator("#diff-119").inner_text())
    assert page.locator(".diff-pending").count() == 0


def test_the_ref_menu_loads_when_opened_and_switches_branch_keeping_the_path(sign_in_page, alice, big_repo):
    page = sign_in_page(alice)
    page.goto("/alice/big/blob/main/lines.py")
    page.locator("details.ref-switcher summary").click()
    page.locator(".ref-menu input").fill("man")
    option = page.locator('.ref-menu a[href="/alice/big/blob/many/lines.py"]')
    option.wait_for()
    assert page.locator('.ref-menu li[data-name="main"]').is_hidden()
    option.click()
    page.wait_for_url("**/alice/big/blob/many/lines.py")
    assert "many" in page.locator("details.ref-switcher summary").inner_text()
