"""pipeline.yml version 1, read with CodePipeline's structure rules into a frozen model of a pipeline.

The format follows CodePipeline's pipeline structure (stages of actions, `runOrder`, failure conditions), written as
YAML with the portal's action types:

    version: 1
    name: release
    execution_mode: SUPERSEDED        # or QUEUED
    source:
      branch: main
    stages:
      - name: Build
        actions:
          - {name: Build, type: build}
      - name: Deploy-dev
        actions:
          - {name: Deploy, type: deploy, environment: dev}
        on_failure: {result: ROLLBACK}
      - name: Approval
        actions:
          - name: Approve
            type: approval
            environment: uat          # whose reviewers answer; by default the next deploy's environment
            timeout_minutes: 10080
            custom_data: Check the release notes.
            review_url: https://wiki.example.com/release
      - name: Deploy-uat
        actions:
          - {name: Deploy, type: deploy, environment: uat}
          - {name: Notify, type: invoke, run_order: 2, url: https://chat.example.com/hook, secret: CHAT_HOOK}

The source is the first stage (named Source, one action named Source), so `stages` lists the stages after it.
A file CodePipeline would refuse raises `PipelineSpecError` naming the file, the line and the key path. Keys
CodePipeline knows but the portal does not act on (`variables`, `triggers`, a stage's `before_entry`, an action's
`region`, an approval's `notification_arn`…) are accepted with a warning each, so the pipeline page can list them.

Who may answer an approval is not written here: an approval names the environment it guards (by default the
environment of the first deploy after it), and that environment's reviewers and required approvals answer it. The
file is in the repository, so anyone who can push could otherwise choose their own approvers.
"""

import re
from dataclasses import dataclass, field, replace
from enum import StrEnum

import yaml

from releases.specfile import INT, SpecError, SpecReader, SpecWarning, join

MAX_PIPELINE_BYTES = 256 * 1024

# CodePipeline's pattern and length for pipeline, stage and action names.
NAME = re.compile(r"[A-Za-z0-9.@_-]{1,100}\Z")
# An environment's name as the portal accepts it (one path component of a local target's directory).
ENVIRONMENT_NAME = re.compile(r"[A-Za-z0-9._-]{1,100}\Z")
SECRET_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
SOURCE_STAGE = "Source"
SOURCE_ACTION = "Source"
DEFAULT_PIPELINE_NAME = "release"

MIN_STAGES = 2
MAX_ACTIONS_PER_STAGE = 50
# An approval nobody answers fails after 7 days; the CDK bounds the timeout to 5 minutes…60 days (§5, "Manual
# approval").
DEFAULT_APPROVAL_MINUTES = 7 * 24 * 60
MIN_APPROVAL_MINUTES = 5
MAX_APPROVAL_MINUTES = 60 * 24 * 60


class ExecutionMode(StrEnum):
    SUPERSEDED = "SUPERSEDED"
    QUEUED = "QUEUED"


class ActionType(StrEnum):
    SOURCE = "source"
    BUILD = "build"
    DEPLOY = "deploy"
    APPROVAL = "approval"
    INVOKE = "invoke"


class FailureResult(StrEnum):
    ROLLBACK = "ROLLBACK"
    RETRY = "RETRY"


class RetryMode(StrEnum):
    FAILED_ACTIONS = "FAILED_ACTIONS"
    ALL_ACTIONS = "ALL_ACTIONS"


class PipelineSpecError(SpecError):
    """A pipeline.yml CodePipeline would refuse: where (file, line, key path) and why."""


class PipelineSpecWarning(SpecWarning):
    """A pipeline.yml key accepted but not acted on, with the line it is on."""


@dataclass(frozen=True)
class Action:
    """One action of a stage. `environment` is where a deploy goes, or whose reviewers answer an approval."""

    name: str
    type: ActionType
    run_order: int = 1
    environment: str | None = None
    branch: str | None = None
    timeout_minutes: int | None = None
    custom_data: str = ""
    review_url: str = ""
    # After how many hours an unanswered approval reminds its approvers; None: the site's default.
    remind_hours: int | None = None
    url: str = ""
    secret: str = ""
    line: int = field(default=0, compare=False)


@dataclass(frozen=True)
class OnFailure:
    """A stage's automatic behaviour when it fails (§5, "Retry": `result` ROLLBACK | RETRY, with `retryMode`)."""

    result: FailureResult
    retry_mode: RetryMode = RetryMode.FAILED_ACTIONS


@dataclass(frozen=True)
class Stage:
    name: str
    actions: tuple[Action, ...]
    on_failure: OnFailure | None = None
    line: int = field(default=0, compare=False)

    @property
    def run_orders(self) -> tuple[int, ...]:
        """The stage's runOrder values, lowest first: equal values run in parallel, a higher one later (§5)."""
        return tuple(sorted({action.run_order for action in self.actions}))

    def group(self, run_order: int) -> tuple[Action, ...]:
        return tuple(action for action in self.actions if action.run_order == run_order)

    def action(self, name: str) -> Action:
        for action in self.actions:
            if action.name == name:
                return action
        raise KeyError(f"{self.name} has no action {name!r}")


@dataclass(frozen=True)
class PipelineSpec:
    """A pipeline's structure: its first stage is the source, the others follow in order."""

    name: str
    stages: tuple[Stage, ...]
    execution_mode: ExecutionMode = ExecutionMode.SUPERSEDED
    warnings: tuple[PipelineSpecWarning, ...] = field(default=(), compare=False)

    @property
    def source_branch(self) -> str:
        return self.stages[0].actions[0].branch

    @property
    def stage_names(self) -> tuple[str, ...]:
        return tuple(stage.name for stage in self.stages)

    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(f"The pipeline {self.name} has no stage {name!r}")

    def index(self, name: str) -> int:
        return self.stage_names.index(name)

    def environments(self) -> tuple[str, ...]:
        """The environments the pipeline deploys to, in pipeline order."""
        return tuple(
            action.environment for stage in self.stages for action in _in_order(stage) if action.type == "deploy"
        )


def _in_order(stage: Stage) -> list[Action]:
    return sorted(stage.actions, key=lambda action: action.run_order)


def parse_pipeline(text: str | bytes, *, filename: str = "pipeline.yml") -> PipelineSpec:
    """Read a pipeline.yml with CodePipeline's structure rules; raise PipelineSpecError naming file, line and key."""
    return _Reader(filename).read(text)


def default_pipeline_yaml(default_branch: str, environments: tuple[str, str] = ("dev", "uat")) -> str:
    """The pipeline.yml of the default pipeline, for a repository that has none and for the release template."""
    first, second = environments
    return f"""\
version: 1
name: {DEFAULT_PIPELINE_NAME}
execution_mode: SUPERSEDED
source:
  branch: {_quoted(default_branch)}
stages:
  - name: Build
    actions:
      - name: Build
        type: build
  - name: Deploy-{first}
    actions:
      - name: Deploy
        type: deploy
        environment: {_quoted(first)}
  - name: Approval
    actions:
      - name: Approve
        type: approval
        environment: {_quoted(second)}
        timeout_minutes: {DEFAULT_APPROVAL_MINUTES}
  - name: Deploy-{second}
    actions:
      - name: Deploy
        type: deploy
        environment: {_quoted(second)}
"""


def default_pipeline(default_branch: str, environments: tuple[str, str] = ("dev", "uat")) -> PipelineSpec:
    """The pipeline named `release`: Source (the default branch) → Build → Deploy(first) → Approval → Deploy(second).

    It is read from its own pipeline.yml, so it passes the same rules as a repository's file.
    """
    return parse_pipeline(default_pipeline_yaml(default_branch, environments), filename="default pipeline")


def _quoted(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class _Reader(SpecReader):
    error = PipelineSpecError
    warning = PipelineSpecWarning
    max_bytes = MAX_PIPELINE_BYTES
    expected = "version: 1, source and stages"

    def name(self, node: yaml.Node, path: str) -> str:
        value = self.string(node, path)
        if not NAME.match(value):
            self.fail(node, path, "expected a name of 1 to 100 letters, digits and . @ _ -")
        return value

    def integer(self, node: yaml.Node, path: str) -> int:
        if not isinstance(node, yaml.ScalarNode) or node.tag != INT:
            self.fail(node, path, "expected a whole number")
        try:
            return int(node.value.replace("_", ""), 0)
        except ValueError:
            self.fail(node, path, "expected a whole number")

    def environment(self, node: yaml.Node, path: str) -> str:
        value = self.string(node, path).strip()
        if not ENVIRONMENT_NAME.match(value) or value in (".", ".."):
            self.fail(node, path, "expected an environment's name (letters, digits, '-', '_' and '.')")
        return value

    def ignored(self, entries: dict, path: str, keys: dict[str, str]) -> None:
        for key, why in keys.items():
            if key in entries:
                self.warn(entries[key][0], join(path, key), f"not supported: {why}")

    # The file.

    def read(self, text: str | bytes) -> PipelineSpec:
        root = self.compose(text)
        top = self.mapping(
            root,
            "",
            (
                "version",
                "name",
                "execution_mode",
                "source",
                "stages",
                "pipeline_type",
                "variables",
                "triggers",
                "artifact_store",
                "role_arn",
            ),
        )
        if "version" not in top:
            self.fail(root, "version", "missing (expected version: 1)")
        version_node = top["version"][1]
        if self.string(version_node, "version") != "1":
            self.fail(version_node, "version", f"unsupported version {version_node.value!r}: expected 1")
        self.ignored(
            top,
            "",
            {
                "pipeline_type": "the portal follows V2 pipelines' rules",
                "variables": "pipeline variables are not set; use the repository's variables and secrets",
                "triggers": "an execution starts on every push to the source branch",
                "artifact_store": "artifacts are kept by the portal",
                "role_arn": "actions run with the portal's own rights",
            },
        )
        name = self.name(top["name"][1], "name") if "name" in top else DEFAULT_PIPELINE_NAME
        mode = ExecutionMode.SUPERSEDED
        if "execution_mode" in top:
            mode = self.execution_mode(top["execution_mode"][1])
        if "source" not in top:
            self.fail(root, "source", "missing (expected source: {branch: main})")
        source = self.source(top["source"][1], line=top["source"][0].start_mark.line + 1)
        if "stages" not in top:
            self.fail(root, "stages", f"missing: a pipeline has at least {MIN_STAGES} stages, the source counting")
        stages = (source, *self.stages(top["stages"][1]))
        stages = self.check_order(stages)
        return PipelineSpec(name=name, stages=stages, execution_mode=mode, warnings=tuple(self.warnings))

    def execution_mode(self, node: yaml.Node) -> ExecutionMode:
        value = self.string(node, "execution_mode")
        if value == "PARALLEL":
            self.fail(
                node,
                "execution_mode",
                "PARALLEL is not supported: executions would run independently, with no stage rollback, and two of "
                "them could deploy to an environment at once; use SUPERSEDED or QUEUED",
            )
        if value not in ExecutionMode.__members__:
            self.fail(node, "execution_mode", f"expected SUPERSEDED or QUEUED, not {value!r}")
        return ExecutionMode(value)

    def source(self, node: yaml.Node, *, line: int) -> Stage:
        entries = self.mapping(node, "source", ("branch", "detect_changes", "output_artifact_format"))
        if "branch" not in entries:
            self.fail(node, "source.branch", "missing: the branch whose pushes start an execution")
        branch_node = entries["branch"][1]
        branch = self.string(branch_node, "source.branch").strip()
        if not branch or branch.startswith("refs/") or " " in branch:
            self.fail(branch_node, "source.branch", "expected a branch name, such as main")
        self.ignored(
            entries,
            "source",
            {
                "detect_changes": "every push to the branch starts an execution",
                "output_artifact_format": "the source is the pushed commit",
            },
        )
        action = Action(name=SOURCE_ACTION, type=ActionType.SOURCE, branch=branch, line=line)
        return Stage(name=SOURCE_STAGE, actions=(action,), line=line)

    def stages(self, node: yaml.Node) -> list[Stage]:
        if not isinstance(node, yaml.SequenceNode):
            self.fail(node, "stages", "expected a list of stages")
        if not node.value:
            self.fail(node, "stages", f"a pipeline has at least {MIN_STAGES} stages, the source counting: add one")
        stages = []
        seen = {SOURCE_STAGE: None}
        for index, item in enumerate(node.value):
            stage = self.stage(item, f"stages[{index}]")
            if stage.name in seen:
                where = "the source stage" if seen[stage.name] is None else f"line {seen[stage.name]}"
                self.fail(item, f"stages[{index}].name", f"stage {stage.name!r} is already named ({where})")
            seen[stage.name] = stage.line
            stages.append(stage)
        return stages

    def stage(self, node: yaml.Node, path: str) -> Stage:
        entries = self.mapping(node, path, ("name", "actions", "on_failure", "before_entry", "on_success"))
        if "name" not in entries:
            self.fail(node, f"{path}.name", "missing: every stage has a name")
        name = self.name(entries["name"][1], f"{path}.name")
        self.ignored(
            entries,
            path,
            {
                "before_entry": "entry conditions are not checked",
                "on_success": "success conditions are not checked",
            },
        )
        if "actions" not in entries:
            self.fail(node, f"{path}.actions", f"missing: a stage has 1 to {MAX_ACTIONS_PER_STAGE} actions")
        actions_node = entries["actions"][1]
        if not isinstance(actions_node, yaml.SequenceNode):
            self.fail(actions_node, f"{path}.actions", "expected a list of actions")
        count = len(actions_node.value)
        if not 1 <= count <= MAX_ACTIONS_PER_STAGE:
            self.fail(actions_node, f"{path}.actions", f"a stage has 1 to {MAX_ACTIONS_PER_STAGE} actions, not {count}")
        actions = []
        seen: dict[str, int] = {}
        for index, item in enumerate(actions_node.value):
            action_path = f"{path}.actions[{index}]"
            action = self.action(item, action_path)
            if action.name in seen:
                self.fail(
                    item,
                    f"{action_path}.name",
                    f"action {action.name!r} is already named in stage {name} (line {seen[action.name]})",
                )
            seen[action.name] = action.line
            actions.append(action)
        on_failure = None
        if "on_failure" in entries:
            on_failure = self.on_failure(entries["on_failure"][1], f"{path}.on_failure")
        return Stage(name=name, actions=tuple(actions), on_failure=on_failure, line=self.line(node))

    def line(self, node: yaml.Node) -> int:
        return node.start_mark.line + 1

    def on_failure(self, node: yaml.Node, path: str) -> OnFailure:
        entries = self.mapping(node, path, ("result", "retry_mode", "conditions"))
        self.ignored(entries, path, {"conditions": "the stage's result applies whenever it fails"})
        if "result" not in entries:
            self.fail(node, f"{path}.result", "missing (expected ROLLBACK or RETRY)")
        result_node = entries["result"][1]
        result = self.string(result_node, f"{path}.result")
        if result not in FailureResult.__members__:
            hint = ": leave on_failure out to let the stage fail" if result == "FAIL" else ""
            self.fail(result_node, f"{path}.result", f"expected ROLLBACK or RETRY, not {result!r}{hint}")
        retry_mode = RetryMode.FAILED_ACTIONS
        if "retry_mode" in entries:
            mode_node = entries["retry_mode"][1]
            if result != FailureResult.RETRY:
                self.fail(mode_node, f"{path}.retry_mode", "only a RETRY result has a retry mode")
            mode = self.string(mode_node, f"{path}.retry_mode")
            if mode not in RetryMode.__members__:
                self.fail(mode_node, f"{path}.retry_mode", f"expected FAILED_ACTIONS or ALL_ACTIONS, not {mode!r}")
            retry_mode = RetryMode(mode)
        return OnFailure(result=FailureResult(result), retry_mode=retry_mode)

    def action(self, node: yaml.Node, path: str) -> Action:
        entries = self.mapping(
            node,
            path,
            (
                "name",
                "type",
                "run_order",
                "environment",
                "timeout_minutes",
                "custom_data",
                "review_url",
                "remind_hours",
                "url",
                "secret",
                "reviewers",
                "required_approvals",
                "notification_arn",
                "region",
                "namespace",
                "role_arn",
                "input_artifacts",
                "output_artifacts",
            ),
        )
        if "name" not in entries:
            self.fail(node, f"{path}.name", "missing: every action has a name")
        name = self.name(entries["name"][1], f"{path}.name")
        if "type" not in entries:
            self.fail(node, f"{path}.type", "missing (expected build, deploy, approval or invoke)")
        type_node = entries["type"][1]
        kind = self.string(type_node, f"{path}.type")
        if kind == "source":
            self.fail(type_node, f"{path}.type", "only the first stage holds the source: set source.branch instead")
        if kind == "test":
            self.fail(
                type_node,
                f"{path}.type",
                "the portal has no test action: the build runs the tests and reports them (buildspec reports)",
            )
        if kind not in ("build", "deploy", "approval", "invoke"):
            self.fail(type_node, f"{path}.type", f"expected build, deploy, approval or invoke, not {kind!r}")
        kind = ActionType(kind)
        self.ignored(
            entries,
            path,
            {
                "region": "actions run where the portal runs",
                "namespace": "action variables are not published",
                "role_arn": "actions run with the portal's own rights",
                "input_artifacts": "every action uses the execution's build artifact",
                "output_artifacts": "the build's artifacts are the execution's",
            },
        )
        for key in ("reviewers", "required_approvals"):
            if key in entries:
                self.fail(
                    entries[key][0],
                    join(path, key),
                    "who answers an approval is the protection of the environment it guards (its reviewers and "
                    "required approvals), set on the environment: pipeline.yml can be changed by anyone who can push",
                )
        allowed = {
            ActionType.BUILD: ("run_order",),
            ActionType.DEPLOY: ("run_order", "environment"),
            ActionType.APPROVAL: (
                "run_order",
                "environment",
                "timeout_minutes",
                "custom_data",
                "review_url",
                "remind_hours",
                "notification_arn",
            ),
            ActionType.INVOKE: ("run_order", "url", "secret"),
        }[kind]
        for key in ("environment", "timeout_minutes", "custom_data", "review_url", "remind_hours", "url", "secret"):
            if key in entries and key not in allowed:
                hint = ": CodePipeline accepts a timeout on approvals only" if key == "timeout_minutes" else ""
                self.fail(entries[key][0], join(path, key), f"a {kind} action has no {key}{hint}")
        action: dict = {"name": name, "type": kind, "line": self.line(node)}
        if "run_order" in entries:
            run_order = self.integer(entries["run_order"][1], f"{path}.run_order")
            if not 1 <= run_order <= 999:
                self.fail(entries["run_order"][1], f"{path}.run_order", f"expected 1 to 999, not {run_order}")
            action["run_order"] = run_order
        if "environment" in entries:
            action["environment"] = self.environment(entries["environment"][1], f"{path}.environment")
        elif kind == ActionType.DEPLOY:
            self.fail(node, f"{path}.environment", "missing: a deploy action names the environment it deploys to")
        if kind == ActionType.APPROVAL:
            action["timeout_minutes"] = DEFAULT_APPROVAL_MINUTES
            if "timeout_minutes" in entries:
                minutes_node = entries["timeout_minutes"][1]
                minutes = self.integer(minutes_node, f"{path}.timeout_minutes")
                if not MIN_APPROVAL_MINUTES <= minutes <= MAX_APPROVAL_MINUTES:
                    self.fail(
                        minutes_node,
                        f"{path}.timeout_minutes",
                        f"expected {MIN_APPROVAL_MINUTES} to {MAX_APPROVAL_MINUTES} minutes (5 minutes to 60 days), "
                        f"not {minutes}",
                    )
                action["timeout_minutes"] = minutes
            if "custom_data" in entries:
                action["custom_data"] = self.string(entries["custom_data"][1], f"{path}.custom_data")
            if "review_url" in entries:
                action["review_url"] = self.url(entries["review_url"][1], f"{path}.review_url")
            if "remind_hours" in entries:
                hours_node = entries["remind_hours"][1]
                hours = self.integer(hours_node, f"{path}.remind_hours")
                if not 1 <= hours <= MAX_APPROVAL_MINUTES // 60:
                    self.fail(
                        hours_node,
                        f"{path}.remind_hours",
                        f"expected 1 to {MAX_APPROVAL_MINUTES // 60} hours, not {hours}",
                    )
                action["remind_hours"] = hours
            self.ignored(
                entries,
                path,
                {"notification_arn": "the environment's reviewers are notified in the portal and by email"},
            )
        if kind == ActionType.INVOKE:
            if "url" not in entries:
                self.fail(node, f"{path}.url", "missing: an invoke action calls a webhook's URL")
            action["url"] = self.url(entries["url"][1], f"{path}.url")
            if "secret" not in entries:
                self.fail(node, f"{path}.secret", "missing: the name of the repository secret that signs each call")
            secret_node = entries["secret"][1]
            secret = self.string(secret_node, f"{path}.secret")
            if not SECRET_NAME.match(secret):
                self.fail(secret_node, f"{path}.secret", "expected a secret's name (letters, digits and _)")
            action["secret"] = secret
        return Action(**action)

    def url(self, node: yaml.Node, path: str) -> str:
        value = self.string(node, path).strip()
        if not re.match(r"https?://[^\s/]+", value):
            self.fail(node, path, "expected an http:// or https:// URL")
        return value

    # Rules across stages.

    def check_order(self, stages: tuple[Stage, ...]) -> tuple[Stage, ...]:
        """One build, before every deploy; each environment deployed to once; every approval guards an environment.

        An execution's build is the build of its source commit, one and never two, and its deploys install that
        build's artifact, so a deploy must come after the build: in a later stage, or later in the build's stage
        (a higher runOrder).
        """
        build: tuple[int, Action] | None = None
        deployed: dict[str, Action] = {}
        for index, stage in enumerate(stages[1:], start=1):
            for position, action in enumerate(stage.actions):
                path = f"stages[{index - 1}].actions[{position}]"
                if action.type == ActionType.BUILD:
                    if build is not None:
                        self.fail_at(
                            action,
                            f"{path}.type",
                            f"a second build: an execution builds its commit once (the build is at line "
                            f"{build[1].line})",
                        )
                    build = (index, action)
        for index, stage in enumerate(stages[1:], start=1):
            for position, action in enumerate(stage.actions):
                path = f"stages[{index - 1}].actions[{position}]"
                if action.type == ActionType.DEPLOY:
                    if build is None:
                        self.fail_at(action, path, "a deploy needs a build before it: add a build action")
                    build_index, build_action = build
                    if index < build_index or (index == build_index and action.run_order <= build_action.run_order):
                        self.fail_at(
                            action,
                            path,
                            f"a deploy comes after the build (line {build_action.line}): in a later stage, or in "
                            "the build's stage with a higher run_order",
                        )
                    if action.environment in deployed:
                        self.fail_at(
                            action,
                            f"{path}.environment",
                            f"{action.environment} is already deployed to (line {deployed[action.environment].line})",
                        )
                    deployed[action.environment] = action
        return self.resolve_approvals(stages)

    def resolve_approvals(self, stages: tuple[Stage, ...]) -> tuple[Stage, ...]:
        """An approval without `environment` guards the first deploy after it; one with none after it is refused."""
        result = [stages[0]]
        for index, stage in enumerate(stages[1:], start=1):
            resolved = []
            for position, action in enumerate(stage.actions):
                if action.type == ActionType.APPROVAL and action.environment is None:
                    later = [
                        other
                        for other in _in_order(stage)
                        if other.type == ActionType.DEPLOY and other.run_order > action.run_order
                    ] + [
                        other
                        for after in stages[index + 1 :]
                        for other in _in_order(after)
                        if other.type == ActionType.DEPLOY
                    ]
                    if not later:
                        self.fail_at(
                            action,
                            f"stages[{index - 1}].actions[{position}].environment",
                            "missing: no deploy follows this approval, so name the environment whose reviewers "
                            "answer it",
                        )
                    action = replace(action, environment=later[0].environment)
                resolved.append(action)
            result.append(replace(stage, actions=tuple(resolved)))
        return tuple(result)

    def fail_at(self, action: Action, path: str, message: str):
        raise self.error(self.filename, action.line, path, message)
