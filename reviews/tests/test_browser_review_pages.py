"""The review pages in Chromium: the review form opens ready to type in, a suggestion is committed with the
message its author edited, the line "+" works from the keyboard, and reviewer fields suggest people."""

import re

import pytest
from playwright.sync_api import expect

from repos import git
from reviews import services
from reviews.models import Comment
from reviews.tests.test_review_pages import BASE, pr, repo  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_review_changes_opens_the_review_form_with_the_cursor_in_it(sign_in_page, pr, alice):  # noqa: F811
    page = sign_in_page(alice)
    page.goto(f"{BASE}/{pr.number}")
    page.click("#new-comment a.button:text('Review changes')")

    page.wait_for_url(re.compile(r"/files#review-changes$"))
    body = page.locator("#review-changes textarea[name=body]")
    expect(body).to_be_focused()
    # Closed and opened again by hand, it is ready to type in again.
    page.locator("#review-changes > summary").click()
    expect(body).to_be_hidden()
    page.locator("#review-changes > summary").click()
    expect(body).to_be_focused()
    page.keyboard.type("Looks right.")
    expect(body).to_have_value("Looks right.")


def test_a_suggestion_is_committed_with_the_message_its_author_edited(sign_in_page, repo, pr, alice, bob):  # noqa: F811
    body = "Spell it out.\n```suggestion\nline II\n```\n"
    suggestion = services.add_comment(pr, actor=alice, body=body, path="f.txt", line=2)
    page = sign_in_page(bob)
    page.goto(f"{BASE}/{pr.number}")

    box = page.locator(f"#comment-{suggestion.pk} details.suggestion-apply")
    box.locator("summary", has_text="Commit suggestion").click()
    summary = box.locator("input[name=summary]")
    expect(summary).to_be_focused()
    expect(summary).to_have_value("Apply suggestion from @alice")
    summary.fill("Spell out line two")
    box.locator("textarea[name=description]").fill("As alice suggested in the review.")
    box.locator("button", has_text="Commit changes").click()

    expect(page.locator(f"#comment-{suggestion.pk} .suggestion .badge.applied")).to_be_visible()
    head = git.branch_sha(repo.path, "feature")
    applied = git.commit(repo.path, head)
    assert applied.message == "Spell out line two\n\nAs alice suggested in the review.\n"
    assert (applied.author.email, applied.committer.email) == (alice.email, bob.email)
    assert applied.parents == (pr.head_sha,)
    assert git.file_lines(repo.path, head, "f.txt") == ["line one", "line II", "line three"]


def test_from_the_keyboard_tab_reaches_a_plus_and_enter_opens_the_comment_form(sign_in_page, pr, alice):  # noqa: F811
    page = sign_in_page(alice)
    page.goto(f"{BASE}/{pr.number}/files")
    plus = page.locator("#diff-0 button.review-add")
    page.locator("#diff-0 .diff-toggle").focus()

    for _press in range(10):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.classList.contains('review-add')"):
            break
    expect(plus).to_be_focused()
    expect(plus).to_have_attribute("aria-label", "Comment on line 1 of the new file")
    # Focus shows: the button appears with an outline around it.
    expect(plus).to_have_css("opacity", "1")
    assert plus.evaluate("el => getComputedStyle(el).outlineStyle") == "solid"

    # The arrow keys walk the lines: the removed line two (old side), then its replacement (new side).
    page.keyboard.press("ArrowDown")
    expect(plus).to_have_attribute("aria-label", "Comment on line 2 of the old file")
    page.keyboard.press("ArrowDown")
    expect(plus).to_have_attribute("aria-label", "Comment on line 2 of the new file")
    expect(plus).to_be_focused()
    page.keyboard.press("Enter")

    form = page.locator("#diff-0 form.inline-comment-form")
    expect(form).to_be_visible()
    expect(form.locator(".inline-comment-target")).to_have_text("Commenting on line 2 of the new file")
    expect(form.locator("textarea[name=body]")).to_be_focused()
    page.keyboard.type("Typed without a mouse.")
    page.keyboard.press("Control+Enter")

    page.wait_for_url(re.compile(r"/files#comment-\d+$"))
    comment = Comment.objects.get()
    assert (comment.path, comment.side, comment.line, comment.body) == ("f.txt", "RIGHT", 2, "Typed without a mouse.")


def test_space_on_a_plus_opens_the_form_on_the_old_side(sign_in_page, pr, alice):  # noqa: F811
    page = sign_in_page(alice)
    page.goto(f"{BASE}/{pr.number}/files")
    plus = page.locator("#diff-0 button.review-add")
    plus.focus()
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Space")
    target = page.locator("#diff-0 form.inline-comment-form .inline-comment-target")
    expect(target).to_have_text("Commenting on line 2 of the old file")


def test_the_reviewer_field_suggests_people_as_they_are_typed(sign_in_page, pr, bob):  # noqa: F811
    page = sign_in_page(bob)
    page.goto(f"{BASE}/{pr.number}")
    page.locator("details.request-review > summary").click()
    field = page.locator("details.request-review input[name=users]")
    field.press_sequentially("alice, ca")

    options = page.locator("details.request-review datalist option")
    expect(options).to_have_count(1)
    expect(options.first).to_have_attribute("value", "alice, carol")
    expect(field).to_have_attribute("list", re.compile(r"^user-suggestions-\d+$"))
