"""The local deployment target with real artifacts (zips) and real sandboxed hooks (bubblewrap)."""

import dataclasses
import hashlib
import os
import socket
import stat
import zipfile
from pathlib import Path

import pytest

from releases.local_target import EventStatus, LocalTarget, LocalTargetError
from releases.tests.conftest import SMALL_LIMITS

EVENTS = ("BeforeInstall", "AfterInstall", "ApplicationStart", "ValidateService")
ECHO = '#!/bin/sh\necho "$LIFECYCLE_EVENT of $DEPLOYMENT_ID in $DEPLOYMENT_GROUP_NAME: {text}"\n'


def appspec(*, behavior="DISALLOW", hooks=("ApplicationStop", *EVENTS), extra=""):
    lines = ["version: 0.0", "os: linux", "files:", "  - source: app", "    destination: /srv/app"]
    lines.append(f"file_exists_behavior: {behavior}")
    lines.append("hooks:")
    for event in hooks:
        lines += [f"  {event}:", f"    - location: scripts/{event}.sh"]
    return "\n".join(lines) + "\n" + extra


def make_artifact(path: Path, files: dict, links: dict | None = None) -> tuple[Path, str]:
    """A zip as a build makes one (releases/artifacts.py): regular files with their mode, links as links."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            info = zipfile.ZipInfo(name)
            executable = name.endswith(".sh")
            info.external_attr = (stat.S_IFREG | (0o755 if executable else 0o644)) << 16
            archive.writestr(info, content)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, target)
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def release(tmp_path, name, *, version, scripts=None, behavior="DISALLOW", app=None, spec=None):
    """An artifact whose every hook says which version it is from, unless scripts says otherwise."""
    files = {"appspec.yml": spec or appspec(behavior=behavior)}
    for event in ("ApplicationStop", *EVENTS):
        files[f"scripts/{event}.sh"] = ECHO.format(text=version)
    files.update(scripts or {})
    for relative, content in (app or {"app/version.txt": version}).items():
        files[relative] = content
    return make_artifact(tmp_path / f"{name}.zip", files)


@pytest.fixture
def deploy(host_uid):
    """Deploy an artifact to a target; returns the result and the (event, line) pairs it printed."""

    def run(target, deployment_id, artifact, **options):
        path, digest = artifact
        lines = []
        result = target.deploy(
            deployment_id,
            path,
            options.pop("sha256", digest),
            on_line=lambda event, line: lines.append((event, line)),
            application_name="shop",
            host_uid=host_uid,
            limits=options.pop("limits", SMALL_LIMITS),
            **options,
        )
        return result, lines

    return run


def said(lines, event=None):
    return [line for name, line in lines if event is None or name == event]


def test_a_first_deployment_skips_application_stop_and_goes_live(targets_root, tmp_path, deploy):
    target = LocalTarget(7, "dev", "web-1")
    check = '#!/bin/sh\ncat "$PORTAL_TARGET_ROOT/srv/app/version.txt"; echo; echo "in $(pwd)"\n'

    result, lines = deploy(target, 1, release(tmp_path, "v1", version="v1", scripts={"scripts/AfterInstall.sh": check}))

    assert result.succeeded, result.message
    assert [event.event for event in result.events] == [
        "DownloadBundle",
        "BeforeInstall",
        "Install",
        "AfterInstall",
        "ApplicationStart",
        "ValidateService",
    ]
    assert all(event.status == EventStatus.SUCCEEDED for event in result.events)
    assert "BeforeInstall of 1 in dev: v1" in said(lines, "BeforeInstall")
    assert said(lines, "AfterInstall")[-2:] == ["v1", "in /deployment/bundle"]
    assert target.current_revision() == "1"
    base = targets_root / "7" / "dev" / "web-1"
    assert os.readlink(base / "current") == "revisions/1"
    assert (base / "revisions/1/root/srv/app/version.txt").read_text() == "v1"
    assert (base / "revisions/1/bundle/appspec.yml").is_file()


def test_a_second_deployment_stops_with_the_previous_revisions_scripts(targets_root, tmp_path, deploy):
    target = LocalTarget(7, "dev", "web-1")
    deploy(target, 1, release(tmp_path, "v1", version="v1"))

    result, lines = deploy(target, 2, release(tmp_path, "v2", version="v2"))

    assert result.succeeded, result.message
    assert result.events[0].event == "ApplicationStop"
    assert said(lines, "ApplicationStop")[-1] == "ApplicationStop of 2 in dev: v1"
    assert "ValidateService of 2 in dev: v2" in said(lines, "ValidateService")
    assert target.current_revision() == "2"
    assert (target.base / "current/root/srv/app/version.txt").read_text() == "v2"
    # The earlier revision stays as it was until it is removed; the live one cannot be.
    assert (target.revision(1) / "root/srv/app/version.txt").read_text() == "v1"
    target.remove_revision(1)
    assert not target.revision(1).exists()
    with pytest.raises(LocalTargetError, match="live"):
        target.remove_revision(2)


def test_each_target_runs_the_hooks_in_codedeploys_order(targets_root, tmp_path, deploy):
    artifact = release(tmp_path, "v1", version="v1")
    second = release(tmp_path, "v2", version="v2")
    for name in ("web-1", "web-2"):
        target = LocalTarget(7, "uat", name)
        deploy(target, 1, artifact)

        result, lines = deploy(target, 2, second)

        order = [line.split(" of ")[0] for line in said(lines) if " of 2 in uat" in line]
        assert order == ["ApplicationStop", "BeforeInstall", "AfterInstall", "ApplicationStart", "ValidateService"]
        assert [event.event for event in result.events][:3] == ["ApplicationStop", "DownloadBundle", "BeforeInstall"]


@pytest.mark.parametrize("behavior", ["DISALLOW", "OVERWRITE", "RETAIN"])
def test_file_exists_behavior_meets_a_file_left_by_the_last_deployment(targets_root, tmp_path, deploy, behavior):
    target = LocalTarget(7, "dev", "web-1")
    # The first deployment's hook leaves a file the install did not make, where the second installs one.
    leave = '#!/bin/sh\necho "from a hook" > "$PORTAL_TARGET_ROOT/srv/app/notes.txt"\n'
    first = release(tmp_path, "v1", version="v1", scripts={"scripts/AfterInstall.sh": leave})
    second = release(
        tmp_path, "v2", version="v2", behavior=behavior, app={"app/version.txt": "v2", "app/notes.txt": "v2 notes"}
    )
    deploy(target, 1, first)

    result, _ = deploy(target, 2, second)

    root = target.revision(2) / "root/srv/app"
    if behavior == "DISALLOW":
        assert not result.succeeded
        assert result.event("Install").status == EventStatus.FAILED
        assert "/srv/app/notes.txt" in result.message and "DISALLOW" in result.message
        assert target.current_revision() == "1"
        return
    assert result.succeeded, result.message
    # What the first install made is replaced whatever the behavior: it was the deployment's own file.
    assert (root / "version.txt").read_text() == "v2"
    assert (root / "notes.txt").read_text() == ("v2 notes" if behavior == "OVERWRITE" else "from a hook\n")
    # The live revision's files were not touched by the new one's install.
    assert (target.revision(1) / "root/srv/app/notes.txt").read_text() == "from a hook\n"


def test_a_hook_past_its_timeout_is_killed_and_reported_as_timed_out(targets_root, tmp_path, deploy):
    target = LocalTarget(7, "dev", "web-1")
    extra = "  ApplicationStart:\n    - location: scripts/slow.sh\n      timeout: 1\n"
    spec = appspec(hooks=("BeforeInstall", "AfterInstall", "ValidateService"), extra=extra)
    slow = "#!/bin/sh\necho started\nsleep 60\necho never\n"

    result, lines = deploy(
        target, 1, release(tmp_path, "v1", version="v1", spec=spec, scripts={"scripts/slow.sh": slow})
    )

    event = result.event("ApplicationStart")
    assert event.status == EventStatus.TIMED_OUT
    assert event.duration_seconds < 10
    assert "did not finish within 1 seconds" in result.message
    assert said(lines, "ApplicationStart")[1:] == ["started", "[portal] ApplicationStart TIMED_OUT: " + event.message]
    assert result.event("ValidateService") is None
    assert target.current_revision() is None


def test_a_failing_hook_fails_the_target_and_leaves_current_on_the_old_revision(targets_root, tmp_path, deploy):
    target = LocalTarget(7, "dev", "web-1")
    deploy(target, 1, release(tmp_path, "v1", version="v1"))
    failing = "#!/bin/sh\necho 'the service does not answer'\nexit 3\n"

    result, lines = deploy(
        target, 2, release(tmp_path, "v2", version="v2", scripts={"scripts/ValidateService.sh": failing})
    )

    assert not result.succeeded
    assert result.event("ValidateService").status == EventStatus.FAILED
    assert result.message == "ValidateService FAILED: scripts/ValidateService.sh: exit status 3"
    assert "the service does not answer" in said(lines, "ValidateService")
    assert target.current_revision() == "1"
    assert (target.base / "current/root/srv/app/version.txt").read_text() == "v1"


@pytest.mark.parametrize("environment, name", [("..", "web"), ("dev", ".."), ("dev/../..", "web"), ("dev", "a/b"),
                                               ("dev", "/etc"), (".", "web"), ("dev", "")])  # fmt: skip
def test_a_name_that_is_not_one_plain_directory_is_refused(targets_root, environment, name):
    with pytest.raises(LocalTargetError, match="cannot name a local target's directory"):
        LocalTarget(7, environment, name)
    assert list(targets_root.iterdir()) == []


@pytest.fixture
def listener():
    """A socket listening on the host's loopback, standing for the database, Redis or the web port."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.setblocking(False)
    yield server
    server.close()


def test_a_hook_writes_only_inside_its_own_revision(targets_root, tmp_path, deploy, settings, listener):
    other = LocalTarget(7, "dev", "other")
    deploy(other, 1, release(tmp_path, "other", version="other"))
    # Open to everyone on the host, so only the sandbox can stop the hook.
    builds_root, git_root = tmp_path / "open-builds", tmp_path / "open-git"
    for directory in (builds_root, git_root):
        directory.mkdir(mode=0o777)
        directory.chmod(0o777)
    tmp_path.chmod(0o755)
    settings.PORTAL_BUILDS_ROOT, settings.GIT_ROOT = builds_root, git_root
    other_root = other.revision(1) / "root"
    other_root.chmod(0o777)
    port = listener.getsockname()[1]
    connect = f"python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", {port}), timeout=2)'"
    attempts = [
        f"{other_root}/srv/app/version.txt",
        f"{other_root}/pwned",
        f"{other.base}/current",
        f"{builds_root}/pwned",
        f"{git_root}/pwned",
        "/deployment/bundle/appspec.yml",
        "/usr/pwned",
    ]
    script = "#!/bin/sh\n" + "".join(f"echo pwned > '{path}' 2>/dev/null && echo 'wrote {path}'\n" for path in attempts)
    script += f"{connect} 2>&1 | tail -1\necho mine > \"$PORTAL_TARGET_ROOT/mine.txt\" && echo 'wrote my root'\n"
    target = LocalTarget(7, "dev", "web-1")

    result, lines = deploy(
        target, 1, release(tmp_path, "v1", version="v1", scripts={"scripts/AfterInstall.sh": script})
    )

    assert result.succeeded, result.message
    hook = said(lines, "AfterInstall")
    assert hook[-2:] == ["ConnectionRefusedError: [Errno 111] Connection refused", "wrote my root"]
    assert not [line for line in hook if line.startswith("wrote /")]
    assert (other_root / "srv/app/version.txt").read_text() == "other"
    assert not (other_root / "pwned").exists()
    assert other.current_revision() == "1"
    assert list(builds_root.iterdir()) == [] and list(git_root.iterdir()) == []
    assert "pwned" not in (target.revision(1) / "bundle/appspec.yml").read_text()
    assert not os.path.exists("/usr/pwned")
    assert (target.revision(1) / "root/mine.txt").read_text() == "mine\n"
    with pytest.raises(BlockingIOError):
        listener.accept()


def test_a_changed_artifact_is_refused_before_anything_is_unpacked(targets_root, tmp_path, deploy):
    target = LocalTarget(7, "dev", "web-1")
    path, digest = release(tmp_path, "v1", version="v1")
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("app/planted.txt", "planted after the build")

    result, lines = deploy(target, 1, (path, digest))

    assert not result.succeeded
    assert result.event("DownloadBundle").status == EventStatus.FAILED
    assert f"not the {digest} its build recorded" in result.message
    assert not target.revisions.exists() or list(target.revisions.iterdir()) == []
    assert target.current_revision() is None
    assert said(lines) == ["[portal] DownloadBundle FAILED: " + result.event("DownloadBundle").message]


@pytest.mark.parametrize("entry", ["../escaped.txt", "app/../../escaped.txt", "/tmp/escaped.txt"])
def test_a_zip_with_an_entry_outside_the_bundle_is_refused(targets_root, tmp_path, deploy, entry):
    target = LocalTarget(7, "dev", "web-1")
    files = {"appspec.yml": appspec(hooks=()), "app/version.txt": "v1", entry: "escaped"}

    result, _ = deploy(target, 1, make_artifact(tmp_path / "bad.zip", files))

    assert not result.succeeded
    assert "refused" in result.event("DownloadBundle").message
    assert not target.revisions.exists() or list(target.revisions.iterdir()) == []
    assert not (target.revisions / "escaped.txt").exists()
    assert not (target.base / "escaped.txt").exists()


def test_links_in_the_bundle_are_kept_as_links_and_never_written_through(targets_root, tmp_path, deploy):
    target = LocalTarget(7, "dev", "web-1")
    outside = tmp_path / "outside"
    outside.mkdir()
    files = {"appspec.yml": appspec(hooks=()), "app/version.txt": "v1"}
    artifact = make_artifact(tmp_path / "links.zip", files, links={"app/passwd": "/etc/passwd"})

    result, _ = deploy(target, 1, artifact)

    assert result.succeeded, result.message
    assert os.readlink(target.revision(1) / "root/srv/app/passwd") == "/etc/passwd"
    # A link followed by an entry through it would write outside the bundle: refused.
    through = make_artifact(tmp_path / "through.zip", {**files}, links={"app/out": str(outside)})
    with zipfile.ZipFile(through[0], "a") as archive:
        archive.writestr("app/out/planted.txt", "planted")
    through = (through[0], hashlib.sha256(through[0].read_bytes()).hexdigest())

    result, _ = deploy(target, 2, through)

    assert not result.succeeded
    assert "goes through a link" in result.message
    assert list(outside.iterdir()) == []
    assert target.current_revision() == "1"


def test_runas_is_noted_and_the_hook_runs_as_the_sandboxs_user(targets_root, tmp_path, deploy):
    target = LocalTarget(7, "dev", "web-1")
    extra = "  ApplicationStart:\n    - location: scripts/whoami.sh\n      runas: www-data\n"
    spec = appspec(hooks=("BeforeInstall",), extra=extra)

    result, lines = deploy(
        target,
        1,
        release(tmp_path, "v1", version="v1", spec=spec, scripts={"scripts/whoami.sh": "#!/bin/sh\nid -un\n"}),
    )

    assert result.succeeded, result.message
    assert said(lines, "ApplicationStart") == [
        "[portal] Running scripts/whoami.sh",
        "[portal] runas www-data noted: the script runs as the sandbox's own unprivileged user",
        "build",
    ]


def test_the_health_check_runs_in_the_sandbox_over_the_live_revision(targets_root, tmp_path, deploy, host_uid):
    target = LocalTarget(7, "dev", "web-1")
    assert not target.health("true", host_uid=host_uid, limits=SMALL_LIMITS).healthy
    deploy(target, 1, release(tmp_path, "v1", version="v1"))

    healthy = target.health('cat "$PORTAL_TARGET_ROOT/srv/app/version.txt"', host_uid=host_uid, limits=SMALL_LIMITS)
    unhealthy = target.health("echo down; exit 1", host_uid=host_uid, limits=SMALL_LIMITS)

    assert (healthy.healthy, healthy.detail) == (True, "v1")
    assert (unhealthy.healthy, unhealthy.detail) == (False, "down")


def test_a_revision_is_its_hooks_alone_and_its_copy_drops_setuid_bits(targets_root, tmp_path, deploy, host_uid):
    target = LocalTarget(7, "dev", "web-1")
    tool = '#!/bin/sh\ncp /bin/true "$PORTAL_TARGET_ROOT/tool" && chmod 4755 "$PORTAL_TARGET_ROOT/tool" && echo set\n'
    result, lines = deploy(target, 1, release(tmp_path, "v1", version="v1", scripts={"scripts/AfterInstall.sh": tool}))
    assert result.succeeded, result.message
    assert "set" in said(lines, "AfterInstall")

    result, _ = deploy(target, 2, release(tmp_path, "v2", version="v2"))

    assert result.succeeded, result.message
    for revision in (target.revision(1), target.revision(2)):
        info = os.stat(revision)
        # Other users of the host cannot even enter it, whatever modes a hook left inside.
        assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (host_uid, 0o700)
    copied = os.stat(target.revision(2) / "root/tool")
    assert (copied.st_uid, stat.S_IMODE(copied.st_mode)) == (host_uid, 0o755)
    assert (target.revision(2) / "root/srv/app/version.txt").stat().st_uid == host_uid


def test_the_same_deployment_again_starts_over_from_a_fresh_revision(targets_root, tmp_path, deploy):
    target = LocalTarget(7, "dev", "web-1")
    failing = '#!/bin/sh\necho leftover > "$PORTAL_TARGET_ROOT/leftover"\nexit 1\n'
    failed, _ = deploy(target, 1, release(tmp_path, "bad", version="v1", scripts={"scripts/BeforeInstall.sh": failing}))
    assert not failed.succeeded

    result, lines = deploy(target, 1, release(tmp_path, "v1", version="v1"))

    assert result.succeeded, result.message
    assert said(lines)[0] == "[portal] Removing revision 1, left by an earlier attempt"
    assert not (target.revision(1) / "root/leftover").exists()
    with pytest.raises(LocalTargetError, match="already the live one"):
        deploy(target, 1, release(tmp_path, "v1", version="v1"))


def test_a_second_deployment_to_a_busy_target_is_refused(targets_root, tmp_path, deploy):
    target = LocalTarget(7, "dev", "web-1")

    with target._lock():
        with pytest.raises(LocalTargetError, match="Another deployment is running"):
            deploy(target, 1, release(tmp_path, "v1", version="v1"))

    assert deploy(target, 1, release(tmp_path, "v1", version="v1"))[0].succeeded


def test_a_bad_appspec_names_its_line_and_key_and_deploys_nothing(targets_root, tmp_path, deploy):
    target = LocalTarget(7, "dev", "web-1")
    spec = appspec(hooks=("BeforeInstall",), extra="  Install:\n    - location: scripts/BeforeInstall.sh\n")

    result, _ = deploy(target, 1, release(tmp_path, "v1", version="v1", spec=spec))

    assert not result.succeeded
    assert result.event("DownloadBundle").status == EventStatus.FAILED
    assert "appspec.yml" in result.message and "line 10" in result.message and "hooks.Install" in result.message
    assert [event.event for event in result.events] == ["DownloadBundle"]
    assert target.current_revision() is None


@pytest.mark.parametrize("ignore", [False, True])
def test_a_failing_application_stop_fails_unless_its_failures_are_ignored(targets_root, tmp_path, deploy, ignore):
    target = LocalTarget(7, "dev", "web-1")
    broken_stop = {"scripts/ApplicationStop.sh": "#!/bin/sh\necho cannot stop\nexit 1\n"}
    deploy(target, 1, release(tmp_path, "v1", version="v1", scripts=broken_stop))

    result, _ = deploy(target, 2, release(tmp_path, "v2", version="v2"), ignore_application_stop_failures=ignore)

    assert result.event("ApplicationStop").status == EventStatus.FAILED
    assert result.succeeded is ignore
    assert target.current_revision() == ("2" if ignore else "1")


def test_a_hook_printing_past_the_log_limit_is_stopped(targets_root, tmp_path, deploy):
    target = LocalTarget(7, "dev", "web-1")
    noisy = {"scripts/BeforeInstall.sh": "#!/bin/sh\nyes 'a long line of output' | head -c 1000000\n"}
    limits = dataclasses.replace(SMALL_LIMITS, log_bytes=64 * 1024)

    result, lines = deploy(target, 1, release(tmp_path, "v1", version="v1", scripts=noisy), limits=limits)

    assert result.event("BeforeInstall").status == EventStatus.FAILED
    assert "printed more than 65536 bytes" in result.message
    assert sum(len(line) + 1 for line in said(lines, "BeforeInstall")) < 70 * 1024
