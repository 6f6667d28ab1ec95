"""appspec.yml read with CodeDeploy's rules, its hook order and variables, and its files installed on real directories."""

import os
import stat
from pathlib import Path, PurePosixPath

import pytest

from releases.appspec import (
    AppspecError,
    FileExistsBehavior,
    InstallError,
    LifecycleStep,
    PlannedFile,
    Revision,
    Script,
    hook_environment,
    hook_order,
    install,
    parse_appspec,
    plan_files,
)

FULL = """\
version: 0.0
os: linux
files:
  - source: /
    destination: /srv/app
  - source: config/app.ini
    destination: /etc/app
file_exists_behavior: OVERWRITE
permissions:
  - object: /srv/app
    pattern: "*.sh"
    except: [skip.sh]
    owner: deploy
    group: www-data
    mode: 0750
    type:
      - file
  - object: /etc/app/app.ini
    mode: 640
hooks:
  ValidateService:
    - location: scripts/check.sh
  ApplicationStop:
    - location: scripts/stop.sh
      timeout: 300
      runas: deploy
  BeforeInstall:
    - location: /scripts/prepare.sh
      timeout: 1200
    - location: ./scripts/backup.sh
      timeout: 2400
  ApplicationStart:
"""


def parse_error(text: str) -> AppspecError:
    with pytest.raises(AppspecError) as caught:
        parse_appspec(text, filename="deploy/appspec.yml")
    return caught.value


def test_it_reads_every_key_into_the_model_with_codedeploys_defaults():
    spec = parse_appspec(FULL)

    assert [(mapping.source, mapping.destination) for mapping in spec.files] == [
        ("", "/srv/app"),
        ("config/app.ini", "/etc/app"),
    ]
    assert spec.file_exists_behavior is FileExistsBehavior.OVERWRITE
    scripts, config = spec.permissions
    assert (scripts.object, scripts.pattern, scripts.excepted) == ("/srv/app", "*.sh", ("skip.sh",))
    assert (scripts.owner, scripts.group, scripts.mode, scripts.types) == ("deploy", "www-data", 0o750, ("file",))
    assert (config.pattern, config.excepted, config.types, config.mode) == ("**", (), ("file", "directory"), 0o640)
    assert config.owner is None and config.acls == () and config.context is None
    assert [event for event, _ in spec.hooks] == [
        "ApplicationStop",
        "BeforeInstall",
        "ApplicationStart",
        "ValidateService",
    ]
    assert spec.scripts("ApplicationStop") == (Script("scripts/stop.sh", timeout=300, runas="deploy"),)
    assert spec.scripts("BeforeInstall") == (
        Script("scripts/prepare.sh", timeout=1200),
        Script("scripts/backup.sh", timeout=2400),
    )
    assert spec.scripts("ApplicationStart") == ()
    assert spec.scripts("ValidateService") == (Script("scripts/check.sh", timeout=3600, runas=None),)
    assert spec.scripts("AfterInstall") == ()
    assert spec.warnings == ()


def test_the_defaults_of_a_minimal_appspec():
    spec = parse_appspec("version: 0.0\nos: linux\n")

    assert spec.files == () and spec.permissions == () and spec.hooks == ()
    assert spec.file_exists_behavior is FileExistsBehavior.DISALLOW


def test_it_lists_keys_it_does_not_act_on_as_warnings_with_their_lines():
    spec = parse_appspec(
        """\
version: 0.0
os: linux
permissions:
  - object: /srv/app
    acls:
      - u:bob:rw
    context:
      name: unconfined_u
      type: httpd_sys_content_t
      range: s0
hooks:
  BeforeBlockTraffic:
    - location: scripts/drain.sh
  AfterAllowTraffic:
    - location: scripts/warm.sh
  ApplicationStart:
    - location: scripts/start.sh
      sudo: true
"""
    )

    assert [(warning.line, warning.path) for warning in spec.warnings] == [
        (5, "permissions[0].acls"),
        (7, "permissions[0].context"),
        (12, "hooks.BeforeBlockTraffic"),
        (14, "hooks.AfterAllowTraffic"),
        (18, "hooks.ApplicationStart[0].sudo"),
    ]
    assert "not applied" in spec.warnings[0].message
    assert "no load balancer" in spec.warnings[2].message
    assert spec.permissions[0].acls == ("u:bob:rw",)
    assert spec.permissions[0].context.type == "httpd_sys_content_t"
    assert [event for event, _ in spec.hooks] == ["ApplicationStart"]


def test_it_refuses_text_that_is_not_yaml_naming_the_line():
    error = parse_error("version: 0.0\nos: linux\nhooks:\n  BeforeInstall:\n\t- location: a.sh\n")

    assert (error.filename, error.line) == ("deploy/appspec.yml", 5)
    assert str(error) == "deploy/appspec.yml, line 5: not valid YAML: found character that cannot start any token"


@pytest.mark.parametrize("version", ["0.2", "1.0", "'0.0'", "zero"])
def test_it_refuses_a_version_other_than_0_0(version):
    error = parse_error(f"os: linux\nversion: {version}\n")

    assert (error.line, error.path) == (2, "version")
    assert "expected 0.0" in error.message


def test_a_quoted_version_is_refused_as_codedeploy_does_with_a_hint():
    assert "without quotes" in parse_error("version: '0.0'\nos: linux\n").message


def test_it_refuses_windows_clearly():
    error = parse_error("version: 0.0\nos: windows\n")

    assert str(error) == (
        "deploy/appspec.yml, line 2, os: windows is not supported: the portal deploys to Linux hosts only (os: linux)"
    )


@pytest.mark.parametrize(
    ("text", "path"),
    [("os: linux\n", "version"), ("version: 0.0\n", "os")],
)
def test_it_refuses_a_missing_version_or_os(text, path):
    assert parse_error(text).path == path


def test_it_refuses_a_script_timeout_above_3600_seconds():
    error = parse_error("version: 0.0\nos: linux\nhooks:\n  AfterInstall:\n    - location: a.sh\n      timeout: 3601\n")

    assert (error.line, error.path) == (6, "hooks.AfterInstall[0].timeout")
    assert "3600 at most" in error.message


def test_it_refuses_timeouts_of_one_event_adding_up_above_3600_seconds():
    error = parse_error(
        "version: 0.0\nos: linux\nhooks:\n  AfterInstall:\n"
        "    - location: a.sh\n      timeout: 1800\n    - location: b.sh\n      timeout: 1801\n"
    )

    assert (error.line, error.path) == (5, "hooks.AfterInstall")
    assert "add up to 3601 seconds" in error.message


@pytest.mark.parametrize("timeout", ["0", "-5", "1.5", "soon", "yes"])
def test_it_refuses_a_timeout_that_is_not_a_whole_number_of_seconds(timeout):
    error = parse_error(
        f"version: 0.0\nos: linux\nhooks:\n  AfterInstall:\n    - location: a.sh\n      timeout: {timeout}\n"
    )

    assert (error.line, error.path) == (6, "hooks.AfterInstall[0].timeout")


def test_it_refuses_an_unknown_hook():
    error = parse_error("version: 0.0\nos: linux\nhooks:\n  AfterStart:\n    - location: a.sh\n")

    assert (error.line, error.path) == (4, "hooks.AfterStart")
    assert "unknown lifecycle event" in error.message


@pytest.mark.parametrize("event", ["DownloadBundle", "Install", "BlockTraffic", "AllowTraffic"])
def test_it_refuses_scripts_on_the_agents_own_events(event):
    error = parse_error(f"version: 0.0\nos: linux\nhooks:\n  {event}:\n    - location: a.sh\n")

    assert (error.line, error.path) == (4, f"hooks.{event}")
    assert "reserved for the deployment agent" in error.message


@pytest.mark.parametrize(
    ("text", "line", "path"),
    [
        ("version: 0.0\nos: linux\nfiles: /srv\n", 3, "files"),
        ("version: 0.0\nos: linux\nhooks:\n  AfterInstall: scripts/a.sh\n", 4, "hooks.AfterInstall"),
        ("version: 0.0\nos: linux\npermissions:\n  - object: /srv\n    type: file\n", 5, "permissions[0].type"),
        ("version: 0.0\nos: linux\npermissions:\n  - object: /srv\n    except: a.sh\n", 5, "permissions[0].except"),
        ("version: 0.0\nos: linux\npermissions: {object: /srv}\n", 3, "permissions"),
    ],
)
def test_it_refuses_a_string_where_a_list_belongs(text, line, path):
    error = parse_error(text)

    assert (error.line, error.path) == (line, path)
    assert "expected a list" in error.message


@pytest.mark.parametrize(
    ("text", "line", "path"),
    [
        ("files:\n  - source: ../secrets\n    destination: /srv\n", 4, "files[0].source"),
        ("files:\n  - source: app/../../x\n    destination: /srv\n", 4, "files[0].source"),
        ("files:\n  - source: app\n    destination: /srv/../etc\n", 5, "files[0].destination"),
        ("files:\n  - source: app\n    destination: srv/app\n", 5, "files[0].destination"),
        ("hooks:\n  AfterInstall:\n    - location: ../../bin/sh\n", 5, "hooks.AfterInstall[0].location"),
        ("permissions:\n  - object: /srv/../etc\n", 4, "permissions[0].object"),
    ],
)
def test_it_refuses_a_path_that_escapes(text, line, path):
    error = parse_error("version: 0.0\nos: linux\n" + text)

    assert (error.line, error.path) == (line, path)


@pytest.mark.parametrize("mode", ["888", "0o644", "75555", "rw-r--r--", "6.4"])
def test_it_refuses_a_bad_mode(mode):
    error = parse_error(f"version: 0.0\nos: linux\npermissions:\n  - object: /srv/app\n    mode: {mode}\n")

    assert (error.line, error.path) == (5, "permissions[0].mode")
    assert "octal mode" in error.message


@pytest.mark.parametrize(("mode", "value"), [("644", 0o644), ("0755", 0o755), ("'2775'", 0o2775), ("7", 0o7)])
def test_a_mode_is_read_as_the_octal_digits_written(mode, value):
    spec = parse_appspec(f"version: 0.0\nos: linux\npermissions:\n  - object: /srv/app\n    mode: {mode}\n")

    assert spec.permissions[0].mode == value


@pytest.mark.parametrize(
    ("text", "line", "path"),
    [
        ("target: /srv\n", 3, "target"),
        ("files:\n  - source: a\n    destination: /srv\n    mode: 644\n", 6, "files[0].mode"),
        ("hooks:\n  AfterInstall:\n    - location: a.sh\n      user: root\n", 6, "hooks.AfterInstall[0].user"),
        ("permissions:\n  - object: /srv\n    recursive: yes\n", 5, "permissions[0].recursive"),
        ("permissions:\n  - object: /srv\n    context: {type: t, role: r}\n", 5, "permissions[0].context.role"),
    ],
)
def test_it_refuses_an_unknown_key(text, line, path):
    error = parse_error("version: 0.0\nos: linux\n" + text)

    assert (error.line, error.path) == (line, path)
    assert "unknown key" in error.message


@pytest.mark.parametrize(
    ("text", "line", "path", "message"),
    [
        ("file_exists_behavior: REPLACE\n", 3, "file_exists_behavior", "DISALLOW, OVERWRITE or RETAIN"),
        ("files:\n  - destination: /srv\n", 4, "files[0].source", "missing"),
        ("files:\n  - source: app\n", 4, "files[0].destination", "missing"),
        ("hooks:\n  AfterInstall:\n    - timeout: 30\n", 5, "hooks.AfterInstall[0].location", "missing"),
        (
            "hooks:\n  AfterInstall:\n    - location: a.sh\n      runas: 'root; rm'\n",
            6,
            "hooks.AfterInstall[0].runas",
            "user",
        ),
        ("permissions:\n  - mode: 644\n", 4, "permissions[0].object", "missing"),
        ("permissions:\n  - object: /srv\n    type: [file, link]\n", 5, "permissions[0].type[1]", "file or directory"),
        ("permissions:\n  - object: /srv\n    context: {name: u}\n", 5, "permissions[0].context.type", "missing"),
        ("Resources:\n  - TargetService: {}\n", 3, "Resources", "ECS and Lambda"),
        ("hooks:\n  AfterInstall: []\n  AfterInstall: []\n", 5, "hooks.AfterInstall", "duplicate"),
    ],
)
def test_it_refuses_a_wrong_value(text, line, path, message):
    error = parse_error("version: 0.0\nos: linux\n" + text)

    assert (error.line, error.path) == (line, path)
    assert message in error.message


def test_it_refuses_an_empty_file_and_a_list_at_the_top():
    assert "empty" in parse_error("").message
    assert parse_error("- version: 0.0\n").message == "expected a mapping of keys"


def test_hook_order_of_a_targets_first_deployment_skips_application_stop():
    assert hook_order(first_deployment=True) == [
        LifecycleStep("DownloadBundle", Revision.CURRENT, scriptable=False),
        LifecycleStep("BeforeInstall", Revision.CURRENT, scriptable=True),
        LifecycleStep("Install", Revision.CURRENT, scriptable=False),
        LifecycleStep("AfterInstall", Revision.CURRENT, scriptable=True),
        LifecycleStep("ApplicationStart", Revision.CURRENT, scriptable=True),
        LifecycleStep("ValidateService", Revision.CURRENT, scriptable=True),
    ]


def test_hook_order_of_a_later_deployment_stops_with_the_previous_revisions_scripts():
    steps = hook_order(first_deployment=False)

    assert steps[0] == LifecycleStep("ApplicationStop", Revision.PREVIOUS, scriptable=True)
    assert steps[1:] == hook_order(first_deployment=True)


def test_hook_environment_has_codedeploys_variables():
    variables = hook_environment(
        application_name="alice/shop",
        deployment_id="d-42",
        deployment_group_name="uat",
        deployment_group_id="7",
        lifecycle_event="AfterInstall",
        bundle_commit="a" * 40,
    )

    assert variables == {
        "APPLICATION_NAME": "alice/shop",
        "DEPLOYMENT_ID": "d-42",
        "DEPLOYMENT_GROUP_NAME": "uat",
        "DEPLOYMENT_GROUP_ID": "7",
        "LIFECYCLE_EVENT": "AfterInstall",
        "BUNDLE_COMMIT": "a" * 40,
    }
    with pytest.raises(ValueError):
        hook_environment(
            application_name="a",
            deployment_id="1",
            deployment_group_name="dev",
            deployment_group_id="1",
            lifecycle_event="Install",
        )


# Files on real directories.


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def bundle(tmp_path) -> Path:
    root = tmp_path / "bundle"
    write(root / "appspec.yml", "version: 0.0\n")
    write(root / "app" / "main.py", "print('v2')\n")
    write(root / "app" / "lib" / "util.py", "x = 2\n")
    (root / "app" / "empty").mkdir()
    run = write(root / "scripts" / "start.sh", "#!/bin/sh\n")
    run.chmod(0o755)
    write(root / "config" / "app.ini", "[app]\n")
    return root


@pytest.fixture
def target(tmp_path) -> Path:
    root = tmp_path / "target"
    root.mkdir()
    return root


def appspec(files: str, behavior: str = "DISALLOW", extra: str = ""):
    return parse_appspec(f"version: 0.0\nos: linux\nfile_exists_behavior: {behavior}\nfiles:\n{files}{extra}")


APP = "  - source: app\n    destination: /srv/app\n  - source: config/app.ini\n    destination: /etc/shop\n"


def tree(root: Path) -> dict[str, str]:
    found = {}
    for parent, _, files in os.walk(root):
        for name in files:
            path = Path(parent, name)
            found[path.relative_to(root).as_posix()] = path.read_text()
    return found


def test_plan_copies_directories_recursively_and_files_into_their_destination_directory(bundle):
    plan = plan_files(appspec(APP), bundle)

    assert [(entry.source.relative_to(bundle).as_posix(), str(entry.destination), entry.kind) for entry in plan] == [
        ("app", "/srv/app", "directory"),
        ("app/empty", "/srv/app/empty", "directory"),
        ("app/lib", "/srv/app/lib", "directory"),
        ("app/lib/util.py", "/srv/app/lib/util.py", "file"),
        ("app/main.py", "/srv/app/main.py", "file"),
        ("config/app.ini", "/etc/shop/app.ini", "file"),
    ]


def test_source_slash_is_the_whole_bundle(bundle):
    plan = plan_files(appspec("  - source: /\n    destination: /srv/app\n"), bundle)

    assert "/srv/app/appspec.yml" in [str(entry.destination) for entry in plan]
    assert "/srv/app/scripts/start.sh" in [str(entry.destination) for entry in plan]


def test_plan_refuses_a_source_missing_from_the_bundle_and_two_files_for_one_destination(bundle):
    with pytest.raises(InstallError, match="'web' is not in the bundle"):
        plan_files(appspec("  - source: web\n    destination: /srv\n"), bundle)
    twice = "  - source: app/main.py\n    destination: /srv\n  - source: app/main.py\n    destination: /srv\n"
    with pytest.raises(InstallError, match="two entries of files go to /srv/main.py"):
        plan_files(appspec(twice), bundle)


def test_it_installs_into_the_target_root_as_if_it_were_the_hosts_root(bundle, target):
    result = install(plan_files(appspec(APP), bundle), target, FileExistsBehavior.DISALLOW)

    assert tree(target) == {
        "srv/app/main.py": "print('v2')\n",
        "srv/app/lib/util.py": "x = 2\n",
        "etc/shop/app.ini": "[app]\n",
    }
    assert (target / "srv" / "app" / "empty").is_dir()
    assert result.installed == (
        "/srv",
        "/srv/app",
        "/srv/app/empty",
        "/srv/app/lib",
        "/srv/app/lib/util.py",
        "/srv/app/main.py",
        "/etc",
        "/etc/shop",
        "/etc/shop/app.ini",
    )


def test_a_files_mode_comes_with_it_without_setuid_bits(bundle, target):
    (bundle / "scripts" / "start.sh").chmod(0o4755)
    install(plan_files(appspec("  - source: scripts\n    destination: /opt\n"), bundle), target)

    assert stat.S_IMODE((target / "opt" / "start.sh").stat().st_mode) == 0o755


def test_disallow_fails_naming_the_first_existing_file_and_copies_nothing(bundle, target):
    write(target / "srv" / "app" / "lib" / "util.py", "x = 1\n")
    write(target / "etc" / "shop" / "app.ini", "[old]\n")

    with pytest.raises(InstallError) as caught:
        install(plan_files(appspec(APP), bundle), target, FileExistsBehavior.DISALLOW)

    assert str(caught.value) == "a file already exists at /srv/app/lib/util.py (file_exists_behavior is DISALLOW)"
    assert tree(target) == {"srv/app/lib/util.py": "x = 1\n", "etc/shop/app.ini": "[old]\n"}
    assert not (target / "srv" / "app" / "empty").exists()


def test_overwrite_replaces_existing_files(bundle, target):
    write(target / "srv" / "app" / "lib" / "util.py", "x = 1\n")
    write(target / "srv" / "app" / "local.cfg", "mine\n")

    result = install(plan_files(appspec(APP), bundle), target, FileExistsBehavior.OVERWRITE)

    assert tree(target)["srv/app/lib/util.py"] == "x = 2\n"
    assert tree(target)["srv/app/local.cfg"] == "mine\n"
    assert result.replaced == ("/srv/app/lib/util.py",)
    assert "/srv/app/lib/util.py" in result.installed
    # Directories that were already there were not made by this install, so the next one will not remove them.
    assert "/srv/app" not in result.installed and "/srv/app/lib" not in result.installed


def test_retain_keeps_the_file_on_the_target(bundle, target):
    write(target / "srv" / "app" / "lib" / "util.py", "x = 1\n")

    result = install(plan_files(appspec(APP), bundle), target, FileExistsBehavior.RETAIN)

    assert tree(target)["srv/app/lib/util.py"] == "x = 1\n"
    assert tree(target)["srv/app/main.py"] == "print('v2')\n"
    assert result.retained == ("/srv/app/lib/util.py",)
    # A retained file is not this install's: the next one leaves it alone too.
    assert "/srv/app/lib/util.py" not in result.installed


def test_a_redeployment_removes_what_the_previous_one_installed_before_copying(bundle, target, tmp_path):
    first = install(plan_files(appspec(APP), bundle), target, FileExistsBehavior.DISALLOW)
    write(target / "srv" / "app" / "lib" / "cache.db", "kept\n")
    (bundle / "app" / "main.py").unlink()
    write(bundle / "app" / "server.py", "print('v3')\n")

    second = install(plan_files(appspec(APP), bundle), target, FileExistsBehavior.DISALLOW, previous=first.installed)

    # Under DISALLOW the previous revision's own files are no conflict: they were removed first. A file it did not
    # install stays, and so does the directory holding it.
    assert tree(target) == {
        "srv/app/server.py": "print('v3')\n",
        "srv/app/lib/util.py": "x = 2\n",
        "srv/app/lib/cache.db": "kept\n",
        "etc/shop/app.ini": "[app]\n",
    }
    assert "/srv/app/server.py" in second.installed
    assert "/srv/app/lib" not in second.installed


def test_a_link_in_the_bundle_pointing_outside_is_copied_as_a_link_and_never_followed(bundle, target, tmp_path):
    secret = write(tmp_path / "secret.txt", "password\n")
    os.symlink(secret, bundle / "app" / "leak.txt")
    os.symlink(tmp_path, bundle / "app" / "outside")

    plan = plan_files(appspec(APP), bundle)
    install(plan, target)

    assert [str(entry.destination) for entry in plan if entry.kind == "link"] == [
        "/srv/app/leak.txt",
        "/srv/app/outside",
    ]
    leak = target / "srv" / "app" / "leak.txt"
    assert leak.is_symlink() and os.readlink(leak) == str(secret)
    assert "password\n" not in [
        Path(parent, name).read_text()
        for parent, _, files in os.walk(target)
        for name in files
        if not Path(parent, name).is_symlink()
    ]
    assert (target / "srv" / "app" / "outside").is_symlink()


def test_a_source_through_a_link_in_the_bundle_is_refused(bundle, tmp_path):
    write(tmp_path / "etc" / "passwd", "root:x:0:0\n")
    os.symlink(tmp_path / "etc", bundle / "conf")

    with pytest.raises(InstallError, match="goes through conf, a link"):
        plan_files(appspec("  - source: conf/passwd\n    destination: /srv\n"), bundle)


def test_a_destination_through_a_link_on_the_target_is_refused(bundle, target, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, target / "srv")

    with pytest.raises(InstallError, match="/srv is a link on the target"):
        install(plan_files(appspec(APP), bundle), target)

    assert list(outside.iterdir()) == []
    assert not (target / "etc").exists()


def test_a_destination_outside_the_root_is_refused(bundle, target, tmp_path):
    plan = [PlannedFile(bundle / "app" / "main.py", PurePosixPath("/../escaped/main.py"), "file")]

    with pytest.raises(InstallError, match="not an absolute path inside the target"):
        install(plan, target)

    assert not (tmp_path / "escaped").exists()


def test_a_file_where_a_directory_goes_is_refused_whatever_the_behavior(bundle, target):
    write(target / "srv" / "app", "a file\n")

    with pytest.raises(InstallError, match="/srv/app is a file on the target"):
        install(plan_files(appspec(APP), bundle), target, FileExistsBehavior.OVERWRITE)


def test_permissions_apply_to_what_the_install_creates(bundle, target):
    extra = (
        "permissions:\n"
        "  - object: /srv/app\n    pattern: '*.py'\n    except: [util.py]\n    mode: 600\n    type: [file]\n"
        "  - object: /srv/app\n    pattern: lib\n    mode: 0700\n    type: [directory]\n"
        "  - object: /etc/shop/app.ini\n    mode: 0640\n"
    )
    spec = appspec(APP, extra=extra)

    install(plan_files(spec, bundle), target, permissions=spec.permissions)

    def mode(path: str) -> int:
        return stat.S_IMODE((target / path).stat().st_mode)

    assert mode("srv/app/main.py") == 0o600
    assert mode("srv/app/lib/util.py") == 0o644
    assert mode("srv/app/lib") == 0o700
    assert mode("etc/shop/app.ini") == 0o640


def test_permissions_refuse_an_unknown_owner_before_copying(bundle, target):
    spec = appspec(APP, extra="permissions:\n  - object: /srv/app\n    owner: no-such-user-here\n")

    with pytest.raises(InstallError, match="no such user"):
        install(plan_files(spec, bundle), target, permissions=spec.permissions)

    assert list(target.iterdir()) == []


def test_a_file_cannot_replace_a_directory_someone_filled_since_the_last_install(bundle, target):
    first = install(plan_files(appspec(APP), bundle), target)
    write(target / "srv" / "app" / "lib" / "cache.db", "kept\n")
    (bundle / "app" / "lib" / "util.py").unlink()
    (bundle / "app" / "lib").rmdir()
    write(bundle / "app" / "lib", "now a file\n")

    with pytest.raises(InstallError, match="/srv/app/lib: File exists"):
        install(plan_files(appspec(APP), bundle), target, previous=first.installed)

    assert (target / "srv" / "app" / "lib" / "cache.db").read_text() == "kept\n"
