"""The `local` deployment target: a directory on the portal host, always under PORTAL_TARGETS_ROOT.

A target lives at PORTAL_TARGETS_ROOT/<repository id>/<environment>/<target>. Environment and target names are
letters, digits, `-`, `_` and `.` (never `.` or `..`), so no repository admin can point a deployment at another
path of the host. Its layout mirrors the ssh target's (releases/ssh_target.py, `TargetLayout`):

    <target>/revisions/<deployment id>/bundle/          the artifact, unpacked; the hooks only read it
    <target>/revisions/<deployment id>/root/            the target's "/": an appspec destination /srv/app is root/srv/app
    <target>/revisions/<deployment id>/installed.json   what this revision's install created (the next one's `previous`)
    <target>/revisions/<deployment id>/sandbox/         the hooks' own scratch workspace and home
    <target>/current -> revisions/<id>                  the live revision, a relative link switched atomically

A new revision's root starts as a copy of the live revision's root. CodeDeploy installs onto a host that keeps its
files between deployments: what the last install created is removed first (`previous`), and any other file found in
the way (one a hook wrote, one RETAIN kept) meets file_exists_behavior. The copy keeps that meaning while the live
revision stays untouched until the switch, so a failed deployment leaves `current` on a whole, unchanged tree. It is
a copy rather than hard links so that a hook of the new revision writing into a file cannot change the live one's.

Hook scripts are code from the repository, so each runs in the build sandbox (releases/sandbox.py): its own uid,
every capability dropped, no network (not even the host's loopback), the system read-only, and only the revision's
root writable, at /deployment/root (PORTAL_TARGET_ROOT); the revision's bundle is read-only at /deployment/bundle
(PORTAL_BUNDLE_DIR), where the script starts. ApplicationStop runs the previous revision's scripts over the previous
revision's root, the live one. `runas` is accepted and noted in the log: a sandbox has a single user of its own, so a
hook never runs as a real user of the host. Whatever a hook starts ends with it (the sandbox's PID namespace ends):
a local target runs hooks, not long-lived services.

A revision's directory belongs to its hooks' uid, mode 0700, and its root is given to that uid before each hook:
other users of the host cannot enter it, whatever modes a hook leaves inside, and a changed owner clears any setuid
bit. The rest of the tree (the root, the repository's and environment's directories, `revisions`) is mode 0711, as
the sandbox needs to reach the revision as that uid.
"""

import errno
import fcntl
import hashlib
import json
import os
import re
import select
import shlex
import shutil
import stat
import subprocess
import threading
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path, PurePosixPath

from django.conf import settings

from releases import appspec
from releases.sandbox import (
    Bind,
    BuildDirectory,
    Limits,
    Sandbox,
    SandboxError,
    give_to,
    prepare_build_directory,
    remove_build_directory,
    traversable_directory,
)
from releases.ssh_target import ENV_NAME, HealthResult, LineSplitter

NAME = re.compile(r"[A-Za-z0-9._-]{1,100}\Z")
REVISION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}\Z")
APPSPEC_NAME = "appspec.yml"
INSTALLED_FILE = "installed.json"
SANDBOX_ROOT = "/deployment/root"
SANDBOX_BUNDLE = "/deployment/bundle"
# What an unpacked bundle may hold: bounded so that a small zip cannot fill the disk.
MAX_BUNDLE_BYTES = 4 * 1024**3
MAX_BUNDLE_ENTRIES = 100_000
MAX_LINK_BYTES = 4096
HOOK_LIMITS = Limits()
NOTE = "[portal] "


class LocalTargetError(Exception):
    """A target name, a revision or an artifact the local target refuses; the message can be shown as it is."""


class EventStatus(StrEnum):
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    TIMED_OUT = "TIMED_OUT"
    SKIPPED = "SKIPPED"


@dataclass
class EventResult:
    event: str
    status: EventStatus
    duration_seconds: float
    message: str = ""


@dataclass
class TargetResult:
    """One target's deployment: SUCCEEDED once `current` points at the new revision, FAILED otherwise."""

    revision: str
    status: EventStatus
    events: list[EventResult] = field(default_factory=list)
    message: str = ""
    warnings: tuple[str, ...] = ()

    @property
    def succeeded(self) -> bool:
        return self.status == EventStatus.SUCCEEDED

    @property
    def duration_seconds(self) -> float:
        return round(sum(event.duration_seconds for event in self.events), 3)

    def event(self, name: str) -> EventResult | None:
        return next((result for result in self.events if result.event == name), None)


def group_variables(application_name: str, environment: str, deployment_group_id: str, bundle_commit) -> dict:
    """What every target's hooks are told of the deployment group, for appspec.hook_environment: the environment
    is the group, and names it when no id is given."""
    return dict(
        application_name=application_name,
        deployment_group_name=environment,
        deployment_group_id=deployment_group_id or environment,
        bundle_commit=bundle_commit,
    )


def check_name(name: str, what: str) -> str:
    """A name that is one path component of its own: letters, digits, '-', '_' and '.', never '.' or '..'."""
    if not isinstance(name, str) or not NAME.match(name) or name in (".", ".."):
        raise LocalTargetError(
            f"{what} {name!r} cannot name a local target's directory: use letters, digits, '-', '_' and '.' "
            "(not '.' or '..', and no '/')"
        )
    return name


class EventTimer:
    """Times one event and turns its outcome into an EventResult."""

    def __init__(self, name: str):
        self.name = name
        self.started = time.monotonic()

    def end(self, status: EventStatus, message: str = "") -> EventResult:
        return EventResult(self.name, status, round(time.monotonic() - self.started, 3), message)


class TargetDeployment:
    """One deployment of a revision to one target: CodeDeploy's lifecycle events in order, each timed and recorded
    with its output going to on_line(event, line) as it comes, and `current` switched only when all succeeded.

    Each kind of target (local, ssh) gives the steps: `download` the bundle and read its appspec, `install` its files,
    read the previous revision's appspec (ApplicationStop runs its scripts), `run_script` and `switch`. A step fails
    by raising one of `errors`, whose message becomes the event's; the first event that fails or times out ends the
    deployment, except ApplicationStop when its failures are to be ignored."""

    errors: tuple[type[BaseException], ...] = (LocalTargetError, appspec.AppspecError, appspec.InstallError, OSError)

    def __init__(
        self,
        revision: str,
        previous: str | None,
        *,
        on_line: Callable[[str, str], None],
        hook_variables: Mapping[str, str | None],
        variables: Mapping[str, str],
        ignore_application_stop_failures: bool = False,
    ):
        self.revision = revision
        self.previous = previous
        self.on_line = on_line
        self.hook_variables = dict(hook_variables)
        self.variables = dict(variables)
        self.ignore_application_stop_failures = ignore_application_stop_failures

    def note(self, event: str, text: str) -> None:
        """A line of the target's own in an event's log, told apart from the hooks' output by its prefix."""
        self.on_line(event, NOTE + text)

    # The steps a kind of target gives.

    def download(self) -> appspec.Appspec:
        """Put the new revision's bundle in place and return its appspec."""
        raise NotImplementedError

    def install(self, spec: appspec.Appspec) -> None:
        raise NotImplementedError

    def previous_appspec(self) -> appspec.Appspec:
        raise NotImplementedError

    def run_script(
        self,
        event: str,
        script: appspec.Script,
        revision: appspec.Revision,
        environment: Mapping[str, str],
        timeout: float,
    ) -> tuple[EventStatus, str]:
        """Run one script of that revision's bundle; (SUCCEEDED, "") or the status and why."""
        raise NotImplementedError

    def switch(self) -> None:
        raise NotImplementedError

    # The lifecycle.

    def run(self) -> TargetResult:
        result = TargetResult(revision=self.revision, status=EventStatus.FAILED)
        spec: appspec.Appspec | None = None
        for step in appspec.hook_order(first_deployment=self.previous is None):
            event = EventTimer(step.event)
            try:
                if step.event == "DownloadBundle":
                    spec = self.download()
                    result.warnings = tuple(
                        f"{APPSPEC_NAME} line {warning.line}, {warning.path}: {warning.message}"
                        for warning in spec.warnings
                    )
                    for warning in result.warnings:
                        self.note(step.event, f"Warning: {warning}")
                    outcome = event.end(EventStatus.SUCCEEDED)
                elif step.event == "Install":
                    self.install(spec)
                    outcome = event.end(EventStatus.SUCCEEDED)
                else:
                    scripts_spec = self.previous_appspec() if step.revision == appspec.Revision.PREVIOUS else spec
                    outcome = self._run_event(event, scripts_spec.scripts(step.event), step.revision)
            except self.errors as error:
                outcome = event.end(EventStatus.FAILED, error_message(error))
            result.events.append(outcome)
            if outcome.status in (EventStatus.SUCCEEDED, EventStatus.SKIPPED):
                continue
            self.note(step.event, f"{step.event} {outcome.status}: {outcome.message}")
            if step.event == "ApplicationStop" and self.ignore_application_stop_failures:
                self.note(step.event, "ApplicationStop failures are ignored for this deployment: going on")
                continue
            result.message = f"{step.event} {outcome.status}: {outcome.message}"
            return result
        try:
            self.switch()
        except self.errors as error:
            result.message = f"The revision could not go live: {error_message(error)}"
            return result
        result.status = EventStatus.SUCCEEDED
        return result

    def _run_event(
        self, event: EventTimer, scripts: tuple[appspec.Script, ...], revision: appspec.Revision
    ) -> EventResult:
        """Run an event's scripts one after the other; the first that fails or times out ends the event."""
        if not scripts:
            return event.end(EventStatus.SKIPPED, "no scripts")
        environment = {
            **self.variables,
            **appspec.hook_environment(deployment_id=self.revision, lifecycle_event=event.name, **self.hook_variables),
        }
        budget_ends = time.monotonic() + appspec.MAX_EVENT_SECONDS
        for script in scripts:
            self.note(event.name, f"Running {script.location}")
            timeout = min(script.timeout, max(0.0, budget_ends - time.monotonic()))
            status, message = self.run_script(event.name, script, revision, environment, timeout)
            if status != EventStatus.SUCCEEDED:
                return event.end(status, f"{script.location}: {message}")
        return event.end(EventStatus.SUCCEEDED)


class LocalTarget:
    """One local target: PORTAL_TARGETS_ROOT/<repository id>/<environment>/<name>."""

    def __init__(self, repository_id: int, environment: str, name: str):
        if not isinstance(repository_id, int) or isinstance(repository_id, bool) or repository_id <= 0:
            raise LocalTargetError(f"{repository_id!r} is not a repository id")
        check_name(environment, "The environment name")
        check_name(name, "The target name")
        self.repository_id = repository_id
        self.environment = environment
        self.name = name
        self.base = Path(settings.PORTAL_TARGETS_ROOT) / str(repository_id) / environment / name

    @property
    def revisions(self) -> Path:
        return self.base / "revisions"

    @property
    def current(self) -> Path:
        return self.base / "current"

    def revision(self, deployment_id: int | str) -> Path:
        name = str(deployment_id)
        if not REVISION_NAME.match(name):
            raise LocalTargetError(f"{name!r} cannot name a revision directory.")
        return self.revisions / name

    def current_revision(self) -> str | None:
        """The deployment id of the live revision, or None before the first successful deployment."""
        try:
            target = os.readlink(self.current)
        except (FileNotFoundError, NotADirectoryError):
            return None
        name = PurePosixPath(target).name
        return name if target == f"revisions/{name}" and REVISION_NAME.match(name) else None

    def switch(self, deployment_id: int | str) -> None:
        """Point `current` at a revision atomically: a new link beside it, renamed over it."""
        if not self.revision(deployment_id).is_dir():
            raise LocalTargetError(f"There is no revision {deployment_id} on target {self.name}.")
        temporary = self.base / f"current.new-{uuid.uuid4().hex[:12]}"
        os.symlink(f"revisions/{deployment_id}", temporary)
        try:
            os.rename(temporary, self.current)
        except OSError:
            temporary.unlink(missing_ok=True)
            raise

    def remove_revision(self, deployment_id: int | str) -> None:
        """Remove a revision that is not live (with what its hooks made unwritable); nothing there is fine."""
        if str(deployment_id) == self.current_revision():
            raise LocalTargetError(f"Revision {deployment_id} is the live one: deploy another before removing it.")
        path = self.revision(deployment_id)
        if path.is_dir() and not path.is_symlink():
            remove_build_directory(BuildDirectory(path))

    def deploy(
        self,
        deployment_id: int | str,
        artifact_path: str | os.PathLike,
        expected_sha256: str,
        *,
        on_line: Callable[[str, str], None] = lambda event, line: None,
        application_name: str = "",
        deployment_group_id: str = "",
        bundle_commit: str | None = None,
        variables: Mapping[str, str] = {},
        host_uid: int | None = None,
        limits: Limits = HOOK_LIMITS,
        ignore_application_stop_failures: bool = False,
    ) -> TargetResult:
        """Deploy an artifact (a zip whose sha256 must be expected_sha256) as a new revision, in CodeDeploy's order.

        on_line(event, line) gets each line the hooks print, and the target's own notes, as they come. `variables`
        (an environment's variables and secrets) go to the hooks only, beside CodeDeploy's. `current` moves to the
        new revision only when every event succeeded; a failed deployment leaves its revision directory for its
        logs and inspection until `remove_revision`. The same deployment id again (a job retried after its worker
        was lost) starts over from a fresh revision directory.

        Give a target the same host uid every time, and each target its own: the process limit counts every process
        of a uid, and a revision's files belong to the uid of its hooks (a revision run by another uid is given to
        it first).
        """
        revision = self.revision(deployment_id)
        with self._lock():
            return self._deploy(
                revision,
                Path(artifact_path),
                expected_sha256,
                on_line=on_line,
                hook_variables=group_variables(application_name, self.environment, deployment_group_id, bundle_commit),
                variables=variables,
                host_uid=host_uid,
                limits=limits,
                ignore_application_stop_failures=ignore_application_stop_failures,
            )

    @contextmanager
    def _lock(self) -> Iterator[None]:
        """Hold the target for one deployment: a second one at the same time is refused, not interleaved."""
        traversable_directory(self.base)
        descriptor = os.open(self.base / ".lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise LocalTargetError(f"Another deployment is running on target {self.name}.")
            yield
        finally:
            os.close(descriptor)

    def _deploy(
        self,
        revision: Path,
        artifact_path: Path,
        expected_sha256: str,
        *,
        on_line: Callable[[str, str], None],
        hook_variables: dict,
        variables: Mapping[str, str],
        host_uid: int | None,
        limits: Limits,
        ignore_application_stop_failures: bool,
    ) -> TargetResult:
        name = revision.name
        previous = self.current_revision()
        if name == previous:
            raise LocalTargetError(f"Revision {name} is already the live one on target {self.name}.")
        if revision.exists() or revision.is_symlink():
            on_line("DownloadBundle", NOTE + f"Removing revision {name}, left by an earlier attempt")
            self.remove_revision(name)
        return _LocalDeployment(
            self,
            revision,
            artifact_path,
            expected_sha256,
            previous=previous,
            on_line=on_line,
            hook_variables=hook_variables,
            variables=variables,
            host_uid=host_uid,
            limits=limits,
            ignore_application_stop_failures=ignore_application_stop_failures,
        ).run()

    def health(
        self, command: str, *, host_uid: int | None = None, timeout: float = 30, limits: Limits = HOOK_LIMITS
    ) -> HealthResult:
        """Run a health check command in the sandbox over the live revision (healthy when it exits 0).

        A local target runs no services (what a hook starts ends with it) and its sandbox has no network, so an
        HTTP URL has nothing to answer it: only commands are run."""
        if command.startswith(("http://", "https://")):
            return HealthResult(healthy=False, detail="A local target runs no services to ask: use a command.")
        live = self.current_revision()
        if live is None:
            return HealthResult(healthy=False, detail="Nothing is deployed on this target yet.")
        output: list[str] = []
        status, message = _run_sandboxed(
            ["/bin/sh", "-c", command],
            self.revision(live),
            environment={},
            timeout=timeout,
            on_line=output.append,
            host_uid=host_uid,
            limits=limits,
        )
        detail = "\n".join(output[-10:])[-2000:]
        if status != EventStatus.SUCCEEDED:
            return HealthResult(healthy=False, detail=detail or message)
        return HealthResult(healthy=True, detail=detail)

    # The steps of a deployment.

    def _download(self, revision: Path, artifact: Path, expected_sha256: str, previous: str | None) -> appspec.Appspec:
        """Verify the artifact, unpack it as the revision's bundle, read its appspec and start its root."""
        verify_artifact(artifact, expected_sha256)
        with zipfile.ZipFile(artifact) as archive:
            entries = check_zip(archive)
            traversable_directory(self.revisions)
            # Only the hooks' uid may enter a revision: nothing in it is for the host's other users, and a hook may
            # leave files there with any mode.
            revision.mkdir(mode=0o700)
            try:
                unpack_zip(archive, entries, revision / "bundle")
            except BaseException:
                remove_build_directory(BuildDirectory(revision))
                raise
        spec = self._read_appspec(revision)
        root = revision / "root"
        if previous is not None:
            copy_root(self.revision(previous) / "root", root)
        else:
            root.mkdir(mode=0o755)
        return spec

    def _read_appspec(self, revision: Path) -> appspec.Appspec:
        path = revision / "bundle" / APPSPEC_NAME
        try:
            descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError as error:
            if error.errno in (errno.ENOENT, errno.ELOOP):
                raise LocalTargetError(f"The bundle has no {APPSPEC_NAME} at its root (a regular file, not a link).")
            raise
        with os.fdopen(descriptor, "rb") as file:
            if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
                raise LocalTargetError(f"{APPSPEC_NAME} in the bundle is not a regular file.")
            text = file.read(appspec.MAX_APPSPEC_BYTES + 1)
        return appspec.parse_appspec(text, filename=APPSPEC_NAME)

    def _install(self, revision: Path, spec: appspec.Appspec, previous: str | None) -> None:
        earlier = _read_installed(self.revision(previous)) if previous is not None else []
        plan = appspec.plan_files(spec, revision / "bundle")
        installed = appspec.install(
            plan, revision / "root", spec.file_exists_behavior, previous=earlier, permissions=spec.permissions
        )
        descriptor = os.open(revision / INSTALLED_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        with os.fdopen(descriptor, "w") as file:
            file.write(installed_json(installed))


class _LocalDeployment(TargetDeployment):
    """A deployment's steps on a local target: hooks in the sandbox over the revision's root."""

    errors = (*TargetDeployment.errors, SandboxError, zipfile.BadZipFile)

    def __init__(
        self,
        target: LocalTarget,
        directory: Path,
        artifact: Path,
        expected_sha256: str,
        *,
        host_uid: int | None,
        limits: Limits,
        **options,
    ):
        super().__init__(directory.name, **options)
        self.target = target
        self.directory = directory
        self.artifact = artifact
        self.expected_sha256 = expected_sha256
        self.host_uid = host_uid
        self.limits = limits

    def download(self) -> appspec.Appspec:
        return self.target._download(self.directory, self.artifact, self.expected_sha256, self.previous)

    def install(self, spec: appspec.Appspec) -> None:
        self.target._install(self.directory, spec, self.previous)

    def previous_appspec(self) -> appspec.Appspec:
        return self.target._read_appspec(self.target.revision(self.previous))

    def run_script(
        self,
        event: str,
        script: appspec.Script,
        revision: appspec.Revision,
        environment: Mapping[str, str],
        timeout: float,
    ) -> tuple[EventStatus, str]:
        where = self.target.revision(self.previous) if revision == appspec.Revision.PREVIOUS else self.directory
        if script.runas:
            self.note(event, f"runas {script.runas} noted: the script runs as the sandbox's own unprivileged user")
        command = _script_command(where / "bundle", script.location, lambda text: self.note(event, text))
        return _run_sandboxed(
            command,
            where,
            environment=environment,
            timeout=timeout,
            on_line=lambda line: self.on_line(event, line),
            host_uid=self.host_uid,
            limits=self.limits,
        )

    def switch(self) -> None:
        self.target.switch(self.revision)


def error_message(error: BaseException) -> str:
    """An error as an event's message: an OSError by its reason and the file's name, anything else as it says."""
    if isinstance(error, OSError) and error.strerror:
        return f"{error.strerror}{': ' + os.path.basename(error.filename) if error.filename else ''}"
    return str(error)


def _read_installed(revision: Path) -> list[str]:
    try:
        text = (revision / INSTALLED_FILE).read_text()
    except FileNotFoundError:
        return []
    return installed_paths(text, revision.name)


def installed_json(result: appspec.InstallResult) -> str:
    """A revision's installed.json: what its install created, for the next install to remove first."""
    return json.dumps(list(result.installed))


def installed_paths(text: str | bytes, revision: str) -> list[str]:
    """The paths a revision's installed.json lists."""
    try:
        installed = json.loads(text)
    except ValueError:
        installed = None
    if not isinstance(installed, list) or not all(isinstance(path, str) for path in installed):
        raise LocalTargetError(f"{INSTALLED_FILE} of revision {revision} is not a list of paths.")
    return installed


def _script_command(bundle: Path, location: str, note: Callable[[str], None]) -> list[str]:
    """The command that runs a script of the bundle; like the agent, a script that is not executable is made so.

    The script is looked up without following links on the host (a bundle may hold one pointing anywhere), and only
    a regular file is ever changed."""
    try:
        path = appspec.bundle_entry(bundle, location)
    except appspec.InstallError:
        raise LocalTargetError(f"The script {location} is not in the bundle (or its path goes through a link).")
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        raise LocalTargetError(f"The script {location} is not a regular file of the bundle.")
    try:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode):
            raise LocalTargetError(f"The script {location} is not a regular file of the bundle.")
        if status.st_mode & 0o111 != 0o111:
            note(f"{location} is not executable: making it executable, as CodeDeploy's agent does")
            os.fchmod(descriptor, stat.S_IMODE(status.st_mode) | 0o555)
    finally:
        os.close(descriptor)
    return [f"{SANDBOX_BUNDLE}/{location}"]


def _run_sandboxed(
    command: list[str],
    revision: Path,
    *,
    environment: Mapping[str, str],
    timeout: float,
    on_line: Callable[[str], None],
    host_uid: int | None,
    limits: Limits,
) -> tuple[EventStatus, str]:
    """Run command in the sandbox over a revision: its root writable, its bundle read-only and the working directory.

    Its output, stdout and stderr merged, goes to on_line a line at a time; past timeout every process in it is
    killed. A fresh workspace and home each time, so one hook leaves nothing for the next outside the root."""
    if host_uid is not None and os.geteuid() == 0:
        hand_over(revision, host_uid)
    scratch = revision / "sandbox"
    if scratch.exists():
        remove_build_directory(BuildDirectory(scratch))
    directory = prepare_build_directory(scratch)
    for path in (scratch, directory.etc):
        path.chmod(0o711)
    for path in (directory.etc / "passwd", directory.etc / "group"):
        path.chmod(0o644)
    if host_uid is not None and os.geteuid() == 0:
        give_to(directory.workspace, host_uid)
        give_to(directory.home, host_uid)
    variables = {"PORTAL_TARGET_ROOT": SANDBOX_ROOT, "PORTAL_BUNDLE_DIR": SANDBOX_BUNDLE, **environment}
    for name, value in variables.items():
        if not ENV_NAME.match(name) or "\0" in value:
            raise LocalTargetError(f"{name!r} cannot be given to a hook as an environment variable.")
    # The variables hold the environment's secrets, so they reach the hook through a pipe its shell reads, never
    # on a command line: any user of the host may read a process's command line (ps shows it).
    exports = "".join(f"export {name}={shlex.quote(value)}\n" for name, value in variables.items()).encode()
    exports_read, exports_write = os.pipe()
    if host_uid is not None and os.geteuid() == 0:
        # The shell opens the pipe again by its path, as the hooks' uid.
        os.fchown(exports_read, host_uid, host_uid)
    argv = ["/bin/sh", "-c", f'. /dev/fd/{exports_read} && exec "$@"', "hook", *command]
    binds = (Bind(revision / "root", SANDBOX_ROOT, writable=True), Bind(revision / "bundle", SANDBOX_BUNDLE))
    try:
        sandbox = Sandbox(
            directory,
            argv,
            limits=limits,
            host_uid=host_uid,
            binds=binds,
            chdir=SANDBOX_BUNDLE,
            pass_fds=(exports_read,),
        )
    except BaseException:
        os.close(exports_write)
        raise
    finally:
        os.close(exports_read)
    threading.Thread(target=_write_all, args=(exports_write, exports), name="hook variables", daemon=True).start()
    lines = LineSplitter(on_line)
    deadline = time.monotonic() + timeout
    timed_out = False
    printed = 0
    try:
        descriptor = sandbox.output.fileno()
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                timed_out = True
                break
            ready, _, _ = select.select([descriptor], [], [], min(remaining, 1.0))
            if not ready:
                continue
            data = os.read(descriptor, 64 * 1024)
            if not data:
                break
            printed += len(data)
            if printed > limits.log_bytes:
                break
            lines.feed(data)
        if not timed_out and printed <= limits.log_bytes:
            try:
                sandbox.process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                timed_out = True
    finally:
        sandbox.stop(limits.kill_grace_seconds if timed_out else 0)
        lines.close()
        sandbox.output.close()
        remove_build_directory(directory)
    if timed_out:
        return EventStatus.TIMED_OUT, f"did not finish within {timeout:g} seconds and was killed"
    if printed > limits.log_bytes:
        return EventStatus.FAILED, f"printed more than {limits.log_bytes} bytes and was stopped"
    status = sandbox.process.returncode
    if status != 0:
        return EventStatus.FAILED, f"exit status {status}"
    return EventStatus.SUCCEEDED, ""


def _write_all(descriptor: int, data: bytes) -> None:
    """Write data to a pipe and close it (from a thread of its own: the hook's shell reads it as it starts); a
    sandbox that ended first just leaves it unread."""
    try:
        with os.fdopen(descriptor, "wb") as pipe:
            pipe.write(data)
    except OSError:
        pass


def hand_over(revision: Path, uid: int) -> None:
    """Give a revision's directory and root to the uid its hooks run as, before each run: the install and the copy
    made their files as the portal's user, and an earlier deployment may have run as another uid. Changing the owner
    also clears any setuid or setgid bit. The bundle stays the portal's, readable and never writable by the hooks."""
    os.lchown(revision, uid, uid)
    give_to(revision / "root", uid)


def copy_root(source: Path, destination: Path) -> None:
    """Copy the live revision's root as the start of a new one's: links as links, directories and regular files with
    their permission bits but never setuid, setgid or sticky (a hook may set them on its own files), and nothing else
    (a socket or a pipe a hook left). The hooks' uid gets the copy when they run."""
    pending = [(source, destination)]
    made: list[tuple[Path, int]] = []
    while pending:
        here, there = pending.pop()
        os.mkdir(there, 0o700)
        made.append((there, os.lstat(here).st_mode))
        for entry in os.scandir(here):
            info = entry.stat(follow_symlinks=False)
            target = there / entry.name
            if stat.S_ISLNK(info.st_mode):
                os.symlink(os.readlink(entry.path), target)
            elif stat.S_ISDIR(info.st_mode):
                pending.append((Path(entry.path), target))
            elif stat.S_ISREG(info.st_mode):
                _copy_file(Path(entry.path), target, info)
    for directory, mode in made:
        os.chmod(directory, stat.S_IMODE(mode) & 0o777)


def _copy_file(source: Path, destination: Path, info: os.stat_result) -> None:
    reader = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        writer = os.open(destination, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(writer, "wb") as output, os.fdopen(os.dup(reader), "rb") as data:
            shutil.copyfileobj(data, output, 1024 * 1024)
            os.fchmod(output.fileno(), stat.S_IMODE(info.st_mode) & 0o777)
        os.utime(destination, ns=(info.st_atime_ns, info.st_mtime_ns), follow_symlinks=False)
    finally:
        os.close(reader)


# The artifact.


def verify_artifact(artifact: Path, expected_sha256: str) -> None:
    """Refuse an artifact whose bytes are not the ones the build stored (its sha256, bare or as 'sha256:…')."""
    expected = expected_sha256.removeprefix("sha256:").lower()
    digest = hashlib.sha256()
    try:
        with open(artifact, "rb") as file:
            while chunk := file.read(1024 * 1024):
                digest.update(chunk)
    except FileNotFoundError:
        raise LocalTargetError("The artifact is not in the artifact store.")
    if digest.hexdigest() != expected:
        raise LocalTargetError(
            f"The artifact's sha256 is {digest.hexdigest()}, not the {expected} its build recorded: it was changed "
            "after the build, so it is not deployed."
        )


def check_zip(archive: zipfile.ZipFile) -> list[tuple[zipfile.ZipInfo, PurePosixPath, str]]:
    """Every entry of the zip with its path and kind ("file", "link", "directory"), checked before anything is
    written: no absolute path, no '..', no entry twice, nothing but files, directories and links, and a bounded
    size and count."""
    infos = archive.infolist()
    if len(infos) > MAX_BUNDLE_ENTRIES:
        raise LocalTargetError(f"The artifact has {len(infos)} entries, more than {MAX_BUNDLE_ENTRIES}.")
    entries = []
    seen: set[PurePosixPath] = set()
    total = 0
    for info in infos:
        name = info.filename
        if name.startswith("/") or "\\" in name or "\0" in name or re.match(r"[A-Za-z]:", name):
            raise LocalTargetError(f"The artifact's entry {name!r} is not a relative path: refused.")
        parts = [part for part in name.split("/") if part not in ("", ".")]
        if ".." in parts:
            raise LocalTargetError(f"The artifact's entry {name!r} goes out of the bundle with '..': refused.")
        if not parts:
            continue
        path = PurePosixPath(*parts)
        mode = info.external_attr >> 16
        if info.is_dir():
            kind = "directory"
        elif stat.S_ISLNK(mode):
            kind = "link"
            if info.file_size > MAX_LINK_BYTES:
                raise LocalTargetError(f"The artifact's link {name!r} is too long.")
        elif stat.S_IFMT(mode) in (0, stat.S_IFREG):
            kind = "file"
        else:
            raise LocalTargetError(f"The artifact's entry {name!r} is neither a file, a directory nor a link.")
        if path in seen and kind != "directory":
            raise LocalTargetError(f"The artifact holds {name!r} twice.")
        seen.add(path)
        total += info.file_size
        if total > MAX_BUNDLE_BYTES:
            raise LocalTargetError(f"The artifact unpacks to more than {MAX_BUNDLE_BYTES} bytes.")
        entries.append((info, path, kind))
    if PurePosixPath(APPSPEC_NAME) not in seen:
        raise LocalTargetError(f"The artifact has no {APPSPEC_NAME} at its root.")
    return entries


def unpack_zip(archive: zipfile.ZipFile, entries, bundle: Path) -> None:
    """Write the checked entries under bundle, never through a link (one entry may be a link another goes through)."""
    bundle.mkdir(mode=0o755)
    for info, path, kind in entries:
        parent = bundle
        for part in path.parts[:-1]:
            parent = parent / part
            try:
                os.mkdir(parent, 0o755)
            except FileExistsError:
                if not stat.S_ISDIR(os.lstat(parent).st_mode):
                    raise LocalTargetError(f"The artifact's entry {info.filename!r} goes through a link or a file.")
        destination = parent / path.name
        if kind == "directory":
            try:
                os.mkdir(destination, 0o755)
            except FileExistsError:
                if not stat.S_ISDIR(os.lstat(destination).st_mode):
                    raise LocalTargetError(f"The artifact's entry {info.filename!r} is there twice.")
            continue
        if kind == "link":
            target = archive.read(info)[:MAX_LINK_BYTES].decode("utf-8", "replace")
            if not target or "\0" in target:
                raise LocalTargetError(f"The artifact's link {info.filename!r} has no target.")
            os.symlink(target, destination)
            continue
        mode = stat.S_IMODE(info.external_attr >> 16) & 0o777 or 0o644
        descriptor = os.open(destination, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(descriptor, "wb") as output, archive.open(info) as data:
            written = 0
            while chunk := data.read(1024 * 1024):
                written += len(chunk)
                if written > info.file_size:
                    raise LocalTargetError(f"The artifact's entry {info.filename!r} is larger than it says.")
                output.write(chunk)
            # Readable by the hooks' uid; never setuid, setgid or sticky bits from an untrusted artifact.
            os.fchmod(output.fileno(), mode | 0o444)
