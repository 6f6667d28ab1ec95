"""The key journey end to end, with the real git and ssh clients against the running servers:
add a key through the API, create a private repository, push over SSH, clone over HTTP with a
token, revoke the key as an admin, and see the next push refused."""

import base64
import json
import subprocess
import urllib.error
import urllib.request

from portal.models import AuditEvent, SshKey
from repos import git
from repos.models import Push, Repository


def _api(base: str, method: str, path: str, *, token: str = "", basic: tuple[str, str] | None = None, body=None):
    request = urllib.request.Request(f"{base}/api/v1{path}", method=method)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    if basic:
        request.add_header("Authorization", "Basic " + base64.b64encode(":".join(basic).encode()).decode())
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, data) as response:
            text = response.read()
            return response.status, json.loads(text) if text else None
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def _git(*args: str, env: dict, cwd=None, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], env=env, cwd=cwd, capture_output=True, text=True, check=check)


def test_a_key_added_through_the_api_pushes_until_an_admin_revokes_it(
    live_server, ssh_server, ssh_keypair, git_ssh_env, alice, admin, password, tmp_path
):
    base = live_server.url

    # alice makes a token with her password, then registers her key and a private repository.
    status, token = _api(
        base,
        "POST",
        "/users/alice/tokens",
        basic=("alice", password),
        body={"name": "laptop", "scopes": ["api", "write:user", "write:repo"]},
    )
    assert status == 201, token
    keyfile, public_key = ssh_keypair("alice")
    status, key = _api(base, "POST", "/user/keys", token=token["sha1"], body={"title": "laptop", "key": public_key})
    assert status == 201, key
    status, repo = _api(base, "POST", "/user/repos", token=token["sha1"], body={"name": "journey", "private": True})
    assert status == 201, repo
    assert repo["private"] is True

    # She pushes a branch over SSH.
    env = git_ssh_env(keyfile)
    work = tmp_path / "work"
    _git("init", "-q", "-b", "main", str(work), env=env)
    (work / "hello.txt").write_text("hello\n")
    _git("add", "hello.txt", env=env, cwd=work)
    _git("commit", "-q", "-m", "First", env=env, cwd=work)
    ssh_url = f"ssh://git@127.0.0.1:{ssh_server.port}/alice/journey.git"
    _git("push", "-q", ssh_url, "main", env=env, cwd=work)
    pushed_sha = _git("rev-parse", "HEAD", env=env, cwd=work).stdout.strip()
    journey = Repository.objects.get(owner=alice, name="journey")
    assert git.branch_sha(journey.path, "main") == pushed_sha
    assert Push.objects.filter(repository=journey, pusher=alice, protocol="ssh", new_sha=pushed_sha).exists()

    # Anyone with a token of hers clones it over HTTP.
    clone = tmp_path / "clone"
    raw_token = token["sha1"]
    http_url = base.replace("://", f"://alice:{raw_token}@") + "/alice/journey.git"
    _git("clone", "-q", http_url, str(clone), env=env)
    assert (clone / "hello.txt").read_text() == "hello\n"

    # An admin revokes the key; the very next push with it is refused and changes nothing.
    _, admin_token = _api(
        base, "POST", "/users/root/tokens", basic=("root", password), body={"name": "ops", "scopes": ["api", "admin"]}
    )
    status, _ = _api(base, "DELETE", f"/admin/users/alice/keys/{key['id']}?revoke=true", token=admin_token["sha1"])
    assert status == 204
    assert not SshKey.objects.filter(pk=key["id"]).exists()
    assert AuditEvent.objects.filter(action="key.revoke", actor=admin, subject=alice).exists()

    (work / "hello.txt").write_text("hello again\n")
    _git("commit", "-q", "-am", "Second", env=env, cwd=work)
    refused = _git("push", ssh_url, "main", env=env, cwd=work, check=False)
    assert refused.returncode != 0
    assert "Permission denied" in refused.stderr
    assert git.branch_sha(journey.path, "main") == pushed_sha
