"""The ssh target's deployments against a real OpenSSH sshd on loopback (releases/tests/conftest.py), logged in as
the user running the tests, whose HOME sshd sets to a directory of the test's own; appspec destinations are under a
temporary directory."""

import hashlib
import os
import pwd
import shutil
import tempfile
import time
import zipfile
from pathlib import Path

import pytest

from releases.local_target import EventStatus, LocalTargetError
from releases.ssh_deploy import SshDeployTarget
from releases.ssh_target import fingerprint, scan_host_key
from releases.tests.conftest import free_port

SCRIPTABLE = ("BeforeInstall", "AfterInstall", "ApplicationStart", "ValidateService")
ALL_EVENTS = ["DownloadBundle", "BeforeInstall", "Install", "AfterInstall", "ApplicationStart", "ValidateService"]


@pytest.fixture
def home():
    """The deploy user's home on the host: other users may traverse it, as a runas user must reach the bundle."""
    path = Path(tempfile.mkdtemp(prefix="portal-ssh-home-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


@pytest.fixture
def sshd_environment(home):
    return {"HOME": str(home)}


@pytest.fixture
def host_key(sshd):
    return scan_host_key("127.0.0.1", sshd.port)


@pytest.fixture
def target(sshd, deploy_key, host_key):
    return SshDeployTarget(
        host="127.0.0.1",
        port=sshd.port,
        user=sshd.user,
        private_key=deploy_key,
        host_key=host_key,
        repository_id=7,
        environment="production",
        name="web-1",
    )


@pytest.fixture
def base(home) -> Path:
    return home / ".portal" / "targets" / "7" / "production" / "web-1"


@pytest.fixture
def hook_log(tmp_path) -> Path:
    return tmp_path / "hooks.log"


@pytest.fixture
def destination(tmp_path) -> Path:
    return tmp_path / "srv" / "shop"


def hook_script(log: Path) -> str:
    return (
        "#!/bin/sh\n"
        f'echo "$LIFECYCLE_EVENT $DEPLOYMENT_ID app=$APPLICATION_NAME group=$DEPLOYMENT_GROUP_NAME/'
        f'$DEPLOYMENT_GROUP_ID commit=$BUNDLE_COMMIT secret=$SECRET version=$(cat VERSION) pwd=$(pwd)" >> {log}\n'
        'echo "hook $LIFECYCLE_EVENT says hi"\n'
    )


def make_artifact(
    directory: Path, name: str, version: str, destination: Path, log: Path, *, app=None, hooks=None, appspec=None
) -> tuple[Path, str]:
    """An artifact like a build's: appspec.yml, hook scripts, VERSION and the app's files; with its sha256."""
    if hooks is None:
        hooks = {event: "scripts/hook.sh" for event in SCRIPTABLE}
        hooks["ApplicationStop"] = "scripts/stop.sh"
    hook_lines = "".join(f"  {event}:\n    - location: {location}\n" for event, location in hooks.items())
    if appspec is None:
        appspec = (
            f"version: 0.0\nos: linux\nfiles:\n  - source: app\n    destination: {destination}\nhooks:\n{hook_lines}"
        )
    entries = {
        "appspec.yml": (appspec, 0o644),
        "VERSION": (version + "\n", 0o644),
        "scripts/hook.sh": (hook_script(log), 0o755),
        # Not executable in the zip: the target makes it so, as CodeDeploy's agent does.
        "scripts/stop.sh": (
            f'#!/bin/sh\necho "ApplicationStop of $(cat VERSION) in {version} $DEPLOYMENT_ID" >> {log}\n',
            0o644,
        ),
        "scripts/fail.sh": ("#!/bin/sh\necho failing on purpose\nexit 3\n", 0o755),
        "scripts/slow.sh": ("#!/bin/sh\necho sleeping\nsleep 60\n", 0o755),
        "scripts/whoami.sh": ('#!/bin/sh\necho "running as $(id -un) for deployment $DEPLOYMENT_ID"\n', 0o755),
    }
    for path, content in (app or {"index.html": f"<p>{version}</p>\n"}).items():
        entries[f"app/{path}"] = (content, 0o644)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for entry, (content, mode) in entries.items():
            info = zipfile.ZipInfo(entry)
            info.external_attr = (0o100000 | mode) << 16
            archive.writestr(info, content)
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def deploy(target, deployment_id, artifact, **options):
    lines: list[tuple[str, str]] = []
    path, sha256 = artifact
    result = target.deploy(
        deployment_id, path, sha256, on_line=lambda event, line: lines.append((event, line)), **options
    )
    return result, lines


def statuses(result) -> list[tuple[str, str]]:
    return [(event.event, str(event.status)) for event in result.events]


def test_deployments_run_the_hooks_in_order_install_the_files_and_switch_current(
    target, base, destination, hook_log, tmp_path
):
    first = make_artifact(
        tmp_path / "a", "first", "v1", destination, hook_log, app={"index.html": "v1\n", "old.txt": "only in v1\n"}
    )
    result, lines = deploy(
        target,
        1,
        first,
        application_name="shop",
        deployment_group_id="dg-9",
        bundle_commit="abc123",
        variables={"SECRET": "s3 cr'et $HOME"},
    )

    assert result.succeeded, result.message
    assert statuses(result) == [(event, "SUCCEEDED") for event in ALL_EVENTS]
    bundle = base / "revisions" / "1" / "bundle"
    assert hook_log.read_text().splitlines() == [
        f"{event} 1 app=shop group=production/dg-9 commit=abc123 secret=s3 cr'et $HOME version=v1 pwd={bundle}"
        for event in SCRIPTABLE
    ]
    assert ("AfterInstall", "hook AfterInstall says hi") in lines
    assert ("AfterInstall", "[portal] Running scripts/hook.sh") in lines
    assert (destination / "index.html").read_text() == "v1\n"
    assert (destination / "old.txt").read_text() == "only in v1\n"
    assert os.readlink(base / "current") == "revisions/1"
    assert target.current_revision() == "1"

    hook_log.unlink()
    second = make_artifact(tmp_path / "a", "second", "v2", destination, hook_log, app={"index.html": "v2\n"})
    result, lines = deploy(target, 2, second)

    assert result.succeeded, result.message
    assert statuses(result) == [("ApplicationStop", "SUCCEEDED")] + [(event, "SUCCEEDED") for event in ALL_EVENTS]
    logged = hook_log.read_text().splitlines()
    # ApplicationStop ran the first revision's script, in the first revision's bundle, for the second deployment.
    assert logged[0] == "ApplicationStop of v1 in v1 2"
    assert logged[1].startswith("BeforeInstall 2 app= group=production/production commit= secret= version=v2")
    assert (
        "ApplicationStop",
        "[portal] scripts/stop.sh is not executable: making it executable, as CodeDeploy's agent does",
    ) in lines
    # What the first install created was removed before the second copied its own.
    assert (destination / "index.html").read_text() == "v2\n"
    assert not (destination / "old.txt").exists()
    assert os.readlink(base / "current") == "revisions/2"
    assert sorted(os.listdir(base / "revisions")) == ["1", "2"]

    # A file the previous revision did not install is in the way: DISALLOW refuses it before anything changes.
    (destination / "extra.txt").write_text("put there by hand\n")
    third = make_artifact(
        tmp_path / "a", "third", "v3", destination, hook_log, app={"index.html": "v3\n", "extra.txt": "v3\n"}
    )
    result, _ = deploy(target, 3, third)

    assert not result.succeeded
    assert statuses(result)[-2:] == [("BeforeInstall", "SUCCEEDED"), ("Install", "FAILED")]
    assert result.message == (
        f"Install FAILED: a file already exists at {destination}/extra.txt (file_exists_behavior is DISALLOW)"
    )
    assert (destination / "extra.txt").read_text() == "put there by hand\n"
    assert (destination / "index.html").read_text() == "v2\n"
    assert target.current_revision() == "2"


def test_a_failing_hook_leaves_current_on_the_previous_revision_and_a_retry_starts_afresh(
    target, base, destination, hook_log, tmp_path
):
    assert deploy(target, 1, make_artifact(tmp_path / "a", "first", "v1", destination, hook_log))[0].succeeded
    failing = make_artifact(
        tmp_path / "a",
        "failing",
        "v2",
        destination,
        hook_log,
        hooks={"BeforeInstall": "scripts/hook.sh", "AfterInstall": "scripts/fail.sh"},
    )

    result, lines = deploy(target, 2, failing)

    assert not result.succeeded
    assert statuses(result) == [
        ("ApplicationStop", "SUCCEEDED"),
        ("DownloadBundle", "SUCCEEDED"),
        ("BeforeInstall", "SUCCEEDED"),
        ("Install", "SUCCEEDED"),
        ("AfterInstall", "FAILED"),
    ]
    assert result.message == "AfterInstall FAILED: scripts/fail.sh: exit status 3"
    assert ("AfterInstall", "failing on purpose") in lines
    assert os.readlink(base / "current") == "revisions/1"
    assert target.current_revision() == "1"

    # The same deployment id again (a retried job) starts from a fresh revision directory.
    (base / "revisions" / "2" / "left-over").write_text("from the failed attempt\n")
    fixed = make_artifact(tmp_path / "b", "fixed", "v2", destination, hook_log)
    result, lines = deploy(target, 2, fixed)

    assert result.succeeded, result.message
    assert ("DownloadBundle", "[portal] Removing revision 2, left by an earlier attempt") in lines
    assert not (base / "revisions" / "2" / "left-over").exists()
    assert target.current_revision() == "2"
    assert (destination / "index.html").read_text() == "<p>v2</p>\n"


def test_a_hook_past_its_timeout_is_timed_out(target, base, destination, hook_log, tmp_path):
    spec = "version: 0.0\nos: linux\nhooks:\n  BeforeInstall:\n    - location: scripts/slow.sh\n      timeout: 2\n"
    started = time.monotonic()

    result, lines = deploy(target, 1, make_artifact(tmp_path, "slow", "v1", destination, hook_log, appspec=spec))

    assert time.monotonic() - started < 30
    assert statuses(result) == [("DownloadBundle", "SUCCEEDED"), ("BeforeInstall", "TIMED_OUT")]
    assert result.event("BeforeInstall").status == EventStatus.TIMED_OUT
    assert result.message == "BeforeInstall TIMED_OUT: scripts/slow.sh: did not finish within 2 seconds and was killed"
    assert ("BeforeInstall", "sleeping") in lines
    assert target.current_revision() is None
    assert not (base / "current").exists()


def test_a_changed_host_key_fails_the_deployment_naming_both_fingerprints(
    sshd, target, host_key, home, destination, hook_log, tmp_path
):
    sshd.stop()
    new_host_key = sshd.new_host_keys()
    sshd.start()

    result, lines = deploy(target, 1, make_artifact(tmp_path, "first", "v1", destination, hook_log))

    assert not result.succeeded
    assert statuses(result) == [("DownloadBundle", "FAILED")]
    assert fingerprint(host_key) in result.message and fingerprint(new_host_key) in result.message
    assert "host key" in result.message
    assert lines == [("DownloadBundle", f"[portal] {result.message}")]
    # Nothing reached the host.
    assert not (home / ".portal").exists()
    assert not destination.exists() and not hook_log.exists()


def test_an_artifact_that_is_not_the_builds_is_refused_before_connecting(deploy_key, host_key, destination, tmp_path):
    # No host answers on this port: reaching for it would fail with another message.
    target = SshDeployTarget(
        host="127.0.0.1",
        port=free_port(),
        user="deploy",
        private_key=deploy_key,
        host_key=host_key,
        repository_id=7,
        environment="production",
        name="web-1",
    )
    path, sha256 = make_artifact(tmp_path, "first", "v1", destination, tmp_path / "log")

    result = target.deploy(1, path, "0" * 64)

    assert statuses(result) == [("DownloadBundle", "FAILED")]
    assert f"The artifact's sha256 is {sha256}, not the {'0' * 64} its build recorded" in result.message

    # A bad appspec is refused there too, naming its line and key.
    bad = make_artifact(
        tmp_path / "bad",
        "bad",
        "v1",
        destination,
        tmp_path / "log",
        appspec="version: 0.0\nos: linux\nhooks:\n  Install: []\n",
    )
    result = target.deploy(2, *bad)
    assert result.message == (
        "DownloadBundle FAILED: appspec.yml, line 4, hooks.Install: "
        "Install is reserved for the deployment agent and cannot run scripts"
    )

    # The good artifact gets as far as the connection, which fails as a result, not as an exception.
    result = target.deploy(3, path, sha256)
    assert statuses(result) == [("DownloadBundle", "FAILED")]
    assert "Could not connect to 127.0.0.1" in result.message


def test_a_script_with_another_runas_goes_through_sudo(target, sshd, destination, hook_log, tmp_path):
    spec = "version: 0.0\nos: linux\nhooks:\n  AfterInstall:\n    - location: scripts/whoami.sh\n      runas: nobody\n"

    result, lines = deploy(target, 1, make_artifact(tmp_path, "runas", "v1", destination, hook_log, appspec=spec))

    assert ("AfterInstall", "[portal] runas nobody: running it with sudo -n -u nobody") in lines
    if shutil.which("sudo") and os.getuid() == 0:
        assert result.succeeded, result.message
        assert ("AfterInstall", "running as nobody for deployment 1") in lines
    else:
        # No sudo on the host, or one that asks this user for a password: refused, saying why.
        assert not result.succeeded
        assert result.message.startswith(
            f"AfterInstall FAILED: scripts/whoami.sh: sudo refused to run it as nobody for {sshd.user} ("
        )
        assert "NOPASSWD:SETENV" in result.message
        assert not any(line.startswith("running as") for _, line in lines)


def test_health_checks_run_on_the_host(target, sshd, deploy_key, host_key, destination, hook_log, tmp_path):
    assert deploy(target, 1, make_artifact(tmp_path, "first", "v1", destination, hook_log))[0].succeeded

    assert target.health(f"grep -q v1 {destination}/index.html").healthy
    failing = target.health("echo not ready; exit 1")
    assert not failing.healthy and failing.detail == "not ready"
    slow = target.health("sleep 30", timeout=1)
    assert not slow.healthy and "did not finish within 1 seconds" in slow.detail

    sshd.stop()
    unreachable = target.health("true")
    assert not unreachable.healthy and f"127.0.0.1:{sshd.port}" in unreachable.detail


def test_names_that_could_leave_the_targets_directory_are_refused(deploy_key, host_key):
    options = dict(host="127.0.0.1", port=22, user="deploy", private_key=deploy_key, host_key=host_key)
    for environment, name in (("..", "web-1"), ("production", "a/b"), ("production", "")):
        with pytest.raises(LocalTargetError, match="cannot name"):
            SshDeployTarget(**options, repository_id=7, environment=environment, name=name)
    with pytest.raises(LocalTargetError, match="not a repository id"):
        SshDeployTarget(**options, repository_id=0, environment="production", name="web-1")


def test_permissions_set_modes_and_owners_on_the_host(target, destination, hook_log, tmp_path):
    spec = (
        "version: 0.0\nos: linux\nfiles:\n"
        f"  - source: app\n    destination: {destination}\n"
        "permissions:\n"
        f"  - object: {destination}\n    pattern: '*.html'\n    mode: 600\n    type: [file]\n"
        f"  - object: {destination}/conf.ini\n    owner: nobody\n"
    )
    app = {"index.html": "v1\n", "conf.ini": "[app]\n"}

    result, _ = deploy(target, 1, make_artifact(tmp_path, "perms", "v1", destination, hook_log, app=app, appspec=spec))

    if os.getuid() == 0:
        assert result.succeeded, result.message
        assert (destination / "conf.ini").stat().st_uid == pwd.getpwnam("nobody").pw_uid
    else:
        assert (
            result.message
            == f"Install FAILED: permissions: {destination}/conf.ini: not permitted to change its owner or group"
        )
    assert (destination / "index.html").stat().st_mode & 0o777 == 0o600

    elsewhere = tmp_path / "elsewhere"
    unknown = spec.replace(str(destination), str(elsewhere)).replace("owner: nobody", "owner: no-such-user-here")
    artifact = make_artifact(tmp_path / "b", "unknown", "v2", elsewhere, hook_log, app=app, appspec=unknown)
    result, _ = deploy(target, 2, artifact)
    assert result.message == (
        f"Install FAILED: permissions: {elsewhere}/conf.ini: no such user or group on the target (no-such-user-here)"
    )
    # Refused before anything was copied.
    assert not elsewhere.exists()
