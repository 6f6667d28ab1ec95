"""pipeline.yml read with CodePipeline's structure rules: the model, the default pipeline, the warnings, and each
refusal naming file, line and key."""

import pytest

from releases.pipelinespec import (
    DEFAULT_APPROVAL_MINUTES,
    ActionType,
    ExecutionMode,
    FailureResult,
    OnFailure,
    PipelineSpecError,
    RetryMode,
    default_pipeline,
    default_pipeline_yaml,
    parse_pipeline,
)

FULL = """\
version: 1
name: web
execution_mode: QUEUED
source:
  branch: release/2.x
stages:
  - name: Build
    actions:
      - name: Build
        type: build
  - name: Deploy-dev
    actions:
      - name: Deploy
        type: deploy
        environment: dev
      - name: Smoke
        type: invoke
        run_order: 2
        url: https://ci.example.com/hooks/smoke
        secret: SMOKE_HOOK
    on_failure:
      result: RETRY
      retry_mode: ALL_ACTIONS
  - name: UAT
    actions:
      - name: Approve
        type: approval
        timeout_minutes: 2880
        custom_data: Check the release notes first.
        review_url: https://wiki.example.com/releases
      - name: Deploy
        type: deploy
        environment: uat
        run_order: 2
    on_failure:
      result: ROLLBACK
"""


def parse_error(text: str) -> PipelineSpecError:
    with pytest.raises(PipelineSpecError) as caught:
        parse_pipeline(text, filename="ci/pipeline.yml")
    return caught.value


def with_stages(stages: str, *, head: str = "version: 1\nsource:\n  branch: main\n") -> str:
    return head + "stages:\n" + stages


BUILD = """\
  - name: Build
    actions:
      - {name: Build, type: build}
"""


def test_it_reads_a_full_pipeline():
    spec = parse_pipeline(FULL)

    assert spec.name == "web"
    assert spec.execution_mode == ExecutionMode.QUEUED
    assert spec.source_branch == "release/2.x"
    assert spec.stage_names == ("Source", "Build", "Deploy-dev", "UAT")
    assert spec.stages[0].actions[0].type == ActionType.SOURCE
    dev = spec.stage("Deploy-dev")
    assert dev.run_orders == (1, 2)
    assert [action.name for action in dev.group(1)] == ["Deploy"]
    smoke = dev.action("Smoke")
    assert (smoke.type, smoke.url, smoke.secret) == (
        ActionType.INVOKE,
        "https://ci.example.com/hooks/smoke",
        "SMOKE_HOOK",
    )
    assert dev.on_failure == OnFailure(FailureResult.RETRY, RetryMode.ALL_ACTIONS)
    uat = spec.stage("UAT")
    approve = uat.action("Approve")
    assert approve.timeout_minutes == 2880
    assert approve.custom_data == "Check the release notes first."
    assert approve.review_url == "https://wiki.example.com/releases"
    # An approval that names no environment guards the first deploy after it: UAT's reviewers answer it.
    assert approve.environment == "uat"
    assert uat.on_failure == OnFailure(FailureResult.ROLLBACK)
    assert spec.environments() == ("dev", "uat")
    assert spec.warnings == ()


def test_it_gives_the_defaults():
    spec = parse_pipeline(
        with_stages(
            BUILD
            + """\
  - name: Gate
    actions:
      - {name: Approve, type: approval, environment: prod}
"""
        )
    )

    assert spec.name == "release"
    assert spec.execution_mode == ExecutionMode.SUPERSEDED
    assert spec.stage("Build").action("Build").run_order == 1
    assert spec.stage("Gate").action("Approve").timeout_minutes == DEFAULT_APPROVAL_MINUTES == 7 * 24 * 60
    assert spec.stage("Gate").action("Approve").environment == "prod"
    assert spec.stage("Build").on_failure is None


def test_the_default_pipeline_is_source_build_dev_approval_uat():
    spec = default_pipeline("trunk", ("dev", "uat"))

    assert spec.name == "release"
    assert spec.execution_mode == ExecutionMode.SUPERSEDED
    assert spec.source_branch == "trunk"
    assert spec.stage_names == ("Source", "Build", "Deploy-dev", "Approval", "Deploy-uat")
    assert [stage.actions[0].type for stage in spec.stages] == ["source", "build", "deploy", "approval", "deploy"]
    assert spec.stage("Deploy-dev").actions[0].environment == "dev"
    assert spec.stage("Approval").actions[0].environment == "uat"
    assert spec.stage("Approval").actions[0].timeout_minutes == DEFAULT_APPROVAL_MINUTES
    assert spec.stage("Deploy-uat").actions[0].environment == "uat"


def test_the_default_pipeline_takes_the_environment_names_given():
    spec = default_pipeline("main", ("staging", "preprod"))

    assert spec.stage_names == ("Source", "Build", "Deploy-staging", "Approval", "Deploy-preprod")
    assert spec.environments() == ("staging", "preprod")
    # The release template writes the same pipeline as a file, which reads back the same.
    assert parse_pipeline(default_pipeline_yaml("main", ("staging", "preprod"))) == spec


def test_it_warns_about_keys_it_does_not_act_on():
    spec = parse_pipeline(
        """\
version: 1
pipeline_type: V2
triggers: []
source:
  branch: main
stages:
  - name: Build
    before_entry: {conditions: []}
    actions:
      - name: Build
        type: build
        region: eu-west-1
  - name: Gate
    actions:
      - name: Approve
        type: approval
        environment: uat
        notification_arn: arn:aws:sns:eu-west-1:1:topic
"""
    )

    assert [(warning.line, warning.path) for warning in spec.warnings] == [
        (2, "pipeline_type"),
        (3, "triggers"),
        (8, "stages[0].before_entry"),
        (12, "stages[0].actions[0].region"),
        (18, "stages[1].actions[0].notification_arn"),
    ]
    assert "notified in the portal and by email" in str(spec.warnings[-1])


@pytest.mark.parametrize(
    ("text", "line", "path", "message"),
    [
        ("name: x\n", 1, "version", "missing"),
        ("version: 2\n", 1, "version", "expected 1"),
        ("version: 1\nstages: []\n", 1, "source", "missing"),
        ("version: 1\nsource: {}\nstages: []\n", 2, "source.branch", "missing"),
        ("version: 1\nsource:\n  branch: refs/heads/main\n", 3, "source.branch", "expected a branch name"),
        ("version: 1\nsource: {branch: main}\n", 1, "stages", "at least 2 stages"),
        ("version: 1\nsource: {branch: main}\nstages: []\n", 3, "stages", "at least 2 stages"),
        ("version: 1\nsource: {branch: main}\nstages: []\nlayout: x\n", 4, "layout", "unknown key"),
        ("version: 1\nname: 'my pipeline'\n", 2, "name", "letters, digits"),
        ("version: 1\nexecution_mode: FIFO\n", 2, "execution_mode", "expected SUPERSEDED or QUEUED"),
    ],
)
def test_it_refuses_a_bad_top_level(text, line, path, message):
    error = parse_error(text)

    assert (error.filename, error.line, error.path) == ("ci/pipeline.yml", line, path)
    assert message in error.message


def test_it_refuses_parallel_mode_with_why():
    error = parse_error("version: 1\nexecution_mode: PARALLEL\n")

    assert (error.line, error.path) == (2, "execution_mode")
    assert "no stage rollback" in error.message
    assert str(error).startswith("ci/pipeline.yml, line 2, execution_mode: PARALLEL is not supported")


@pytest.mark.parametrize(
    ("stages", "line", "path", "message"),
    [
        # The first stage holds the source only: a source action anywhere else is refused.
        (
            BUILD + "  - name: Again\n    actions:\n      - {name: Pull, type: source}\n",
            10,
            "stages[1].actions[0].type",
            "only the first stage holds the source",
        ),
        (
            "  - name: Source\n    actions:\n      - {name: Build, type: build}\n",
            5,
            "stages[0].name",
            "already named (the source stage)",
        ),
        (BUILD + BUILD.replace("Build, type: build", "Other, type: build"), 8, "stages[1].name", "already named"),
        ("  - name: Build\n    actions: []\n", 6, "stages[0].actions", "1 to 50 actions, not 0"),
        ("  - name: Build\n", 5, "stages[0].actions", "missing"),
        ("  - actions: []\n", 5, "stages[0].name", "missing"),
        (
            "  - name: Build\n    actions:\n      - {name: Build, type: build}\n      - {name: Build, type: invoke, "
            "url: 'https://x.example', secret: S}\n",
            8,
            "stages[0].actions[1].name",
            "already named in stage Build (line 7)",
        ),
        (
            "  - name: Build\n    actions:\n      - {name: Build, type: test}\n",
            7,
            "stages[0].actions[0].type",
            "no test",
        ),
        (
            "  - name: Build\n    actions:\n      - {name: Build, type: lambda}\n",
            7,
            "stages[0].actions[0].type",
            "lambda",
        ),
        ("  - name: Build\n    actions:\n      - {type: build}\n", 7, "stages[0].actions[0].name", "missing"),
        (
            "  - name: Build\n    actions:\n      - {name: Build, type: build, run_order: 0}\n",
            7,
            "stages[0].actions[0].run_order",
            "expected 1 to 999",
        ),
        (
            "  - name: Build\n    actions:\n      - {name: Build, type: build, run_order: first}\n",
            7,
            "stages[0].actions[0].run_order",
            "whole number",
        ),
        (
            "  - name: Build\n    actions:\n      - {name: Build, type: build, timeout_minutes: 60}\n",
            7,
            "stages[0].actions[0].timeout_minutes",
            "approvals only",
        ),
        (
            "  - name: Build\n    actions:\n      - {name: Build, type: build, environment: dev}\n",
            7,
            "stages[0].actions[0].environment",
            "a build action has no environment",
        ),
    ],
)
def test_it_refuses_a_bad_stage_or_action(stages, line, path, message):
    error = parse_error(with_stages(stages))

    assert (error.filename, error.line, error.path) == ("ci/pipeline.yml", line, path)
    assert message in error.message


def test_it_refuses_more_than_50_actions_in_a_stage():
    actions = "".join(
        f"      - {{name: Hook{n}, type: invoke, url: 'https://x.example', secret: S}}\n" for n in range(51)
    )
    error = parse_error(with_stages(BUILD + "  - name: Hooks\n    actions:\n" + actions))

    assert (error.line, error.path) == (10, "stages[1].actions")
    assert "1 to 50 actions, not 51" in error.message


def test_it_refuses_a_deploy_without_an_environment():
    error = parse_error(with_stages(BUILD + "  - name: Dev\n    actions:\n      - {name: Deploy, type: deploy}\n"))

    assert (error.line, error.path) == (10, "stages[1].actions[0].environment")
    assert "names the environment" in error.message


def test_it_refuses_a_deploy_before_the_build():
    error = parse_error(
        with_stages("  - name: Dev\n    actions:\n      - {name: Deploy, type: deploy, environment: dev}\n" + BUILD)
    )

    assert (error.line, error.path) == (7, "stages[0].actions[0]")
    assert "comes after the build (line 10)" in error.message


def test_it_refuses_a_deploy_in_the_builds_stage_unless_it_runs_later():
    same_order = "  - name: Both\n    actions:\n      - {name: Build, type: build}\n" + (
        "      - {name: Deploy, type: deploy, environment: dev}\n"
    )
    error = parse_error(with_stages(same_order))

    assert (error.line, error.path) == (8, "stages[0].actions[1]")
    assert "higher run_order" in error.message
    # Later in the build's stage, it is accepted.
    spec = parse_pipeline(with_stages(same_order.replace("environment: dev}", "environment: dev, run_order: 2}")))
    assert spec.environments() == ("dev",)


def test_it_refuses_a_deploy_with_no_build_at_all():
    error = parse_error(
        with_stages("  - name: Dev\n    actions:\n      - {name: Deploy, type: deploy, environment: dev}\n")
    )

    assert (error.line, error.path) == (7, "stages[0].actions[0]")
    assert "needs a build" in error.message


def test_it_refuses_a_second_build():
    error = parse_error(with_stages(BUILD + BUILD.replace("name: Build\n", "name: Rebuild\n")))

    assert (error.line, error.path) == (10, "stages[1].actions[0].type")
    assert "builds its commit once (the build is at line 7)" in error.message


def test_it_refuses_an_environment_deployed_to_twice():
    error = parse_error(
        with_stages(
            BUILD
            + "  - name: Dev\n    actions:\n      - {name: Deploy, type: deploy, environment: dev}\n"
            + "  - name: Again\n    actions:\n      - {name: Deploy, type: deploy, environment: dev}\n"
        )
    )

    assert (error.line, error.path) == (13, "stages[2].actions[0].environment")
    assert "already deployed to (line 10)" in error.message


def test_it_refuses_reviewers_in_the_file_and_says_where_they_belong():
    error = parse_error(
        with_stages(
            BUILD
            + "  - name: Gate\n    actions:\n      - name: Approve\n        type: approval\n"
            + "        environment: uat\n        required_approvals: 1\n"
        )
    )

    assert (error.line, error.path) == (13, "stages[1].actions[0].required_approvals")
    assert "protection of the environment" in error.message


def test_it_refuses_an_approval_that_guards_nothing():
    error = parse_error(with_stages(BUILD + "  - name: Gate\n    actions:\n      - {name: Approve, type: approval}\n"))

    assert (error.line, error.path) == (10, "stages[1].actions[0].environment")
    assert "no deploy follows this approval" in error.message


@pytest.mark.parametrize(
    ("minutes", "accepted"),
    [(4, False), (5, True), (60 * 24 * 60, True), (60 * 24 * 60 + 1, False)],
)
def test_an_approval_timeout_is_5_minutes_to_60_days(minutes, accepted):
    text = with_stages(
        BUILD + "  - name: Gate\n    actions:\n      - name: Approve\n        type: approval\n"
        f"        environment: uat\n        timeout_minutes: {minutes}\n"
    )
    if accepted:
        assert parse_pipeline(text).stage("Gate").action("Approve").timeout_minutes == minutes
    else:
        error = parse_error(text)
        assert (error.line, error.path) == (13, "stages[1].actions[0].timeout_minutes")
        assert "5 minutes to 60 days" in error.message


@pytest.mark.parametrize(
    ("extra", "line", "path", "message"),
    [
        ("", 10, "stages[1].actions[0].url", "missing"),
        ("        url: ftp://x.example\n        secret: S\n", 12, "stages[1].actions[0].url", "http:// or https://"),
        ("        url: https://x.example\n", 10, "stages[1].actions[0].secret", "missing"),
        ("        url: https://x.example\n        secret: 'my secret'\n", 13, "stages[1].actions[0].secret", "name"),
    ],
)
def test_it_refuses_a_bad_webhook(extra, line, path, message):
    error = parse_error(
        with_stages(BUILD + "  - name: Hook\n    actions:\n      - name: Call\n        type: invoke\n" + extra)
    )

    assert (error.line, error.path) == (line, path)
    assert message in error.message


@pytest.mark.parametrize(
    ("on_failure", "line", "path", "message"),
    [
        ("{result: FAIL}", 8, "stages[0].on_failure.result", "leave on_failure out"),
        ("{retry_mode: ALL_ACTIONS}", 8, "stages[0].on_failure.result", "missing"),
        ("{result: ROLLBACK, retry_mode: ALL_ACTIONS}", 8, "stages[0].on_failure.retry_mode", "only a RETRY"),
        ("{result: RETRY, retry_mode: SOME}", 8, "stages[0].on_failure.retry_mode", "FAILED_ACTIONS or ALL_ACTIONS"),
    ],
)
def test_it_refuses_a_bad_on_failure(on_failure, line, path, message):
    error = parse_error(with_stages(BUILD + f"    on_failure: {on_failure}\n"))

    assert (error.line, error.path) == (line, path)
    assert message in error.message


def test_a_retry_on_failure_retries_failed_actions_by_default():
    spec = parse_pipeline(with_stages(BUILD + "    on_failure: {result: RETRY}\n"))

    assert spec.stage("Build").on_failure == OnFailure(FailureResult.RETRY, RetryMode.FAILED_ACTIONS)


def test_it_refuses_yaml_that_is_not_yaml():
    error = parse_error("version: 1\nsource: [branch\n")

    assert error.line == 3
    assert "not valid YAML" in error.message


def test_an_approval_takes_the_hours_after_which_it_reminds_its_approvers():
    approval = "  - name: Approval\n    actions:\n      - {name: Approve, type: approval, environment: uat%s}\n"
    spec = parse_pipeline(with_stages(BUILD + approval % ", remind_hours: 4"))
    assert spec.stages[2].actions[0].remind_hours == 4
    assert parse_pipeline(with_stages(BUILD + approval % "")).stages[2].actions[0].remind_hours is None

    error = parse_error(with_stages(BUILD + approval % ", remind_hours: 0"))
    assert (error.line, error.path) == (10, "stages[1].actions[0].remind_hours")
    assert "expected 1 to 1440 hours, not 0" in error.message
    error = parse_error(
        with_stages(
            BUILD + "  - name: Dev\n    actions:\n      - {name: D, type: deploy, environment: dev, remind_hours: 4}\n"
        )
    )
    assert error.path == "stages[1].actions[0].remind_hours" and "a deploy action has no remind_hours" in error.message
