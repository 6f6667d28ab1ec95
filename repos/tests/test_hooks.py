"""git's pre-receive and post-receive hooks, the endpoint they call, and the job that follows a push."""

import json
import os
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from django.utils import timezone
from rq.registry import ScheduledJobRegistry

from portal import services as accounts
from portal.jobs import SimpleWorker
from portal.models import AuditEvent
from repos import code, git, jobs, render, transport
from repos import services as repo_services
from repos.access import Principal
from repos.models import Push, PushSession
from repos.services import RefUpdate, push_blocker
from repos.tests.test_http import clone, commit_file, repo_url, run_git, token_for
from reviews import services as reviews
from reviews.models import PullRequest

ZERO = "0" * 40
PUBLIC_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl deploy@example.com"


@pytest.fixture(autouse=True)
def _hooks_over_tcp(settings):
    """The test client speaks TCP: the endpoint answers it as it would the hooks of a multi-node setup."""
    settings.PORTAL_INTERNAL_URL = "http://testserver"


def hook_session(principal: Principal, repo) -> dict[str, str]:
    """A push session as a transport would make it: the id and secret git hands its hooks."""
    env = transport.git_environment(principal, repo, protocol="ssh", service="git-receive-pack")
    return {"push_id": env["PORTAL_PUSH_ID"], "secret": env["PORTAL_PUSH_SECRET"]}


def call_hook(client, hook: str, session: dict[str, str], updates: list[dict]):
    response = client.post(
        f"/-/internal/hooks/{hook}", json.dumps(session | {"updates": updates}), content_type="application/json"
    )
    return response.status_code, response.json()


def update(ref="refs/heads/feature", old=ZERO, new="1" * 40, forced=False) -> dict:
    return {"ref": ref, "old": old, "new": new, "forced": forced}


def test_writer_may_push_a_new_branch(private_repo, bob, client):
    status, answer = call_hook(client, "pre-receive", hook_session(Principal(user=bob), private_repo), [update()])
    assert (status, answer) == (200, {"ok": True, "messages": []})


def test_a_reader_is_refused_at_pre_receive(private_repo, carol, client):
    status, answer = call_hook(client, "pre-receive", hook_session(Principal(user=carol), private_repo), [update()])
    assert status == 200
    assert answer["ok"] is False
    assert "carol has no write access to alice/project" in answer["messages"][0]


def test_a_user_who_lost_write_access_during_the_push_is_refused(private_repo, alice, bob, client):
    session = hook_session(Principal(user=bob), private_repo)
    repo_services.remove_collaborator(private_repo, bob, actor=alice)
    _, answer = call_hook(client, "pre-receive", session, [update()])
    assert answer["ok"] is False


def _token(user, scopes):
    token, _ = accounts.create_access_token(
        user, actor=user, name="push", scopes=scopes, expires_at=timezone.now() + timedelta(days=1)
    )
    return token


def test_a_token_without_write_scope_is_refused_at_pre_receive(private_repo, bob, client):
    session = hook_session(Principal(user=bob, token=_token(bob, ["read:repo"])), private_repo)
    _, answer = call_hook(client, "pre-receive", session, [update()])
    assert answer["ok"] is False
    assert "bob has no write access" in answer["messages"][0]


def test_revoking_the_token_mid_push_ends_the_push(private_repo, bob, client):
    token = _token(bob, ["write:repo"])
    session = hook_session(Principal(user=bob, token=token), private_repo)
    accounts.revoke_access_token(token, actor=bob)
    status, answer = call_hook(client, "pre-receive", session, [update()])
    assert status == 403
    assert answer["ok"] is False
    assert not PushSession.objects.exists()


def test_a_read_only_deploy_key_is_refused(private_repo, alice, client):
    key = repo_services.add_deploy_key(actor=alice, title="ci", public_key=PUBLIC_KEY, repository=private_repo)
    _, answer = call_hook(client, "pre-receive", hook_session(Principal(deploy_key=key), private_repo), [update()])
    assert answer["ok"] is False
    assert "deploy key ci is read-only" in answer["messages"][0]


def test_a_writable_deploy_keys_push_is_recorded_with_the_key(private_repo, alice, client):
    key = repo_services.add_deploy_key(
        actor=alice, title="ci", public_key=PUBLIC_KEY, repository=private_repo, writable=True
    )
    session = hook_session(Principal(deploy_key=key), private_repo)
    sha = git.branch_sha(private_repo.path, "main")
    assert call_hook(client, "pre-receive", session, [update(new=sha)])[1]["ok"] is True
    git.update_ref(private_repo.path, "refs/heads/feature", sha, ZERO)
    status, _ = call_hook(client, "post-receive", session, [update(new=sha)])
    assert status == 200
    push = Push.objects.get()
    assert (push.deploy_key, push.pusher, push.protocol) == (key, None, "ssh")


def test_a_wrong_secret_is_refused(private_repo, bob, client):
    session = hook_session(Principal(user=bob), private_repo) | {"secret": "guess"}
    status, answer = call_hook(client, "pre-receive", session, [update()])
    assert status == 403
    assert answer["ok"] is False
    assert "unknown or expired" in answer["messages"][0]
    assert call_hook(client, "post-receive", session, [update()])[0] == 403
    assert not Push.objects.exists()


def test_a_session_older_than_its_maximum_age_is_refused(private_repo, bob, client, settings):
    session = hook_session(Principal(user=bob), private_repo)
    PushSession.objects.update(created=timezone.now() - timedelta(seconds=settings.PORTAL_PUSH_SESSION_MAX_AGE + 1))
    assert call_hook(client, "pre-receive", session, [update()])[0] == 403


def test_push_sessions_last_minutes_not_hours(settings):
    assert settings.PORTAL_PUSH_SESSION_MAX_AGE <= 15 * 60


def test_malformed_updates_are_refused_with_the_reason(private_repo, bob, client):
    session = hook_session(Principal(user=bob), private_repo)
    status, answer = call_hook(client, "pre-receive", session, [update(new="not-a-sha")])
    assert status == 400
    assert "not an object id" in answer["messages"][0]


def test_post_receive_retires_its_session_and_a_new_session_purges_stale_ones(private_repo, bob, client):
    stale = hook_session(Principal(user=bob), private_repo)
    PushSession.objects.update(created=timezone.now() - timedelta(hours=1))
    session = hook_session(Principal(user=bob), private_repo)
    assert PushSession.objects.count() == 1
    sha = git.branch_sha(private_repo.path, "main")
    assert call_hook(client, "pre-receive", session, [update(new=sha)])[0] == 200
    git.update_ref(private_repo.path, "refs/heads/feature", sha, ZERO)
    assert call_hook(client, "post-receive", session, [update(new=sha)])[0] == 200
    assert not PushSession.objects.exists()
    assert call_hook(client, "post-receive", session, [update(new=sha)])[0] == 403
    assert call_hook(client, "pre-receive", stale, [update()])[0] == 403
    assert Push.objects.count() == 1


@pytest.mark.parametrize(
    ("ref", "old", "new", "forced", "reason"),
    [
        ("refs/heads/main", "1" * 40, ZERO, False, "refusing to delete the default branch 'main'"),
        ("refs/heads/main", "1" * 40, "2" * 40, True, "refusing to force-push the default branch 'main'"),
        ("refs/heads/-x", ZERO, "2" * 40, False, "a ref name component cannot start with '-'"),
        ("refs/tags/a/-b", ZERO, "2" * 40, False, "a ref name component cannot start with '-'"),
        ("refs/notes/commits", ZERO, "2" * 40, False, "only branches"),
        ("refs/pull/1/head", ZERO, "2" * 40, False, "only branches"),
        ("HEAD", ZERO, "2" * 40, False, "only branches"),
    ],
)
def test_push_blocker_names_the_reason(private_repo, bob, ref, old, new, forced, reason):
    updates = [RefUpdate(ref="refs/heads/ok", old_sha=ZERO, new_sha="3" * 40), RefUpdate(ref, old, new, forced)]
    assert reason in push_blocker(Principal(user=bob), private_repo, updates)


@pytest.mark.parametrize(
    "ref_update",
    [
        RefUpdate("refs/heads/main", "1" * 40, "2" * 40),
        RefUpdate("refs/heads/topic", "1" * 40, "2" * 40, forced=True),
        RefUpdate("refs/heads/topic", "1" * 40, ZERO),
        RefUpdate("refs/tags/v1", ZERO, "2" * 40),
    ],
)
def test_push_blocker_allows_ordinary_pushes(private_repo, bob, ref_update):
    assert push_blocker(Principal(user=bob), private_repo, [ref_update]) is None


def test_the_default_branch_rule_follows_the_repository_setting(private_repo, alice, bob):
    repo_services.update_repository(private_repo, actor=alice, default_branch="trunk")
    delete_main = RefUpdate("refs/heads/main", "1" * 40, ZERO)
    assert push_blocker(Principal(user=bob), private_repo, [delete_main]) is None
    delete_trunk = RefUpdate("refs/heads/trunk", "1" * 40, ZERO)
    assert "'trunk' (rule: default branch protection)" in push_blocker(
        Principal(user=bob), private_repo, [delete_trunk]
    )


def test_pre_receive_run_by_hand_refuses_with_a_clear_message(private_repo, git_env, tmp_path):
    # Someone on the server pushes straight into the bare repository with the portal's hooks.
    work = tmp_path / "work"
    assert run_git("clone", "-q", str(private_repo.path), str(work), env=git_env).returncode == 0
    commit_file(work, git_env, "x.txt", b"x\n")
    receive_pack = f"git -c core.hooksPath={git.HOOKS_DIR} receive-pack"
    result = run_git("push", f"--receive-pack={receive_pack}", "origin", "HEAD:refs/heads/x", env=git_env, cwd=work)
    assert result.returncode != 0
    assert "pushes are only accepted through the portal" in result.stderr
    assert [b.name for b in git.branches(private_repo.path)] == ["main"]


def test_hook_scripts_are_executable_and_do_not_load_django():
    env = {"PATH": os.environ["PATH"]}
    for name in ("pre-receive", "post-receive"):
        assert os.access(git.HOOKS_DIR / name, os.X_OK)
        # -X importtime lists every module the script imports: a push must not pay for Django.
        result = subprocess.run(
            [sys.executable, "-X", "importtime", str(git.HOOKS_DIR / name)],
            input="",
            capture_output=True,
            text=True,
            env=env,
        )
        assert "json" in result.stderr
        assert "django" not in result.stderr
    pre = subprocess.run([str(git.HOOKS_DIR / "pre-receive")], input="", capture_output=True, text=True, env=env)
    assert pre.returncode == 1
    assert "no push session" in pre.stderr
    post = subprocess.run([str(git.HOOKS_DIR / "post-receive")], input="", capture_output=True, text=True, env=env)
    assert post.returncode == 0


@pytest.fixture
def redis_queue(rq_queues):
    """The real `default` rq queue on the test Redis, empty at the start."""
    return rq_queues["default"]


def test_pushes_schedule_one_maintenance_run_that_repacks_with_a_bitmap(
    server, private_repo, bob, git_env, tmp_path, redis_queue, settings
):
    settings.PORTAL_MAINTENANCE_DELAY = 0
    url = repo_url(server, user=bob, token=token_for(bob))
    work, result = clone(url, git_env, tmp_path)
    assert result.returncode == 0, result.stderr
    for name in ("a.txt", "b.txt"):
        commit_file(work, git_env, name, name.encode())
        assert run_git("push", url, "HEAD:refs/heads/main", env=git_env, cwd=work).returncode == 0
    pushes = list(Push.objects.filter(repository=private_repo))
    assert len(pushes) == 2
    follow_ups = [job for job in redis_queue.get_jobs() if job.func_name == "repos.jobs.run_post_receive"]
    assert sorted(job.args[0][0] for job in follow_ups) == sorted(push.pk for push in pushes)

    # A real worker runs both follow-ups; they schedule a single maintenance run between them.
    SimpleWorker([redis_queue], connection=redis_queue.connection).work(burst=True)
    scheduled = ScheduledJobRegistry(queue=redis_queue).get_job_ids()
    assert scheduled == [jobs.maintenance_job_id(private_repo.pk)]

    pack_dir = private_repo.path / "objects" / "pack"
    graph = private_repo.path / "objects" / "info" / "commit-graph"
    assert not graph.exists() and not list(pack_dir.glob("*.bitmap"))
    # With the scheduler, the worker moves the due job to the queue and runs it.
    SimpleWorker([redis_queue], connection=redis_queue.connection).work(burst=True, with_scheduler=True)
    assert graph.exists()
    assert list(pack_dir.glob("multi-pack-index*.bitmap"))
    assert not ScheduledJobRegistry(queue=redis_queue).get_job_ids()
    # Every object is still there after the repack.
    fsck = subprocess.run(["git", "fsck", "--no-dangling"], cwd=private_repo.path, capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stderr


def test_a_push_has_the_readmes_it_changed_rendered_before_anyone_opens_their_folders(
    server, private_repo, bob, carol, git_env, tmp_path, redis_queue, client, monkeypatch
):
    url = repo_url(server, user=bob, token=token_for(bob))
    work, result = clone(url, git_env, tmp_path)
    assert result.returncode == 0, result.stderr
    (work / "docs").mkdir()
    (work / "src").mkdir()
    # Words no other test renders, so that nothing another test kept in the cache stands in for these.
    marker = tmp_path.name
    commit_file(work, git_env, "README.md", f"# Root {marker}\n\nSee [the docs](docs/guide.md).\n".encode())
    commit_file(work, git_env, "docs/README.md", f"# Docs {marker}\n".encode())
    commit_file(work, git_env, "src/main.c", b"int main(void) { return 0; }\n")
    assert run_git("push", url, "HEAD:refs/heads/main", env=git_env, cwd=work).returncode == 0

    rendered = []
    render_markdown = render.render_markdown
    monkeypatch.setattr(
        render, "render_markdown", lambda text, **bases: rendered.append(text) or render_markdown(text, **bases)
    )
    SimpleWorker([redis_queue], connection=redis_queue.connection).work(burst=True)
    assert sorted(rendered) == [f"# Docs {marker}\n", f"# Root {marker}\n\nSee [the docs](docs/guide.md).\n"]

    # The folders' first views show them, as rendered then, links relative to each folder, without Markdown. The
    # web process is not the worker's: it finds them in the shared cache.
    rendered.clear()
    code.local_cache.clear()
    client.force_login(carol)
    home = client.get("/alice/project").content.decode()
    assert f"Root {marker}</h1>" in home
    assert 'href="/alice/project/blob/main/docs/guide.md"' in home
    assert f"Docs {marker}</h1>" in client.get("/alice/project/tree/main/docs").content.decode()
    assert rendered == []

    # The next push renders the one README it changed, not the folders it left as they were.
    commit_file(work, git_env, "docs/README.md", f"# Docs {marker}, again\n".encode())
    assert run_git("push", url, "HEAD:refs/heads/main", env=git_env, cwd=work).returncode == 0
    SimpleWorker([redis_queue], connection=redis_queue.connection).work(burst=True)
    assert rendered == [f"# Docs {marker}, again\n"]


def test_a_push_of_a_tag_another_branch_or_a_deletion_renders_no_readme(private_repo, alice):
    head = git.branch_sha(private_repo.path, "main")
    for ref, old, new in (
        ("refs/tags/v1", ZERO, head),
        ("refs/heads/topic", ZERO, head),
        ("refs/heads/main", head, ZERO),
    ):
        push = Push.objects.create(repository=private_repo, pusher=alice, ref=ref, old_sha=old, new_sha=new)
        assert jobs.prepare_readmes(push) == 0
    push = Push.objects.create(repository=private_repo, pusher=alice, ref="refs/heads/main", old_sha=ZERO, new_sha=head)
    assert jobs.prepare_readmes(push) == 1


def test_a_push_succeeds_and_is_recorded_when_redis_is_down(server, private_repo, bob, git_env, tmp_path, settings):
    settings.RQ_QUEUES = {"default": {"URL": "redis://127.0.0.1:1/0", "DEFAULT_TIMEOUT": 600}}
    url = repo_url(server, user=bob, token=token_for(bob))
    work, result = clone(url, git_env, tmp_path)
    assert result.returncode == 0, result.stderr
    sha = commit_file(work, git_env, "a.txt", b"a\n")
    result = run_git("push", url, "HEAD:refs/heads/main", env=git_env, cwd=work)
    assert result.returncode == 0, result.stderr
    assert git.branch_sha(private_repo.path, "main") == sha
    assert Push.objects.filter(repository=private_repo, new_sha=sha).exists()


def test_maintenance_skips_deleted_and_empty_repositories(private_repo, alice):
    empty = repo_services.create_repository(actor=alice, owner=alice, name="empty")
    repo_services.delete_repository(private_repo, actor=alice, confirm="alice/project")
    jobs.run_repository_maintenance(private_repo.pk)
    jobs.run_repository_maintenance(empty.pk)
    assert not (empty.path / "objects" / "info" / "commit-graph").exists()
    assert not list((empty.path / "objects" / "pack").glob("*"))


def test_maintenance_removes_the_quarantines_killed_pushes_left_but_not_a_running_pushs(private_repo, bob):
    objects = private_repo.path / "objects"
    stale, recent = objects / "tmp_objdir-incoming-killed", objects / "tmp_objdir-incoming-running"
    for quarantine in (stale, recent):
        (quarantine / "pack").mkdir(parents=True)
        (quarantine / "pack" / "tmp_pack_1").write_bytes(b"PACK")
    two_hours_ago = time.time() - 2 * 3600
    for entry in (stale, stale / "pack", stale / "pack" / "tmp_pack_1"):
        os.utime(entry, (two_hours_ago, two_hours_ago))
    # While a push to the repository may still be running, nothing is removed.
    session, _secret = repo_services.start_push_session(Principal(user=bob), private_repo, protocol="ssh")
    assert jobs.remove_stale_incoming(private_repo) == []
    repo_services.end_push_session(session.pk)

    jobs.schedule_maintenance(private_repo.pk)
    jobs.run_repository_maintenance(private_repo.pk)
    assert not stale.exists() and recent.exists()
    assert (private_repo.path / "objects" / "info" / "commit-graph").exists()


# Nothing a hook claims is believed: each phase uses its session once, a refused or finished push leaves no
# session behind, and post-receive records only what pre-receive accepted and the repository shows.


@pytest.fixture
def feature_pr(private_repo, alice, bob):
    """bob's open pull request from feature (one commit on top of main) into main."""
    main = git.branch_sha(private_repo.path, "main")
    git.update_ref(private_repo.path, "refs/heads/feature", main, ZERO)
    git.commit_files(private_repo.path, "feature", {"parser.py": b"print(1)\n"}, "parser", name="bob", email="b@x")
    return reviews.open_pull_request(private_repo, actor=bob, title="Parser", base="main", head="feature")


@pytest.fixture
def hook_secrets(settings, tmp_path):
    """hook_secrets(): the id and secret of the last push git ran, read from the environment its hooks get.

    git runs through a wrapper (GIT_BIN) that writes down the push session it was given before running git."""
    dump = tmp_path / "hook-env"
    wrapper = tmp_path / "git-wrapper"
    wrapper.write_text(
        "#!/bin/sh\n"
        f'if [ -n "$PORTAL_PUSH_SECRET" ]; then echo "$PORTAL_PUSH_ID $PORTAL_PUSH_SECRET" > {dump}; fi\n'
        'exec git "$@"\n'
    )
    wrapper.chmod(0o755)
    settings.GIT_BIN = str(wrapper)

    def read() -> dict[str, str]:
        push_id, secret = dump.read_text().split()
        return {"push_id": push_id, "secret": secret}

    return read


def snapshot(repo, pr) -> tuple:
    """What a forged hook call must not change: pushes, push audit events, and the pull request's state."""
    pr = PullRequest.objects.get(pk=pr.pk)
    return (
        Push.objects.filter(repository=repo).count(),
        AuditEvent.objects.filter(action="repo.push").count(),
        AuditEvent.objects.filter(action="pull_request.merged_by_push").count(),
        pr.head_sha,
        pr.state,
        pr.merge_commit_sha,
        pr.revisions.count(),
    )


def test_a_refused_pushs_secret_cannot_be_replayed(
    server, private_repo, feature_pr, bob, git_env, tmp_path, client, hook_secrets
):
    url = repo_url(server, user=bob, token=token_for(bob))
    work, result = clone(url, git_env, tmp_path)
    assert result.returncode == 0, result.stderr
    result = run_git("push", url, ":refs/heads/main", env=git_env, cwd=work)
    assert result.returncode != 0
    assert "refusing to delete the default branch 'main'" in result.stderr
    secret = hook_secrets()
    assert not PushSession.objects.exists()
    before = snapshot(private_repo, feature_pr)

    # Replayed, the secret would claim that main took in the pull request's head (marking it merged) and that
    # its head moved back to main.
    main, head = git.branch_sha(private_repo.path, "main"), feature_pr.head_sha
    forged = [update("refs/heads/main", main, head), update("refs/heads/feature", head, main, forced=True)]
    assert call_hook(client, "pre-receive", secret, forged)[0] == 403
    assert call_hook(client, "post-receive", secret, forged)[0] == 403
    assert snapshot(private_repo, feature_pr) == before


def test_an_accepted_pushs_secret_is_spent_once_git_is_done(
    server, private_repo, feature_pr, bob, git_env, tmp_path, client, hook_secrets
):
    url = repo_url(server, user=bob, token=token_for(bob))
    work, result = clone(url, git_env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert run_git("checkout", "-q", "feature", env=git_env, cwd=work).returncode == 0
    old = feature_pr.head_sha
    new = commit_file(work, git_env, "more.py", b"print(2)\n")
    result = run_git("push", url, "HEAD:refs/heads/feature", env=git_env, cwd=work)
    assert result.returncode == 0, result.stderr
    assert not PushSession.objects.exists()
    before = snapshot(private_repo, feature_pr)
    assert before[0] == 1 and before[3] == new

    status, _ = call_hook(client, "post-receive", hook_secrets(), [update("refs/heads/feature", old, new)])
    assert status == 403
    assert snapshot(private_repo, feature_pr) == before


def test_a_second_post_receive_of_an_accepted_push_is_refused(private_repo, feature_pr, bob, client):
    session = hook_session(Principal(user=bob), private_repo)
    main = git.branch_sha(private_repo.path, "main")
    claimed = [update("refs/heads/topic", ZERO, main)]
    assert call_hook(client, "pre-receive", session, claimed)[1]["ok"] is True
    git.update_ref(private_repo.path, "refs/heads/topic", main, ZERO)
    assert call_hook(client, "post-receive", session, claimed)[0] == 200
    before = snapshot(private_repo, feature_pr)
    assert before[:2] == (1, 1)

    assert call_hook(client, "post-receive", session, claimed)[0] == 403
    assert snapshot(private_repo, feature_pr) == before


def test_an_empty_post_receive_is_refused_and_spends_nothing(private_repo, bob, client):
    session = hook_session(Principal(user=bob), private_repo)
    main = git.branch_sha(private_repo.path, "main")
    claimed = [update("refs/heads/topic", ZERO, main)]
    _accepted(client, session, claimed)
    assert call_hook(client, "post-receive", session, [])[0] == 409
    assert not AuditEvent.objects.filter(action="repo.push").exists()
    git.update_ref(private_repo.path, "refs/heads/topic", main, ZERO)
    assert call_hook(client, "post-receive", session, claimed)[0] == 200
    assert Push.objects.count() == 1


def test_pre_receive_is_answered_once_per_push(private_repo, bob, client):
    session = hook_session(Principal(user=bob), private_repo)
    assert call_hook(client, "pre-receive", session, [update()])[1]["ok"] is True
    status, answer = call_hook(client, "pre-receive", session, [update(ref="refs/heads/other")])
    assert (status, answer["ok"]) == (409, False)
    assert "already used" in answer["messages"][0]


def test_a_refused_pre_receive_ends_its_session(private_repo, bob, client):
    session = hook_session(Principal(user=bob), private_repo)
    _, answer = call_hook(client, "pre-receive", session, [update("refs/heads/main", "1" * 40, ZERO)])
    assert answer["ok"] is False
    assert not PushSession.objects.exists()
    assert call_hook(client, "post-receive", session, [update("refs/heads/main", "1" * 40, ZERO)])[0] == 403


def _accepted(client, session, updates):
    status, answer = call_hook(client, "pre-receive", session, updates)
    assert (status, answer["ok"]) == (200, True), answer


def test_post_receive_refuses_an_update_the_ref_does_not_show(private_repo, feature_pr, bob, client):
    # pre-receive accepted bob's update of main to the pull request's head, but git never moved main.
    session = hook_session(Principal(user=bob), private_repo)
    main = git.branch_sha(private_repo.path, "main")
    claimed = [update("refs/heads/main", main, feature_pr.head_sha)]
    _accepted(client, session, claimed)
    before = snapshot(private_repo, feature_pr)

    status, answer = call_hook(client, "post-receive", session, claimed)
    assert (status, answer["ok"]) == (409, False)
    assert f"refs/heads/main: the ref does not point at {feature_pr.head_sha}" in answer["messages"][0]
    assert snapshot(private_repo, feature_pr) == before
    assert PullRequest.objects.get(pk=feature_pr.pk).state == PullRequest.State.OPEN


def test_post_receive_refuses_a_deletion_of_a_ref_that_still_exists(private_repo, feature_pr, bob, client):
    session = hook_session(Principal(user=bob), private_repo)
    claimed = [update("refs/heads/feature", feature_pr.head_sha, ZERO)]
    _accepted(client, session, claimed)
    before = snapshot(private_repo, feature_pr)
    status, answer = call_hook(client, "post-receive", session, claimed)
    assert status == 409
    assert "still exists" in answer["messages"][0]
    assert snapshot(private_repo, feature_pr) == before


@pytest.mark.parametrize("ref_written", [False, True])
def test_post_receive_refuses_a_commit_that_does_not_exist(private_repo, feature_pr, bob, client, ref_written):
    missing = "1" * 40
    session = hook_session(Principal(user=bob), private_repo)
    claimed = [update("refs/heads/feature", feature_pr.head_sha, missing)]
    _accepted(client, session, claimed)
    if ref_written:
        # Even a ref that names the missing object (written behind git's back) is not enough.
        (private_repo.path / "refs" / "heads" / "feature").write_text(missing + "\n")
    before = snapshot(private_repo, feature_pr)

    status, answer = call_hook(client, "post-receive", session, claimed)
    assert (status, answer["ok"]) == (409, False)
    reason = "does not exist" if ref_written else "does not point at"
    assert reason in answer["messages"][0]
    assert snapshot(private_repo, feature_pr) == before


def test_post_receive_refuses_an_update_pre_receive_did_not_accept(private_repo, feature_pr, bob, client):
    session = hook_session(Principal(user=bob), private_repo)
    main = git.branch_sha(private_repo.path, "main")
    _accepted(client, session, [update("refs/heads/topic", ZERO, main)])
    git.update_ref(private_repo.path, "refs/heads/topic", main, ZERO)
    # feature really is where this says, but this push did not put it there.
    claimed = [update("refs/heads/topic", ZERO, main), update("refs/heads/feature", main, feature_pr.head_sha)]
    before = snapshot(private_repo, feature_pr)

    status, answer = call_hook(client, "post-receive", session, claimed)
    assert status == 409
    assert "refs/heads/feature: this update is not one that pre-receive accepted" in answer["messages"][0]
    assert snapshot(private_repo, feature_pr) == before


def test_post_receive_without_pre_receive_is_refused(private_repo, feature_pr, bob, client):
    session = hook_session(Principal(user=bob), private_repo)
    claimed = [update("refs/heads/feature", git.branch_sha(private_repo.path, "main"), feature_pr.head_sha)]
    before = snapshot(private_repo, feature_pr)
    status, answer = call_hook(client, "post-receive", session, claimed)
    assert status == 409
    assert "pre-receive did not accept this push" in answer["messages"][0]
    assert snapshot(private_repo, feature_pr) == before


def test_post_receive_on_an_expired_session_is_refused(private_repo, feature_pr, bob, client, settings):
    session = hook_session(Principal(user=bob), private_repo)
    main = git.branch_sha(private_repo.path, "main")
    claimed = [update("refs/heads/topic", ZERO, main)]
    _accepted(client, session, claimed)
    git.update_ref(private_repo.path, "refs/heads/topic", main, ZERO)
    age = timedelta(seconds=settings.PORTAL_PUSH_SESSION_MAX_AGE + 1)
    PushSession.objects.update(created=timezone.now() - age)
    before = snapshot(private_repo, feature_pr)

    assert call_hook(client, "post-receive", session, claimed)[0] == 403
    assert snapshot(private_repo, feature_pr) == before


def test_post_receive_takes_forced_from_what_pre_receive_judged(private_repo, bob, client):
    session = hook_session(Principal(user=bob), private_repo)
    main = git.branch_sha(private_repo.path, "main")
    _accepted(client, session, [update("refs/heads/topic", ZERO, main, forced=False)])
    git.update_ref(private_repo.path, "refs/heads/topic", main, ZERO)
    assert call_hook(client, "post-receive", session, [update("refs/heads/topic", ZERO, main, forced=True)])[0] == 200
    assert Push.objects.get().forced is False


def test_a_failing_pull_request_update_saves_nothing_of_the_push(private_repo, feature_pr, alice, bob, client):
    # A pull request into main whose recorded head is not in the repository makes following main's move fail.
    PullRequest.objects.filter(pk=feature_pr.pk).update(head_sha="2" * 40)
    session = hook_session(Principal(user=alice), private_repo)
    old = git.branch_sha(private_repo.path, "main")
    git.update_ref(private_repo.path, "refs/heads/next", old, ZERO)
    new = git.commit_files(private_repo.path, "next", {"a.txt": b"a\n"}, "a", name="alice", email="a@x")
    claimed = [update("refs/heads/topic", ZERO, new), update("refs/heads/main", old, new)]
    _accepted(client, session, claimed)
    # What git does between the hooks: it moves the refs.
    git.update_ref(private_repo.path, "refs/heads/topic", new, ZERO)
    git.update_ref(private_repo.path, "refs/heads/main", new, old)
    before = snapshot(private_repo, feature_pr)

    client.raise_request_exception = False
    status = client.post(
        "/-/internal/hooks/post-receive", json.dumps(session | {"updates": claimed}), content_type="application/json"
    ).status_code
    assert status == 500
    assert snapshot(private_repo, feature_pr) == before
    assert not Push.objects.exists()
