"""The review journey in Chromium: bob pushes a branch over SSH and opens a pull request; alice comments on a line
with a suggestion and requests changes; bob commits the suggestion from the browser; alice approves and
squash-merges; the branch is gone and main holds the one squashed commit."""

import re
import subprocess

import pytest
from playwright.sync_api import expect

from portal import services as accounts
from repos import git
from reviews import services
from reviews.models import PullRequest, Review

pytestmark = pytest.mark.browser


def _git(*args: str, env: dict, cwd=None) -> subprocess.CompletedProcess:
    result = subprocess.run(["git", *args], env=env, cwd=cwd, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result


def test_push_review_suggest_approve_and_squash_merge(
    live_server, settings, ssh_server, ssh_keypair, git_ssh_env, sign_in_page, private_repo, alice, bob, tmp_path
):
    settings.PORTAL_BASE_URL = live_server.url
    services.save_approval_rule(None, actor=alice, repository=private_repo, name="One reviewer")
    main_before = git.branch_sha(private_repo.path, "main")

    # bob pushes a new branch over SSH; git prints where to open the pull request.
    keyfile, public_key = ssh_keypair("bob")
    accounts.add_ssh_key(bob, actor=bob, title="laptop", public_key=public_key)
    env = git_ssh_env(keyfile) | {"GIT_AUTHOR_EMAIL": bob.email, "GIT_COMMITTER_EMAIL": bob.email}
    ssh_url = f"ssh://git@127.0.0.1:{ssh_server.port}/alice/project.git"
    work = tmp_path / "work"
    _git("clone", "-q", ssh_url, str(work), env=env)
    _git("checkout", "-q", "-b", "greeting", env=env, cwd=work)
    (work / "greet.py").write_text("def greet(name):\n    return 'hello ' + name\n")
    _git("add", "greet.py", env=env, cwd=work)
    _git("commit", "-q", "-m", "Greet people", env=env, cwd=work)
    pushed = _git("push", ssh_url, "greeting", env=env, cwd=work)
    link = re.search(r"remote:\s+(\S+/pulls/new\?head=greeting)", pushed.stderr)
    assert link, pushed.stderr

    # bob opens the pull request from that link.
    page = sign_in_page(bob)
    page.goto(link.group(1))
    page.fill("input[name=title]", "Greet people")
    page.fill("textarea[name=description]", "Adds **greet**.")
    page.click("form.new-pull-form button.primary")
    page.wait_for_url("**/alice/project/pulls/1")
    expect(page.locator(".markdown-body strong", has_text="greet")).to_be_visible()
    expect(page.locator(".merge-blocker")).to_contain_text("Rule 'One reviewer' needs 1 approval")

    # alice opens the diff, comments on line 2 with a suggestion as part of a review, and requests changes.
    reviewer = sign_in_page(alice)
    reviewer.goto("/alice/project/pulls/1/files")
    line = reviewer.locator(".diff-file[data-path='greet.py'] tr.diff-add").nth(1)
    line.hover()
    reviewer.locator("button.review-add").click()
    form = reviewer.locator("form.inline-comment-form")
    form.locator(".insert-suggestion").click()
    body = form.locator("textarea[name=body]")
    expect(body).to_have_value(re.compile(r"```suggestion\n    return 'hello ' \+ name\n```"))
    body.fill("Use an f-string.\n```suggestion\n    return f'hello {name}'\n```\n")
    form.locator("button[name=pending][value='1']").click()
    reviewer.wait_for_url(re.compile(r".*/pulls/1/files.*"))
    panel = reviewer.locator("#review-changes")
    expect(panel).to_contain_text("1 pending comment")
    panel.locator("textarea[name=body]").fill("One change, please.")
    panel.locator("input[value=REQUEST_CHANGES]").check()
    panel.locator("button.primary").click()
    reviewer.wait_for_load_state()
    pr = PullRequest.objects.get(repository=private_repo, number=1)
    assert pr.reviews.get(author=alice).state == Review.State.CHANGES_REQUESTED

    # bob sees the request and commits the suggestion from the browser.
    page.goto("/alice/project/pulls/1")
    expect(page.locator(".merge-blocker")).to_contain_text("alice requested changes.")
    page.locator("details.suggestion-apply > summary").first.click()
    expect(page.locator("details.suggestion-apply input[name=summary]")).to_have_value("Apply suggestion from @alice")
    page.locator("details.suggestion-apply button", has_text="Commit changes").click()
    page.wait_for_load_state()
    pr.refresh_from_db()
    head = git.branch_sha(private_repo.path, "greeting")
    assert pr.head_sha == head and pr.revisions.count() == 2
    applied = git.commit(private_repo.path, head)
    assert (applied.author.email, applied.committer.email) == (alice.email, bob.email)
    assert git.file_lines(private_repo.path, head, "greet.py")[1] == "    return f'hello {name}'"
    expect(page.locator(".suggestion .badge.applied")).to_be_visible()

    # alice approves what is there now; the merge button turns on; she squash-merges and deletes the branch.
    reviewer.goto("/alice/project/pulls/1/files")
    panel = reviewer.locator("#review-changes")
    if not panel.evaluate("el => el.open"):
        panel.locator("summary").click()
    panel.locator("input[value=APPROVE]").check()
    panel.locator("button.primary").click()
    reviewer.wait_for_load_state()
    reviewer.goto("/alice/project/pulls/1")
    merge = reviewer.locator("form.merge-form")
    expect(merge.locator("button.primary")).to_be_enabled()
    merge.locator("select[name=strategy]").select_option("squash")
    expect(merge.locator("textarea[name=message]")).to_have_value(re.compile(r"^Greet people \(#1\)"))
    merge.locator("input[name=delete_branch]").check()
    merge.locator("button.primary").click()
    expect(reviewer.locator(".merge-box.merged")).to_contain_text("merged this")

    pr.refresh_from_db()
    assert pr.state == PullRequest.State.MERGED and pr.merge_strategy == "squash"
    assert "greeting" not in {branch.name for branch in git.branches(private_repo.path)}
    squashed = git.commit(private_repo.path, git.branch_sha(private_repo.path, "main"))
    assert squashed.sha == pr.merge_commit_sha and squashed.parents == (main_before,)
    assert squashed.summary == "Greet people (#1)"
    assert "* Greet people" in squashed.message and "* Apply suggestion from @alice" in squashed.message
    assert git.file_lines(private_repo.path, squashed.sha, "greet.py") == [
        "def greet(name):",
        "    return f'hello {name}'",
    ]
