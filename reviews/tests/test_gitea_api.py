"""What Gitea's clients read from the pull request and commit status API: every field of Gitea's structs (1.22's
swagger) with its type, a pull request's .diff and .patch applied by real git, merges without head_commit_id, and
the warning state."""

import subprocess
from datetime import datetime

import pytest

from repos import git
from repos.tests.api_client import API, send
from reviews import services
from reviews.models import CommitStatus, PullRequest
from reviews.tests.test_api import NOTES, PROJECT, approve, merge, start_branch


@pytest.fixture
def feature(private_repo) -> str:
    """alice/project's branch feature, two commits by bob: notes.txt added, then the README changed."""
    start_branch(private_repo, "feature", {"notes.txt": NOTES})
    readme = {"README.md": b"# project\n\nNow with notes.\n"}
    return git.commit_files(private_repo.path, "feature", readme, "Mention notes", name="Bob", email="bob@example.com")


@pytest.fixture
def pull(client, feature, as_alice) -> dict:
    """alice's open pull request #1 from feature into main."""
    response = send(
        client, "POST", f"{PROJECT}/pulls", {"title": "Add notes", "head": "feature", "base": "main"}, **as_alice
    )
    assert response.status_code == 201, response.json()
    return response.json()


# Gitea's structs as its swagger (1.22) describes them: each field's JSON types. A pointer in Gitea's Go struct may be
# null; the portal sends Gitea's empty value for what it does not have (no labels, milestones, assignees, due dates).
STRING, INTEGER, BOOLEAN, ARRAY, OBJECT, NULL, TIME = str, int, bool, list, dict, type(None), "date-time"
USER = (OBJECT,)
NULLABLE_USER = (OBJECT, NULL)
PULL_REQUEST = {
    "id": (INTEGER,),
    "url": (STRING,),
    "number": (INTEGER,),
    "user": USER,
    "title": (STRING,),
    "body": (STRING,),
    "labels": (ARRAY,),
    "milestone": (OBJECT, NULL),
    "assignee": NULLABLE_USER,
    "assignees": (ARRAY,),
    "requested_reviewers": (ARRAY,),
    "requested_reviewers_teams": (ARRAY,),
    "state": (STRING,),
    "draft": (BOOLEAN,),
    "is_locked": (BOOLEAN,),
    "comments": (INTEGER,),
    "review_comments": (INTEGER,),
    "additions": (INTEGER,),
    "deletions": (INTEGER,),
    "changed_files": (INTEGER,),
    "html_url": (STRING,),
    "diff_url": (STRING,),
    "patch_url": (STRING,),
    "mergeable": (BOOLEAN,),
    "merged": (BOOLEAN,),
    "merged_at": (TIME, NULL),
    "merge_commit_sha": (STRING, NULL),
    "merged_by": NULLABLE_USER,
    "allow_maintainer_edit": (BOOLEAN,),
    "base": (OBJECT,),
    "head": (OBJECT,),
    "merge_base": (STRING,),
    "due_date": (TIME, NULL),
    "created_at": (TIME,),
    "updated_at": (TIME,),
    "closed_at": (TIME, NULL),
    "pin_order": (INTEGER,),
}
PR_BRANCH_INFO = {
    "label": (STRING,),
    "ref": (STRING,),
    "sha": (STRING,),
    "repo_id": (INTEGER,),
    "repo": (OBJECT,),
}
COMMIT_STATUS = {
    "id": (INTEGER,),
    "status": (STRING,),
    "target_url": (STRING,),
    "description": (STRING,),
    "url": (STRING,),
    "context": (STRING,),
    "creator": NULLABLE_USER,
    "created_at": (TIME,),
    "updated_at": (TIME,),
}
COMBINED_STATUS = {
    "state": (STRING,),
    "sha": (STRING,),
    "total_count": (INTEGER,),
    "statuses": (ARRAY,),
    "repository": (OBJECT,),
    "commit_url": (STRING,),
    "url": (STRING,),
}
# Gitea's CommitStatusState values (its `skipped` came after 1.22).
STATUS_STATES = {"pending", "success", "error", "failure", "warning"}


def _is(value, kind) -> bool:
    if kind == TIME:
        # RFC 3339, which datetime reads; how finely it counts seconds is not a matter of shape.
        return isinstance(value, str) and datetime.fromisoformat(value.replace("Z", "+00:00")).tzinfo is not None
    if kind is INTEGER:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


def assert_shape(body: dict, struct: dict[str, tuple], name: str) -> None:
    missing = sorted(set(struct) - set(body))
    assert not missing, f"{name} lacks {missing}"
    wrong = {field: body[field] for field, kinds in struct.items() if not any(_is(body[field], k) for k in kinds)}
    assert not wrong, f"{name} has fields of the wrong type: {wrong}"


def test_a_pull_request_has_every_field_of_giteas_struct(client, private_repo, pull, feature, as_carol):
    body = client.get(f"{API}{PROJECT}/pulls/1", **as_carol).json()
    assert_shape(body, PULL_REQUEST, "PullRequest")
    for side in ("base", "head"):
        assert_shape(body[side], PR_BRANCH_INFO, f"PRBranchInfo ({side})")
        # The repository in the shape of its own endpoint, as carol sees it there.
        assert body[side]["repo"] == client.get(f"{API}{PROJECT}", **as_carol).json()
    listed = client.get(f"{API}{PROJECT}/pulls", **as_carol).json()
    assert_shape(listed[0], PULL_REQUEST, "PullRequest (listed)")
    assert (body["labels"], body["milestone"], body["assignee"], body["assignees"]) == ([], None, None, [])
    assert (body["is_locked"], body["due_date"], body["pin_order"], body["allow_maintainer_edit"]) == (
        False,
        None,
        0,
        False,
    )


def test_a_pull_request_counts_its_lines_files_and_published_comments(
    client, private_repo, pull, feature, carol, as_bob, as_carol
):
    body = client.get(f"{API}{PROJECT}/pulls/1", **as_carol).json()
    # As git's own count has them: notes.txt added, the README changed.
    numstat = subprocess.run(
        ["git", "diff", "--numstat", body["merge_base"], feature], cwd=private_repo.path, capture_output=True, text=True
    ).stdout.splitlines()
    counts = [line.split("\t") for line in numstat]
    assert (body["additions"], body["deletions"], body["changed_files"]) == (
        sum(int(added) for added, _deleted, _path in counts),
        sum(int(deleted) for _added, deleted, _path in counts),
        2,
    )
    assert body["additions"] >= 4
    assert (body["comments"], body["review_comments"]) == (0, 0)
    review = {"event": "COMMENT", "body": "Two notes.", "comments": [{"path": "notes.txt", "line": 2, "body": "Why?"}]}
    assert (
        send(client, "POST", f"{PROJECT}/pulls/1/reviews", review | {"commit_id": feature}, **as_bob).status_code == 200
    )
    pr = PullRequest.objects.get()
    services.add_comment(pr, actor=pr.author, body="Thanks, all of you.")
    # A pending review's comments are its author's alone until it is submitted: they are not counted.
    services.add_comment(pr, actor=carol, body="Later.", path="notes.txt", line=1, pending=True)
    body = client.get(f"{API}{PROJECT}/pulls/1", **as_carol).json()
    assert (body["comments"], body["review_comments"]) == (1, 1)
    listed = client.get(f"{API}{PROJECT}/pulls", **as_carol).json()
    assert (listed[0]["comments"], listed[0]["review_comments"]) == (1, 1)


def test_a_status_has_every_field_of_giteas_struct_with_state_beside_status(client, private_repo, feature, as_bob):
    created = send(client, "POST", f"{PROJECT}/statuses/{feature}", {"state": "success", "context": "ci"}, **as_bob)
    assert created.status_code == 201
    assert_shape(created.json(), COMMIT_STATUS, "CommitStatus")
    assert (created.json()["status"], created.json()["state"]) == ("success", "success")
    listed = client.get(f"{API}{PROJECT}/commits/feature/statuses", **as_bob).json()
    assert_shape(listed[0], COMMIT_STATUS, "CommitStatus (listed)")
    combined = client.get(f"{API}{PROJECT}/commits/feature/status", **as_bob).json()
    assert_shape(combined, COMBINED_STATUS, "CombinedStatus")
    assert combined["repository"] == client.get(f"{API}{PROJECT}", **as_bob).json()
    assert_shape(combined["statuses"][0], COMMIT_STATUS, "CommitStatus (combined)")
    assert {combined["state"], combined["statuses"][0]["status"]} <= STATUS_STATES


def test_a_warning_is_kept_and_outranks_pending_but_not_failure(client, private_repo, feature, bob, as_bob, as_carol):
    statuses = f"{PROJECT}/statuses/{feature}"
    warned = send(client, "POST", statuses, {"state": "warning", "context": "ci/lint"}, **as_bob)
    assert warned.status_code == 201
    assert (warned.json()["status"], warned.json()["state"]) == ("warning", "warning")
    assert CommitStatus.objects.get().state == CommitStatus.State.WARNING
    send(client, "POST", statuses, {"state": "pending", "context": "ci/build"}, **as_bob)
    assert client.get(f"{API}{PROJECT}/commits/feature/status", **as_carol).json()["state"] == "warning"
    send(client, "POST", statuses, {"state": "failure", "context": "ci/build"}, **as_bob)
    assert client.get(f"{API}{PROJECT}/commits/feature/status", **as_carol).json()["state"] == "failure"
    # Gitea's newer `skipped` is not a state here.
    assert send(client, "POST", statuses, {"state": "skipped", "context": "ci/x"}, **as_bob).status_code == 422


def test_a_required_check_that_warns_blocks_the_merge_as_in_gitea(
    client, private_repo, pull, feature, as_alice, as_bob
):
    protection = {"rule_name": "main", "enable_status_check": True, "status_check_contexts": ["ci/build"]}
    assert send(client, "POST", f"{PROJECT}/branch_protections", protection, **as_alice).status_code == 201
    main = git.branch_sha(private_repo.path, "main")
    send(client, "POST", f"{PROJECT}/statuses/{feature}", {"state": "warning", "context": "ci/build"}, **as_bob)
    refused = merge(client, as_alice, feature)
    assert refused.status_code == 405
    assert refused.json()["message"] == "Required check 'ci/build' is warning."
    assert git.branch_sha(private_repo.path, "main") == main
    send(client, "POST", f"{PROJECT}/statuses/{feature}", {"state": "success", "context": "ci/build"}, **as_bob)
    assert merge(client, as_alice, feature).status_code == 200


# Merging without head_commit_id.


def test_a_merge_without_head_commit_id_merges_the_head_the_pull_request_has(client, private_repo, pull, as_alice):
    head = PullRequest.objects.get().head_sha
    response = merge(client, as_alice, None)
    assert response.status_code == 200, response.json()
    assert response.json()["merged"] is True
    assert git.commit(private_repo.path, git.branch_sha(private_repo.path, "main")).parents[1] == head


def _require_one_approval(client, as_alice) -> None:
    protection = {"rule_name": "main", "required_approvals": 1}
    assert send(client, "POST", f"{PROJECT}/branch_protections", protection, **as_alice).status_code == 201


def _reword(repo, sha: str) -> str:
    """The same change as sha, on the same parent, with another message: a new head of the same patch."""
    tree = git.commit(repo.path, sha)
    commit = subprocess.run(
        ["git", "commit-tree", f"{sha}^{{tree}}", "-p", tree.parents[0], "-m", "Mention notes, reworded"],
        cwd=repo.path,
        env={"GIT_AUTHOR_NAME": "Bob", "GIT_AUTHOR_EMAIL": "bob@example.com"}
        | {"GIT_COMMITTER_NAME": "Bob", "GIT_COMMITTER_EMAIL": "bob@example.com", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    return commit.stdout.strip()


def test_without_head_commit_id_an_approval_of_an_earlier_head_does_not_count(
    client, private_repo, pull, feature, bob, as_alice, as_bob
):
    _require_one_approval(client, as_alice)
    assert approve(client, as_bob, feature).status_code == 200
    # A reworded commit is pushed just before the merge: the same patch, so the approval is kept for whoever
    # names the head they saw, but it was not given on the head the pull request has now.
    reworded = _reword(private_repo, feature)
    git.update_ref(private_repo.path, "refs/heads/feature", reworded, feature)
    services.record_branch_update(
        private_repo, ref="refs/heads/feature", old_sha=feature, new_sha=reworded, forced=True, pusher=bob
    )
    main = git.branch_sha(private_repo.path, "main")
    refused = merge(client, as_alice, None)
    assert refused.status_code == 405
    assert "needs 1 approval" in refused.json()["message"] and "it has 0" in refused.json()["message"]
    assert git.branch_sha(private_repo.path, "main") == main
    # bob approves what is there now, and the same merge goes through.
    assert approve(client, as_bob, reworded).status_code == 200
    merged = merge(client, as_alice, None)
    assert merged.status_code == 200, merged.json()
    assert git.commit(private_repo.path, git.branch_sha(private_repo.path, "main")).parents == (main, reworded)


def test_without_head_commit_id_a_push_not_yet_recorded_refuses_the_merge(
    client, private_repo, pull, feature, as_alice, as_bob
):
    _require_one_approval(client, as_alice)
    assert approve(client, as_bob, feature).status_code == 200
    # The push moved the branch, and the pull request has not heard of it yet.
    git.commit_files(private_repo.path, "feature", {"late.txt": b"late\n"}, "Late", name="Bob", email="bob@x.com")
    main = git.branch_sha(private_repo.path, "main")
    response = merge(client, as_alice, None)
    assert response.status_code == 409
    assert git.branch_sha(private_repo.path, "main") == main
    assert PullRequest.objects.get().state == PullRequest.State.OPEN


def test_with_head_commit_id_the_same_patch_keeps_its_approval(
    client, private_repo, pull, feature, bob, as_alice, as_bob
):
    _require_one_approval(client, as_alice)
    approve(client, as_bob, feature)
    reworded = _reword(private_repo, feature)
    git.update_ref(private_repo.path, "refs/heads/feature", reworded, feature)
    services.record_branch_update(
        private_repo, ref="refs/heads/feature", old_sha=feature, new_sha=reworded, forced=True, pusher=bob
    )
    assert merge(client, as_alice, reworded).status_code == 200


# .diff and .patch.


def _work_tree(private_repo, tmp_path, git_env, at: str):
    work = tmp_path / "apply"
    for args in (("clone", "-q", str(private_repo.path), str(work)), ("-C", str(work), "checkout", "-q", at)):
        subprocess.run(["git", *args], env=git_env, check=True, capture_output=True)
    return work


def _tree(work, git_env, rev: str = "HEAD") -> str:
    out = subprocess.run(["git", "rev-parse", f"{rev}^{{tree}}"], cwd=work, env=git_env, capture_output=True)
    return out.stdout.decode().strip()


def test_the_diff_applies_with_git_and_gives_the_heads_tree(
    client, private_repo, pull, feature, tmp_path, git_env, as_carol
):
    response = client.get(f"{API}{PROJECT}/pulls/1.diff", **as_carol)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert b"diff --git a/notes.txt b/notes.txt\n" in response.content
    work = _work_tree(private_repo, tmp_path, git_env, pull["merge_base"])
    applied = subprocess.run(["git", "apply", "--index"], input=response.content, cwd=work, env=git_env)
    assert applied.returncode == 0
    written = subprocess.run(["git", "write-tree"], cwd=work, env=git_env, capture_output=True)
    assert written.stdout.decode().strip() == _tree(work, git_env, feature)


def test_binary_files_are_in_the_diff_only_when_asked_for(
    client, private_repo, pull, feature, tmp_path, git_env, as_carol
):
    head = git.commit_files(
        private_repo.path, "feature", {"logo.png": bytes(range(256))}, "Logo", name="B", email="b@x"
    )
    services.record_branch_update(
        private_repo, ref="refs/heads/feature", old_sha=feature, new_sha=head, forced=False, pusher=None
    )
    plain = client.get(f"{API}{PROJECT}/pulls/1.diff", **as_carol).content
    assert b"Binary files /dev/null and b/logo.png differ" in plain
    binary = client.get(f"{API}{PROJECT}/pulls/1.diff?binary=true", **as_carol).content
    assert b"GIT binary patch" in binary
    work = _work_tree(private_repo, tmp_path, git_env, pull["merge_base"])
    assert subprocess.run(["git", "apply", "--index"], input=binary, cwd=work, env=git_env).returncode == 0
    written = subprocess.run(["git", "write-tree"], cwd=work, env=git_env, capture_output=True)
    assert written.stdout.decode().strip() == _tree(work, git_env, head)


def test_the_patch_is_format_patch_and_git_am_replays_the_commits(
    client, private_repo, pull, feature, tmp_path, git_env, as_carol
):
    response = client.get(f"{API}{PROJECT}/pulls/1.patch", **as_carol)
    assert response.status_code == 200
    text = response.content.decode()
    assert text.startswith(f"From {git.commit(private_repo.path, feature).parents[0]} ")
    assert "Subject: [PATCH 1/2] Add notes" in text and "Subject: [PATCH 2/2] Mention notes" in text
    assert text.count("From: Bob <bob@example.com>") == 2
    work = _work_tree(private_repo, tmp_path, git_env, pull["merge_base"])
    assert subprocess.run(["git", "am", "-q"], input=response.content, cwd=work, env=git_env).returncode == 0
    assert _tree(work, git_env) == _tree(work, git_env, feature)
    log = subprocess.run(["git", "log", "--format=%s", "-2"], cwd=work, env=git_env, capture_output=True, text=True)
    assert log.stdout.split("\n")[:2] == ["Mention notes", "Add notes"]


@pytest.mark.parametrize("suffix", [".diff", ".patch"])
def test_the_diff_and_patch_are_hidden_from_outsiders_and_name_only_existing_pulls(
    client, pull, suffix, as_mallory, as_carol
):
    assert client.get(f"{API}{PROJECT}/pulls/1{suffix}", **as_mallory).status_code == 404
    assert client.get(f"{API}{PROJECT}/pulls/1{suffix}").status_code in (401, 404)
    assert client.get(f"{API}{PROJECT}/pulls/9{suffix}", **as_carol).status_code == 404
    body = client.get(f"{API}{PROJECT}/pulls/1", **as_carol).json()
    assert (body["diff_url"], body["patch_url"]) == (f"{body['url']}.diff", f"{body['url']}.patch")
