"""The portal restarted while an approval waits: `manage.py serve` as `make run` starts it (SQLite, embedded Valkey,
its own web server and workers), stopped with SIGTERM while a release waits for uat's approval and started again.

Everything an approval needs lives in the database and the data directory: after the restart (a new Valkey, which
keeps nothing, and new workers) the approval is still pending with its deadline, the link emailed before the restart
still opens it, and an answer through the API sends the artifact dev received to uat."""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings

from portal.tests import test_serve
from portal.tests.test_serve import Serve, assert_everything_stopped, log_in, wait_until_ready

# serve processes that none outlives the test.
serves = test_serve.serves
RELEASE_TIMEOUT = 180
PASSWORD = "correct horse battery staple"

SETUP = f"""
from portal import services as accounts
from portal.models import User
from releases.release_template import create_from_release_template
from repos import services as repo_services
from repos.models import Role

alice = User.objects.create_user("alice", "alice@example.com", {PASSWORD!r})
bob = User.objects.create_user("bob", "bob@example.com", {PASSWORD!r})
# bob's repository: uat has no reviewers, so a writer other than the requester (bob) answers: alice.
repo = create_from_release_template(bob, bob, "shop")
repo_services.set_collaborator(repo, alice, actor=bob, role=Role.WRITE)
_token, raw = accounts.create_access_token(alice, actor=alice, name="release", scopes=["api", "read:repo", "write:repo"], expires_at=None)
print("TOKEN", raw)
"""

LINK = """
from portal.models import User
from releases import approvals
from releases.models import PipelineApproval

approval = PipelineApproval.objects.get(status="Pending")
print("LINK", approvals.link_for(approval, User.objects.get(username="alice")))
"""


def manage_shell(serve: Serve, code: str) -> dict[str, str]:
    """Run code in `manage.py shell` against serve's database and data directory; its `KEY value` lines."""
    env = {name: value for name, value in os.environ.items() if name not in ("REDIS_URL", "SECRET_KEY")}
    env |= {"DATABASE_URL": f"sqlite:///{serve.database}", "PORTAL_VAR_DIR": str(serve.var_dir)}
    done = subprocess.run(
        [sys.executable, str(settings.BASE_DIR / "manage.py"), "shell", "-c", code],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return dict(line.split(" ", 1) for line in done.stdout.splitlines() if line[:1].isupper() and " " in line)


def api(serve: Serve, token: str, method: str, path: str, body: dict | None = None) -> tuple[int, dict | list]:
    request = urllib.request.Request(
        f"{serve.base_url}/api/v1{path}",
        data=json.dumps(body).encode() if body is not None else None,
        method=method,
        headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def wait_for_execution(serve: Serve, token: str, condition, what: str) -> dict:
    deadline = time.monotonic() + RELEASE_TIMEOUT
    while time.monotonic() < deadline:
        status, found = api(serve, token, "GET", "/repos/bob/shop/pipelines/release/executions")
        assert status == 200, found
        if found and condition(found[0]):
            return found[0]
        if found and found[0]["status"] not in ("InProgress", "Succeeded"):
            pytest.fail(f"the execution ended while waiting for {what}: {found[0]}")
        if serve.process.poll() is not None:
            pytest.fail(f"serve exited while waiting for {what}:\n{serve.output}")
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for {what}: {found}\n{serve.output[-4000:]}")


def stages(execution: dict) -> dict[str, str]:
    return {stage["name"]: stage["status"] for stage in execution["stages"]}


def digests(serve: Serve, token: str) -> dict[str, str]:
    status, found = api(serve, token, "GET", "/repos/bob/shop/deployments?per_page=100")
    assert status == 200, found
    return {deployment["environment"]: deployment["artifact_digest"] for deployment in found}


@pytest.fixture
def data_root():
    """Where the portal keeps its data: like an install's, a directory the builds' and hooks' uids may traverse."""
    root = Path(tempfile.mkdtemp(prefix="portal-restart-"))
    root.chmod(0o711)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def test_an_approval_waiting_across_a_restart_is_answered_and_uat_gets_devs_bytes(serves, data_root):
    var_dir, database = data_root / "var", data_root / "portal.sqlite3"
    first = serves(var_dir, database)
    seen = wait_until_ready(first)
    token = manage_shell(first, SETUP)["TOKEN"]

    waiting = wait_for_execution(
        first, token, lambda execution: stages(execution).get("Approval") == "InProgress", "the approval"
    )
    assert stages(waiting)["Deploy-dev"] == "Succeeded"
    link = manage_shell(first, LINK)["LINK"]

    assert first.stop(signal.SIGTERM) == 0
    assert_everything_stopped(first, seen)

    again = serves(var_dir, database)
    wait_until_ready(again)
    [execution] = api(again, token, "GET", "/repos/bob/shop/pipelines/release/executions")[1]
    assert (execution["id"], execution["status"], stages(execution)["Approval"]) == (
        waiting["id"],
        "InProgress",
        "InProgress",
    )

    # The link emailed before the restart opens the approval page once alice signs in.
    status, _location, _cookies, opener = log_in(again, "alice", PASSWORD)
    assert status == 302
    try:
        response = opener.open(again.base_url + link, timeout=30)
        status, location = response.status, response.headers.get("Location", "")
    except urllib.error.HTTPError as error:
        status, location = error.code, error.headers.get("Location", "")
    assert (status, location) == (302, f"/bob/shop/pipelines/release/executions/{waiting['id']}/approval")

    status, answer = api(
        again,
        token,
        "POST",
        f"/repos/bob/shop/pipelines/release/executions/{waiting['id']}/approvals",
        {"status": "Approved", "summary": "Checked after the restart."},
    )
    assert status == 200, answer
    done = wait_for_execution(again, token, lambda execution: execution["status"] != "InProgress", "uat")
    assert done["status"] == "Succeeded", done
    assert stages(done)["Deploy-uat"] == "Succeeded"
    found = digests(again, token)
    assert found["uat"] == found["dev"] == done["artifact_digest"]
    assert again.stop(signal.SIGTERM) == 0
