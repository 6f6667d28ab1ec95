"""Every ref change the portal makes for the browser goes through the push announcement, once; and reviews
announces each of its own changes once, from the service that makes it."""

import pytest

from repos import git
from repos import services as repo_services
from repos import signals as repo_signals
from repos.access import Principal
from repos.models import Push
from repos.tests.test_events import listen  # noqa: F401 (a fixture)
from reviews import services, signals
from reviews.models import MergeStrategy, PullRequest, Review
from reviews.tests.conftest import make_branch


@pytest.fixture
def feature(private_repo):
    make_branch(private_repo, "feature", {"app.py": b"def f():\n    return 1\n"}, "add app")
    return private_repo


@pytest.fixture
def pr(feature, bob):
    return services.open_pull_request(feature, actor=bob, title="Add the app", base="main", head="feature")


def test_a_browser_merge_and_its_branch_deletion_are_announced_once_each_as_web_pushes(pr, alice, listen):  # noqa: F811
    pushed = listen(repo_signals.push_received, answer=[])
    services.submit_review(pr, actor=alice, event="APPROVE", commit_sha=pr.head_sha)
    services.merge_pull_request(pr, actor=alice, strategy=MergeStrategy.MERGE, head_sha=pr.head_sha, delete_branch=True)
    pr.refresh_from_db()
    assert [(call["updates"][0].ref, call["protocol"], call["pusher"]) for call in pushed.calls] == [
        ("refs/heads/main", "web", alice),
        ("refs/heads/feature", "web", alice),
    ]
    assert pushed.calls[0]["updates"][0].new_sha == pr.merge_commit_sha
    assert pushed.calls[1]["updates"][0].is_delete
    pushes = Push.objects.filter(repository=pr.repository).order_by("id")
    assert [(push.ref, push.protocol) for push in pushes] == [("refs/heads/main", "web"), ("refs/heads/feature", "web")]
    assert [call["push_ids"] for call in pushed.calls] == [[push.pk] for push in pushes]


def test_an_applied_suggestion_is_announced_once_and_makes_one_revision(pr, alice, bob, listen):  # noqa: F811
    pushed = listen(repo_signals.push_received, answer=[])
    synchronized = listen(signals.pull_request_synchronized)
    body = "Return two.\n```suggestion\n    return 2\n```\n"
    suggestion = services.add_comment(pr, actor=alice, body=body, path="app.py", line=2)
    new = services.apply_suggestion(suggestion, actor=bob)
    [call] = pushed.calls
    assert (call["updates"][0].ref, call["updates"][0].new_sha, call["protocol"]) == ("refs/heads/feature", new, "web")
    assert Push.objects.get(repository=pr.repository).new_sha == new
    assert pr.revisions.count() == 2
    assert [(c["pull_request"], c["revision"].head_sha, c["actor"]) for c in synchronized.calls] == [(pr, new, bob)]


def test_a_pull_request_announces_each_change_once(pr, alice, bob, carol, listen):  # noqa: F811
    heard = {
        name: listen(getattr(signals, name))
        for name in (
            "pull_request_opened",
            "pull_request_edited",
            "pull_request_synchronized",
            "pull_request_closed",
            "pull_request_reopened",
            "pull_request_merged",
            "review_submitted",
            "review_dismissed",
            "comment_created",
            "commit_status_set",
        )
    }

    def counts() -> dict[str, int]:
        return {name: len(listener.calls) for name, listener in heard.items() if listener.calls}

    services.update_pull_request(pr, actor=bob, title="Add the app, better")
    assert counts() == {"pull_request_edited": 1}
    assert heard["pull_request_edited"].calls[0]["after"]["title"] == "Add the app, better"
    services.update_pull_request(pr, actor=bob, title="Add the app, better")
    assert counts() == {"pull_request_edited": 1}

    services.add_comment(pr, actor=carol, body="Looks fine")
    review = services.submit_review(pr, actor=alice, event="APPROVE", commit_sha=pr.head_sha)
    services.set_commit_status(pr.repository, actor=bob, sha=pr.head_sha, state="success", context="ci")
    assert counts() == {"pull_request_edited": 1, "comment_created": 1, "review_submitted": 1, "commit_status_set": 1}
    assert heard["review_submitted"].calls[0]["review"] == review

    services.dismiss_review(review, actor=alice, reason="not yet")
    [dismissed] = heard["review_dismissed"].calls
    assert (dismissed["review"].pk, dismissed["reason"], dismissed["actor"]) == (review.pk, "not yet", alice)

    services.close_pull_request(pr, actor=bob)
    services.reopen_pull_request(pr, actor=bob)
    assert (len(heard["pull_request_closed"].calls), len(heard["pull_request_reopened"].calls)) == (1, 1)

    services.submit_review(pr, actor=alice, event="APPROVE", commit_sha=pr.head_sha)
    services.merge_pull_request(pr, actor=alice, strategy=MergeStrategy.MERGE, head_sha=pr.head_sha)
    [merged] = heard["pull_request_merged"].calls
    assert (merged["pull_request"], merged["actor"], merged["by_push"]) == (pr, alice, False)
    assert counts() == {
        "pull_request_edited": 1,
        "comment_created": 1,
        "review_submitted": 2,
        "commit_status_set": 1,
        "review_dismissed": 1,
        "pull_request_closed": 1,
        "pull_request_reopened": 1,
        "pull_request_merged": 1,
    }
    assert Review.objects.filter(pull_request=pr, dismissed_at__isnull=False).count() == 1


def test_opening_is_announced_once(feature, bob, listen):  # noqa: F811
    opened = listen(signals.pull_request_opened)
    pr = services.open_pull_request(feature, actor=bob, title="Add the app", base="main", head="feature")
    assert [(call["pull_request"], call["actor"]) for call in opened.calls] == [(pr, bob)]


def test_a_push_that_merges_a_pull_request_by_hand_announces_the_merge_once(pr, alice, listen):  # noqa: F811
    merged = listen(signals.pull_request_merged)
    synchronized = listen(signals.pull_request_synchronized)
    # A fast-forward of main onto the head, recorded as the hooks record it.
    old = git.branch_sha(pr.repository.path, "main")
    git.update_ref(pr.repository.path, "refs/heads/main", pr.head_sha, old)
    update = repo_services.RefUpdate("refs/heads/main", old, pr.head_sha)
    repo_services.record_push(pr.repository, actor=Principal(user=alice), protocol="ssh", updates=[update])
    pr.refresh_from_db()
    assert pr.state == PullRequest.State.MERGED
    assert [(call["pull_request"], call["by_push"]) for call in merged.calls] == [(pr, True)]
    assert synchronized.calls == []
