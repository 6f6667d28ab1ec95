"""The `ssh` deployment target's deploy step: a build's artifact deployed to a host over ssh, in CodeDeploy's order.

The events, their results and the log are those of the local target (releases/local_target.py,
`TargetDeployment`); what differs is where they happen. Before anything reaches the host the artifact is checked here, on the portal: its
sha256 against the one its build recorded, its zip entries, and its appspec.yml (an error names the file, the line
and the key). Only then is the host reached, with the environment's deploy key and the target's pinned host key
(releases/ssh_target.py); a refused host key or an unreachable host is a FAILED result saying so, with nothing sent.

On the host, a target lives under the deploy user's home, at `$HOME/.portal/targets/<repository id>/<environment>/
<target>` (`TargetLayout`):

    revisions/<deployment id>/bundle/          the artifact, unpacked; the hooks start there
    revisions/<deployment id>/installed.json   what this revision's install created (the next one's `previous`)
    current -> revisions/<id>                  the live revision, switched only once every event succeeded

Unlike a local target's, a host keeps one set of files: `files` are installed at their real destinations, as
CodeDeploy's agent installs them, with file_exists_behavior and the previous revision's installed.json deciding what
may be replaced (`appspec.install` over SFTP). So a deployment that fails after Install leaves the new files in
place while `current` still names the previous revision, as a failed CodeDeploy deployment does; the next
deployment's ApplicationStop still runs the previous revision's scripts.

Hooks run as the deploy user, over one ssh session each, with the CodeDeploy variables and the environment's
variables and secrets given to that command only. A script with a `runas` other than the deploy user runs through
`sudo -n -u <user>`: the deploy user needs a sudoers rule letting it run the bundle's scripts as that user without a
password, keeping the variables (`NOPASSWD:SETENV`), and the user needs to reach the bundle under the deploy user's
home. The permissions of `permissions` are applied as the deploy user: a mode on what it installed always, an owner
or a group only when the host lets it (as root).
"""

import posixpath
import re
import shlex
import stat
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from releases import appspec
from releases.local_target import (
    APPSPEC_NAME,
    INSTALLED_FILE,
    NOTE,
    REVISION_NAME,
    EventResult,
    EventStatus,
    EventTimer,
    LocalTargetError,
    TargetDeployment,
    TargetResult,
    check_name,
    check_zip,
    error_message,
    group_variables,
    installed_json,
    installed_paths,
    unpack_zip,
    verify_artifact,
)
from releases.ssh_target import (
    CONNECT_TIMEOUT,
    CommandTimedOut,
    HealthResult,
    RemoteFileError,
    SshTarget,
    SshTargetError,
    TargetLayout,
)

TARGETS_DIRECTORY = ".portal/targets"


class SshDeployTarget:
    """One ssh target of an environment: a host, the deploy user and key, the pinned host key, and the target's
    directory under that user's home."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        user: str,
        private_key: str,
        host_key: str,
        repository_id: int,
        environment: str,
        name: str,
    ):
        if not isinstance(repository_id, int) or isinstance(repository_id, bool) or repository_id <= 0:
            raise LocalTargetError(f"{repository_id!r} is not a repository id")
        check_name(environment, "The environment name")
        check_name(name, "The target name")
        self.host = host
        self.port = port
        self.user = user
        self.private_key = private_key
        self.host_key = host_key
        self.repository_id = repository_id
        self.environment = environment
        self.name = name

    @contextmanager
    def _connect(self) -> Iterator[tuple[SshTarget, TargetLayout]]:
        with SshTarget.connect(self.host, self.port, self.user, self.private_key, self.host_key) as connection:
            yield connection, self._layout(connection)

    def _layout(self, connection: SshTarget) -> TargetLayout:
        """The target's directory on the host, under the deploy user's home as the host reports it."""
        output: list[str] = []
        status = connection.run('printf "portal-home=%s\\n" "$HOME"', timeout=CONNECT_TIMEOUT, on_line=output.append)
        homes = [line.removeprefix("portal-home=") for line in output if line.startswith("portal-home=")]
        home = homes[-1] if status == 0 and homes else ""
        if not home.startswith("/"):
            raise SshTargetError(
                f"Could not read the home directory of {self.user} on {self.host}:{self.port} "
                f"(HOME is {home!r}): the target's directory is under it."
            )
        base = posixpath.join(
            posixpath.normpath(home), TARGETS_DIRECTORY, str(self.repository_id), self.environment, self.name
        )
        return TargetLayout(base)

    def current_revision(self) -> str | None:
        """The deployment id of the live revision, or None before the first successful deployment.

        Raises SshTargetError when the host cannot be reached."""
        with self._connect() as (connection, layout):
            return _live_revision(connection, layout)

    def health(self, check: str, timeout: float = 30) -> HealthResult:
        """Run a health check on the host (a command, or an http(s) URL fetched there: `SshTarget.health`); a host
        that cannot be reached is unhealthy, with the reason."""
        try:
            with self._connect() as (connection, _):
                return connection.health(check, timeout=timeout)
        except SshTargetError as error:
            return HealthResult(healthy=False, detail=str(error))

    def deploy(
        self,
        deployment_id: int | str,
        artifact_path: str | Path,
        expected_sha256: str,
        *,
        on_line: Callable[[str, str], None] = lambda event, line: None,
        application_name: str = "",
        deployment_group_id: str = "",
        bundle_commit: str | None = None,
        variables: Mapping[str, str] = {},
        ignore_application_stop_failures: bool = False,
    ) -> TargetResult:
        """Deploy an artifact (a zip whose sha256 must be expected_sha256) as a new revision, in CodeDeploy's order.

        The same contract as `LocalTarget.deploy`: on_line(event, line) gets each line the hooks print and the
        target's notes as they come; `variables` go to the hooks only, beside CodeDeploy's; `current` moves to the
        new revision only when every event succeeded; the same deployment id again starts over from a fresh revision
        directory. Whatever goes wrong, the host included, is a FAILED result with the reason, never an exception."""
        name = str(deployment_id)
        if not REVISION_NAME.match(name):
            raise LocalTargetError(f"{name!r} cannot name a revision directory.")
        download = EventTimer("DownloadBundle")
        with tempfile.TemporaryDirectory(prefix="portal-ssh-deploy-") as scratch:
            bundle = Path(scratch) / "bundle"
            try:
                spec = _prepare_bundle(Path(artifact_path), expected_sha256, bundle)
            except (LocalTargetError, appspec.AppspecError, zipfile.BadZipFile, OSError) as error:
                return _failed(name, download, error_message(error), on_line)
            result: TargetResult | None = None
            try:
                with self._connect() as (connection, layout):
                    previous = _live_revision(connection, layout)
                    if name == previous:
                        return _failed(
                            name, download, f"Revision {name} is already the live one on target {self.name}.", on_line
                        )
                    result = _SshDeployment(
                        connection,
                        layout,
                        self,
                        bundle,
                        spec,
                        revision=name,
                        previous=previous,
                        on_line=on_line,
                        hook_variables=group_variables(
                            application_name, self.environment, deployment_group_id, bundle_commit
                        ),
                        variables=variables,
                        ignore_application_stop_failures=ignore_application_stop_failures,
                    ).run()
            except SshTargetError as error:
                # Closing a connection that failed under the last event does not change the result.
                if result is None:
                    return _failed(name, download, str(error), on_line)
            return result


def _failed(revision: str, download: EventTimer, message: str, on_line: Callable[[str, str], None]) -> TargetResult:
    """The result of a deployment stopped before anything ran on the host: the bundle did not get there."""
    outcome: EventResult = download.end(EventStatus.FAILED, message)
    on_line(outcome.event, NOTE + f"{outcome.event} {outcome.status}: {message}")
    return TargetResult(
        revision=revision,
        status=EventStatus.FAILED,
        events=[outcome],
        message=f"{outcome.event} {outcome.status}: {message}",
    )


def _prepare_bundle(artifact: Path, expected_sha256: str, bundle: Path) -> appspec.Appspec:
    """Verify the artifact, unpack it at bundle (a new directory) and read its appspec: all before any connection."""
    verify_artifact(artifact, expected_sha256)
    with zipfile.ZipFile(artifact) as archive:
        unpack_zip(archive, check_zip(archive), bundle)
    path = bundle / APPSPEC_NAME
    if path.is_symlink() or not path.is_file():
        raise LocalTargetError(f"The bundle has no {APPSPEC_NAME} at its root (a regular file, not a link).")
    with path.open("rb") as file:
        return appspec.parse_appspec(file.read(appspec.MAX_APPSPEC_BYTES + 1), filename=APPSPEC_NAME)


def _live_revision(connection: SshTarget, layout: TargetLayout) -> str | None:
    target = connection.read_link(layout.current)
    if target is None:
        return None
    name = PurePosixPath(target).name
    return name if target == f"revisions/{name}" and REVISION_NAME.match(name) else None


class _SshDeployment(TargetDeployment):
    """A deployment's steps on a host, over one open connection."""

    errors = (*TargetDeployment.errors, SshTargetError)

    def __init__(
        self,
        connection: SshTarget,
        layout: TargetLayout,
        target: SshDeployTarget,
        bundle: Path,
        spec: appspec.Appspec,
        **options,
    ):
        super().__init__(**options)
        self.connection = connection
        self.layout = layout
        self.target = target
        self.bundle = bundle
        self.spec = spec
        self.directory = layout.revision(self.revision)

    def download(self) -> appspec.Appspec:
        if self.connection.mode(self.directory) is not None:
            self.note("DownloadBundle", f"Removing revision {self.revision}, left by an earlier attempt")
            self.connection.remove_tree(self.directory)
        self.connection.upload_tree(self.bundle, f"{self.directory}/bundle")
        self.note("DownloadBundle", f"Bundle uploaded to {self.directory}/bundle on {self.target.host}")
        return self.spec

    def install(self, spec: appspec.Appspec) -> None:
        earlier: list[str] = []
        if self.previous is not None:
            previous = self.connection.read_file(
                f"{self.layout.revision(self.previous)}/{INSTALLED_FILE}", 64 * 1024 * 1024
            )
            if previous is not None:
                earlier = installed_paths(previous, self.previous)
        plan = appspec.plan_files(spec, self.bundle)
        installed = appspec.install(
            plan,
            HostFiles(self.connection),
            spec.file_exists_behavior,
            previous=earlier,
            permissions=spec.permissions,
        )
        self.connection.write_file(f"{self.directory}/{INSTALLED_FILE}", installed_json(installed).encode())

    def previous_appspec(self) -> appspec.Appspec:
        path = f"{self.layout.revision(self.previous)}/bundle/{APPSPEC_NAME}"
        text = self.connection.read_file(path, appspec.MAX_APPSPEC_BYTES + 1)
        if text is None:
            raise LocalTargetError(f"The previous revision {self.previous} has no {APPSPEC_NAME} on the host.")
        return appspec.parse_appspec(text, filename=APPSPEC_NAME)

    def run_script(
        self,
        event: str,
        script: appspec.Script,
        revision: appspec.Revision,
        environment: Mapping[str, str],
        timeout: float,
    ) -> tuple[EventStatus, str]:
        name = self.previous if revision == appspec.Revision.PREVIOUS else self.revision
        bundle = f"{self.layout.revision(name)}/bundle"
        path = self._script(bundle, script.location, event)
        command = shlex.quote(path)
        if script.runas and script.runas != self.target.user:
            user = shlex.quote(script.runas)
            self.note(event, f"runas {script.runas}: running it with sudo -n -u {script.runas}")
            refused = self._sudo_refusal(script.runas, f"sudo -n -u {user} -l -- {command}")
            if refused:
                return EventStatus.FAILED, refused
            command = f"sudo -n -u {user} --preserve-env={shlex.quote(','.join(environment))} -- {command}"
        try:
            status = self.connection.run(
                command,
                env=environment,
                cwd=bundle,
                timeout=timeout,
                on_line=lambda line: self.on_line(event, line),
            )
        except CommandTimedOut:
            return EventStatus.TIMED_OUT, f"did not finish within {timeout:g} seconds and was killed"
        if status != 0:
            return EventStatus.FAILED, f"exit status {status}"
        return EventStatus.SUCCEEDED, ""

    def _script(self, bundle: str, location: str, event: str) -> str:
        """The script's path on the host; like the agent, a script that is not executable is made so. Its path is
        looked up without following a link, and only a regular file is ever changed."""
        path = bundle
        parts = PurePosixPath(location).parts
        for index, part in enumerate(parts):
            path = f"{path}/{part}"
            mode = self.connection.mode(path)
            last = index == len(parts) - 1
            if mode is None or (not last and not stat.S_ISDIR(mode)):
                raise LocalTargetError(f"The script {location} is not in the bundle (or its path goes through a link).")
        if not stat.S_ISREG(mode):
            raise LocalTargetError(f"The script {location} is not a regular file of the bundle.")
        if mode & 0o111 != 0o111:
            self.note(event, f"{location} is not executable: making it executable, as CodeDeploy's agent does")
            self.connection.set_mode(path, (mode & 0o777) | 0o555)
        return path

    def _sudo_refusal(self, runas: str, probe: str) -> str:
        """Why sudo will not run the script as runas without a password, or "" when it will."""
        output: list[str] = []
        try:
            status = self.connection.run(probe, timeout=CONNECT_TIMEOUT, on_line=output.append)
        except CommandTimedOut:
            status = -1
        if status == 0:
            return ""
        detail = "; ".join(line for line in output[-3:] if line.strip()) or f"exit status {status}"
        return (
            f"sudo refused to run it as {runas} for {self.target.user} ({detail}). The deploy user needs a sudoers "
            f"rule such as '{self.target.user} ALL=({runas}) NOPASSWD:SETENV: ALL'."
        )

    def switch(self) -> None:
        self.connection.switch(self.layout.current, self.layout.current_target(self.revision))


class HostFiles(appspec.TargetFiles):
    """A host's own "/" over an open connection, as `appspec.install` writes to it."""

    def __init__(self, connection: SshTarget):
        self.connection = connection
        self._accounts: dict[tuple[str | None, str | None], tuple[int | None, int | None] | None] = {}

    @contextmanager
    def _errors(self, path: PurePosixPath) -> Iterator[None]:
        try:
            yield
        except RemoteFileError as error:
            raise appspec.InstallError(f"{path}: {error.reason}")

    def mode(self, path: PurePosixPath) -> int | None:
        with self._errors(path):
            return self.connection.mode(str(path))

    def make_directory(self, path: PurePosixPath) -> bool:
        with self._errors(path):
            return self.connection.make_directory(str(path))

    def remove_file(self, path: PurePosixPath) -> None:
        with self._errors(path):
            self.connection.remove_file(str(path))

    def remove_directory(self, path: PurePosixPath) -> bool:
        with self._errors(path):
            return self.connection.remove_directory(str(path))

    def make_link(self, target: str, path: PurePosixPath) -> None:
        with self._errors(path):
            self.connection.make_link(target, str(path))

    def copy_file(self, source: Path, path: PurePosixPath) -> None:
        with self._errors(path):
            self.connection.upload_file(source, str(path))

    def set_mode(self, path: PurePosixPath, mode: int) -> None:
        with self._errors(path):
            self.connection.set_mode(str(path), mode)

    def check_accounts(self, owner: str | None, group: str | None) -> bool:
        return self._ids(owner, group) is not None

    def set_owner(self, path: PurePosixPath, owner: str | None, group: str | None) -> None:
        ids = self._ids(owner, group)
        if ids is None:
            raise appspec.InstallError(f"permissions: {path}: no such user or group on the target")
        try:
            self.connection.set_owner(str(path), *ids)
        except RemoteFileError as error:
            if "denied" in error.reason.lower() or "not permitted" in error.reason.lower():
                raise appspec.InstallError(f"permissions: {path}: not permitted to change its owner or group")
            raise appspec.InstallError(f"{path}: {error.reason}")

    def _ids(self, owner: str | None, group: str | None) -> tuple[int | None, int | None] | None:
        """The host's uid of owner and gid of group (by the host's own accounts), or None when one is unknown."""
        key = (owner, group)
        if key not in self._accounts:
            output: list[str] = []
            status = self.connection.run(
                'uid=; gid=; if [ -n "$OWNER" ]; then uid=$(id -u "$OWNER") || exit 1; fi; '
                'if [ -n "$GROUP" ]; then gid=$(getent group "$GROUP" 2>/dev/null | cut -d: -f3); '
                '[ -n "$gid" ] || gid=$(awk -F: -v g="$GROUP" \'$1 == g { print $3; exit }\' /etc/group); '
                '[ -n "$gid" ] || exit 1; fi; echo "portal-ids=$uid:$gid"',
                env={"OWNER": owner or "", "GROUP": group or ""},
                timeout=CONNECT_TIMEOUT,
                on_line=output.append,
            )
            found = [line for line in output if re.fullmatch(r"portal-ids=\d*:\d*", line)]
            if status != 0 or not found:
                self._accounts[key] = None
            else:
                uid, gid = found[-1].removeprefix("portal-ids=").split(":")
                self._accounts[key] = (int(uid) if uid else None, int(gid) if gid else None)
        return self._accounts[key]
