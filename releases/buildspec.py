"""buildspec.yml version 0.2, read with CodeBuild's rules into a frozen model of the build.

A buildspec that CodeBuild would refuse raises `BuildspecError` naming the file, the line and the key path. Keys
CodeBuild knows but the portal does not implement (`proxy`, `batch`, `parameter-store`, `runtime-versions`…) are
accepted with a warning each, so the build page can list them instead of ignoring them in silence.
"""

import re
from dataclasses import dataclass, field
from enum import StrEnum

import yaml

from releases.specfile import NULL, SpecError, SpecReader, SpecWarning, join

MAX_BUILDSPEC_BYTES = 256 * 1024

PHASE_NAMES = ("install", "pre_build", "build", "post_build")
SHELLS = ("bash", "/bin/sh")
REPORT_FORMATS_NOT_SUPPORTED = (
    "CUCUMBERJSON",
    "NUNITXML",
    "NUNIT3XML",
    "TESTNGXML",
    "VISUALSTUDIOTRX",
    "CLOVERXML",
    "COBERTURAXML",
    "JACOCOXML",
    "SIMPLECOV",
)
VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
RESERVED_PREFIX = "CODEBUILD_"


class OnFailure(StrEnum):
    ABORT = "ABORT"
    CONTINUE = "CONTINUE"


class BuildspecError(SpecError):
    """A buildspec CodeBuild would refuse: where (file, line, key path) and why."""


class BuildspecWarning(SpecWarning):
    """A buildspec key accepted but not acted on, with the line it is on."""


@dataclass(frozen=True)
class Phase:
    name: str
    commands: tuple[str, ...] = ()
    finally_commands: tuple[str, ...] = ()
    on_failure: OnFailure | None = None


@dataclass(frozen=True)
class ArtifactSpec:
    """`artifacts` or one of its `secondary-artifacts`; identifier is None for the primary one."""

    identifier: str | None
    files: tuple[str, ...]
    name: str | None = None
    base_directory: str = ""
    discard_paths: bool = False
    exclude_paths: tuple[str, ...] = ()
    enable_symlinks: bool = False


@dataclass(frozen=True)
class ReportGroup:
    name: str
    files: tuple[str, ...]
    base_directory: str = ""
    discard_paths: bool = False
    file_format: str = "JUNITXML"


@dataclass(frozen=True)
class Buildspec:
    version: str = "0.2"
    shell: str = "bash"
    variables: tuple[tuple[str, str], ...] = ()
    exported_variables: tuple[str, ...] = ()
    phases: tuple[Phase, ...] = ()
    artifacts: ArtifactSpec | None = None
    secondary_artifacts: tuple[ArtifactSpec, ...] = ()
    reports: tuple[ReportGroup, ...] = ()
    cache_paths: tuple[str, ...] = ()
    warnings: tuple[BuildspecWarning, ...] = field(default=(), compare=False)

    def phase(self, name: str) -> Phase:
        """The phase of that name, or an empty one: CodeBuild goes through every phase, present or not."""
        for phase in self.phases:
            if phase.name == name:
                return phase
        return Phase(name=name)


def parse_buildspec(text: str | bytes, *, filename: str = "buildspec.yml") -> Buildspec:
    """Read a buildspec with CodeBuild's rules; raise BuildspecError naming file, line and key."""
    return _Reader(filename).read(text)


class _Reader(SpecReader):
    error = BuildspecError
    warning = BuildspecWarning
    max_bytes = MAX_BUILDSPEC_BYTES
    expected = "version: 0.2 and phases"

    def relative_path(self, node: yaml.Node, path: str) -> str:
        value = self.string(node, path).strip()
        if value.startswith("/") or ".." in value.split("/"):
            self.fail(node, path, "expected a path inside the source directory (not absolute, no '..')")
        return value.removeprefix("./").rstrip("/")

    # The file.

    def read(self, text: str | bytes) -> Buildspec:
        root = self.compose(text)
        top = self.mapping(
            root,
            "",
            ("version", "run-as", "env", "proxy", "batch", "phases", "reports", "artifacts", "cache"),
        )
        if "version" not in top:
            self.fail(root, "version", "missing (expected version: 0.2)")
        version_node = top["version"][1]
        version = self.string(version_node, "version")
        if version != "0.2":
            hint = " (v0.1 ran each command in its own shell; the portal runs 0.2 only)" if version == "0.1" else ""
            self.fail(version_node, "version", f"unsupported version {version!r}: expected 0.2{hint}")
        if "run-as" in top:
            self.string(top["run-as"][1], "run-as")
            self.warn(top["run-as"][0], "run-as", "not supported: every build runs as the sandbox's own user")
        for key in ("proxy", "batch"):
            if key in top:
                self.warn(top[key][0], key, "not supported: ignored")
        spec: dict = {}
        if "env" in top:
            spec.update(self.env(top["env"][1]))
        spec["phases"] = self.phases(top["phases"][1]) if "phases" in top else ()
        if "artifacts" in top:
            primary, secondary = self.artifacts(top["artifacts"][1])
            spec["artifacts"] = primary
            spec["secondary_artifacts"] = secondary
        if "reports" in top:
            spec["reports"] = self.reports(top["reports"][1])
        if "cache" in top:
            spec["cache_paths"] = self.cache(top["cache"][1])
        return Buildspec(version=version, warnings=tuple(self.warnings), **spec)

    def env(self, node: yaml.Node) -> dict:
        entries = self.mapping(
            node,
            "env",
            ("shell", "variables", "parameter-store", "secrets-manager", "exported-variables", "git-credential-helper"),
        )
        result: dict = {}
        if "shell" in entries:
            shell = self.string(entries["shell"][1], "env.shell")
            if shell not in SHELLS:
                self.fail(entries["shell"][1], "env.shell", f"expected bash or /bin/sh, not {shell!r}")
            result["shell"] = shell
        if "variables" in entries:
            variables = []
            for name, (key_node, value_node) in self.mapping(entries["variables"][1], "env.variables").items():
                path = f"env.variables.{name}"
                self.variable_name(key_node, path, name)
                variables.append((name, self.string(value_node, path)))
            result["variables"] = tuple(variables)
        for key in ("parameter-store", "secrets-manager"):
            if key in entries:
                names = self.mapping(entries[key][1], f"env.{key}")
                listed = ", ".join(names) or "nothing"
                self.warn(
                    entries[key][0],
                    f"env.{key}",
                    f"not supported ({listed} not set): use the repository's secrets instead",
                )
        if "exported-variables" in entries:
            exported = []
            value_node = entries["exported-variables"][1]
            for index, name in enumerate(self.strings(value_node, "env.exported-variables")):
                item = value_node.value[index]
                path = f"env.exported-variables[{index}]"
                self.variable_name(item, path, name, reserved_ok=True)
                if name.startswith("AWS_") or name.startswith(RESERVED_PREFIX):
                    self.warn(item, path, f"{name} cannot be exported (AWS_ and CODEBUILD_ names never are)")
                    continue
                exported.append(name)
            result["exported_variables"] = tuple(exported)
        if "git-credential-helper" in entries:
            if self.boolean(entries["git-credential-helper"][1], "env.git-credential-helper"):
                self.warn(
                    entries["git-credential-helper"][0],
                    "env.git-credential-helper",
                    "not supported: the build has no credentials for other repositories",
                )
        return result

    def variable_name(self, node: yaml.Node, path: str, name: str, *, reserved_ok: bool = False) -> None:
        if not VARIABLE_NAME.match(name):
            self.fail(node, path, "expected a variable name (letters, digits and _, not starting with a digit)")
        if not reserved_ok and name.startswith(RESERVED_PREFIX):
            self.fail(node, path, "the CODEBUILD_ prefix is reserved")

    def phases(self, node: yaml.Node) -> tuple[Phase, ...]:
        phases = []
        for name, (key_node, value_node) in self.mapping(node, "phases", PHASE_NAMES).items():
            phases.append(self.phase(name, key_node, value_node))
        return tuple(sorted(phases, key=lambda phase: PHASE_NAMES.index(phase.name)))

    def phase(self, name: str, key_node: yaml.Node, node: yaml.Node) -> Phase:
        path = f"phases.{name}"
        allowed = ("run-as", "on-failure", "commands", "finally")
        if name == "install":
            allowed += ("runtime-versions",)
        if isinstance(node, yaml.ScalarNode) and node.tag == NULL:
            self.fail(key_node, path, "a phase needs commands")
        entries = self.mapping(node, path, allowed)
        if "run-as" in entries:
            self.string(entries["run-as"][1], f"{path}.run-as")
            self.warn(entries["run-as"][0], f"{path}.run-as", "not supported: every build runs as the sandbox's user")
        if "runtime-versions" in entries:
            runtimes = self.mapping(entries["runtime-versions"][1], f"{path}.runtime-versions")
            self.warn(
                entries["runtime-versions"][0],
                f"{path}.runtime-versions",
                f"not supported ({', '.join(runtimes) or 'nothing'} not installed): the build uses the host's tools",
            )
        on_failure = None
        if "on-failure" in entries:
            value_node = entries["on-failure"][1]
            value = self.string(value_node, f"{path}.on-failure")
            if value not in OnFailure.__members__:
                self.fail(value_node, f"{path}.on-failure", f"expected ABORT or CONTINUE, not {value!r}")
            on_failure = OnFailure(value)
        commands: tuple[str, ...] = ()
        if "commands" in entries:
            commands = self.strings(entries["commands"][1], f"{path}.commands")
        if not commands and name != "install":
            where = entries["commands"][1] if "commands" in entries else key_node
            self.fail(where, f"{path}.commands", "a phase needs at least one command")
        finally_commands: tuple[str, ...] = ()
        if "finally" in entries:
            finally_commands = self.strings(entries["finally"][1], f"{path}.finally")
        return Phase(name=name, commands=commands, finally_commands=finally_commands, on_failure=on_failure)

    def artifacts(self, node: yaml.Node) -> tuple[ArtifactSpec | None, tuple[ArtifactSpec, ...]]:
        entries = self.mapping(node, "artifacts")
        secondary: list[ArtifactSpec] = []
        if "secondary-artifacts" in entries:
            for identifier, (key_node, value_node) in self.mapping(
                entries.pop("secondary-artifacts")[1], "artifacts.secondary-artifacts"
            ).items():
                path = f"artifacts.secondary-artifacts.{identifier}"
                if not VARIABLE_NAME.match(identifier):
                    self.fail(key_node, path, "expected an identifier (letters, digits and _)")
                secondary.append(self.artifact(identifier, self.mapping(value_node, path), value_node, path))
        primary = self.artifact(None, entries, node, "artifacts") if entries else None
        return primary, tuple(secondary)

    def artifact(self, identifier: str | None, entries: dict, node: yaml.Node, path: str) -> ArtifactSpec:
        allowed = ("files", "name", "base-directory", "discard-paths", "exclude-paths", "enable-symlinks", "s3-prefix")
        for key, (key_node, _) in entries.items():
            if key not in allowed:
                self.fail(key_node, join(path, key), f"unknown key (expected one of {', '.join(allowed)})")
        if "files" not in entries:
            self.fail(node, f"{path}.files", "missing: an artifact needs files")
        files = self.strings(entries["files"][1], f"{path}.files")
        if not files:
            self.fail(entries["files"][1], f"{path}.files", "an artifact needs at least one file pattern")
        spec = {"identifier": identifier, "files": files}
        if "name" in entries:
            spec["name"] = self.string(entries["name"][1], f"{path}.name")
        if "base-directory" in entries:
            spec["base_directory"] = self.relative_path(entries["base-directory"][1], f"{path}.base-directory")
        if "discard-paths" in entries:
            spec["discard_paths"] = self.boolean(entries["discard-paths"][1], f"{path}.discard-paths")
        if "exclude-paths" in entries:
            spec["exclude_paths"] = self.strings(entries["exclude-paths"][1], f"{path}.exclude-paths")
        if "enable-symlinks" in entries:
            spec["enable_symlinks"] = self.boolean(entries["enable-symlinks"][1], f"{path}.enable-symlinks")
        if "s3-prefix" in entries:
            self.string(entries["s3-prefix"][1], f"{path}.s3-prefix")
            self.warn(entries["s3-prefix"][0], f"{path}.s3-prefix", "not supported: artifacts are kept by the portal")
        return ArtifactSpec(**spec)

    def reports(self, node: yaml.Node) -> tuple[ReportGroup, ...]:
        groups = []
        for name, (_, value_node) in self.mapping(node, "reports").items():
            path = f"reports.{name}"
            entries = self.mapping(value_node, path, ("files", "base-directory", "discard-paths", "file-format"))
            if "files" not in entries:
                self.fail(value_node, f"{path}.files", "missing: a report group needs files")
            group = {"name": name, "files": self.strings(entries["files"][1], f"{path}.files")}
            if "base-directory" in entries:
                group["base_directory"] = self.relative_path(entries["base-directory"][1], f"{path}.base-directory")
            if "discard-paths" in entries:
                group["discard_paths"] = self.boolean(entries["discard-paths"][1], f"{path}.discard-paths")
            if "file-format" in entries:
                format_node = entries["file-format"][1]
                file_format = self.string(format_node, f"{path}.file-format").upper()
                if file_format in REPORT_FORMATS_NOT_SUPPORTED:
                    self.warn(format_node, f"{path}.file-format", f"{file_format} is not supported: group ignored")
                    continue
                if file_format != "JUNITXML":
                    self.fail(format_node, f"{path}.file-format", f"unknown report format {file_format!r}")
                group["file_format"] = file_format
            groups.append(ReportGroup(**group))
        return tuple(groups)

    def cache(self, node: yaml.Node) -> tuple[str, ...]:
        entries = self.mapping(node, "cache", ("paths", "key", "fallback-keys", "action"))
        for key in ("key", "fallback-keys", "action"):
            if key in entries:
                self.warn(entries[key][0], f"cache.{key}", "not supported: the cache is kept per repository")
        if "paths" not in entries:
            return ()
        return self.strings(entries["paths"][1], "cache.paths")
