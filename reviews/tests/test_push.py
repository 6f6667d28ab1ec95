"""Real pushes over smart HTTP: revisions, stale approvals, printed links and branch protection in the hook."""

import http.server
import threading
import time
import urllib.request

import pytest

from portal.models import AuditEvent
from repos import git
from repos import jobs as repo_jobs
from repos import services as repo_services
from repos.access import Principal
from repos.models import Push, PushSession
from repos.services import RefUpdate
from reviews import services
from reviews.models import PullRequest, Revision
from reviews.rules import approval_status, merge_blocker


@pytest.fixture
def bob_clone(clone_as, private_repo, bob):
    return clone_as(bob)


@pytest.fixture
def pushed_pr(bob_clone, private_repo, alice, bob, server):
    """bob pushes a feature branch (the push prints where to open a PR) and opens one; alice requires one approval."""
    bob_clone.git("checkout", "-q", "-b", "feature")
    bob_clone.commit("add the parser", parser__py="def parse(text):\n    return text.split()\n")
    result = bob_clone.push("HEAD:refs/heads/feature")
    assert f"{server}/alice/project/pulls/new?head=feature" in result.stderr
    services.save_approval_rule(None, actor=alice, repository=private_repo, name="One reviewer")
    return services.open_pull_request(private_repo, actor=bob, title="Parser", base="main", head="feature")


def test_a_push_to_a_branch_with_a_pull_request_adds_a_revision_and_prints_its_link(pushed_pr, bob_clone, server):
    sha = bob_clone.commit("handle empty input", parser__py="def parse(text):\n    return (text or '').split()\n")
    result = bob_clone.push("HEAD:refs/heads/feature")
    assert "View pull request #1 for 'feature':" in result.stderr
    assert f"{server}/alice/project/pulls/1" in result.stderr
    pushed_pr.refresh_from_db()
    assert pushed_pr.head_sha == sha
    assert list(pushed_pr.revisions.values_list("number", "head_sha")) == [
        (1, pushed_pr.revisions.first().head_sha),
        (2, sha),
    ]


def test_approval_then_new_code_dismisses_the_approval(pushed_pr, bob_clone, alice):
    services.submit_review(pushed_pr, actor=alice, event="APPROVE", commit_sha=pushed_pr.head_sha)
    assert merge_blocker(pushed_pr, alice) is None
    bob_clone.commit("new code", parser__py="def parse(text):\n    return text.split(',')\n")
    bob_clone.push("HEAD:refs/heads/feature")
    pushed_pr.refresh_from_db()
    assert pushed_pr.reviews.get(author=alice).is_dismissed
    assert merge_blocker(pushed_pr, alice).startswith("Rule 'One reviewer' needs 1 approval")


def test_approval_then_a_rebase_only_force_push_keeps_the_approval(pushed_pr, bob_clone, private_repo, alice, bob):
    services.submit_review(pushed_pr, actor=alice, event="APPROVE", commit_sha=pushed_pr.head_sha)
    # main moves on, bob rebases his unchanged commit onto it and rewords it, then force-pushes.
    main = git.commit_files(
        private_repo.path, "main", {"CHANGES.md": b"news\n"}, "news", name="alice", email=alice.email
    )
    bob_clone.git("fetch", "-q", bob_clone.url, "main")
    bob_clone.git("rebase", "-q", "FETCH_HEAD")
    bob_clone.git("commit", "-q", "--amend", "-m", "Add the parser (reworded)")
    result = bob_clone.push("--force", "HEAD:refs/heads/feature")
    assert "View pull request #1" in result.stderr
    pushed_pr.refresh_from_db()
    latest = pushed_pr.revisions.last()
    assert latest.forced and latest.base_sha == main and latest.head_sha == pushed_pr.head_sha
    assert latest.patch_id == Revision.objects.get(pull_request=pushed_pr, number=1).patch_id
    review = pushed_pr.reviews.get(author=alice)
    assert not review.is_dismissed and review.commit_sha != pushed_pr.head_sha
    assert approval_status(pushed_pr)[0].met
    services.merge_pull_request(pushed_pr, actor=alice, strategy="merge", head_sha=pushed_pr.head_sha)
    assert git.commit(private_repo.path, git.branch_sha(private_repo.path, "main")).parents == (
        main,
        pushed_pr.head_sha,
    )


def test_a_local_merge_pushed_to_a_protected_branch_is_refused_by_the_hook(pushed_pr, bob_clone, private_repo, alice):
    services.save_branch_protection(None, actor=alice, repository=private_repo, branch_pattern="main")
    before = git.branch_sha(private_repo.path, "main")
    bob_clone.git("checkout", "-q", "-B", "main", "origin/main")
    bob_clone.git("merge", "-q", "--no-ff", "-m", "merge feature by hand", "feature")
    result = bob_clone.push("HEAD:refs/heads/main", check=False)
    assert result.returncode != 0
    assert "changes must go through a pull request (rule: branch protection 'main')" in result.stderr
    assert git.branch_sha(private_repo.path, "main") == before
    assert PullRequest.objects.get(pk=pushed_pr.pk).state == PullRequest.State.OPEN


def test_protection_blocks_force_pushes_and_deletion_of_matching_branches(bob_clone, private_repo, alice):
    services.save_branch_protection(
        None, actor=alice, repository=private_repo, branch_pattern="release/*", require_pull_request=False
    )
    bob_clone.git("checkout", "-q", "-b", "release/1")
    first = bob_clone.commit("one", a__txt="1\n")
    bob_clone.push("HEAD:refs/heads/release/1")
    bob_clone.git("commit", "-q", "--amend", "-m", "rewritten")
    forced = bob_clone.push("--force", "HEAD:refs/heads/release/1", check=False)
    assert "force pushes are blocked (rule: branch protection 'release/*')" in forced.stderr
    deleted = bob_clone.push(":refs/heads/release/1", check=False)
    assert "deletion is blocked (rule: branch protection 'release/*')" in deleted.stderr
    assert git.branch_sha(private_repo.path, "release/1") == first


def test_a_push_list_names_who_may_push(bob_clone, private_repo, alice):
    services.save_branch_protection(
        None,
        actor=alice,
        repository=private_repo,
        branch_pattern="main",
        require_pull_request=False,
        push_users=[alice],
    )
    bob_clone.commit("direct", d__txt="d\n")
    result = bob_clone.push("HEAD:refs/heads/main", check=False)
    assert "bob is not allowed to push (rule: branch protection 'main')" in result.stderr


def test_a_pull_request_merged_by_hand_and_pushed_is_marked_merged(pushed_pr, bob_clone, private_repo, bob):
    bob_clone.git("checkout", "-q", "-B", "main", "origin/main")
    bob_clone.git("merge", "-q", "--no-ff", "-m", "merge feature by hand", "feature")
    merged = bob_clone.git("rev-parse", "HEAD").stdout.strip()
    bob_clone.push("HEAD:refs/heads/main")
    pushed_pr.refresh_from_db()
    assert (pushed_pr.state, pushed_pr.merged_by, pushed_pr.merge_commit_sha) == (PullRequest.State.MERGED, bob, merged)
    assert pushed_pr.events.filter(kind="merged", data__by_push=True).exists()


class HookRelay(http.server.ThreadingHTTPServer):
    """Stands between git's hooks and the portal: passes pre-receive on, drops the connection of post-receive."""

    def __init__(self, portal_url: str):
        self.portal_url = portal_url
        super().__init__(("127.0.0.1", 0), HookRelayHandler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class HookRelayHandler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.path.endswith("/post-receive"):
            self.close_connection = True
            return
        request = urllib.request.Request(
            self.server.portal_url + self.path, data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request) as answer:
            data = answer.read()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def _wait_for(condition, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_a_push_whose_post_receive_call_fails_is_recorded_late_and_its_pull_request_follows(
    run_worker, pushed_pr, bob_clone, private_repo, bob, settings, server
):
    before = Push.objects.count()
    sha = bob_clone.commit("handle empty input", parser__py="def parse(text):\n    return (text or '').split()\n")
    relay = HookRelay(server)
    settings.PORTAL_INTERNAL_URL = relay.url
    try:
        result = bob_clone.push("HEAD:refs/heads/feature")
    finally:
        relay.shutdown()
        relay.server_close()
    assert "the push was accepted; the portal will record it" in result.stderr
    assert "could not" not in result.stderr
    assert git.branch_sha(private_repo.path, "feature") == sha
    pushed_pr.refresh_from_db()
    assert pushed_pr.head_sha != sha and Push.objects.count() == before
    # git has exited: the accepted session is left as the mark of an unrecorded push.
    _wait_for(lambda: PushSession.objects.filter(repository=private_repo, git_exited__isnull=False).exists())

    # The reconciliation enqueued when git exited, run by a real worker.
    run_worker()
    pushed_pr.refresh_from_db()
    assert pushed_pr.head_sha == sha
    assert list(pushed_pr.revisions.values_list("number", "head_sha"))[-1] == (2, sha)
    push = Push.objects.get(new_sha=sha)
    assert (push.recorded_late, push.pusher, push.protocol, push.ref) == (True, bob, "http", "refs/heads/feature")
    event = AuditEvent.objects.filter(action="repo.push").latest("id")
    assert event.actor == bob and event.after["recorded_late"] is True
    assert not PushSession.objects.filter(repository=private_repo).exists()

    # Again (as the cron schedule runs it, and for the repository), and as a late post-receive call would:
    # nothing more is recorded.
    assert repo_jobs.run_ref_reconciler() == 0
    assert repo_jobs.run_ref_reconciler(private_repo.pk) == 0
    assert repo_services.reconcile_refs(private_repo) == []
    update = RefUpdate("refs/heads/feature", push.old_sha, sha)
    late = repo_services.record_push(private_repo, actor=Principal(user=bob), protocol="http", updates=[update])
    assert late.pushes == [] and Push.objects.filter(new_sha=sha).count() == 1
    assert pushed_pr.revisions.count() == 2


def test_a_ref_moved_without_a_push_is_recorded_late_as_the_systems_unless_a_push_in_flight_names_it(
    pushed_pr, private_repo, bob
):
    old = pushed_pr.head_sha
    sha = git.commit_files(private_repo.path, "feature", {"b.txt": b"b\n"}, "by hand", name="Ops", email="o@x")
    # A push in flight that pre-receive accepted for this branch: its own post-receive records the branch.
    session, _secret = repo_services.start_push_session(Principal(user=bob), private_repo, protocol="ssh")
    assert repo_services.accept_push(session, Principal(user=bob), [RefUpdate("refs/heads/feature", old, sha)]) is None
    assert repo_services.reconcile_refs(private_repo) == []

    # That push's session is gone without a trace (its transport died and the row was removed): nobody is known.
    session.delete()
    (push,) = repo_services.reconcile_refs(private_repo)
    assert (push.recorded_late, push.pusher, push.protocol, push.old_sha, push.new_sha) == (True, None, "", old, sha)
    assert AuditEvent.objects.filter(action="repo.push", actor=None, after__recorded_late=True).exists()
    pushed_pr.refresh_from_db()
    assert pushed_pr.head_sha == sha
    assert pushed_pr.revisions.last().pusher is None
    assert repo_services.reconcile_refs(private_repo) == []
