"""Git over smart HTTP: the real `git` client against the live web server, hooks included."""

import base64
import gzip
import hashlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from portal import services as accounts
from portal.models import AccessToken, AuditEvent
from repos import git
from repos import services as repo_services
from repos.models import Push, PushSession, Visibility


def token_for(user, scopes=("write:repo",)) -> str:
    name = f"git-{AccessToken.objects.count()}"
    _, raw = accounts.create_access_token(user, actor=user, name=name, scopes=list(scopes), expires_at=None)
    return raw


def repo_url(server: str, path: str = "alice/project", *, user=None, token: str | None = None, suffix=".git") -> str:
    parts = urlsplit(server)
    auth = f"{user.username}:{token}@" if user is not None else ""
    return f"{parts.scheme}://{auth}{parts.netloc}/{path}{suffix}"


def run_git(*args, env, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=600)


def clone(url: str, env, tmp_path: Path, name: str = "work", *options: str):
    target = tmp_path / name
    return target, run_git("clone", *options, url, str(target), env=env)


def commit_file(work: Path, env, name: str, content: bytes) -> str:
    (work / name).write_bytes(content)
    assert run_git("add", name, env=env, cwd=work).returncode == 0
    assert run_git("commit", "-q", "-m", f"add {name}", env=env, cwd=work).returncode == 0
    return run_git("rev-parse", "HEAD", env=env, cwd=work).stdout.strip()


def test_owner_clones_a_private_repository_with_a_token_in_the_url(server, private_repo, alice, git_env, tmp_path):
    work, result = clone(repo_url(server, user=alice, token=token_for(alice)), git_env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert (work / "README.md").read_text().startswith("# project")


def test_reader_clones_through_a_credential_helper_and_without_the_git_suffix(
    server, private_repo, carol, git_env, tmp_path
):
    token = token_for(carol, scopes=("read:repo",))
    helper = f"!f() {{ echo username={carol.username}; echo password={token}; }}; f"
    work, result = clone(repo_url(server, suffix=""), git_env, tmp_path, "work", "-c", f"credential.helper={helper}")
    assert result.returncode == 0, result.stderr
    assert (work / "README.md").exists()


def test_anyone_clones_a_public_repository(server, alice, git_env, tmp_path):
    repo_services.create_repository(
        actor=alice, owner=alice, name="open", visibility=Visibility.PUBLIC, initialize=True
    )
    work, result = clone(repo_url(server, "alice/open"), git_env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert (work / "README.md").exists()


def test_anonymous_clone_of_a_private_repository_asks_for_credentials(server, private_repo, client):
    response = client.get("/alice/project.git/info/refs", {"service": "git-upload-pack"})
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Basic realm="portal"'
    # A repository that does not exist answers exactly the same, so private names do not leak.
    missing = client.get("/alice/nothing.git/info/refs", {"service": "git-upload-pack"})
    assert missing.status_code == 401
    assert missing.content == response.content


def test_anonymous_git_clone_of_a_private_repository_fails(server, private_repo, git_env, tmp_path):
    work, result = clone(repo_url(server), git_env, tmp_path)
    assert result.returncode != 0
    assert "could not read Username" in result.stderr or "Authentication" in result.stderr
    assert not work.exists()


def test_outsider_with_a_token_gets_not_found(server, private_repo, mallory, git_env, tmp_path):
    _, result = clone(repo_url(server, user=mallory, token=token_for(mallory)), git_env, tmp_path)
    assert result.returncode != 0
    assert "not found" in result.stderr.lower()


def test_passwords_are_refused_with_a_message_that_says_so(server, private_repo, alice, password, git_env, tmp_path):
    _, result = clone(repo_url(server, user=alice, token=password.replace(" ", "-")), git_env, tmp_path)
    assert result.returncode != 0
    assert "Passwords are not accepted" in result.stderr


def test_a_token_only_works_with_its_own_username(server, private_repo, alice, bob, git_env, tmp_path):
    _, result = clone(repo_url(server, user=bob, token=token_for(alice)), git_env, tmp_path)
    assert result.returncode != 0
    assert "belongs to another user" in result.stderr


# Gitea's form: the token as the user name and no password (https://<token>@host/owner/repo.git).


def token_as_user_url(server: str, token: str, path: str = "alice/project") -> str:
    parts = urlsplit(server)
    return f"{parts.scheme}://{token}@{parts.netloc}/{path}.git"


@pytest.fixture
def empty_password(git_env, tmp_path):
    """git asks for the password a URL lacks; this answers it as a person pressing Enter would."""
    askpass = tmp_path / "askpass"
    askpass.write_text("#!/bin/sh\necho\n")
    askpass.chmod(0o755)
    return git_env | {"GIT_ASKPASS": str(askpass)}


def test_a_token_as_the_user_name_without_a_password_clones_and_pushes(
    server, private_repo, bob, empty_password, tmp_path
):
    token = token_for(bob, ("read:repo", "write:repo"))
    work, result = clone(token_as_user_url(server, token), empty_password, tmp_path)
    assert result.returncode == 0, result.stderr
    sha = commit_file(work, empty_password, "gitea.txt", b"like Gitea\n")
    pushed = run_git("push", "origin", "HEAD:refs/heads/gitea", env=empty_password, cwd=work)
    assert pushed.returncode == 0, pushed.stderr
    assert git.branch_sha(private_repo.path, "gitea") == sha
    assert Push.objects.get(repository=private_repo, ref="refs/heads/gitea").pusher == bob


def test_a_token_as_the_user_name_with_an_empty_password_in_the_url(server, private_repo, carol, git_env, tmp_path):
    parts = urlsplit(server)
    url = f"{parts.scheme}://{token_for(carol, ('read:repo',))}:@{parts.netloc}/alice/project.git"
    _, result = clone(url, git_env, tmp_path)
    assert result.returncode == 0, result.stderr


def test_a_token_as_the_user_name_keeps_its_scopes(server, private_repo, bob, empty_password, tmp_path):
    reader = token_for(bob, ("read:repo",))
    work, result = clone(token_as_user_url(server, reader), empty_password, tmp_path)
    assert result.returncode == 0, result.stderr
    commit_file(work, empty_password, "nope.txt", b"no\n")
    pushed = run_git("push", "origin", "HEAD:refs/heads/nope", env=empty_password, cwd=work)
    assert pushed.returncode != 0
    assert "write:repo" in pushed.stderr
    assert git.ref_target(private_repo.path, "refs/heads/nope") is None


def test_a_bad_token_as_the_user_name_is_refused(server, private_repo, mallory, empty_password, tmp_path):
    _, result = clone(token_as_user_url(server, "ptl_not-a-token"), empty_password, tmp_path)
    assert result.returncode != 0
    assert "invalid, expired or revoked" in result.stderr
    # An outsider's good token finds nothing there.
    _, result = clone(token_as_user_url(server, token_for(mallory)), empty_password, tmp_path, "other")
    assert result.returncode != 0
    assert "not found" in result.stderr.lower()


@pytest.fixture
def working_copy(server, private_repo, alice, git_env, tmp_path):
    """A clone of alice/project made by its owner."""
    work, result = clone(repo_url(server, user=alice, token=token_for(alice, ("read:repo",))), git_env, tmp_path)
    assert result.returncode == 0, result.stderr
    return work


def test_reader_cannot_push(server, working_copy, carol, git_env, private_repo):
    before = git.branch_sha(private_repo.path, "main")
    commit_file(working_copy, git_env, "new.txt", b"hello\n")
    url = repo_url(server, user=carol, token=token_for(carol))
    result = run_git("push", url, "HEAD:refs/heads/feature", env=git_env, cwd=working_copy)
    assert result.returncode != 0
    assert "read-only access" in result.stderr
    assert [b.name for b in git.branches(private_repo.path)] == ["main"]
    assert git.branch_sha(private_repo.path, "main") == before
    assert not PushSession.objects.exists()


def test_read_scoped_token_of_a_writer_cannot_push(server, working_copy, bob, git_env, private_repo):
    commit_file(working_copy, git_env, "new.txt", b"hello\n")
    url = repo_url(server, user=bob, token=token_for(bob, ("read:repo",)))
    result = run_git("push", url, "HEAD:refs/heads/feature", env=git_env, cwd=working_copy)
    assert result.returncode != 0
    assert "write:repo" in result.stderr
    assert [b.name for b in git.branches(private_repo.path)] == ["main"]


def test_writer_pushes_a_branch_and_the_push_is_recorded(server, working_copy, bob, git_env, private_repo):
    sha = commit_file(working_copy, git_env, "new.txt", b"hello\n")
    url = repo_url(server, user=bob, token=token_for(bob))
    result = run_git("push", url, "HEAD:refs/heads/feature", env=git_env, cwd=working_copy)
    assert result.returncode == 0, result.stderr
    assert git.branch_sha(private_repo.path, "feature") == sha
    push = Push.objects.get(repository=private_repo)
    assert (push.pusher, push.ref, push.new_sha, push.protocol, push.forced) == (
        bob,
        "refs/heads/feature",
        sha,
        Push.Protocol.HTTP,
        False,
    )
    assert push.is_create
    assert "remote: Create a pull request for 'feature':" in result.stderr
    assert f"remote:   {server}/alice/project/pulls/new?head=feature" in result.stderr
    private_repo.refresh_from_db()
    assert private_repo.pushed is not None
    assert AuditEvent.objects.filter(action="repo.push", target_id=str(private_repo.pk), actor=bob).exists()
    # The push session served its one push and is gone.
    assert not PushSession.objects.exists()


def test_force_push_to_the_default_branch_is_refused_with_the_rule(server, working_copy, bob, git_env, private_repo):
    before = git.branch_sha(private_repo.path, "main")
    assert run_git("commit", "-q", "--amend", "-m", "rewritten", env=git_env, cwd=working_copy).returncode == 0
    url = repo_url(server, user=bob, token=token_for(bob))
    result = run_git("push", "--force", url, "HEAD:refs/heads/main", env=git_env, cwd=working_copy)
    assert result.returncode != 0
    assert "refusing to force-push the default branch 'main' (rule: default branch protection)" in result.stderr
    assert git.branch_sha(private_repo.path, "main") == before
    assert not Push.objects.exists()


def test_deleting_the_default_branch_is_refused_with_the_rule(server, working_copy, bob, git_env, private_repo):
    before = git.branch_sha(private_repo.path, "main")
    url = repo_url(server, user=bob, token=token_for(bob))
    result = run_git("push", url, ":refs/heads/main", env=git_env, cwd=working_copy)
    assert result.returncode != 0
    assert "refusing to delete the default branch 'main' (rule: default branch protection)" in result.stderr
    assert git.branch_sha(private_repo.path, "main") == before


def test_fast_forward_of_the_default_branch_and_force_push_of_another_branch_are_allowed(
    server, working_copy, bob, git_env, private_repo
):
    url = repo_url(server, user=bob, token=token_for(bob))
    sha = commit_file(working_copy, git_env, "a.txt", b"a\n")
    assert (
        run_git("push", url, "HEAD:refs/heads/main", "HEAD:refs/heads/topic", env=git_env, cwd=working_copy).returncode
        == 0
    )
    assert run_git("commit", "-q", "--amend", "-m", "rewritten", env=git_env, cwd=working_copy).returncode == 0
    result = run_git("push", "--force", url, "HEAD:refs/heads/topic", env=git_env, cwd=working_copy)
    assert result.returncode == 0, result.stderr
    assert git.branch_sha(private_repo.path, "main") == sha
    forced = Push.objects.get(ref="refs/heads/topic", forced=True)
    assert forced.old_sha == sha


def test_a_refused_ref_refuses_the_whole_push(server, working_copy, bob, git_env, private_repo):
    url = repo_url(server, user=bob, token=token_for(bob))
    commit_file(working_copy, git_env, "a.txt", b"a\n")
    result = run_git("push", url, "HEAD:refs/heads/fine", "HEAD:refs/heads/-x", env=git_env, cwd=working_copy)
    assert result.returncode != 0
    assert "refusing to update 'refs/heads/-x': a ref name component cannot start with '-'" in result.stderr
    assert [b.name for b in git.branches(private_repo.path)] == ["main"]


def test_only_branches_and_tags_can_be_pushed(server, working_copy, bob, git_env, private_repo):
    url = repo_url(server, user=bob, token=token_for(bob))
    result = run_git("push", url, "HEAD:refs/notes/x", env=git_env, cwd=working_copy)
    assert result.returncode != 0
    assert "only branches (refs/heads/...) and tags (refs/tags/...) can be pushed" in result.stderr


def test_tags_push(server, working_copy, bob, git_env, private_repo):
    assert run_git("tag", "-a", "v1.0", "-m", "first", env=git_env, cwd=working_copy).returncode == 0
    url = repo_url(server, user=bob, token=token_for(bob))
    result = run_git("push", url, "v1.0", env=git_env, cwd=working_copy)
    assert result.returncode == 0, result.stderr
    assert Push.objects.filter(ref="refs/tags/v1.0", protocol="http").exists()
    listed = run_git("ls-remote", "--tags", url, env=git_env)
    assert "refs/tags/v1.0" in listed.stdout


def test_protocol_v2_over_http(server, private_repo, alice, git_env, tmp_path):
    env = git_env | {"GIT_TRACE_PACKET": "1"}
    url = repo_url(server, user=alice, token=token_for(alice))
    work, result = clone(url, env, tmp_path, "work", "-c", "protocol.version=2")
    assert result.returncode == 0, result.stderr
    assert "< version 2" in result.stderr
    assert "ls-refs" in result.stderr
    assert (work / "README.md").exists()


def test_protocol_v0_over_http(server, private_repo, alice, git_env, tmp_path):
    env = git_env | {"GIT_TRACE_PACKET": "1"}
    url = repo_url(server, user=alice, token=token_for(alice))
    work, result = clone(url, env, tmp_path, "work", "-c", "protocol.version=0")
    assert result.returncode == 0, result.stderr
    assert "# service=git-upload-pack" in result.stderr
    assert "< version 2" not in result.stderr


def test_gzip_encoded_upload_pack_request(server, private_repo, client):
    sha = git.branch_sha(private_repo.path, "main")
    want = f"want {sha} ofs-delta\n"
    body = f"{len(want) + 4:04x}{want}00000009done\n".encode()
    private_repo.visibility = Visibility.PUBLIC
    private_repo.save()
    response = client.post(
        "/alice/project.git/git-upload-pack",
        gzip.compress(body),
        content_type="application/x-git-upload-pack-request",
        HTTP_CONTENT_ENCODING="gzip",
    )
    assert response.status_code == 200
    assert response["Content-Type"] == "application/x-git-upload-pack-result"
    data = b"".join(response.streaming_content)
    assert data.startswith(b"0008NAK\n")
    assert b"PACK" in data


def test_fetch_with_a_long_negotiation_sends_gzip_and_works(server, working_copy, alice, git_env, tmp_path):
    # Many local commits the server lacks make git send a long "have" list, which it gzips.
    for i in range(300):
        (working_copy / "n.txt").write_text(f"{i}\n")
        assert run_git("add", "n.txt", env=git_env, cwd=working_copy).returncode == 0
        assert run_git("commit", "-q", "-m", f"c{i}", env=git_env, cwd=working_copy).returncode == 0
    url = repo_url(server, user=alice, token=token_for(alice))
    other, result = clone(url, git_env, tmp_path, "other")
    assert result.returncode == 0, result.stderr
    sha = commit_file(other, git_env, "x.txt", b"x\n")
    assert run_git("push", url, "HEAD:refs/heads/x", env=git_env, cwd=other).returncode == 0
    env = git_env | {"GIT_TRACE_CURL": "1", "GIT_TRACE_CURL_NO_DATA": "1"}
    result = run_git("-c", "protocol.version=0", "fetch", url, "refs/heads/x", env=env, cwd=working_copy)
    assert result.returncode == 0, result.stderr
    assert "Content-Encoding: gzip" in result.stderr
    assert run_git("rev-parse", "FETCH_HEAD", env=git_env, cwd=working_copy).stdout.strip() == sha


def test_unsupported_content_encoding_and_missing_service_are_refused(server, private_repo, client):
    private_repo.visibility = Visibility.PUBLIC
    private_repo.save()
    response = client.post(
        "/alice/project.git/git-upload-pack",
        b"0000",
        content_type="application/x-git-upload-pack-request",
        HTTP_CONTENT_ENCODING="br",
    )
    assert response.status_code == 415
    dumb = client.get("/alice/project.git/info/refs")
    assert dumb.status_code == 403
    assert b"smart HTTP" in dumb.content
    wrong = client.get("/alice/project.git/info/refs", {"service": "git-upload-archive"})
    assert wrong.status_code == 403


def test_a_malformed_request_answers_400_with_gits_message(server, private_repo, bob, client):
    private_repo.visibility = Visibility.PUBLIC
    private_repo.save()
    fetch = client.post(
        "/alice/project.git/git-upload-pack", b"garbage", content_type="application/x-git-upload-pack-request"
    )
    assert fetch.status_code == 400
    assert fetch.content == b"fatal: protocol error: bad line length character: garb\n"
    auth = base64.b64encode(f"bob:{token_for(bob)}".encode()).decode()
    push = client.post(
        "/alice/project.git/git-receive-pack",
        b"0032nonsense",
        content_type="application/x-git-receive-pack-request",
        HTTP_AUTHORIZATION=f"Basic {auth}",
    )
    assert push.status_code == 400
    assert push.content == b"fatal: the remote end hung up unexpectedly\n"
    # The push's session ended with the refused request.
    assert not PushSession.objects.exists()


def test_anonymous_push_to_a_public_repository_asks_for_credentials(server, alice, client):
    repo_services.create_repository(actor=alice, owner=alice, name="open", visibility=Visibility.PUBLIC)
    response = client.get("/alice/open.git/info/refs", {"service": "git-receive-pack"})
    assert response.status_code == 401
    post = client.post(
        "/alice/open.git/git-receive-pack", b"0000", content_type="application/x-git-receive-pack-request"
    )
    assert post.status_code == 401
    assert not PushSession.objects.exists()


@pytest.fixture
def gunicorn_server(django_subprocess_env, tmp_path):
    """gunicorn, as `manage.py serve` runs it, on a free loopback port against this test's database.

    The git client sends a large push with chunked transfer encoding, which only a production server
    decodes (Django's development server cannot read chunked bodies)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    env = django_subprocess_env | {"PORTAL_INTERNAL_URL": url, "PORTAL_BASE_URL": url}
    log = (tmp_path / "gunicorn.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "portal.wsgi:application", "--bind", f"127.0.0.1:{port}"]
        + ["--workers", "1", "--threads", "4", "--timeout", "600"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert process.poll() is None, (tmp_path / "gunicorn.log").read_text()
                assert time.monotonic() < deadline, "gunicorn did not start"
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def test_a_100_mb_incompressible_push_arrives_intact(gunicorn_server, private_repo, alice, bob, git_env, tmp_path):
    url = repo_url(gunicorn_server, user=bob, token=token_for(bob))
    work, result = clone(url, git_env, tmp_path)
    assert result.returncode == 0, result.stderr
    data = os.urandom(100 * 1024 * 1024)
    expected = hashlib.sha256(data).hexdigest()
    commit_file(work, git_env, "big.bin", data)
    del data
    result = run_git("push", url, "HEAD:refs/heads/big", env=git_env, cwd=work)
    assert result.returncode == 0, result.stderr
    assert Push.objects.filter(ref="refs/heads/big", pusher=bob, protocol="http").exists()
    copy, result = clone(url, git_env, tmp_path, "copy", "--branch", "big")
    assert result.returncode == 0, result.stderr
    assert hashlib.sha256((copy / "big.bin").read_bytes()).hexdigest() == expected


def test_a_malformed_git_protocol_header_is_refused(server, alice, client):
    repo_services.create_repository(actor=alice, owner=alice, name="open", visibility=Visibility.PUBLIC)
    response = client.get(
        "/alice/open.git/info/refs", {"service": "git-upload-pack"}, HTTP_GIT_PROTOCOL="version=2\nGIT_DIR=/etc"
    )
    assert response.status_code == 400
    assert b"Git-Protocol" in response.content
    ok = client.get("/alice/open.git/info/refs", {"service": "git-upload-pack"}, HTTP_GIT_PROTOCOL="version=2")
    assert ok.status_code == 200
    assert b"".join(ok.streaming_content).startswith(b"000eversion 2\n")


def _wait_for(condition, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.1)
    return condition()


def test_an_abandoned_push_leaves_no_push_session(server, private_repo, bob):
    parts = urlsplit(server)
    credentials = base64.b64encode(f"bob:{token_for(bob)}".encode()).decode()
    main = git.branch_sha(private_repo.path, "main")
    command = f"{main} {'1' * 40} refs/heads/main\0report-status".encode()
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as conn:
        conn.sendall(
            b"POST /alice/project.git/git-receive-pack HTTP/1.1\r\n"
            + f"Host: {parts.netloc}\r\nAuthorization: Basic {credentials}\r\n".encode()
            + b"Content-Type: application/x-git-receive-pack-request\r\nContent-Length: 1000000\r\n\r\n"
            + f"{len(command) + 4:04x}".encode()
            + command
        )
        assert _wait_for(lambda: PushSession.objects.filter(repository=private_repo).exists())
        # The client goes away before it has sent its pack.
    assert _wait_for(lambda: not PushSession.objects.exists())
    assert not Push.objects.exists()
    assert git.branch_sha(private_repo.path, "main") == main
