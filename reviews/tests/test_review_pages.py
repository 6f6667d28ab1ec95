"""The review pages' smaller journeys: the review form ready to type in, committing a suggestion with its own message,
co-authors of a squash, resolving conflicts by hand, review requests the author cannot take, the lists' review state
and checks, and comments on the old side of a renamed file. Real repositories on disk, real pushes."""

import re
import shlex
from html import escape

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from repos import git
from reviews import pages, services
from reviews.models import MergeStrategy, PullRequest, ReviewRequest
from reviews.tests.test_views import messages_of, text_of

BASE = "/alice/project/pulls"
F = b"line one\nline two\nline three\n"


def commit_as(repo, branch: str, files: dict[str, bytes], message: str, *, name: str, email: str) -> str:
    """Commit top-level files on branch as someone, creating the branch from main when it does not exist yet."""
    if branch not in {b.name for b in git.branches(repo.path)}:
        git.update_ref(repo.path, f"refs/heads/{branch}", git.branch_sha(repo.path, "main"), git.ZERO_SHA)
    return git.commit_files(repo.path, branch, files, message, name=name, email=email)


def follow(pr: PullRequest, pusher) -> None:
    """Record the head branch's new commits as a push would."""
    new = git.branch_sha(pr.repository.path, pr.head_branch)
    ref = f"refs/heads/{pr.head_branch}"
    services.record_branch_update(pr.repository, ref=ref, old_sha=pr.head_sha, new_sha=new, forced=False, pusher=pusher)
    pr.refresh_from_db()


@pytest.fixture
def repo(private_repo):
    commit_as(private_repo, "main", {"f.txt": F}, "add f", name="alice", email="alice@example.com")
    commit_as(
        private_repo, "feature", {"f.txt": F.replace(b"two", b"2")}, "edit f", name="bob", email="bob@example.com"
    )
    return private_repo


@pytest.fixture
def pr(repo, bob):
    return services.open_pull_request(repo, actor=bob, title="Edit f", base="main", head="feature")


# "Review changes" opens the review form ready to type in.


def test_review_changes_leads_to_a_review_form_that_opens_focused(client, pr, alice):
    client.force_login(alice)
    assert f'href="{BASE}/1/files#review-changes"' in text_of(client.get(f"{BASE}/1"))
    files = text_of(client.get(f"{BASE}/1/files"))
    panel = re.search(r'<details class="box review-panel" id="review-changes"[^>]*>', files).group(0)
    assert 'data-focus-on-open="textarea[name=body]"' in panel


# Committing a suggestion with the message typed.


def test_a_suggestion_is_proposed_with_githubs_message_and_committed_with_the_one_typed(repo, pr, alice, bob):
    suggestion = services.add_comment(pr, actor=alice, body="```suggestion\nline II\n```", path="f.txt", line=2)
    assert services.suggestion_message(suggestion) == "Apply suggestion from @alice"

    new = services.apply_suggestion(suggestion, actor=bob, message="Spell out line two\r\n\r\nAs alice asked.\r\n")

    applied = git.commit(repo.path, new)
    assert applied.message == "Spell out line two\n\nAs alice asked.\n"
    assert (applied.author.email, applied.committer.email) == (alice.email, bob.email)
    assert git.file_lines(repo.path, new, "f.txt")[1] == "line II"


def test_without_a_message_a_suggestion_is_committed_with_the_proposed_one(repo, pr, alice, bob):
    suggestion = services.add_comment(pr, actor=alice, body="```suggestion\nline II\n```", path="f.txt", line=2)
    new = services.apply_suggestion(suggestion, actor=bob, message="  ")
    assert git.commit(repo.path, new).message == "Apply suggestion from @alice\n"


def test_commit_suggestion_opens_a_form_and_commits_what_was_typed(client, repo, pr, alice, bob):
    suggestion = services.add_comment(pr, actor=alice, body="```suggestion\nline II\n```", path="f.txt", line=2)
    client.force_login(bob)
    page = text_of(client.get(f"{BASE}/1"))
    form = re.search(r'<details class="suggestion-apply".*?</details>', page, re.DOTALL).group(0)
    assert 'name="summary"' in form and 'value="Apply suggestion from @alice"' in form
    assert 'name="description"' in form and "Commit changes" in form

    response = client.post(
        f"{BASE}/1/comments/{suggestion.pk}/apply",
        {"summary": "Spell out line two", "description": "Suggested by alice."},
    )

    head = git.branch_sha(repo.path, "feature")
    assert response.status_code == 302
    assert messages_of(response) == [f"Committed the suggestion to feature as {head[:7]}."]
    assert git.commit(repo.path, head).message == "Spell out line two\n\nSuggested by alice.\n"
    assert git.commit(repo.path, head).author.email == alice.email


# Co-authors of a squash.


def test_a_squash_credits_the_other_authors_of_its_commits_once_each(repo, pr, alice, bob, carol):
    path = repo.path
    commit_as(repo, "feature", {"c.txt": b"c\n"}, "add c", name="Carol C", email="carol@example.com")
    commit_as(repo, "feature", {"d.txt": b"d\n"}, "add d", name="Dave", email="dave@example.org")
    commit_as(repo, "feature", {"c.txt": b"cc\n"}, "more c", name="Carol C", email="CAROL@example.com")
    commit_as(repo, "feature", {"a.txt": b"a\n"}, "add a", name="alice", email="alice@example.com")
    commit_as(repo, "feature", {"b.txt": b"b\n"}, "add b", name="bob", email="bob@example.com")
    follow(pr, bob)
    services.submit_review(pr, actor=carol, event="COMMENT", body="Fine by me.")

    message = services.default_merge_message(pr, MergeStrategy.SQUASH, actor=alice)

    trailers = [line for line in message.splitlines() if line.startswith("Co-authored-by:")]
    # bob wrote the pull request (the squash is his) and alice merges it (she commits it): neither is repeated.
    assert trailers == ["Co-authored-by: Carol C <carol@example.com>", "Co-authored-by: Dave <dave@example.org>"]
    assert message.endswith("\n\n" + "\n".join(trailers) + "\n")
    services.merge_pull_request(pr, actor=alice, strategy=MergeStrategy.SQUASH, head_sha=pr.head_sha)
    squashed = git.commit(path, git.branch_sha(path, "main"))
    assert squashed.message == message
    assert (squashed.author.email, squashed.committer.email) == (bob.email, alice.email)


def test_the_merge_box_proposes_the_co_authors_in_the_squash_message(client, repo, pr, alice, bob):
    commit_as(repo, "feature", {"d.txt": b"d\n"}, "add d", name="Dave", email="dave@example.org")
    follow(pr, bob)
    client.force_login(alice)
    page = text_of(client.get(f"{BASE}/1"))
    assert escape("Co-authored-by: Dave <dave@example.org>") in page


# Conflicts resolved on the command line.


@pytest.fixture
def conflicting(repo, bob):
    commit_as(
        repo,
        "bob's-fix",
        {"f.txt": b"line one\nbob's two\nline three\n"},
        "bob's two",
        name="bob",
        email="bob@example.com",
    )
    commit_as(
        repo,
        "main",
        {"f.txt": b"line one\nmain's two\nline three\n"},
        "main's two",
        name="alice",
        email="alice@example.com",
    )
    return services.open_pull_request(repo, actor=bob, title="Fix", base="main", head="bob's-fix")


def test_a_conflicting_pull_request_shows_the_command_line_steps_quoted(client, repo, conflicting, bob, carol):
    steps = pages.conflict_steps(conflicting, ["f.txt"])
    head = shlex.quote("bob's-fix")
    assert steps.splitlines() == [
        f"# In a clone of the repository (git clone {repo.http_url}):",
        "git fetch origin",
        f"git checkout {head}",
        "git merge origin/main",
        "# Fix the conflicts in the files above, then:",
        "git add -- f.txt",
        "git commit",
        f"git push origin {head}",
    ]
    assert head == "'bob'\"'\"'s-fix'"

    client.force_login(bob)
    page = text_of(client.get(f"{BASE}/{conflicting.number}"))
    assert "Use the command line" in page
    assert escape(steps) in page
    client.force_login(carol)
    assert "Use the command line" not in text_of(client.get(f"{BASE}/{conflicting.number}"))


# Review requests the author cannot take.


def test_asking_the_author_to_review_says_why_it_was_not_done(client, pr, alice, carol):
    client.force_login(alice)
    response = client.post(f"{BASE}/1/reviewers", {"users": "carol bob"})
    assert messages_of(response) == ["bob is the author and can't review their own pull request."]
    assert not ReviewRequest.objects.filter(pull_request=pr).exists()
    response = client.post(f"{BASE}/1/reviewers", {"users": "carol"})
    assert messages_of(response)[-1] == "Asked carol for a review."
    assert ReviewRequest.objects.filter(pull_request=pr, user=carol).exists()


def test_opening_a_pull_request_with_its_author_as_reviewer_is_refused_with_the_reason(client, repo, bob):
    client.force_login(bob)
    response = client.post(f"{BASE}/new", {"base": "main", "head": "feature", "title": "Mine", "reviewers": "bob"})
    assert response.status_code == 400
    assert escape("bob is the author and can't review their own pull request.") in text_of(response)
    assert not PullRequest.objects.exists()


def test_the_reviewer_fields_suggest_people_with_access_to_the_repository(client, repo, pr, bob):
    client.force_login(bob)
    new_pull = text_of(client.get(f"{BASE}/new?head=feature"))
    assert 'data-suggest-users-field="reviewers" data-suggest-repo="alice/project"' in new_pull
    sidebar = text_of(client.get(f"{BASE}/{pr.number}"))
    assert 'name="users"' in sidebar and 'data-suggest-users="alice/project"' in sidebar
    assert "portal/suggest.js" in new_pull and "portal/suggest.js" in sidebar
    listing = text_of(client.get(BASE))
    assert (
        'name="reviewer" value="" placeholder="reviewer" aria-label="Reviewer" data-suggest-users="alice/project"'
        in listing
    )


# Review state and checks in the lists.


def _rows(page: str) -> dict[str, str]:
    rows = page.split('class="box-row pull-row"')[1:]
    return {re.search(r'class="pull-title"[^>]*>([^<]+)<', row).group(1): row for row in rows}


def _open(repo, bob, n: int) -> PullRequest:
    commit_as(repo, f"topic-{n}", {f"t{n}.txt": b"t\n"}, f"topic {n}", name="bob", email="bob@example.com")
    return services.open_pull_request(repo, actor=bob, title=f"Topic {n}", base="main", head=f"topic-{n}")


def test_the_lists_show_review_state_and_checks_of_each_pull_request_in_few_queries(client, repo, alice, bob, carol):
    approved, changes, waiting = (_open(repo, bob, n) for n in (1, 2, 3))
    services.submit_review(approved, actor=alice, event="APPROVE")
    services.set_commit_status(repo, actor=bob, sha=approved.head_sha, state="success", context="build")
    services.submit_review(changes, actor=alice, event="APPROVE")
    services.submit_review(changes, actor=carol, event="REQUEST_CHANGES", body="Not yet.")
    services.set_commit_status(repo, actor=bob, sha=changes.head_sha, state="success", context="build")
    services.set_commit_status(repo, actor=bob, sha=changes.head_sha, state="failure", context="lint")
    services.set_commit_status(repo, actor=bob, sha=waiting.head_sha, state="pending", context="build")
    client.force_login(bob)

    with CaptureQueriesContext(connection) as three:
        rows = _rows(text_of(client.get(BASE)))
    for page in (rows, _rows(text_of(client.get("/pulls?tab=mine")))):
        assert "Approved" in page["Topic 1"] and "checks-success" in page["Topic 1"]
        assert "1 of 1 checks passed" in page["Topic 1"]
        assert "Changes requested" in page["Topic 2"] and "checks-failure" in page["Topic 2"]
        assert "1 of 2 checks passed" in page["Topic 2"]
        assert "Review required" in page["Topic 3"] and "checks-pending" in page["Topic 3"]

    # carol's change request is dismissed: alice's approval is what is left.
    services.dismiss_review(changes.reviews.get(author=carol), actor=alice, reason="Out of date.")
    for n in (4, 5, 6):
        more = _open(repo, bob, n)
        services.submit_review(more, actor=carol, event="REQUEST_CHANGES", body="No.")
        services.set_commit_status(repo, actor=bob, sha=more.head_sha, state="error", context="build")
    with CaptureQueriesContext(connection) as six:
        rows = _rows(text_of(client.get(BASE)))
    assert "Approved" in rows["Topic 2"] and "Changes requested" in rows["Topic 5"]
    assert len(six.captured_queries) == len(three.captured_queries)


def test_closed_pull_requests_without_reviews_ask_for_none(client, repo, pr, alice, bob):
    services.close_pull_request(pr, actor=bob)
    client.force_login(alice)
    row = _rows(text_of(client.get(f"{BASE}?state=closed")))["Edit f"]
    assert "Review required" not in row and "checks-" not in row


# A comment on the old side of a renamed file.


def test_an_old_side_comment_on_a_renamed_file_is_checked_against_its_old_name(
    client, clone_as, private_repo, alice, bob
):
    work = clone_as(bob)
    work.commit("add old", old__py="one\ntwo\nthree\nfour\nfive\nsix\n")
    work.push("HEAD:refs/heads/main")
    work.git("checkout", "-q", "-b", "rename")
    work.git("mv", "old.py", "new.py")
    work.commit("rename and shorten", new__py="one\ntwo\nthree\nfour\nfive\n")
    work.push("HEAD:refs/heads/rename")
    pr = services.open_pull_request(private_repo, actor=bob, title="Rename", base="main", head="rename")
    assert [
        (f.status, f.old_path, f.new_path) for f in git.diff(private_repo.path, pr.merge_base_sha, pr.head_sha)
    ] == [("renamed", "old.py", "new.py")]

    # The diff names the file by its new name; line 6 exists only on the old side.
    comment = services.add_comment(pr, actor=alice, body="Why drop six?", path="new.py", line=6, side="LEFT")

    assert (comment.path, comment.side, comment.line, comment.commit_sha) == ("new.py", "LEFT", 6, pr.merge_base_sha)
    with pytest.raises(Exception, match="Line 7 is not in new.py"):
        services.add_comment(pr, actor=alice, body="No such line", path="new.py", line=7, side="LEFT")

    # The thread shows the old file's lines, and stays on them when more code is pushed.
    client.force_login(alice)
    thread = re.search(r'<details class="review-thread.*?</details>', text_of(client.get(f"{BASE}/1")), re.DOTALL)
    assert '<td class="line-num">6</td><td class="line-code">six</td>' in thread.group(0)
    work.commit("more", new__py="one\ntwo\nthree\nfour\nfive!\n")
    work.push("HEAD:refs/heads/rename")
    comment.refresh_from_db()
    assert not comment.outdated and comment.line == 6

    # main moves on and bob merges it in: the thread follows the old file to the new merge base.
    git.commit_files(private_repo.path, "main", {"other.txt": b"x\n"}, "other", name="alice", email=alice.email)
    work.git("fetch", "-q", work.url, "main")
    work.git("merge", "-q", "--no-edit", "FETCH_HEAD")
    work.push("HEAD:refs/heads/rename")
    pr.refresh_from_db()
    comment.refresh_from_db()
    assert pr.merge_base_sha == git.branch_sha(private_repo.path, "main")
    assert (comment.outdated, comment.line, comment.commit_sha) == (False, 6, pr.merge_base_sha)
