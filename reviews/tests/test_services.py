"""Pull request services against real repositories: revisions, reviews, rules, protection, merge."""

import threading

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from portal import services as accounts
from portal.models import AuditEvent
from repos import git
from repos import services as repo_services
from repos.models import Role
from reviews import services
from reviews.models import ApprovalRule, Comment, Event, MergeStrategy, PullRequest, Review
from reviews.rules import approval_status, merge_blocker
from reviews.tests.conftest import commit, make_branch


@pytest.fixture
def feature(private_repo):
    """alice/project with a feature branch one commit ahead of main."""
    make_branch(private_repo, "feature", {"app.py": b"print('hello')\n"}, "add app")
    return private_repo


@pytest.fixture
def pr(feature, bob):
    return services.open_pull_request(feature, actor=bob, title="Add the app", base="main", head="feature")


def approve(pr, user, sha=None):
    return services.submit_review(pr, actor=user, event="APPROVE", commit_sha=sha or pr.head_sha)


def rule(repo, actor, name="Review", *, required=1, users=(), teams=(), **options):
    return services.save_approval_rule(
        None, actor=actor, repository=repo, name=name, required_approvals=required, users=users, teams=teams, **options
    )


def main_sha(repo) -> str:
    return git.branch_sha(repo.path, "main")


# Opening.


def test_opening_records_the_first_revision_and_the_event(pr, bob):
    assert pr.number == 1
    revision = pr.revisions.get()
    assert (revision.number, revision.head_sha, revision.commit_count) == (1, pr.head_sha, 1)
    assert revision.patch_id and revision.merge_base_sha == pr.merge_base_sha
    assert Event.objects.filter(pull_request=pr, kind="opened", actor=bob).exists()
    assert AuditEvent.objects.filter(action="pull_request.open", actor=bob).exists()


def test_it_refuses_a_pull_request_with_nothing_to_merge_or_an_unknown_branch(private_repo, bob):
    git.update_ref(private_repo.path, "refs/heads/same", main_sha(private_repo), git.ZERO_SHA)
    with pytest.raises(ValidationError, match="already contains"):
        services.open_pull_request(private_repo, actor=bob, title="x", base="main", head="same")
    with pytest.raises(ValidationError, match="no branch 'nope'"):
        services.open_pull_request(private_repo, actor=bob, title="x", base="main", head="nope")
    assert not PullRequest.objects.exists()


def test_an_outsider_cannot_open_one(feature, mallory):
    from django.http import Http404

    with pytest.raises(Http404):
        services.open_pull_request(feature, actor=mallory, title="x", base="main", head="feature")


# Reviews and approvals.


def test_the_author_cannot_approve_their_own_pull_request(pr, bob):
    with pytest.raises(PermissionDenied, match="cannot approve your own"):
        approve(pr, bob)
    assert not pr.reviews.exclude(state=Review.State.PENDING).exists()


def test_an_approval_is_bound_to_the_head_it_saw(pr, alice):
    review = approve(pr, alice)
    assert (review.state, review.commit_sha) == (Review.State.APPROVED, pr.head_sha)
    with pytest.raises(ValidationError, match="not a revision"):
        approve(pr, alice, sha="0123456789" * 4)


def test_new_code_dismisses_the_approval(pr, alice, bob):
    rule(pr.repository, alice)
    approve(pr, alice)
    assert merge_blocker(pr, alice) is None
    new = commit(pr.repository, "feature", {"app.py": b"print('bye')\n"})
    services.record_branch_update(
        pr.repository, ref="refs/heads/feature", old_sha=pr.head_sha, new_sha=new, forced=False, pusher=bob
    )
    pr.refresh_from_db()
    assert pr.head_sha == new and pr.revisions.count() == 2
    review = pr.reviews.get(author=alice)
    assert review.is_dismissed and "new code" in review.dismissed_reason
    assert "Rule 'Review' needs 1 approval" in merge_blocker(pr, alice)


def test_an_always_dismiss_rule_dismisses_even_a_rebase(pr, alice, bob):
    rule(pr.repository, alice, dismissal=ApprovalRule.Dismissal.ALWAYS)
    approve(pr, alice)
    commit(pr.repository, "main", {"other.txt": b"x\n"})
    rebased = git.rebase_commits(
        pr.repository.path, main_sha(pr.repository), pr.head_sha, committer=git.Person("b", "b@x")
    )
    git.update_ref(pr.repository.path, "refs/heads/feature", rebased, pr.head_sha)
    services.record_branch_update(
        pr.repository, ref="refs/heads/feature", old_sha=pr.head_sha, new_sha=rebased, forced=True, pusher=bob
    )
    pr.refresh_from_db()
    assert pr.reviews.get(author=alice).is_dismissed
    assert merge_blocker(pr, alice).startswith("Rule 'Review'")


def test_retargeting_dismisses_approvals(pr, alice, bob):
    make_branch(pr.repository, "release", {"r.txt": b"r\n"})
    approve(pr, alice)
    services.update_pull_request(pr, actor=bob, base="release")
    pr.refresh_from_db()
    assert pr.base_branch == "release"
    assert pr.reviews.get(author=alice).is_dismissed
    assert Event.objects.filter(pull_request=pr, kind="retargeted").exists()


def test_a_reader_approval_counts_only_when_the_reader_is_in_the_pool(pr, alice, carol):
    default_pool = rule(pr.repository, alice, "Writers")
    approve(pr, carol)
    assert not approval_status(pr)[0].met
    services.save_approval_rule(default_pool, actor=alice, name="Carol", users=[carol])
    assert approval_status(pr)[0].met


def test_one_approver_in_both_pools_meets_both_rules_unless_distinct(pr, alice, carol, admin):
    rule(pr.repository, alice, "Security", users=[carol, admin])
    rule(pr.repository, alice, "Docs", users=[carol])
    approve(pr, carol)
    assert [s.met for s in approval_status(pr)] == [True, True]
    services.update_review_settings(pr.repository, actor=alice, distinct_approvers=True)
    assert sorted(s.met for s in approval_status(pr)) == [False, True]
    # A second approver from the wider pool lets both rules be met with distinct people.
    approve(pr, admin)
    assert [s.met for s in approval_status(pr)] == [True, True]


def test_committers_can_be_excluded_from_approving(private_repo, alice, bob, carol):
    make_branch(private_repo, "feature", {"a.txt": b"a\n"})
    commit(private_repo, "feature", {"b.txt": b"b\n"}, email=carol.email)
    pr = services.open_pull_request(private_repo, actor=bob, title="x", base="main", head="feature")
    repo_services.set_collaborator(private_repo, carol, actor=alice, role=Role.WRITE)
    rule(private_repo, alice, exclude_committers=True)
    approve(pr, carol)
    assert not approval_status(pr)[0].met
    approve(pr, alice)
    assert approval_status(pr)[0].met


def test_requested_changes_block_until_the_reviewer_approves(pr, alice):
    services.submit_review(pr, actor=alice, event="REQUEST_CHANGES", body="Please rename it.")
    assert merge_blocker(pr, alice) == "alice requested changes."
    approve(pr, alice)
    assert merge_blocker(pr, alice) is None


def test_an_admin_override_is_recorded_and_lifts_the_rules(pr, alice, bob):
    rule(pr.repository, alice, required=2)
    assert merge_blocker(pr, alice).startswith("Rule 'Review' needs 2 approvals")
    with pytest.raises(PermissionDenied):
        services.override_approval_rules(pr, actor=bob, reason="hotfix")
    services.override_approval_rules(pr, actor=alice, reason="hotfix for the outage")
    assert merge_blocker(pr, alice) is None
    assert Event.objects.get(pull_request=pr, kind="override").data == {"reason": "hotfix for the outage"}
    assert AuditEvent.objects.filter(action="pull_request.override_approval_rules", actor=alice).exists()


def test_org_templates_apply_to_matching_repositories_and_branches(alice, bob):
    org = accounts.create_organization(actor=alice, name="acme")
    repo = repo_services.create_repository(actor=alice, owner=org, name="service", initialize=True)
    repo_services.set_collaborator(repo, bob, actor=alice, role=Role.WRITE)
    make_branch(repo, "feature", {"x.txt": b"x\n"})
    services.save_approval_rule(
        None, actor=alice, organization=org, name="Two eyes", branch_pattern="main", repository_pattern="serv*"
    )
    services.save_approval_rule(None, actor=alice, organization=org, name="Other repos", repository_pattern="web*")
    pr = services.open_pull_request(repo, actor=bob, title="x", base="main", head="feature")
    assert [s.rule.name for s in approval_status(pr)] == ["Two eyes"]


# Comments.


def test_inline_threads_follow_their_lines_or_become_outdated(private_repo, alice, bob):
    lines = b"".join(f"line {n}\n".encode() for n in range(1, 21))
    make_branch(private_repo, "feature", {"f.txt": lines})
    pr = services.open_pull_request(private_repo, actor=bob, title="x", base="main", head="feature")
    moved = services.add_comment(pr, actor=alice, body="about line 10", path="f.txt", line=10)
    touched = services.add_comment(pr, actor=alice, body="about 3-4", path="f.txt", start_line=3, line=4)
    old_head = pr.head_sha
    # Two new lines at the top and a change of line 4: line 10 moves to 12, lines 3-4 are outdated.
    new_text = lines.replace(b"line 4\n", b"line four\n")
    new = commit(private_repo, "feature", {"f.txt": b"new a\nnew b\n" + new_text})
    services.record_branch_update(
        private_repo, ref="refs/heads/feature", old_sha=old_head, new_sha=new, forced=False, pusher=bob
    )
    moved.refresh_from_db()
    touched.refresh_from_db()
    assert (moved.line, moved.commit_sha, moved.outdated) == (12, new, False)
    assert (moved.original_line, moved.original_commit_sha) == (10, old_head)
    assert touched.outdated and (touched.start_line, touched.line, touched.commit_sha) == (3, 4, old_head)
    assert git.file_lines(private_repo.path, touched.original_commit_sha, "f.txt")[2:4] == ["line 3", "line 4"]


def test_an_inline_comment_must_name_a_line_of_the_file(pr, alice):
    with pytest.raises(ValidationError, match="Line 5 is not in app.py"):
        services.add_comment(pr, actor=alice, body="x", path="app.py", line=5)
    with pytest.raises(ValidationError, match="not a text file"):
        services.add_comment(pr, actor=alice, body="x", path="missing.py", line=1)


def test_pending_comments_are_published_with_the_review(pr, alice, carol):
    pending = services.add_comment(pr, actor=alice, body="nit", path="app.py", line=1, pending=True)
    assert pending.is_pending
    review = services.submit_review(pr, actor=alice, event="COMMENT", body="A few notes")
    pending.refresh_from_db()
    assert pending.review == review and not pending.is_pending
    assert review.state == Review.State.COMMENTED


def test_replies_join_the_thread_and_threads_resolve(pr, alice, bob, carol):
    thread = services.add_comment(pr, actor=alice, body="why?", path="app.py", line=1)
    reply = services.add_comment(pr, actor=bob, body="because", reply_to=thread)
    nested = services.add_comment(pr, actor=alice, body="ok", reply_to=reply)
    assert reply.reply_to == thread and nested.reply_to == thread
    with pytest.raises(PermissionDenied):
        services.resolve_thread(thread, actor=carol)
    services.resolve_thread(thread, actor=bob)
    thread.refresh_from_db()
    assert thread.resolved_at is not None and thread.resolved_by == bob


def test_the_author_applies_a_suggestion_as_a_commit_by_the_suggester(private_repo, alice, bob):
    make_branch(private_repo, "feature", {"app.py": b"def f():\n    return 1\n"})
    pr = services.open_pull_request(private_repo, actor=bob, title="x", base="main", head="feature")
    body = "Return two.\n```suggestion\n    return 2\n```\n"
    suggestion = services.add_comment(pr, actor=alice, body=body, path="app.py", line=2)
    old_head = pr.head_sha
    new = services.apply_suggestion(suggestion, actor=bob)
    pr.refresh_from_db()
    assert git.branch_sha(private_repo.path, "feature") == new == pr.head_sha
    assert git.file_lines(private_repo.path, new, "app.py") == ["def f():", "    return 2"]
    applied = git.commit(private_repo.path, new)
    assert applied.parents == (old_head,)
    assert (applied.author.email, applied.committer.email) == (alice.email, bob.email)
    suggestion.refresh_from_db()
    assert suggestion.suggestion_applied_sha == new and suggestion.resolved_at is not None
    assert pr.revisions.count() == 2
    with pytest.raises(ValidationError, match="already applied"):
        services.apply_suggestion(suggestion, actor=bob)


def test_a_reader_cannot_apply_a_suggestion(pr, alice, carol):
    suggestion = services.add_comment(pr, actor=alice, body="```suggestion\nprint('hi')\n```", path="app.py", line=1)
    with pytest.raises(PermissionDenied):
        services.apply_suggestion(suggestion, actor=carol)


# Merging.


def test_merge_commit_puts_both_parents_on_the_base(pr, alice):
    approve(pr, alice)
    base = main_sha(pr.repository)
    services.merge_pull_request(pr, actor=alice, strategy=MergeStrategy.MERGE, head_sha=pr.head_sha)
    pr.refresh_from_db()
    merged = git.commit(pr.repository.path, main_sha(pr.repository))
    assert (pr.state, pr.merged_by, pr.merge_commit_sha) == (PullRequest.State.MERGED, alice, merged.sha)
    assert merged.parents == (base, pr.head_sha)
    assert git.file_lines(pr.repository.path, merged.sha, "app.py") == ["print('hello')"]


def test_squash_makes_one_commit_with_the_listed_message(pr, alice, bob):
    commit(pr.repository, "feature", {"lib.py": b"x = 1\n"}, "add lib")
    services.record_branch_update(
        pr.repository,
        ref="refs/heads/feature",
        old_sha=pr.head_sha,
        new_sha=git.branch_sha(pr.repository.path, "feature"),
        forced=False,
        pusher=bob,
    )
    pr.refresh_from_db()
    base = main_sha(pr.repository)
    message = services.default_merge_message(pr, MergeStrategy.SQUASH)
    assert "* add app" in message and "* add lib" in message
    services.merge_pull_request(
        pr, actor=alice, strategy=MergeStrategy.SQUASH, head_sha=pr.head_sha, message=message, delete_branch=True
    )
    squashed = git.commit(pr.repository.path, main_sha(pr.repository))
    assert squashed.parents == (base,)
    assert squashed.message.startswith("Add the app (#1)")
    assert squashed.author.email == bob.email
    assert git.file_lines(pr.repository.path, squashed.sha, "lib.py") == ["x = 1"]
    assert "feature" not in {b.name for b in git.branches(pr.repository.path)}


def test_rebase_and_fast_forward(pr, alice):
    services.merge_pull_request(pr, actor=alice, strategy=MergeStrategy.FAST_FORWARD, head_sha=pr.head_sha)
    assert main_sha(pr.repository) == pr.head_sha
    make_branch(pr.repository, "second", {"two.txt": b"2\n"}, "second change", start="main")
    git.update_ref(pr.repository.path, "refs/heads/third", git.branch_sha(pr.repository.path, "second"), git.ZERO_SHA)
    commit(pr.repository, "main", {"main.txt": b"m\n"})
    second = services.open_pull_request(pr.repository, actor=alice, title="two", base="main", head="second")
    with pytest.raises(services.MergeRefused, match="not a fast-forward"):
        services.merge_pull_request(second, actor=alice, strategy=MergeStrategy.FAST_FORWARD, head_sha=second.head_sha)
    base = main_sha(pr.repository)
    services.merge_pull_request(second, actor=alice, strategy=MergeStrategy.REBASE, head_sha=second.head_sha)
    rebased = git.commit(pr.repository.path, main_sha(pr.repository))
    assert rebased.parents == (base,) and rebased.summary == "second change"


def test_a_merge_with_a_stale_head_is_refused_and_changes_nothing(pr, alice, bob):
    seen = pr.head_sha
    new = commit(pr.repository, "feature", {"app.py": b"print('changed')\n"})
    services.record_branch_update(
        pr.repository, ref="refs/heads/feature", old_sha=seen, new_sha=new, forced=False, pusher=bob
    )
    pr.refresh_from_db()
    base = main_sha(pr.repository)
    with pytest.raises(services.StaleHead, match="changed since you looked"):
        services.merge_pull_request(pr, actor=alice, strategy=MergeStrategy.MERGE, head_sha=seen)
    pr.refresh_from_db()
    assert pr.state == PullRequest.State.OPEN and main_sha(pr.repository) == base


def test_disallowed_strategies_and_drafts_are_refused(pr, alice, bob):
    services.update_review_settings(pr.repository, actor=alice, allow_squash=False)
    with pytest.raises(ValidationError, match="not allowed"):
        services.merge_pull_request(pr, actor=alice, strategy=MergeStrategy.SQUASH, head_sha=pr.head_sha)
    services.update_pull_request(pr, actor=bob, draft=True)
    assert merge_blocker(pr, alice).startswith("This pull request is a draft")


def test_readers_cannot_merge(pr, carol):
    assert merge_blocker(pr, carol) == "carol may not merge into main."
    with pytest.raises(services.MergeRefused):
        services.merge_pull_request(pr, actor=carol, strategy=MergeStrategy.MERGE, head_sha=pr.head_sha)


def test_conflicts_are_listed_and_merge_after_the_author_resolves_them(private_repo, alice, bob):
    make_branch(private_repo, "feature", {"README.md": b"# feature version\n", "ok.txt": b"fine\n"})
    commit(private_repo, "main", {"README.md": b"# main version\n"})
    pr = services.open_pull_request(private_repo, actor=bob, title="x", base="main", head="feature")
    assert merge_blocker(pr, alice) == "Conflicts in README.md must be resolved first."
    with pytest.raises(services.MergeRefused, match="Conflicts in README.md"):
        services.merge_pull_request(pr, actor=alice, strategy=MergeStrategy.MERGE, head_sha=pr.head_sha)
    # The author merges main into the branch, taking main's README, and pushes.
    commit(private_repo, "feature", {"README.md": b"# main version\n"}, "take main's README")
    resolved = git.branch_sha(private_repo.path, "feature")
    services.record_branch_update(
        private_repo, ref="refs/heads/feature", old_sha=pr.head_sha, new_sha=resolved, forced=False, pusher=bob
    )
    pr.refresh_from_db()
    assert merge_blocker(pr, alice) is None
    services.merge_pull_request(pr, actor=alice, strategy=MergeStrategy.MERGE, head_sha=resolved)
    assert git.file_lines(private_repo.path, main_sha(private_repo), "ok.txt") == ["fine"]


def test_required_checks_block_until_they_succeed(pr, alice, bob):
    services.save_branch_protection(
        None, actor=alice, repository=pr.repository, branch_pattern="main", required_checks=["ci/jenkins"]
    )
    assert merge_blocker(pr, alice).startswith("Required check 'ci/jenkins' has not reported")
    services.set_commit_status(pr.repository, actor=bob, sha=pr.head_sha, state="failure", context="ci/jenkins")
    assert merge_blocker(pr, alice) == "Required check 'ci/jenkins' is failure."
    services.set_commit_status(pr.repository, actor=bob, sha=pr.head_sha, state="success", context="ci/jenkins")
    assert merge_blocker(pr, alice) is None


def test_merge_lists_restrict_who_merges(pr, alice, bob):
    services.save_branch_protection(
        None, actor=alice, repository=pr.repository, branch_pattern="ma*", merge_users=[alice]
    )
    assert merge_blocker(pr, bob) == "bob may not merge into main."
    assert merge_blocker(pr, alice) is None


def test_a_push_racing_a_merge_loses_nothing(pr, alice, bob):
    """A merge and a direct ref update aim at main at once: whoever loses the compare-and-swap is refused."""
    base = main_sha(pr.repository)
    racing = git.commit_files(pr.repository.path, "scratch", {"race.txt": b"r\n"}, "race", name="b", email="b@x")
    # A commit on top of the same base, as a push would bring it.
    pushed = git.squash_commit(
        pr.repository.path,
        base,
        racing,
        message="pushed",
        author=git.Person("b", "b@x"),
        committer=git.Person("b", "b@x"),
    )
    barrier = threading.Barrier(2)
    outcome = {}

    def push() -> None:
        barrier.wait()
        try:
            git.update_ref(pr.repository.path, "refs/heads/main", pushed, base)
            outcome["push"] = True
        except git.GitError:
            outcome["push"] = False

    thread = threading.Thread(target=push)
    thread.start()
    barrier.wait()
    try:
        services.merge_pull_request(pr, actor=alice, strategy=MergeStrategy.MERGE, head_sha=pr.head_sha)
        outcome["merge"] = True
    except services.MergeRefused:
        outcome["merge"] = False
    thread.join()
    pr.refresh_from_db()
    main = main_sha(pr.repository)
    # Either may win, or both when the push lands before the merge reads the base; nothing is ever lost.
    assert outcome["push"] or outcome["merge"]
    if outcome["push"]:
        assert git.is_ancestor(pr.repository.path, pushed, main)
    if outcome["merge"]:
        assert pr.state == PullRequest.State.MERGED and main == pr.merge_commit_sha
        assert pr.head_sha in git.commit(pr.repository.path, main).parents
    else:
        assert pr.state == PullRequest.State.OPEN and main == pushed and not pr.merge_commit_sha


def test_closing_and_reopening_are_recorded(pr, bob, carol):
    with pytest.raises(PermissionDenied):
        services.close_pull_request(pr, actor=carol)
    services.close_pull_request(pr, actor=bob)
    assert merge_blocker(pr) == "This pull request is closed."
    services.reopen_pull_request(pr, actor=bob)
    kinds = list(Event.objects.filter(pull_request=pr).values_list("kind", flat=True))
    assert kinds == ["opened", "closed", "reopened"]


def test_commit_statuses_need_write_access_and_a_real_commit(pr, bob, carol):
    with pytest.raises(PermissionDenied):
        services.set_commit_status(pr.repository, actor=carol, sha=pr.head_sha, state="success")
    with pytest.raises(ValidationError, match="state must be"):
        services.set_commit_status(pr.repository, actor=bob, sha=pr.head_sha, state="green")
    with pytest.raises(ValidationError, match="not a commit"):
        services.set_commit_status(pr.repository, actor=bob, sha="f" * 40, state="success")


def test_comment_kinds(pr, alice):
    general = services.add_comment(pr, actor=alice, body="Looks good")
    assert not general.is_inline and Comment.objects.count() == 1
