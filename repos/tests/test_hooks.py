"""git's pre-receive and post-receive hooks, the endpoint they call, and the job that follows a push."""

import json
import os
import subprocess
import sys
from datetime import timedelta

import pytest
from django.utils import timezone
from rq import SimpleWorker
from rq.registry import ScheduledJobRegistry

from portal import services as accounts
from repos import git, jobs, transport
from repos import services as repo_services
from repos.access import Principal
from repos.models import Push, PushSession
from repos.services import RefUpdate, push_blocker
from repos.tests.test_http import clone, commit_file, repo_url, run_git, token_for

ZERO = "0" * 40
PUBLIC_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl deploy@example.com"


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
    key = accounts.add_deploy_key(actor=alice, title="ci", public_key=PUBLIC_KEY, repository=private_repo)
    _, answer = call_hook(client, "pre-receive", hook_session(Principal(deploy_key=key), private_repo), [update()])
    assert answer["ok"] is False
    assert "deploy key ci is read-only" in answer["messages"][0]


def test_a_writable_deploy_keys_push_is_recorded_with_the_key(private_repo, alice, client):
    key = accounts.add_deploy_key(
        actor=alice, title="ci", public_key=PUBLIC_KEY, repository=private_repo, writable=True
    )
    session = hook_session(Principal(deploy_key=key), private_repo)
    assert call_hook(client, "pre-receive", session, [update()])[1]["ok"] is True
    status, _ = call_hook(client, "post-receive", session, [update()])
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


def test_a_session_older_than_a_day_is_refused(private_repo, bob, client):
    session = hook_session(Principal(user=bob), private_repo)
    PushSession.objects.update(created=timezone.now() - timedelta(days=1, minutes=1))
    assert call_hook(client, "pre-receive", session, [update()])[0] == 403


def test_malformed_updates_are_refused_with_the_reason(private_repo, bob, client):
    session = hook_session(Principal(user=bob), private_repo)
    status, answer = call_hook(client, "pre-receive", session, [update(new="not-a-sha")])
    assert status == 400
    assert "not an object id" in answer["messages"][0]


def test_post_receive_retires_its_session_and_purges_stale_ones(private_repo, bob, client):
    stale = hook_session(Principal(user=bob), private_repo)
    PushSession.objects.update(created=timezone.now() - timedelta(days=2))
    session = hook_session(Principal(user=bob), private_repo)
    assert call_hook(client, "post-receive", session, [update()])[0] == 200
    assert not PushSession.objects.exists()
    assert call_hook(client, "post-receive", session, [update()])[0] == 403
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
