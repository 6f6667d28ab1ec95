"""What repos announces: every push with its ref updates, and a repository's life, each once, to any listener."""

import pytest

from portal import services as accounts
from repos import services as repo_services
from repos import signals
from repos.access import Principal
from repos.models import Push, Repository
from repos.services import RefUpdate, push_blocker
from repos.tests.test_http import clone, commit_file, repo_url, run_git, token_for


class Listener:
    """A receiver that keeps what it was sent, and answers what it is told to."""

    def __init__(self, answer=None):
        self.calls: list[dict] = []
        self.answer = answer

    def __call__(self, sender, **kwargs):
        self.calls.append(kwargs | {"sender": sender})
        return self.answer


@pytest.fixture
def working_copy(server, private_repo, alice, git_env, tmp_path):
    work, result = clone(repo_url(server, user=alice, token=token_for(alice, ("read:repo",))), git_env, tmp_path)
    assert result.returncode == 0, result.stderr
    return work


@pytest.fixture
def listen():
    connected = []

    def connect(signal, answer=None) -> Listener:
        listener = Listener(answer)
        signal.connect(listener, weak=False)
        connected.append((signal, listener))
        return listener

    yield connect
    for signal, listener in connected:
        signal.disconnect(listener)


def test_a_push_over_http_is_announced_once_with_its_updates_pusher_push_id_and_transport(
    server, working_copy, bob, git_env, private_repo, listen
):
    received = listen(signals.push_received, answer=["", "Hello from a listener"])
    sha = commit_file(working_copy, git_env, "new.txt", b"hello\n")
    url = repo_url(server, user=bob, token=token_for(bob))
    result = run_git("push", url, "HEAD:refs/heads/topic", env=git_env, cwd=working_copy)
    assert result.returncode == 0, result.stderr
    # What the listener answers is printed to whoever pushed.
    assert "remote: Hello from a listener" in result.stderr
    push = Push.objects.get(repository=private_repo)
    [call] = received.calls
    assert call["sender"] is Repository
    assert call["repository"] == private_repo
    assert call["updates"] == [RefUpdate("refs/heads/topic", "0" * 40, sha, forced=False)]
    assert (call["pusher"], call["deploy_key"], call["push_ids"], call["protocol"]) == (bob, None, [push.pk], "http")


def test_a_push_refused_by_a_listener_is_refused_with_its_reason(
    server, working_copy, bob, git_env, private_repo, listen
):
    checked = listen(signals.push_checked, answer="refusing refs/heads/topic: the listener says no")
    received = listen(signals.push_received, answer=[])
    commit_file(working_copy, git_env, "new.txt", b"hello\n")
    url = repo_url(server, user=bob, token=token_for(bob))
    result = run_git("push", url, "HEAD:refs/heads/topic", env=git_env, cwd=working_copy)
    assert result.returncode != 0
    assert "the listener says no" in result.stderr
    assert [call["update"].ref for call in checked.calls] == ["refs/heads/topic"]
    assert checked.calls[0]["principal"].user == bob
    assert received.calls == []
    assert not Push.objects.exists()


def test_a_listener_is_not_asked_about_an_update_the_repository_already_refuses(private_repo, bob, listen):
    checked = listen(signals.push_checked, answer=None)
    main = private_repo.default_branch
    delete_main = RefUpdate(f"refs/heads/{main}", "1" * 40, "0" * 40)
    assert "default branch protection" in push_blocker(Principal(user=bob), private_repo, [delete_main])
    assert checked.calls == []


def test_a_repository_life_is_announced_once_at_each_step(alice, listen):
    created = listen(signals.repository_created)
    renamed = listen(signals.repository_renamed)
    transferred = listen(signals.repository_transferred)
    deleted = listen(signals.repository_deleted)
    org = accounts.create_organization(actor=alice, name="acme")

    repo = repo_services.create_repository(actor=alice, owner=alice, name="tool")
    assert [(call["repository"], call["actor"]) for call in created.calls] == [(repo, alice)]

    repo_services.rename_repository(repo, actor=alice, name="gadget")
    assert [(call["repository"].full_name, call["old_name"]) for call in renamed.calls] == [("alice/gadget", "tool")]

    repo_services.transfer_repository(repo, actor=alice, new_owner=org)
    assert [(call["repository"].full_name, call["old_owner"]) for call in transferred.calls] == [("acme/gadget", alice)]

    repo_services.delete_repository(repo, actor=alice, confirm="acme/gadget")
    assert [(call["repository"].name, call["actor"]) for call in deleted.calls] == [("gadget", alice)]
    assert not Repository.objects.filter(name="gadget").exists()
    assert (len(created.calls), len(renamed.calls), len(transferred.calls)) == (1, 1, 1)
