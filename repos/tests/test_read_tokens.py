"""Repository read tokens over the real smart HTTP server: they fetch their one repository, for a while, and
nothing else."""

import base64
import json
import subprocess
import time

import pytest
from django.core import signing

from repos import git, read_tokens
from repos import services as repo_services
from repos.models import Visibility


def authorization(token: str) -> str:
    return "Basic " + base64.b64encode(f"{read_tokens.USERNAME}:{token}".encode()).decode()


def fetch(server: str, path: str, sha: str, dest, token: str) -> None:
    git.fetch_commit(f"{server}/{path}.git", sha, dest, username=read_tokens.USERNAME, password=token)


def push_with(token: str, server: str, path: str, git_env, tmp_path) -> subprocess.CompletedProcess:
    """A real `git push` of a new commit, the token presented as the Basic password of read_tokens.USERNAME."""
    work = tmp_path / "work"
    subprocess.run(["git", "init", "-q", "-b", "main", str(work)], env=git_env, check=True)
    subprocess.run(["git", "commit", "-q", "--allow-empty", "-m", "sneak in"], cwd=work, env=git_env, check=True)
    config = ["-c", f"http.extraHeader=Authorization: {authorization(token)}"]
    return subprocess.run(
        ["git", *config, "push", f"{server}/{path}.git", "HEAD:refs/heads/sneaky"],
        cwd=work,
        env=git_env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_read_token_fetches_its_repository(server, private_repo, tmp_path):
    sha = git.branch_sha(private_repo.path, "main")
    token = read_tokens.mint(private_repo, seconds=60)
    fetch(server, "alice/project", sha, tmp_path / "copy.git", token)
    readme = git.entry(tmp_path / "copy.git", sha, "README.md")
    assert git.read_blob(tmp_path / "copy.git", readme.sha)[0].startswith(b"# project")


def test_a_read_token_cannot_push(server, private_repo, git_env, tmp_path):
    before = git.ref_tips(private_repo.path)
    result = push_with(read_tokens.mint(private_repo, seconds=60), server, "alice/project", git_env, tmp_path)
    assert result.returncode != 0
    assert "A read token cannot push." in result.stderr
    with pytest.raises(git.RefNotFound):
        git.branch_sha(private_repo.path, "sneaky")
    assert git.ref_tips(private_repo.path) == before


def test_a_read_token_reads_no_other_repository(server, private_repo, alice, mallory, client, tmp_path):
    token = read_tokens.mint(private_repo, seconds=60)
    secret = repo_services.create_repository(actor=mallory, owner=mallory, name="secret", initialize=True)
    repo_services.create_repository(
        actor=alice, owner=alice, name="open", initialize=True, visibility=Visibility.PUBLIC
    )
    headers = {"HTTP_AUTHORIZATION": authorization(token)}
    # A private repository of someone else looks missing; a public one is refused too: the token is for one only.
    for path in ("mallory/secret", "alice/open"):
        response = client.get(f"/{path}.git/info/refs?service=git-upload-pack", **headers)
        assert response.status_code == 404, path
    with pytest.raises(git.GitError, match="not found"):
        fetch(server, "mallory/secret", git.branch_sha(secret.path, "main"), tmp_path / "secret.git", token)


def test_an_expired_read_token_is_refused(server, private_repo, client, tmp_path):
    sha = git.branch_sha(private_repo.path, "main")
    # Minted an hour ago for ten minutes: it ran out fifty minutes ago.
    token = read_tokens.mint(private_repo, seconds=600, now=time.time() - 3600)
    response = client.get(
        "/alice/project.git/info/refs?service=git-upload-pack", HTTP_AUTHORIZATION=authorization(token)
    )
    assert response.status_code == 401
    assert response.content.decode().strip() == "This read token is invalid or expired."
    with pytest.raises(git.GitError, match="Authentication failed"):
        fetch(server, "alice/project", sha, tmp_path / "copy.git", token)


def _rewritten(token: str, **changes) -> str:
    """token with its payload changed and its timestamp and signature kept."""
    body, stamp, signature = token.split(":")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))) | changes
    data = json.dumps(payload, separators=(",", ":")).encode()
    return ":".join([base64.urlsafe_b64encode(data).decode().rstrip("="), stamp, signature])


@pytest.mark.parametrize("tamper", ["other repository", "later expiry", "bad signature", "another salt"])
def test_a_tampered_read_token_is_refused(server, private_repo, alice, client, tamper, tmp_path):
    other = repo_services.create_repository(actor=alice, owner=alice, name="other", initialize=True)
    if tamper == "other repository":
        token = _rewritten(read_tokens.mint(other, seconds=600), repository=private_repo.pk)
    elif tamper == "later expiry":
        expired = read_tokens.mint(private_repo, seconds=600, now=time.time() - 3600)
        token = _rewritten(expired, expires=int(time.time()) + 3600)
    elif tamper == "bad signature":
        genuine = read_tokens.mint(private_repo, seconds=600)
        token = genuine[:-4] + ("AAAA" if not genuine.endswith("AAAA") else "BBBB")
    else:
        # Signed with the portal's key, but for another purpose.
        token = signing.dumps({"repository": private_repo.pk, "expires": int(time.time()) + 3600}, salt="other")
    assert read_tokens.repository_id(token) is None
    response = client.get(
        "/alice/project.git/info/refs?service=git-upload-pack", HTTP_AUTHORIZATION=authorization(token)
    )
    assert response.status_code == 401, tamper
    with pytest.raises(git.GitError, match="Authentication failed"):
        fetch(server, "alice/project", git.branch_sha(private_repo.path, "main"), tmp_path / "copy.git", token)
