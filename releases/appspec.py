"""appspec.yml version 0.0 (CodeDeploy, EC2/on-premises), read into a frozen model, and its `files` installed.

An appspec CodeDeploy would refuse raises `AppspecError` naming the file, the line and the key path. Keys CodeDeploy
knows but the portal does not act on (`acls`, `context`, the traffic hooks of a load balancer…) are accepted with a
warning each, so the deployment page can list them instead of ignoring them in silence.

The bundle comes from a build, so it is read as untrusted: links in it are never followed (they are copied as links,
as CodeDeploy copies them), and only regular files are read. The target is a directory standing for the host's "/";
nothing is written through a link there either, so no destination resolves outside it.
"""

import errno
import grp
import os
import pwd
import re
import shutil
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path, PurePosixPath

import yaml

from releases.specfile import FLOAT, INT, NULL, STR, SpecError, SpecReader, SpecWarning

MAX_APPSPEC_BYTES = 256 * 1024

# CodeDeploy's default timeout of a script, and the most all the scripts of one lifecycle event may take together.
DEFAULT_TIMEOUT_SECONDS = 3600
MAX_EVENT_SECONDS = 3600

# The in-place order on a host without a load balancer. DownloadBundle and Install are the agent's own steps: they
# run no scripts.
LIFECYCLE_EVENTS = (
    "ApplicationStop",
    "DownloadBundle",
    "BeforeInstall",
    "Install",
    "AfterInstall",
    "ApplicationStart",
    "ValidateService",
)
RESERVED_EVENTS = ("DownloadBundle", "Install", "BlockTraffic", "AllowTraffic")
SCRIPTABLE_EVENTS = tuple(event for event in LIFECYCLE_EVENTS if event not in RESERVED_EVENTS)
TRAFFIC_EVENTS = ("BeforeBlockTraffic", "AfterBlockTraffic", "BeforeAllowTraffic", "AfterAllowTraffic")
PERMISSION_TYPES = ("file", "directory")
# POSIX user and group names, as useradd accepts them.
ACCOUNT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?\Z")


class FileExistsBehavior(StrEnum):
    DISALLOW = "DISALLOW"
    OVERWRITE = "OVERWRITE"
    RETAIN = "RETAIN"


class Revision(StrEnum):
    """Whose appspec and scripts a lifecycle event uses."""

    PREVIOUS = "previous"
    CURRENT = "current"


class AppspecError(SpecError):
    """An appspec CodeDeploy would refuse: where (file, line, key path) and why."""


class InstallError(Exception):
    """The files of a revision cannot be installed as the appspec asks: the Install event fails with this message."""


class AppspecWarning(SpecWarning):
    """An appspec key accepted but not acted on, with the line it is on."""


@dataclass(frozen=True)
class FileMapping:
    """`source` relative to the bundle's root ("" for all of it), `destination` an absolute path on the target."""

    source: str
    destination: str


@dataclass(frozen=True)
class SelinuxContext:
    type: str
    name: str | None = None
    range: str | None = None


@dataclass(frozen=True)
class Permission:
    object: str
    pattern: str = "**"
    excepted: tuple[str, ...] = ()
    owner: str | None = None
    group: str | None = None
    mode: int | None = None
    acls: tuple[str, ...] = ()
    context: SelinuxContext | None = None
    types: tuple[str, ...] = PERMISSION_TYPES


@dataclass(frozen=True)
class Script:
    location: str
    timeout: int = DEFAULT_TIMEOUT_SECONDS
    runas: str | None = None


@dataclass(frozen=True)
class LifecycleStep:
    """One event of a target's deployment: scriptable ones run the scripts of that revision's appspec."""

    event: str
    revision: Revision
    scriptable: bool


@dataclass(frozen=True)
class Appspec:
    version: str = "0.0"
    os: str = "linux"
    files: tuple[FileMapping, ...] = ()
    file_exists_behavior: FileExistsBehavior = FileExistsBehavior.DISALLOW
    permissions: tuple[Permission, ...] = ()
    hooks: tuple[tuple[str, tuple[Script, ...]], ...] = ()
    warnings: tuple[AppspecWarning, ...] = field(default=(), compare=False)

    def scripts(self, event: str) -> tuple[Script, ...]:
        """The scripts of that event, or none: an event without scripts passes at once."""
        return dict(self.hooks).get(event, ())


def parse_appspec(text: str | bytes, *, filename: str = "appspec.yml") -> Appspec:
    """Read an appspec with CodeDeploy's rules; raise AppspecError naming file, line and key."""
    return _AppspecReader(filename).read(text)


def hook_order(first_deployment: bool) -> list[LifecycleStep]:
    """The events of one target's in-place deployment, in CodeDeploy's order, with the revision each comes from.

    ApplicationStop runs the scripts of the previous successful revision (the new one may not know how to stop the
    old), so on a target's first deployment there is nothing to stop and it is skipped.
    """
    steps = []
    for event in LIFECYCLE_EVENTS:
        if event == "ApplicationStop":
            if first_deployment:
                continue
            steps.append(LifecycleStep(event, Revision.PREVIOUS, scriptable=True))
        else:
            steps.append(LifecycleStep(event, Revision.CURRENT, scriptable=event in SCRIPTABLE_EVENTS))
    return steps


def hook_environment(
    *,
    application_name: str,
    deployment_id: str,
    deployment_group_name: str,
    deployment_group_id: str,
    lifecycle_event: str,
    bundle_commit: str | None = None,
) -> dict[str, str]:
    """The variables CodeDeploy's agent gives every hook script; BUNDLE_COMMIT as it does for a revision from git."""
    if lifecycle_event not in SCRIPTABLE_EVENTS:
        raise ValueError(f"{lifecycle_event} runs no scripts")
    variables = {
        "LIFECYCLE_EVENT": lifecycle_event,
        "DEPLOYMENT_ID": str(deployment_id),
        "APPLICATION_NAME": application_name,
        "DEPLOYMENT_GROUP_NAME": deployment_group_name,
        "DEPLOYMENT_GROUP_ID": str(deployment_group_id),
    }
    if bundle_commit:
        variables["BUNDLE_COMMIT"] = bundle_commit
    return variables


class _AppspecReader(SpecReader):
    error = AppspecError
    warning = AppspecWarning
    max_bytes = MAX_APPSPEC_BYTES
    expected = "version: 0.0 and os: linux"

    def optional_list(self, node: yaml.Node, path: str) -> list[yaml.Node]:
        """The items of a list; an empty key (null) is an empty list, as the agent reads it."""
        if isinstance(node, yaml.ScalarNode) and node.tag == NULL:
            return []
        if not isinstance(node, yaml.SequenceNode):
            self.fail(node, path, "expected a list")
        return node.value

    def bundle_path(self, node: yaml.Node, path: str) -> str:
        """A path inside the bundle: a leading '/' is the bundle's root, as the agent joins it to the archive."""
        value = self.string(node, path).strip()
        if not value:
            self.fail(node, path, "expected a path inside the bundle")
        if ".." in value.split("/"):
            self.fail(node, path, "expected a path inside the bundle ('..' is not allowed)")
        parts = [part for part in value.split("/") if part not in ("", ".")]
        return "/".join(parts)

    def absolute_path(self, node: yaml.Node, path: str) -> str:
        value = self.string(node, path).strip()
        if not value.startswith("/"):
            self.fail(node, path, f"expected an absolute path on the target (starting with '/'), not {value!r}")
        if ".." in value.split("/"):
            self.fail(node, path, "'..' is not allowed in a path on the target")
        return "/" + "/".join(part for part in value.split("/") if part not in ("", "."))

    def account(self, node: yaml.Node, path: str) -> str:
        value = self.string(node, path).strip()
        if not ACCOUNT_NAME.match(value):
            self.fail(node, path, f"expected a user or group name, not {value!r}")
        return value

    # The file.

    def read(self, text: str | bytes) -> Appspec:
        root = self.compose(text)
        top = self.mapping(root, "")
        if "Resources" in top:
            self.fail(top["Resources"][0], "Resources", "Resources is for ECS and Lambda deployments, not for hosts")
        allowed = ("version", "os", "files", "file_exists_behavior", "permissions", "hooks")
        for key, (key_node, _) in top.items():
            if key not in allowed:
                self.fail(key_node, key, f"unknown key (expected one of {', '.join(allowed)})")
        if "version" not in top:
            self.fail(root, "version", "missing (expected version: 0.0)")
        self.version(top["version"][1])
        if "os" not in top:
            self.fail(root, "os", "missing (expected os: linux)")
        self.operating_system(top["os"][1])
        spec: dict = {}
        if "files" in top:
            spec["files"] = self.files(top["files"][1])
        if "file_exists_behavior" in top:
            node = top["file_exists_behavior"][1]
            value = self.string(node, "file_exists_behavior")
            if value not in FileExistsBehavior.__members__:
                self.fail(node, "file_exists_behavior", f"expected DISALLOW, OVERWRITE or RETAIN, not {value!r}")
            spec["file_exists_behavior"] = FileExistsBehavior(value)
        if "permissions" in top:
            spec["permissions"] = self.permissions(top["permissions"][1])
        if "hooks" in top:
            spec["hooks"] = self.hooks(top["hooks"][1])
        return Appspec(warnings=tuple(self.warnings), **spec)

    def version(self, node: yaml.Node) -> None:
        # The agent compares the value YAML gives with the number 0.0, so a quoted "0.0" is refused as it is there.
        value = self.string(node, "version")
        number = None
        if node.tag in (INT, FLOAT):
            try:
                number = float(value)
            except ValueError:
                number = None
        if number != 0.0:
            hint = " (write it as a number, without quotes)" if node.tag == STR and value.strip() == "0.0" else ""
            self.fail(node, "version", f"unsupported version {value!r}: expected 0.0{hint}")

    def operating_system(self, node: yaml.Node) -> None:
        value = self.string(node, "os")
        if value == "windows":
            self.fail(node, "os", "windows is not supported: the portal deploys to Linux hosts only (os: linux)")
        if value != "linux":
            self.fail(node, "os", f"expected linux, not {value!r}")

    def files(self, node: yaml.Node) -> tuple[FileMapping, ...]:
        mappings = []
        for index, item in enumerate(self.optional_list(node, "files")):
            path = f"files[{index}]"
            entries = self.mapping(item, path, ("source", "destination"))
            for key in ("source", "destination"):
                if key not in entries:
                    self.fail(item, f"{path}.{key}", f"missing: each entry of files needs a {key}")
            source = self.bundle_path(entries["source"][1], f"{path}.source")
            destination = self.absolute_path(entries["destination"][1], f"{path}.destination")
            mappings.append(FileMapping(source=source, destination=destination))
        return tuple(mappings)

    def permissions(self, node: yaml.Node) -> tuple[Permission, ...]:
        permissions = []
        allowed = ("object", "pattern", "except", "owner", "group", "mode", "acls", "context", "type")
        for index, item in enumerate(self.optional_list(node, "permissions")):
            path = f"permissions[{index}]"
            entries = self.mapping(item, path, allowed)
            if "object" not in entries:
                self.fail(item, f"{path}.object", "missing: a permission needs an object")
            spec: dict = {"object": self.absolute_path(entries["object"][1], f"{path}.object")}
            if "pattern" in entries:
                spec["pattern"] = self.string(entries["pattern"][1], f"{path}.pattern")
            if "except" in entries:
                spec["excepted"] = self.strings(entries["except"][1], f"{path}.except")
            for key in ("owner", "group"):
                if key in entries:
                    spec[key] = self.account(entries[key][1], f"{path}.{key}")
            if "mode" in entries:
                spec["mode"] = self.mode(entries["mode"][1], f"{path}.mode")
            if "type" in entries:
                types = self.strings(entries["type"][1], f"{path}.type")
                for position, value in enumerate(types):
                    if value not in PERMISSION_TYPES:
                        where = entries["type"][1].value[position]
                        self.fail(where, f"{path}.type[{position}]", f"expected file or directory, not {value!r}")
                spec["types"] = types
            if "acls" in entries:
                spec["acls"] = self.strings(entries["acls"][1], f"{path}.acls")
                self.warn(entries["acls"][0], f"{path}.acls", "not applied: the portal sets no ACLs")
            if "context" in entries:
                spec["context"] = self.context(entries["context"][1], f"{path}.context")
                self.warn(entries["context"][0], f"{path}.context", "not applied: the portal sets no SELinux context")
            permissions.append(Permission(**spec))
        return tuple(permissions)

    def mode(self, node: yaml.Node, path: str) -> int:
        """An octal mode of one to four digits, as written: `644`, `0755`, '2775'."""
        value = self.string(node, path).strip()
        if not re.fullmatch(r"[0-7]{1,4}", value):
            self.fail(node, path, f"expected an octal mode of one to four digits 0-7 (like 644 or 0755), not {value!r}")
        return int(value, 8)

    def context(self, node: yaml.Node, path: str) -> SelinuxContext:
        entries = self.mapping(node, path, ("name", "type", "range"))
        if "type" not in entries:
            self.fail(node, f"{path}.type", "missing: a context needs a type")
        spec = {key: self.string(value_node, f"{path}.{key}") for key, (_, value_node) in entries.items()}
        return SelinuxContext(**spec)

    def hooks(self, node: yaml.Node) -> tuple[tuple[str, tuple[Script, ...]], ...]:
        if isinstance(node, yaml.ScalarNode) and node.tag == NULL:
            return ()
        hooks = []
        for event, (key_node, value_node) in self.mapping(node, "hooks").items():
            path = f"hooks.{event}"
            if event in RESERVED_EVENTS:
                self.fail(key_node, path, f"{event} is reserved for the deployment agent and cannot run scripts")
            if event not in SCRIPTABLE_EVENTS and event not in TRAFFIC_EVENTS:
                expected = ", ".join(SCRIPTABLE_EVENTS)
                self.fail(key_node, path, f"unknown lifecycle event (expected one of {expected})")
            scripts = tuple(
                self.script(item, f"{path}[{index}]") for index, item in enumerate(self.optional_list(value_node, path))
            )
            if event in TRAFFIC_EVENTS:
                self.warn(key_node, path, "not run: there is no load balancer, so the traffic events do not happen")
                continue
            total = sum(script.timeout for script, explicit in scripts if explicit)
            if total > MAX_EVENT_SECONDS:
                self.fail(
                    value_node,
                    path,
                    f"the timeouts add up to {total} seconds: one event's scripts may take {MAX_EVENT_SECONDS} at most",
                )
            hooks.append((event, tuple(script for script, _ in scripts)))
        return tuple(sorted(hooks, key=lambda hook: SCRIPTABLE_EVENTS.index(hook[0])))

    def script(self, node: yaml.Node, path: str) -> tuple[Script, bool]:
        """The script, and whether its timeout was written (a default one does not count against the event's)."""
        entries = self.mapping(node, path, ("location", "timeout", "runas", "sudo"))
        if "location" not in entries:
            self.fail(node, f"{path}.location", "missing: a script needs a location")
        spec: dict = {"location": self.bundle_path(entries["location"][1], f"{path}.location")}
        if "timeout" in entries:
            timeout_node = entries["timeout"][1]
            value = self.string(timeout_node, f"{path}.timeout").strip()
            if timeout_node.tag not in (INT, STR) or not value.isdigit() or int(value) <= 0:
                self.fail(timeout_node, f"{path}.timeout", f"expected a whole number of seconds, not {value!r}")
            if int(value) > MAX_EVENT_SECONDS:
                self.fail(
                    timeout_node,
                    f"{path}.timeout",
                    f"{value} seconds is more than CodeDeploy allows ({MAX_EVENT_SECONDS} at most)",
                )
            spec["timeout"] = int(value)
        if "runas" in entries:
            spec["runas"] = self.account(entries["runas"][1], f"{path}.runas")
        if "sudo" in entries:
            self.string(entries["sudo"][1], f"{path}.sudo")
            self.warn(entries["sudo"][0], f"{path}.sudo", "not applied: use runas")
        return Script(**spec), "timeout" in entries


# Installing the files.


@dataclass(frozen=True)
class PlannedFile:
    """One entry of the bundle and where it goes on the target; kind is "file", "link" or "directory"."""

    source: Path
    destination: PurePosixPath
    kind: str


@dataclass(frozen=True)
class InstallResult:
    """`installed` lists what this install created (directories and files), to be removed before the next one."""

    installed: tuple[str, ...]
    retained: tuple[str, ...] = ()
    replaced: tuple[str, ...] = ()


def plan_files(spec: Appspec, bundle_root: Path) -> list[PlannedFile]:
    """Every entry `files` copies from the unpacked bundle, in CodeDeploy's order, never following a link in it."""
    plan: list[PlannedFile] = []
    taken: dict[PurePosixPath, str] = {}

    def add(entry: PlannedFile) -> None:
        previous = taken.get(entry.destination)
        if previous is not None and (entry.kind != "directory" or previous != "directory"):
            raise InstallError(f"two entries of files go to {entry.destination}")
        taken[entry.destination] = entry.kind
        plan.append(entry)

    def copy_directory(source: Path, destination: PurePosixPath) -> None:
        add(PlannedFile(source, destination, "directory"))
        for child in sorted(os.listdir(source)):
            kind = _bundle_kind(source / child)
            if kind == "directory":
                copy_directory(source / child, destination / child)
            else:
                add(PlannedFile(source / child, destination / child, kind))

    for mapping in spec.files:
        source = bundle_entry(bundle_root, mapping.source)
        destination = PurePosixPath(mapping.destination)
        kind = _bundle_kind(source)
        if kind == "directory":
            copy_directory(source, destination)
        else:
            add(PlannedFile(source, destination / source.name, kind))
    return plan


def bundle_entry(bundle_root: Path, relative: str) -> Path:
    """bundle_root/relative, refusing a path that goes through a link (a build may plant one pointing out)."""
    path = bundle_root
    parts = PurePosixPath(relative).parts if relative else ()
    for index, part in enumerate(parts):
        path = path / part
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            raise InstallError(f"files: source {relative!r} is not in the bundle")
        last = index == len(parts) - 1
        if not last and not stat.S_ISDIR(mode):
            kind = "a link" if stat.S_ISLNK(mode) else "not a directory"
            raise InstallError(f"files: source {relative!r} goes through {'/'.join(parts[: index + 1])}, {kind}")
    return path


def _bundle_kind(path: Path) -> str:
    mode = os.lstat(path).st_mode
    if stat.S_ISLNK(mode):
        return "link"
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISREG(mode):
        return "file"
    raise InstallError(f"{path.name} in the bundle is neither a file, a directory nor a link")


class TargetFiles:
    """A host's "/" as `install` sees it: the local target's revision root, or a real host over SFTP.

    Paths are absolute paths on the target whose parent directories `install` has already checked are directories,
    not links; no operation follows a link at the path itself. A failure raises InstallError naming the path."""

    def mode(self, path: PurePosixPath) -> int | None:
        """The path's st_mode, not following a link; None when nothing is there."""
        raise NotImplementedError

    def make_directory(self, path: PurePosixPath) -> bool:
        """Make a directory (mode 0755 less the umask); False when something is already there."""
        raise NotImplementedError

    def remove_file(self, path: PurePosixPath) -> None:
        raise NotImplementedError

    def remove_directory(self, path: PurePosixPath) -> bool:
        """Remove an empty directory; False when it is not empty (someone added files to it)."""
        raise NotImplementedError

    def make_link(self, target: str, path: PurePosixPath) -> None:
        raise NotImplementedError

    def copy_file(self, source: Path, path: PurePosixPath) -> None:
        """Copy a regular file of the bundle to a new file with its mode (never setuid, setgid or sticky) and times."""
        raise NotImplementedError

    def set_mode(self, path: PurePosixPath, mode: int) -> None:
        raise NotImplementedError

    def check_accounts(self, owner: str | None, group: str | None) -> bool:
        """Whether the user and the group exist on the target."""
        raise NotImplementedError

    def set_owner(self, path: PurePosixPath, owner: str | None, group: str | None) -> None:
        """Change owner and group (either may be None), raising InstallError when not permitted."""
        raise NotImplementedError


class LocalFiles(TargetFiles):
    """A directory standing for the host's "/": an appspec destination /srv/app is root/srv/app."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def host(self, path: PurePosixPath) -> Path:
        return self.root.joinpath(*path.parts[1:])

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except OSError as error:
            where = _on_target(self.root, Path(error.filename)) if error.filename else "the target"
            raise InstallError(f"{where}: {error.strerror}")

    def mode(self, path: PurePosixPath) -> int | None:
        with self._errors():
            try:
                return os.lstat(self.host(path)).st_mode
            except FileNotFoundError:
                return None

    def make_directory(self, path: PurePosixPath) -> bool:
        with self._errors():
            try:
                os.mkdir(self.host(path))
            except FileExistsError:
                return False
            return True

    def remove_file(self, path: PurePosixPath) -> None:
        with self._errors():
            os.unlink(self.host(path))

    def remove_directory(self, path: PurePosixPath) -> bool:
        with self._errors():
            try:
                os.rmdir(self.host(path))
            except OSError as error:
                if error.errno in (errno.ENOTEMPTY, errno.EEXIST):
                    return False
                raise
            return True

    def make_link(self, target: str, path: PurePosixPath) -> None:
        with self._errors():
            os.symlink(target, self.host(path))

    def copy_file(self, source: Path, path: PurePosixPath) -> None:
        with self._errors():
            _copy_file(source, self.host(path))

    def set_mode(self, path: PurePosixPath, mode: int) -> None:
        with self._errors():
            os.chmod(self.host(path), mode)

    def check_accounts(self, owner: str | None, group: str | None) -> bool:
        try:
            if owner is not None:
                pwd.getpwnam(owner)
            if group is not None:
                grp.getgrnam(group)
        except KeyError:
            return False
        return True

    def set_owner(self, path: PurePosixPath, owner: str | None, group: str | None) -> None:
        uid = pwd.getpwnam(owner).pw_uid if owner else -1
        gid = grp.getgrnam(group).gr_gid if group else -1
        try:
            os.chown(self.host(path), uid, gid, follow_symlinks=False)
        except PermissionError:
            raise InstallError(f"permissions: {path}: not permitted to change its owner or group")


def install(
    plan: list[PlannedFile],
    target: Path | TargetFiles,
    behavior: FileExistsBehavior = FileExistsBehavior.DISALLOW,
    *,
    previous: tuple[str, ...] | list[str] = (),
    permissions: tuple[Permission, ...] = (),
) -> InstallResult:
    """Copy the plan onto a target: a directory standing for the host's "/", or a host's own files (TargetFiles),
    with CodeDeploy's file_exists_behavior.

    `previous` is what the last install of this deployment group installed. CodeDeploy removes those files before
    copying, so a redeployment never meets its own files; only files it did not install count as existing. Unlike the
    agent, which removes them first and may then fail, every check runs before anything is removed or copied, so a
    refused install leaves the target as it was. `permissions` (mode, owner, group) apply to what this install
    creates, as the agent applies them. Nothing is written through a link on the target.
    """
    if not isinstance(target, TargetFiles):
        root = Path(target)
        if not root.is_dir() or root.is_symlink():
            raise InstallError("the target's directory does not exist")
        target = LocalFiles(root)
    host = _Host(target)
    earlier = {PurePosixPath(path) for path in previous}
    retained: list[PurePosixPath] = []
    replaced: list[PurePosixPath] = []
    copied: list[PurePosixPath] = []
    made: list[PurePosixPath] = []
    checked: set[PurePosixPath] = set()
    # Check everything first: nothing is removed or copied when one entry cannot go where it should.
    for entry in plan:
        for directory in _directories(entry):
            if directory not in checked:
                _check_directory(host, directory, earlier, made)
                checked.add(directory)
        if entry.kind == "directory":
            continue
        existing = host.mode(entry.destination)
        if existing is not None and entry.destination not in earlier:
            if stat.S_ISDIR(existing):
                raise InstallError(f"{entry.destination} is a directory on the target: the file cannot replace it")
            if behavior == FileExistsBehavior.DISALLOW:
                raise InstallError(f"a file already exists at {entry.destination} (file_exists_behavior is DISALLOW)")
            if behavior == FileExistsBehavior.RETAIN:
                retained.append(entry.destination)
                continue
            replaced.append(entry.destination)
        if entry.kind == "file":
            copied.append(entry.destination)
    changes = _permission_changes(host, permissions, copied, made)
    installed = _copy_plan(host, plan, previous, set(retained), set(replaced), changes)
    return InstallResult(
        installed=tuple(installed),
        retained=tuple(str(path) for path in retained),
        replaced=tuple(str(path) for path in replaced),
    )


class _Host:
    """A target's files with each destination's parents checked first: directories, never links or files. The
    directories found or made are remembered for the rest of the install (only the install changes them)."""

    def __init__(self, files: TargetFiles):
        self.files = files
        self.directories: set[PurePosixPath] = set()

    def path(self, destination: PurePosixPath) -> PurePosixPath:
        """The destination, refused when it leaves the target or goes through a link or a file there."""
        if not destination.is_absolute() or ".." in destination.parts:
            raise InstallError(f"{destination} is not an absolute path inside the target")
        for parent in reversed(destination.parents[:-1]):
            if parent in self.directories:
                continue
            mode = self.files.mode(parent)
            if mode is None:
                break
            if stat.S_ISLNK(mode):
                raise InstallError(f"{destination} goes through a link on the target ({parent}): not followed")
            if not stat.S_ISDIR(mode):
                raise InstallError(f"{parent} is a file on the target, where {destination} needs a directory")
            self.directories.add(parent)
        return destination

    def mode(self, destination: PurePosixPath) -> int | None:
        return self.files.mode(self.path(destination))


def _copy_plan(host: _Host, plan, previous, skipped: set, overwritten: set, changes: list) -> list[str]:
    _remove_installed(host, previous)
    installed: list[str] = []
    present: set[PurePosixPath] = set()
    for entry in plan:
        for directory in _directories(entry):
            if directory not in present:
                _make_directory(host, directory, installed)
                present.add(directory)
        if entry.kind == "directory":
            continue
        if entry.destination in skipped:
            continue
        destination = host.path(entry.destination)
        if entry.destination in overwritten:
            host.files.remove_file(destination)
        if entry.kind == "link":
            host.files.make_link(os.readlink(entry.source), destination)
        else:
            host.files.copy_file(entry.source, destination)
        installed.append(str(entry.destination))
    for destination, permission in changes:
        _apply_permission(host, destination, permission)
    return installed


def _permission_changes(host: _Host, permissions, copied: list[PurePosixPath], made: list[PurePosixPath]) -> list:
    """Which permission applies to which new file or directory, by the agent's rules; each at most once.

    An object that is a file being copied takes the permission itself; any other object is a directory whose new
    entries below it match `pattern` (`**` for all of them, otherwise a glob over the names directly in it) and not
    `except`. Links are left alone: changing one would change what it points at.
    """
    files = set(copied)
    changes: dict[PurePosixPath, Permission] = {}

    def assign(destination: PurePosixPath, permission: Permission) -> None:
        if destination in changes:
            raise InstallError(f"permissions: {destination} is given permissions more than once")
        changes[destination] = permission

    for permission in permissions:
        _check_account(host, permission)
        target = PurePosixPath(permission.object)
        if target in files:
            if "file" in permission.types:
                if permission.pattern != "**" or permission.excepted:
                    raise InstallError(f"permissions: {target} is a file, so it takes no pattern or except")
                assign(target, permission)
            continue
        candidates = (copied if "file" in permission.types else []) + (made if "directory" in permission.types else [])
        for destination in candidates:
            if target not in destination.parents:
                continue
            relative = destination.relative_to(target).as_posix()
            if permission.pattern != "**" and not _simple_glob(permission.pattern, relative):
                continue
            if any(_simple_glob(pattern, relative) for pattern in permission.excepted):
                continue
            assign(destination, permission)
    return list(changes.items())


def _simple_glob(pattern: str, name: str) -> bool:
    """The agent's globs: `*` is the only wildcard, and none reaches below the object's own entries."""
    if "/" in name:
        return False
    return re.fullmatch(".*".join(re.escape(part) for part in pattern.split("*")), name) is not None


def _check_account(host: _Host, permission: Permission) -> None:
    if permission.owner is None and permission.group is None:
        return
    if not host.files.check_accounts(permission.owner, permission.group):
        name = permission.owner if permission.group is None else f"{permission.owner or ''}:{permission.group}"
        raise InstallError(f"permissions: {permission.object}: no such user or group on the target ({name})")


def _apply_permission(host: _Host, destination: PurePosixPath, permission: Permission) -> None:
    path = host.path(destination)
    if permission.mode is not None:
        host.files.set_mode(path, permission.mode)
    if permission.owner is not None or permission.group is not None:
        host.files.set_owner(path, permission.owner, permission.group)


def _directories(entry: PlannedFile) -> list[PurePosixPath]:
    """The directories an entry needs, outermost first: its missing ancestors are made as the agent makes them."""
    ancestors = list(reversed(entry.destination.parents[:-1]))
    return [*ancestors, entry.destination] if entry.kind == "directory" else ancestors


def _on_target(root: Path, path: Path) -> str:
    """A path under root as the target sees it; a path of the bundle by its name."""
    try:
        return "/" + path.relative_to(root).as_posix()
    except ValueError:
        return path.name


def _check_directory(host: _Host, directory: PurePosixPath, earlier: set, made: list[PurePosixPath]) -> None:
    """Refuse a file or a link where a directory goes; note in `made` the directories the install will create."""
    existing = host.mode(directory)
    if existing is None or directory in earlier:
        if directory not in made:
            made.append(directory)
        return
    if stat.S_ISDIR(existing):
        return
    kind = "a link" if stat.S_ISLNK(existing) else "a file"
    raise InstallError(f"{directory} is {kind} on the target, where the appspec installs a directory")


def _make_directory(host: _Host, directory: PurePosixPath, installed: list[str]) -> None:
    path = host.path(directory)
    if host.files.make_directory(path):
        host.directories.add(path)
        installed.append(str(directory))
        return
    mode = host.files.mode(path)
    if mode is None or not stat.S_ISDIR(mode):
        raise InstallError(f"{directory} is not a directory on the target")
    host.directories.add(path)


def _remove_installed(host: _Host, previous) -> None:
    """Remove what the last install created, newest first; a directory someone added files to stays."""
    for path in reversed(list(previous)):
        destination = PurePosixPath(path)
        try:
            mode = host.mode(destination)
        except InstallError:
            continue
        if mode is None:
            continue
        if not stat.S_ISDIR(mode):
            host.files.remove_file(destination)
        elif host.files.remove_directory(destination):
            host.directories.discard(destination)
            for known in [known for known in host.directories if destination in known.parents]:
                host.directories.discard(known)


def _copy_file(source: Path, destination: Path) -> None:
    """Copy a regular file of the bundle with its mode, never through a link at either end."""
    reader = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        status = os.fstat(reader)
        if not stat.S_ISREG(status.st_mode):
            raise InstallError(f"{source.name} in the bundle is not a regular file")
        writer = os.open(destination, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(writer, "wb") as output, os.fdopen(os.dup(reader), "rb") as data:
            shutil.copyfileobj(data, output, 1024 * 1024)
            # The mode comes with the file, as the agent preserves it, but never setuid, setgid or sticky bits
            # from an untrusted bundle.
            os.fchmod(output.fileno(), stat.S_IMODE(status.st_mode) & 0o777)
        os.utime(destination, ns=(status.st_atime_ns, status.st_mtime_ns), follow_symlinks=False)
    finally:
        os.close(reader)
