"""Run a buildspec in a sandbox with CodeBuild's semantics, and collect what it made.

One shell runs the whole build, so `cd` and `export` carry from command to command and phase to phase. The runner
drives it over two pipes the build's commands cannot use: it sends one command at a time (base64, one per line) on
fd 3 and reads each exit status back on fd 4. The commands' output is the log, read line by line with secrets
masked; the runner's own lines start with "[Container]" as CodeBuild's do.

Transitions follow CodeBuild: the first failing command skips the rest of its phase and runs `finally`; a failed
phase goes where its `on-failure` says (ABORT ends the build, CONTINUE goes to the next phase), and without one an
INSTALL or PRE_BUILD failure ends the build, a BUILD failure still runs POST_BUILD, and artifacts are attempted
after POST_BUILD whatever happened in it. A time limit, a stop or the log limit ends the build at once.
"""

import base64
import fcntl
import os
import select
import shlex
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from releases import artifacts as artifact_files
from releases.buildspec import PHASE_NAMES, RESERVED_PREFIX, Buildspec, OnFailure, Phase
from releases.cache import restore_cache, save_cache
from releases.masking import SecretMasker
from releases.reports import Report, collect_report
from releases.sandbox import SANDBOX_WORKSPACE, BuildDirectory, Limits, Sandbox, SandboxError, give_to

# The longest line the log keeps whole; a longer one is cut into lines of this size.
MAX_LINE_BYTES = 16 * 1024
PREFIX = "[Container] "

# The shell's side of the protocol. A command runs with the protocol's pipes closed and stdin empty, in the shell
# itself (so cd and export persist); a query (a line starting with Q) runs in a subshell and answers in base64.
DRIVER = r"""
while IFS= read -r __codebuild_line <&3; do
  __codebuild_command=$(printf '%s' "${__codebuild_line#?}" | base64 -d)
  case $__codebuild_line in
    Q*) (eval "$__codebuild_command") 3<&- 4>&- </dev/null 2>/dev/null | base64 -w0 >&4; echo >&4 ;;
    *) eval "$__codebuild_command" 3<&- 4>&- </dev/null; echo "$?" >&4 ;;
  esac
done
"""
DEFAULT_LIMITS = Limits()
SHELL_PATHS = {"bash": "/bin/bash", "/bin/sh": "/bin/sh"}


class Status(StrEnum):
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    FAULT = "FAULT"
    TIMED_OUT = "TIMED_OUT"
    STOPPED = "STOPPED"


@dataclass(frozen=True)
class BuildContext:
    """What CodeBuild's CODEBUILD_* variables tell a build about itself."""

    build_id: str
    build_number: int
    source_version: str
    resolved_source_version: str
    initiator: str = ""
    source_repo_url: str = ""
    webhook_trigger: str = ""
    webhook_event: str = ""
    webhook_head_ref: str = ""
    webhook_base_ref: str = ""
    webhook_actor: str = ""
    start_time: float = field(default_factory=time.time)

    def variables(self) -> dict[str, str]:
        return {
            "CODEBUILD_CI": "true",
            "CODEBUILD_BUILD_ID": self.build_id,
            "CODEBUILD_BUILD_NUMBER": str(self.build_number),
            "CODEBUILD_INITIATOR": self.initiator,
            "CODEBUILD_SOURCE_VERSION": self.source_version,
            "CODEBUILD_RESOLVED_SOURCE_VERSION": self.resolved_source_version,
            "CODEBUILD_SOURCE_REPO_URL": self.source_repo_url,
            "CODEBUILD_SRC_DIR": SANDBOX_WORKSPACE,
            "CODEBUILD_START_TIME": str(int(self.start_time * 1000)),
            "CODEBUILD_WEBHOOK_TRIGGER": self.webhook_trigger,
            "CODEBUILD_WEBHOOK_EVENT": self.webhook_event,
            "CODEBUILD_WEBHOOK_HEAD_REF": self.webhook_head_ref,
            "CODEBUILD_WEBHOOK_BASE_REF": self.webhook_base_ref,
            "CODEBUILD_WEBHOOK_ACTOR_ACCOUNT_ID": self.webhook_actor,
            "CODEBUILD_BUILD_SUCCEEDING": "1",
        }


@dataclass(frozen=True)
class PhaseResult:
    name: str
    status: Status
    started_at: float
    ended_at: float
    message: str = ""

    @property
    def duration_seconds(self) -> float:
        return self.ended_at - self.started_at


@dataclass(frozen=True)
class BuildResult:
    status: Status
    phases: tuple[PhaseResult, ...]
    exported_variables: dict[str, str]
    artifacts: tuple[artifact_files.CollectedArtifact, ...] = ()
    reports: tuple[Report, ...] = ()
    message: str = ""
    log_bytes: int = 0

    def phase(self, name: str) -> PhaseResult | None:
        return next((phase for phase in self.phases if phase.name == name), None)


def build_environment(
    spec: Buildspec,
    context: BuildContext,
    *,
    repository_variables: Mapping[str, str] = {},
    secrets: Mapping[str, str] = {},
    start_variables: Mapping[str, str] = {},
) -> tuple[dict[str, str], list[str]]:
    """The build's variables (start > repository and its secrets > buildspec; CODEBUILD_* are the portal's) and notes."""
    environment: dict[str, str] = {}
    notes = []
    for layer in (dict(spec.variables), repository_variables, secrets, start_variables):
        for name, value in layer.items():
            if name.startswith(RESERVED_PREFIX):
                notes.append(f"{name} is not set: the CODEBUILD_ prefix is reserved")
                continue
            environment[name] = value
    environment.update(context.variables())
    return environment, notes


class _Interrupted(Exception):
    def __init__(self, status: Status, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class _ShellExited(Exception):
    pass


class _Log:
    """The log as lines: output cut at newlines, secrets masked, the size bounded."""

    def __init__(self, on_line: Callable[[str], None], limit: int, masker: SecretMasker):
        self.on_line = on_line
        self.limit = limit
        self.masker = masker
        self.pending = b""
        self.size = 0
        self.exceeded = False

    def feed(self, data: bytes) -> None:
        if self.exceeded:
            return
        if self.size + len(data) > self.limit:
            data = data[: self.limit - self.size]
            self.exceeded = True
        self.size += len(data)
        self.pending += data
        *lines, self.pending = self.pending.split(b"\n")
        for line in lines:
            self._emit_bytes(line)
        while len(self.pending) > MAX_LINE_BYTES:
            self._emit_bytes(self.pending[:MAX_LINE_BYTES])
            self.pending = self.pending[MAX_LINE_BYTES:]
        if self.exceeded:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self._emit_bytes(self.pending)
            self.pending = b""

    def _emit_bytes(self, line: bytes) -> None:
        for start in range(0, max(len(line), 1), MAX_LINE_BYTES):
            self.emit(line[start : start + MAX_LINE_BYTES].rstrip(b"\r").decode("utf-8", "replace"))

    def emit(self, text: str) -> None:
        self.on_line(self.masker.mask(text))

    def note(self, text: str) -> None:
        """A line of the runner's own (a multi-line command gives one line per line, each marked)."""
        self.flush()
        for line in text.splitlines() or [""]:
            self.emit(PREFIX + line)


class _Shell:
    """The build's one shell, reached through its command and status pipes."""

    def __init__(self, sandbox: Sandbox, commands_fd: int, status_fd: int, log: _Log, deadline: float, should_stop):
        self.sandbox = sandbox
        self.commands_fd = commands_fd
        self.status_fd = status_fd
        self.output_fd = sandbox.output.fileno()
        self.log = log
        self.deadline = deadline
        self.should_stop = should_stop
        self.answer = b""
        self.alive = True
        os.set_blocking(self.output_fd, False)
        os.set_blocking(self.status_fd, False)

    def run(self, command: str) -> int:
        return int(self._ask("R", command))

    def query(self, command: str) -> str:
        return base64.b64decode(self._ask("Q", command)).decode("utf-8", "replace")

    def _ask(self, kind: str, command: str) -> str:
        if not self.alive:
            raise _ShellExited()
        line = (kind + base64.b64encode(command.encode("utf-8")).decode("ascii") + "\n").encode("ascii")
        try:
            while line:
                self._check()
                _, writable, _ = select.select([], [self.commands_fd], [], 0.1)
                if writable:
                    line = line[os.write(self.commands_fd, line) :]
        except BrokenPipeError:
            self.alive = False
            raise _ShellExited()
        while b"\n" not in self.answer:
            self._check()
            readable, _, _ = select.select([self.output_fd, self.status_fd], [], [], 0.1)
            if self.output_fd in readable:
                self._read_output()
            if self.status_fd in readable:
                chunk = os.read(self.status_fd, 65536)
                if not chunk:
                    self.alive = False
                    self.drain()
                    raise _ShellExited()
                self.answer += chunk
        # What the command printed before it ended is already in the output pipe: log it before the next line.
        self.drain()
        answer, self.answer = self.answer.split(b"\n", 1)
        return answer.decode("ascii")

    def _read_output(self) -> bool:
        try:
            chunk = os.read(self.output_fd, 65536)
        except BlockingIOError:
            return False
        self.log.feed(chunk)
        return bool(chunk)

    def drain(self) -> None:
        while select.select([self.output_fd], [], [], 0)[0] and self._read_output():
            if self.log.exceeded:
                return

    def _check(self) -> None:
        if self.log.exceeded:
            raise _Interrupted(Status.FAILED, f"the log passed its limit of {self.log.limit} bytes")
        if time.monotonic() >= self.deadline:
            raise _Interrupted(Status.TIMED_OUT, "the build passed its time limit")
        if self.should_stop():
            raise _Interrupted(Status.STOPPED, "the build was stopped")


def _failure_reason(command: str, status: int) -> str:
    return f"COMMAND_EXECUTION_ERROR: Error while executing command: {command}. Reason: exit status {status}"


class _Build:
    """One build's phases, results and captured values, around its log."""

    def __init__(self, spec: Buildspec, directory: BuildDirectory, *, limits: Limits, secrets, on_line):
        self.spec = spec
        self.directory = directory
        self.secrets = secrets
        self.masker = SecretMasker(secrets.values())
        self.log = _Log(on_line, limits.log_bytes, self.masker)
        self.phases: list[PhaseResult] = []
        self.exported: dict[str, str] = {}
        self.artifact_names: dict[str | None, str] = {}

    def run_phases(self, shell: _Shell) -> tuple[bool, Status | None, str]:
        """Run the four phases; returns (whether artifacts come next, the status that ended the build early, why)."""
        succeeding = True
        for name in PHASE_NAMES:
            phase = self.spec.phase(name)
            if not succeeding:
                shell.run("export CODEBUILD_BUILD_SUCCEEDING=0")
            started = time.time()
            self.log.note(f"Entering phase {name.upper()}")
            try:
                failure = self.run_commands(shell, phase)
            except _Interrupted as interrupted:
                self.end_phase(name, interrupted.status, started, interrupted.message)
                return False, interrupted.status, interrupted.message
            except _ShellExited:
                message = f"the build's shell exited (status {shell.sandbox.wait()})"
                self.end_phase(name, Status.FAILED, started, message)
                return False, None, message
            self.end_phase(name, Status.FAILED if failure else Status.SUCCEEDED, started, failure)
            if failure:
                succeeding = False
                if phase.on_failure is OnFailure.ABORT or (
                    phase.on_failure is None and name in ("install", "pre_build")
                ):
                    self.capture(shell)
                    return False, None, ""
        self.capture(shell)
        return True, None, ""

    def run_commands(self, shell: _Shell, phase: Phase) -> str:
        """Run a phase's commands then its finally; the reason of the first failure, or "" when all succeeded."""
        failure = ""
        for block in (phase.commands, phase.finally_commands):
            for command in block:
                self.log.note(f"Running command {command}")
                status = shell.run(command)
                if status != 0:
                    failure = failure or _failure_reason(command, status)
                    self.log.note(f"Command did not exit successfully {command} exit status {status}")
                    break
        return failure

    def end_phase(self, name: str, status: Status, started: float, message: str = "") -> None:
        self.phases.append(PhaseResult(name.upper(), status, started, time.time(), message))
        if message:
            self.log.note(f"Phase context status code: {message}")
        self.log.note(f"Phase complete: {name.upper()} State: {status}")

    def capture(self, shell: _Shell) -> None:
        """Freeze the exported variables and expand the artifacts' names while the shell still holds their values."""
        names = [name for name in self.spec.exported_variables if name not in self.secrets]
        for name in self.spec.exported_variables:
            if name in self.secrets:
                self.log.note(f"Warning: {name} is a secret and is not exported")
        if names:
            values = shell.query("printf '%s\\0' " + " ".join(f'"${{{name}-}}"' for name in names)).split("\0")
            self.exported = {name: self.masker.mask(value) for name, value in zip(names, values, strict=False)}
        for spec in (self.spec.artifacts, *self.spec.secondary_artifacts):
            if spec is not None and spec.name:
                escaped = spec.name.replace("\\", "\\\\").replace('"', '\\"').replace("`", "\\`")
                self.artifact_names[spec.identifier] = shell.query(f'printf "%s" "{escaped}"')

    def upload(self, artifacts_dir: Path | None, cache_dir: Path | None, default_name: str, packaging: str):
        started = time.time()
        self.log.note("Entering phase UPLOAD_ARTIFACTS")
        collected = []
        reports = []
        failure = ""
        for group in self.spec.reports:
            report = collect_report(group, self.directory.workspace)
            for error in report.errors:
                self.log.note(f"Warning: report group {group.name}: {error}")
            reports.append(report)
        if artifacts_dir is not None:
            for spec in (self.spec.artifacts, *self.spec.secondary_artifacts):
                if spec is None:
                    continue
                default = spec.identifier or default_name
                name = artifact_files.artifact_name(self.artifact_names.get(spec.identifier), default)
                try:
                    artifact = artifact_files.collect_artifact(
                        spec, self.directory.workspace, artifacts_dir, name=name, packaging=packaging
                    )
                except artifact_files.ArtifactError as error:
                    failure = failure or f"CLIENT_ERROR: {error}"
                    self.log.note(f"Artifact {spec.identifier or 'primary'}: {error}")
                    continue
                for link in artifact.skipped_links:
                    self.log.note(f"Warning: {link} is a symbolic link and was left out (set enable-symlinks: yes)")
                self.log.note(f"Artifact {name}: {len(artifact.files)} files, sha256 {artifact.sha256}")
                collected.append(artifact)
        if cache_dir is not None and self.spec.cache_paths:
            for note in save_cache(self.spec.cache_paths, self.directory, cache_dir):
                self.log.note(note)
        self.end_phase("upload_artifacts", Status.FAILED if failure else Status.SUCCEEDED, started, failure)
        return tuple(collected), tuple(reports)


def _high_fd(fd: int) -> int:
    high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return high


def run_build(
    spec: Buildspec,
    directory: BuildDirectory,
    *,
    context: BuildContext,
    limits: Limits = DEFAULT_LIMITS,
    host_uid: int | None = None,
    repository_variables: Mapping[str, str] = {},
    secrets: Mapping[str, str] = {},
    start_variables: Mapping[str, str] = {},
    on_line: Callable[[str], None] = lambda line: None,
    should_stop: Callable[[], bool] = lambda: False,
    artifacts_dir: Path | None = None,
    cache_dir: Path | None = None,
    packaging: str = "zip",
    default_artifact_name: str = "artifact",
    network: bool = False,
) -> BuildResult:
    """Run spec over directory's workspace in a sandbox; log lines go to on_line as they come."""
    environment, notes = build_environment(
        spec, context, repository_variables=repository_variables, secrets=secrets, start_variables=start_variables
    )
    build = _Build(spec, directory, limits=limits, secrets=dict(secrets), on_line=on_line)
    log = build.log
    for warning in spec.warnings:
        log.note(f"Warning: buildspec line {warning.line}, {warning.path}: {warning.message}")
    for note in notes:
        log.note(f"Warning: {note}")
    if cache_dir is not None and spec.cache_paths:
        for note in restore_cache(spec.cache_paths, directory, cache_dir):
            log.note(note)
    if host_uid is not None and os.geteuid() == 0:
        give_to(directory.workspace, host_uid)
        give_to(directory.home, host_uid)

    commands_read, commands_write = os.pipe()
    status_read, status_write = os.pipe()
    # The shell's ends move to 10 and up, clear of the 3 and 4 the driver moves them to.
    commands_read, status_write = (_high_fd(fd) for fd in (commands_read, status_write))
    # bash moves the pipes to 3 and 4 (dash reads only one-digit descriptors), then becomes the build's shell.
    shell_command = [
        "/bin/bash",
        "-c",
        f'exec 3<&{commands_read} 4>&{status_write} {commands_read}<&- {status_write}>&- && exec "$0" -c "$1"',
        SHELL_PATHS[spec.shell],
        DRIVER,
    ]
    deadline = time.monotonic() + limits.timeout_seconds
    try:
        sandbox = Sandbox(
            directory,
            shell_command,
            limits=limits,
            host_uid=host_uid,
            pass_fds=(commands_read, status_write),
            network=network,
        )
    except SandboxError as error:
        for fd in (commands_read, commands_write, status_read, status_write):
            os.close(fd)
        log.note(f"Phase context status code: FAULT {error}")
        return BuildResult(Status.FAULT, (), {}, message=str(error), log_bytes=log.size)
    os.close(commands_read)
    os.close(status_write)
    shell = _Shell(sandbox, commands_write, status_read, log, deadline, should_stop)
    ended: Status | None = None
    message = ""
    try:
        exports = " ".join(f"{name}={shlex.quote(value)}" for name, value in environment.items())
        shell.run(f"export {exports}")
        upload, ended, message = build.run_phases(shell)
    except _Interrupted as interrupted:
        upload, ended, message = False, interrupted.status, interrupted.message
    except _ShellExited:
        upload, ended, message = False, Status.FAULT, "the build's shell ended before the first phase"
    finally:
        if not log.exceeded:
            shell.drain()
        grace = limits.kill_grace_seconds if ended in (Status.TIMED_OUT, Status.STOPPED) else 0
        sandbox.stop(grace)
        if not log.exceeded:
            shell.drain()
        log.flush()
        os.close(commands_write)
        os.close(status_read)
        sandbox.output.close()
    artifacts: tuple = ()
    reports: tuple = ()
    if upload:
        artifacts, reports = build.upload(artifacts_dir, cache_dir, default_artifact_name, packaging)
    if ended is None:
        failed = [phase for phase in build.phases if phase.status != Status.SUCCEEDED]
        ended = Status.FAILED if failed else Status.SUCCEEDED
        message = message or (failed[0].message if failed else "")
    log.note(f"Build ended {ended}{': ' + message if message else ''}")
    return BuildResult(
        status=ended,
        phases=tuple(build.phases),
        exported_variables=build.exported,
        artifacts=artifacts,
        reports=reports,
        message=message,
        log_bytes=log.size,
    )
