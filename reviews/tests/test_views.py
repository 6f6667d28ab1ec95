"""The pull request pages through the Django client, against real repositories on disk."""

import re

import pytest
from django.contrib.messages import get_messages

from repos import git
from repos import services as repo_services
from repos.models import Visibility
from reviews import services
from reviews.models import Comment, PullRequest, Review, ReviewRequest

BASE = "/alice/project/pulls"
README = b"line one\nline two\nline three\n"


def commit(repo, branch: str, files: dict[str, bytes], message: str = "change", *, who: str = "bob") -> str:
    """Commit top-level files on branch, creating it from main when it does not exist yet."""
    if branch not in {b.name for b in git.branches(repo.path)}:
        git.update_ref(repo.path, f"refs/heads/{branch}", git.branch_sha(repo.path, "main"), git.ZERO_SHA)
    return git.commit_files(repo.path, branch, files, message, name=who, email=f"{who}@example.com")


def push(pr: PullRequest, files: dict[str, bytes], message: str = "more", *, pusher) -> str:
    """A new commit on the head branch, followed up as a push would be."""
    old = pr.head_sha
    new = commit(pr.repository, pr.head_branch, files, message)
    services.record_branch_update(
        pr.repository, ref=f"refs/heads/{pr.head_branch}", old_sha=old, new_sha=new, forced=False, pusher=pusher
    )
    pr.refresh_from_db()
    return new


def text_of(response) -> str:
    return response.content.decode()


def messages_of(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


@pytest.fixture
def repo(private_repo):
    """alice/project with f.txt on main and a feature branch that changes it."""
    commit(private_repo, "main", {"f.txt": README}, "add f", who="alice")
    commit(private_repo, "feature", {"f.txt": b"line one\nline 2\nline three\n", "new.txt": b"hello\n"}, "edit f")
    return private_repo


@pytest.fixture
def pr(repo, bob):
    return services.open_pull_request(
        repo, actor=bob, title="Edit f", base="main", head="feature", description="Fixes **line two**."
    )


def rule(repo, alice, required: int = 1):
    return services.save_approval_rule(None, actor=alice, repository=repo, name="Review", required_approvals=required)


# Opening and listing.


def test_a_writer_opens_a_pull_request_through_the_form(client, repo, bob, carol):
    client.force_login(bob)
    page = client.get(f"{BASE}/new?head=feature")
    assert page.status_code == 200
    assert "edit f" in text_of(page) and 'id="diff-0"' in text_of(page)
    assert 'value="edit f"' in text_of(page)

    response = client.post(
        f"{BASE}/new",
        {"base": "main", "head": "feature", "title": "Edit f", "description": "Why", "reviewers": "carol"},
    )

    pr = PullRequest.objects.get(repository=repo)
    assert response.status_code == 302 and response["Location"] == f"{BASE}/{pr.number}"
    assert (pr.title, pr.description, pr.author, pr.draft) == ("Edit f", "Why", bob, False)
    assert ReviewRequest.objects.filter(pull_request=pr, user=carol).exists()


def test_the_new_form_shows_the_service_refusal(client, repo, bob):
    client.force_login(bob)
    services.open_pull_request(repo, actor=bob, title="First", base="main", head="feature")
    response = client.post(f"{BASE}/new", {"base": "main", "head": "feature", "title": "Again"})
    assert response.status_code == 400
    assert "already open" in text_of(response)
    assert PullRequest.objects.count() == 1


def test_the_list_has_state_tabs_and_filters(client, repo, pr, alice, bob):
    commit(repo, "other", {"o.txt": b"o\n"}, "other")
    mine = services.open_pull_request(repo, actor=alice, title="Alice's change", base="main", head="other")
    services.close_pull_request(mine, actor=alice)
    client.force_login(alice)

    open_page = text_of(client.get(BASE))
    assert "Edit f" in open_page and "Alice&#x27;s change" not in open_page
    assert re.search(r"Open <span class=\"counter\">1</span>", open_page)
    closed = text_of(client.get(f"{BASE}?state=closed"))
    assert "Alice&#x27;s change" in closed and "Edit f" not in closed
    by_bob = text_of(client.get(f"{BASE}?state=all&author=bob"))
    assert "Edit f" in by_bob and "Alice&#x27;s change" not in by_bob


def test_the_dashboard_lists_what_waits_for_my_review_in_repositories_i_see(client, repo, pr, alice, carol, mallory):
    services.request_review(pr, actor=alice, users=[carol])
    client.force_login(carol)
    assert "Edit f" in text_of(client.get("/pulls"))
    assert "Edit f" not in text_of(client.get("/pulls?tab=mine"))
    client.force_login(mallory)
    assert "Edit f" not in text_of(client.get("/pulls?tab=review")) + text_of(
        client.get("/pulls?state=all&tab=involved")
    )


# The conversation.


def test_the_conversation_shows_the_description_timeline_and_merge_blocker(client, repo, pr, alice, bob):
    rule(repo, alice)
    services.add_comment(pr, actor=alice, body="Looks *fine*")
    push(pr, {"g.txt": b"g\n"}, pusher=bob)
    services.set_commit_status(
        repo, actor=bob, sha=pr.head_sha, state="failure", context="ci/tests", description="3 failed"
    )
    client.force_login(alice)

    page = text_of(client.get(f"{BASE}/{pr.number}"))

    assert "Fixes <strong>line two</strong>." in page
    assert "opened this pull request" in page
    assert "Looks <em>fine</em>" in page
    assert "pushed" in page and "(revision 2)" in page and f"{BASE}/{pr.number}/files?from=1&amp;to=2" in page
    assert "Rule &#x27;Review&#x27; needs 1 approval from anyone with write access; it has 0 (none)." in page
    assert 'name="head_sha"' not in page
    assert 'Commits <span class="counter">2</span>' in page


def test_the_files_page_shows_the_diff_and_inline_threads(client, repo, pr, alice):
    thread = services.add_comment(pr, actor=alice, body="Why *2*?", path="f.txt", line=2, commit_sha=pr.head_sha)
    client.force_login(alice)

    page = text_of(client.get(f"{BASE}/{pr.number}/files"))

    assert 'class="diff-file" id="diff-0" data-path="f.txt"' in page
    assert "line one" in page
    assert f'id="thread-{thread.pk}" data-path="f.txt" data-side="RIGHT" data-line="2"' in page
    assert "Why <em>2</em>?" in page
    assert 'id="review-inline-form"' in page


def test_the_files_page_shows_a_revision_and_the_changes_between_two(client, repo, pr, bob):
    push(pr, {"g.txt": b"pushed later\n"}, pusher=bob)
    client.force_login(bob)

    first = text_of(client.get(f"{BASE}/{pr.number}/files?rev=1"))
    between = text_of(client.get(f"{BASE}/{pr.number}/files?from=1&to=2"))
    whole = text_of(client.get(f"{BASE}/{pr.number}/files"))

    assert "pushed later" not in first and "new.txt" in first
    assert "pushed later" in between and "new.txt" not in between
    assert "pushed later" in whole and "new.txt" in whole
    assert client.get(f"{BASE}/{pr.number}/files?rev=9").status_code == 404


def test_lazy_batches_load_only_diffs_of_the_pull_request(client, repo, pr, bob):
    client.force_login(bob)
    url = f"{BASE}/{pr.number}/files/diff?old={pr.merge_base_sha}&new={pr.head_sha}&start=0&count=20"
    response = client.get(url)
    assert response.status_code == 200 and 'class="diff-file"' in text_of(response)
    later = commit(repo, "main", {"other.txt": b"not in the pull request\n"}, who="alice")
    assert client.get(f"{BASE}/{pr.number}/files/diff?old={pr.head_sha}&new={later}&start=0").status_code == 404


def test_the_commits_page_lists_commits_and_revisions(client, repo, pr, bob):
    client.force_login(bob)
    page = text_of(client.get(f"{BASE}/{pr.number}/commits"))
    assert "edit f" in page and "Revision 1" in page


# Comments and reviews.


def test_an_inline_comment_a_reply_and_resolving_through_the_forms(client, repo, pr, alice, bob):
    client.force_login(alice)
    response = client.post(
        f"{BASE}/{pr.number}/comments",
        {
            "body": "Say *two*",
            "path": "f.txt",
            "side": "RIGHT",
            "line": "2",
            "commit_sha": pr.head_sha,
            "next": "files",
            "query": "view=split&w=1&evil=x",
        },
    )
    thread = Comment.objects.get(path="f.txt")
    assert response["Location"] == f"{BASE}/{pr.number}/files?view=split&w=1#comment-{thread.pk}"
    assert (thread.line, thread.side, thread.commit_sha, thread.review) == (2, "RIGHT", pr.head_sha, None)

    client.force_login(bob)
    response = client.post(f"{BASE}/{pr.number}/comments", {"body": "Done", "reply_to": thread.pk})
    reply = Comment.objects.get(reply_to=thread)
    assert response["Location"] == f"{BASE}/{pr.number}#comment-{reply.pk}"
    response = client.post(f"{BASE}/{pr.number}/comments/{reply.pk}/resolve", {"resolved": "1"})
    thread.refresh_from_db()
    assert thread.resolved_by == bob and response["Location"] == f"{BASE}/{pr.number}#comment-{thread.pk}"
    page = text_of(client.get(f"{BASE}/{pr.number}"))
    assert "Resolved by bob" in page and "Unresolve conversation" in page


def test_a_comment_on_a_line_outside_the_file_is_refused_with_a_message(client, repo, pr, alice):
    client.force_login(alice)
    response = client.post(
        f"{BASE}/{pr.number}/comments",
        {"body": "x", "path": "f.txt", "side": "RIGHT", "line": "99", "commit_sha": pr.head_sha, "next": "files"},
        follow=True,
    )
    assert "Line 99 is not in f.txt (3 lines)." in text_of(response)
    assert not Comment.objects.exists()


def test_pending_comments_are_seen_only_by_their_author_until_the_review_is_submitted(client, repo, pr, alice, bob):
    client.force_login(alice)
    client.post(
        f"{BASE}/{pr.number}/comments",
        {"body": "Secret draft", "path": "f.txt", "side": "RIGHT", "line": "1", "pending": "1", "next": "files"},
    )
    pending = Comment.objects.get()
    assert pending.is_pending
    assert "Secret draft" in text_of(client.get(f"{BASE}/{pr.number}/files"))
    assert "1 pending comment" in text_of(client.get(f"{BASE}/{pr.number}/files"))

    client.force_login(bob)
    assert "Secret draft" not in text_of(client.get(f"{BASE}/{pr.number}"))
    assert "Secret draft" not in text_of(client.get(f"{BASE}/{pr.number}/files"))
    assert client.post(f"{BASE}/{pr.number}/comments/{pending.pk}/edit", {"body": "mine now"}).status_code == 404

    client.force_login(alice)
    response = client.post(
        f"{BASE}/{pr.number}/review", {"event": "REQUEST_CHANGES", "body": "See inline", "commit_sha": pr.head_sha}
    )
    review = Review.objects.get(author=alice)
    assert response["Location"] == f"{BASE}/{pr.number}#review-{review.pk}"
    assert review.state == Review.State.CHANGES_REQUESTED and review.commit_sha == pr.head_sha

    client.force_login(bob)
    page = text_of(client.get(f"{BASE}/{pr.number}"))
    assert "Secret draft" in page and "requested changes" in page and "See inline" in page
    assert "alice requested changes." in page


def test_the_author_is_told_they_cannot_approve_their_own_pull_request(client, repo, pr, bob):
    client.force_login(bob)
    response = client.post(
        f"{BASE}/{pr.number}/review", {"event": "APPROVE", "commit_sha": pr.head_sha, "next": "files"}
    )
    assert response["Location"] == f"{BASE}/{pr.number}/files#review-changes"
    assert messages_of(response) == ["You cannot approve your own pull request."]
    assert not Review.objects.exclude(state=Review.State.PENDING).exists()


def test_an_approval_by_bob_then_a_merge_by_alice_through_the_forms(client, repo, alice, bob):
    rule(repo, alice)
    pr = services.open_pull_request(repo, actor=alice, title="Edit f", base="main", head="feature")
    client.force_login(bob)
    client.post(f"{BASE}/{pr.number}/review", {"event": "APPROVE", "commit_sha": pr.head_sha})

    client.force_login(alice)
    page = text_of(client.get(f"{BASE}/{pr.number}"))
    assert 'name="head_sha" value="' + pr.head_sha in page
    assert 'data-message="Edit f (#1)' in page  # squash lists the commits under the title
    response = client.post(
        f"{BASE}/{pr.number}/merge", {"strategy": "merge", "head_sha": pr.head_sha, "message": "Merge it"}
    )

    pr.refresh_from_db()
    assert response["Location"] == f"{BASE}/{pr.number}"
    assert pr.is_merged and pr.merged_by == alice
    main = git.branch_sha(repo.path, "main")
    assert main == pr.merge_commit_sha
    assert git.commit(repo.path, main).message.startswith("Merge it")
    assert git.file_lines(repo.path, main, "f.txt") == ["line one", "line 2", "line three"]
    assert "merged this" in text_of(client.get(f"{BASE}/{pr.number}"))


def test_a_merge_form_from_before_a_push_merges_nothing(client, repo, pr, alice, bob):
    seen = pr.head_sha
    push(pr, {"g.txt": b"late\n"}, pusher=bob)
    main = git.branch_sha(repo.path, "main")
    client.force_login(alice)

    response = client.post(f"{BASE}/{pr.number}/merge", {"strategy": "merge", "head_sha": seen}, follow=True)

    assert "The branch changed since you looked" in text_of(response)
    pr.refresh_from_db()
    assert pr.is_open and git.branch_sha(repo.path, "main") == main


def test_the_author_commits_a_suggestion_to_the_head_branch(client, repo, pr, alice, bob):
    client.force_login(alice)
    body = "Spell it out:\n```suggestion\nline two, spelled out\n```\n"
    client.post(
        f"{BASE}/{pr.number}/comments",
        {"body": body, "path": "f.txt", "side": "RIGHT", "line": "2", "commit_sha": pr.head_sha},
    )
    comment = Comment.objects.get()
    client.force_login(bob)
    files = text_of(client.get(f"{BASE}/{pr.number}/files"))
    assert "Commit suggestion" in files and "+line two, spelled out" in files and "-line 2" in files

    response = client.post(f"{BASE}/{pr.number}/comments/{comment.pk}/apply")

    comment.refresh_from_db()
    pr.refresh_from_db()
    head = git.branch_sha(repo.path, "feature")
    assert response["Location"] == f"{BASE}/{pr.number}#comment-{comment.pk}"
    assert comment.suggestion_applied_sha == head == pr.head_sha
    assert git.file_lines(repo.path, head, "f.txt") == ["line one", "line two, spelled out", "line three"]
    assert "Applied in" in text_of(client.get(f"{BASE}/{pr.number}"))


def test_edit_close_and_reopen_through_the_forms(client, repo, pr, bob):
    client.force_login(bob)
    client.post(f"{BASE}/{pr.number}/edit", {"title": "Edit f, better"})
    client.post(f"{BASE}/{pr.number}/edit", {"draft": "1"})
    pr.refresh_from_db()
    assert (pr.title, pr.description, pr.draft) == ("Edit f, better", "Fixes **line two**.", True)
    assert "This pull request is a draft" in text_of(client.get(f"{BASE}/{pr.number}"))
    client.post(f"{BASE}/{pr.number}/close")
    pr.refresh_from_db()
    assert pr.state == PullRequest.State.CLOSED
    client.post(f"{BASE}/{pr.number}/reopen")
    pr.refresh_from_db()
    assert pr.is_open


def test_an_admin_overrides_the_rules_with_a_reason(client, repo, pr, alice, bob):
    rule(repo, alice)
    client.force_login(bob)
    assert "Override approval rules" not in text_of(client.get(f"{BASE}/{pr.number}"))
    assert client.post(f"{BASE}/{pr.number}/override", {"reason": "bob is trying"}).status_code == 403
    pr.refresh_from_db()
    assert pr.override_at is None

    client.force_login(alice)
    client.post(f"{BASE}/{pr.number}/override", {"reason": "Hotfix for the outage"})
    page = text_of(client.get(f"{BASE}/{pr.number}"))
    assert "overrode the approval rules" in page and "Hotfix for the outage" in page
    assert 'name="head_sha"' in page


# Who may do what.


def test_a_reader_comments_and_reviews_but_gets_no_merge_button(client, repo, pr, carol):
    client.force_login(carol)
    assert client.post(f"{BASE}/{pr.number}/comments", {"body": "Nice"}).status_code == 302
    client.post(f"{BASE}/{pr.number}/review", {"event": "COMMENT", "body": "Read it", "commit_sha": pr.head_sha})
    assert Comment.objects.filter(author=carol, body="Nice").exists()
    assert Review.objects.filter(author=carol, state=Review.State.COMMENTED).exists()

    page = text_of(client.get(f"{BASE}/{pr.number}"))
    assert "carol may not merge into main." in page
    assert 'name="head_sha"' not in page and "Override approval rules" not in page

    # Buttons a reader is not shown refuse a hand-made request with a 403, before any service runs.
    assert client.post(f"{BASE}/{pr.number}/merge", {"strategy": "merge", "head_sha": pr.head_sha}).status_code == 403
    assert client.post(f"{BASE}/{pr.number}/close").status_code == 403
    pr.refresh_from_db()
    assert pr.is_open


def _routes(pr, comment, review) -> tuple[list[str], list[str]]:
    n = pr.number
    pages = [BASE, f"{BASE}/new", f"{BASE}/{n}", f"{BASE}/{n}/commits", f"{BASE}/{n}/files"]
    pages.append(f"{BASE}/{n}/files/diff?old={pr.merge_base_sha}&new={pr.head_sha}&start=0")
    actions = [
        f"{BASE}/new",
        *(f"{BASE}/{n}/{action}" for action in ("edit", "close", "reopen", "reviewers", "comments", "review")),
        *(f"{BASE}/{n}/comments/{comment.pk}/{action}" for action in ("edit", "delete", "resolve", "apply")),
        f"{BASE}/{n}/merge",
        f"{BASE}/{n}/override",
        f"{BASE}/{n}/dismiss/{review.pk}",
        f"{BASE}/{n}/delete-branch",
    ]
    return pages, actions


def test_an_outsider_gets_404_everywhere(client, repo, pr, alice, mallory):
    comment = services.add_comment(pr, actor=alice, body="x")
    review = services.submit_review(pr, actor=alice, event="APPROVE", commit_sha=pr.head_sha)
    pages, actions = _routes(pr, comment, review)
    client.force_login(mallory)
    for url in pages:
        assert client.get(url).status_code == 404, url
    for url in actions:
        assert client.post(url, {"body": "x", "reason": "x", "title": "x"}).status_code == 404, url
    pr.refresh_from_db()
    assert pr.is_open and pr.title == "Edit f" and Comment.objects.count() == 1


def test_anonymous_visitors_get_404_on_a_private_repository_and_sign_in_for_actions(client, repo, pr, alice):
    comment = services.add_comment(pr, actor=alice, body="x")
    review = services.submit_review(pr, actor=alice, event="APPROVE", commit_sha=pr.head_sha)
    pages, actions = _routes(pr, comment, review)
    for url in pages:
        response = client.get(url)
        assert response.status_code == 404 or response["Location"].startswith("/accounts/login/"), url
    for url in actions:
        response = client.post(url, {"body": "x"})
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/"), url
    assert client.get("/pulls")["Location"].startswith("/accounts/login/")


def test_anonymous_visitors_read_a_public_repository_without_forms(client, repo, pr, alice):
    repo_services.update_repository(repo, actor=alice, visibility=Visibility.PUBLIC)
    services.add_comment(pr, actor=alice, body="Public remark", path="f.txt", line=1, commit_sha=pr.head_sha)
    page = text_of(client.get(f"{BASE}/{pr.number}"))
    assert "Public remark" in page and "Fixes <strong>line two</strong>." in page
    assert "csrfmiddlewaretoken" not in page.split("</header>")[1]
    files = text_of(client.get(f"{BASE}/{pr.number}/files"))
    assert "Public remark" in files and 'id="review-inline-form"' not in files
    assert "Edit f" in text_of(client.get(BASE))


# In a real browser: the page's script puts forms and threads where they belong.


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_in_a_browser_a_range_comment_with_a_suggestion_lands_under_its_lines(sign_in_page, repo, pr, alice):
    page = sign_in_page(alice)
    page.goto(f"{BASE}/{pr.number}/files")
    page.locator("#diff-0 tr", has_text="line one").hover()
    page.click(".review-add")
    page.locator("#diff-0 tr", has_text="line three").hover()
    page.click(".review-add", modifiers=["Shift"])
    assert page.locator(".inline-comment-target").inner_text() == "Commenting on lines 1–3 of the new file"
    page.click(".insert-suggestion")
    area = page.locator(".inline-comment-form textarea")
    assert area.input_value() == "```suggestion\nline one\nline 2\nline three\n```\n"
    area.press("End")
    area.type("Spelled out, please.")
    page.click(".inline-comment-form button:text('Add single comment')")

    page.wait_for_url(re.compile(r"/files#comment-\d+$"))
    comment = Comment.objects.get()
    assert (comment.path, comment.side, comment.start_line, comment.line) == ("f.txt", "RIGHT", 1, 3)
    assert comment.body.startswith("```suggestion\nline one\n")
    placed = page.locator(f"#diff-0 tr.review-thread-row #comment-{comment.pk}")
    placed.wait_for()
    assert placed.locator("xpath=ancestor::tr[1]/preceding-sibling::tr[1]").inner_text().endswith("line three")
    assert page.locator("#review-threads").is_hidden()


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_in_a_browser_a_thread_on_a_file_loaded_later_finds_its_line(sign_in_page, private_repo, alice, bob):
    commit(private_repo, "many", {f"file{n:02}.txt": b"first\nsecond\n" for n in range(25)}, "many files")
    pr = services.open_pull_request(private_repo, actor=bob, title="Many", base="main", head="many")
    thread = services.add_comment(pr, actor=alice, body="Late one", path="file24.txt", line=2, commit_sha=pr.head_sha)
    page = sign_in_page(alice)

    page.goto(f"{BASE}/{pr.number}/files#comment-{thread.pk}")

    page.locator(f"#diff-24 tr.review-thread-row #comment-{thread.pk}").wait_for()
    assert page.locator("#diff-24 tr.review-thread-row").count() == 1


def test_a_warning_shows_as_a_warning_in_the_list_and_on_the_commit(client, pr, alice, bob):
    services.set_commit_status(pr.repository, actor=bob, sha=pr.head_sha, state="success", context="ci/build")
    services.set_commit_status(pr.repository, actor=bob, sha=pr.head_sha, state="warning", context="ci/lint")
    client.force_login(alice)
    listed = text_of(client.get(BASE))
    assert 'class="checks-icon checks-warning"' in listed and "1 of 2 checks passed" in listed
    fragment = text_of(client.get(f"/alice/project/statuses/{pr.head_sha}"))
    assert re.search(r'class="check check-warning">\s*<span class="check-state" title="warning">!</span>', fragment)


def test_statuses_show_on_the_pull_request_and_on_its_commit(client, pr, alice, bob, mallory):
    services.set_commit_status(
        pr.repository, actor=bob, sha=pr.head_sha, state="failure", context="ci/jenkins", description="2 tests failed"
    )
    client.force_login(alice)
    assert "ci/jenkins" in text_of(client.get(f"{BASE}/{pr.number}"))
    # The commit page is cached by its sha, so it loads the statuses, which change, from their own URL.
    commit_page = text_of(client.get(f"/alice/project/commit/{pr.head_sha}"))
    assert f'data-statuses-url="/alice/project/statuses/{pr.head_sha}"' in commit_page
    fragment = text_of(client.get(f"/alice/project/statuses/{pr.head_sha}"))
    assert "ci/jenkins" in fragment and "2 tests failed" in fragment and "check-failure" in fragment
    assert client.get("/alice/project/statuses/not-a-sha").status_code == 404
    client.force_login(mallory)
    assert client.get(f"/alice/project/statuses/{pr.head_sha}").status_code == 404
