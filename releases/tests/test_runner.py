"""Buildspecs run in the real sandbox: CodeBuild's phases, transitions, shell and variables."""

import base64
from urllib.parse import quote

import pytest

from releases.runner import Status

PHASES = ("install", "pre_build", "build", "post_build")


def matrix_buildspec(failing: str, on_failure: str | None) -> str:
    lines = ["version: 0.2", "phases:"]
    for phase in PHASES:
        lines.append(f"  {phase}:")
        if phase == failing and on_failure:
            lines.append(f"    on-failure: {on_failure}")
        lines.append("    commands:")
        lines.append(f"      - echo ran-{phase} $CODEBUILD_BUILD_SUCCEEDING")
        if phase == failing:
            lines.append("      - exit_status=3; (exit $exit_status)")
            lines.append(f"      - echo skipped-{phase}")
        lines.append("    finally:")
        lines.append(f"      - echo finally-{phase}")
    lines += ["artifacts:", "  files: ['**/*']"]
    return "\n".join(lines) + "\n"


# Which phases run after a failure, and whether artifacts are attempted (CodeBuild's default transitions, ABORT,
# CONTINUE): INSTALL and PRE_BUILD failures end the build, BUILD goes on to POST_BUILD, POST_BUILD to the artifacts.
MATRIX = [
    ("install", None, ["install"], False),
    ("install", "ABORT", ["install"], False),
    ("install", "CONTINUE", list(PHASES), True),
    ("pre_build", None, ["install", "pre_build"], False),
    ("pre_build", "ABORT", ["install", "pre_build"], False),
    ("pre_build", "CONTINUE", list(PHASES), True),
    ("build", None, list(PHASES), True),
    ("build", "ABORT", ["install", "pre_build", "build"], False),
    ("build", "CONTINUE", list(PHASES), True),
    ("post_build", None, list(PHASES), True),
    ("post_build", "ABORT", list(PHASES), False),
    ("post_build", "CONTINUE", list(PHASES), True),
]


@pytest.mark.parametrize(("failing", "on_failure", "ran", "uploaded"), MATRIX)
def test_phase_failure_matrix(build, failing, on_failure, ran, uploaded):
    built = build(matrix_buildspec(failing, on_failure), files={"app.txt": "app"})

    assert built.result.status == Status.FAILED
    expected = {phase.upper(): "FAILED" if phase == failing else "SUCCEEDED" for phase in ran}
    if uploaded:
        expected["UPLOAD_ARTIFACTS"] = "SUCCEEDED"
    assert built.statuses == expected
    for phase in PHASES:
        assert (f"ran-{phase} " in built.log) == (phase in ran)
        assert (f"finally-{phase}" in built.lines) == (phase in ran)
    assert f"skipped-{failing}" not in built.lines
    assert bool(built.result.artifacts) == uploaded
    # CODEBUILD_BUILD_SUCCEEDING turns 0 for every phase after the failure.
    index = PHASES.index(failing)
    for phase in ran:
        assert f"ran-{phase} {0 if PHASES.index(phase) > index else 1}" in built.lines
    assert built.result.phase(failing.upper()).message == (
        "COMMAND_EXECUTION_ERROR: Error while executing command: exit_status=3; (exit $exit_status). "
        "Reason: exit status 3"
    )


def test_a_build_that_passes_goes_through_every_phase(build):
    built = build(matrix_buildspec("none", None), files={"app.txt": "app"})

    assert built.result.status == Status.SUCCEEDED
    assert list(built.statuses) == ["INSTALL", "PRE_BUILD", "BUILD", "POST_BUILD", "UPLOAD_ARTIFACTS"]
    assert set(built.statuses.values()) == {"SUCCEEDED"}
    assert all(phase.duration_seconds >= 0 for phase in built.result.phases)
    assert "[Container] Entering phase BUILD" in built.lines
    assert "[Container] Phase complete: BUILD State: SUCCEEDED" in built.lines


def test_a_failing_finally_command_fails_its_phase_and_skips_the_rest_of_finally(build):
    built = build(
        """\
version: 0.2
phases:
  build:
    commands:
      - echo built
    finally:
      - "false"
      - echo after-false
  post_build:
    commands:
      - echo post $CODEBUILD_BUILD_SUCCEEDING
"""
    )

    assert built.statuses["BUILD"] == "FAILED"
    assert "after-false" not in built.lines
    assert "post 0" in built.lines
    assert built.result.status == Status.FAILED


def test_cd_and_export_persist_across_commands_and_phases(build):
    built = build(
        """\
version: 0.2
phases:
  install:
    commands:
      - mkdir -p deep/er && cd deep
      - export GREETING=hello
      - greet() { echo "$GREETING from $(pwd)"; }
  build:
    commands:
      - cd er
      - greet
  post_build:
    commands:
      - echo "still in $(pwd) with $GREETING"
"""
    )

    assert built.result.status == Status.SUCCEEDED
    assert "hello from /workspace/deep/er" in built.lines
    assert "still in /workspace/deep/er with hello" in built.lines


def test_bin_sh_is_the_shell_when_the_buildspec_asks(build):
    built = build(
        """\
version: 0.2
env:
  shell: /bin/sh
phases:
  build:
    commands:
      - cd /tmp
      - echo "$(readlink /proc/$$/exe) in $(pwd)"
"""
    )

    assert built.result.status == Status.SUCCEEDED
    assert any(line.endswith("/dash in /tmp") or line == "/usr/bin/sh in /tmp" for line in built.lines)


def test_a_multi_line_command_reports_its_last_status_as_codebuild_does(build):
    built = build("version: 0.2\nphases:\n  build:\n    commands:\n      - |\n        false\n        true\n")

    assert built.result.status == Status.SUCCEEDED
    # The log stays one line per line: the command is shown a line at a time.
    assert ["[Container] Running command false", "[Container] true"] == built.lines[5:7]


def test_commands_get_an_empty_stdin(build):
    built = build("version: 0.2\nphases:\n  build:\n    commands:\n      - cat\n      - echo after-cat\n")

    assert built.result.status == Status.SUCCEEDED
    assert "after-cat" in built.lines


def test_a_command_that_ends_the_shell_fails_the_build(build):
    built = build(
        """\
version: 0.2
phases:
  build:
    commands:
      - exit 7
  post_build:
    commands:
      - echo post
"""
    )

    assert built.result.status == Status.FAILED
    assert built.statuses == {"INSTALL": "SUCCEEDED", "PRE_BUILD": "SUCCEEDED", "BUILD": "FAILED"}
    assert built.result.phase("BUILD").message == "the build's shell exited (status 7)"
    assert "post" not in built.lines


def test_exported_variables_are_frozen_after_post_build_and_secrets_never_exported(build):
    built = build(
        """\
version: 0.2
env:
  exported-variables:
    - IMAGE_TAG
    - UNSET_ONE
    - TOKEN
    - FROM_INSTALL
phases:
  install:
    commands:
      - export FROM_INSTALL=install-value
  build:
    commands:
      - export IMAGE_TAG=first
  post_build:
    commands:
      - export IMAGE_TAG="$IMAGE_TAG-then-second"
artifacts:
  files: ['**/*']
""",
        files={"a": "a"},
        secrets={"TOKEN": "s3cret-value"},
    )

    assert built.result.exported_variables == {
        "IMAGE_TAG": "first-then-second",
        "UNSET_ONE": "",
        "FROM_INSTALL": "install-value",
    }
    assert "[Container] Warning: TOKEN is a secret and is not exported" in built.lines


def test_variables_take_start_over_repository_over_buildspec_literally(build):
    built = build(
        """\
version: 0.2
env:
  variables:
    ONLY_SPEC: spec
    SPEC_AND_REPO: spec
    ALL_THREE: spec
    LITERAL: $PATH
phases:
  build:
    commands:
      - echo "$ONLY_SPEC $SPEC_AND_REPO $ALL_THREE $ONLY_START [$LITERAL]"
      - echo "build id $CODEBUILD_BUILD_ID"
""",
        repository_variables={"SPEC_AND_REPO": "repo", "ALL_THREE": "repo", "CODEBUILD_BUILD_ID": "forged"},
        start_variables={"ALL_THREE": "start", "ONLY_START": "start 'quoted' \"$x\""},
    )

    assert "spec repo start start 'quoted' \"$x\" [$PATH]" in built.lines
    assert "build id alice-project:42" in built.lines
    assert "[Container] Warning: CODEBUILD_BUILD_ID is not set: the CODEBUILD_ prefix is reserved" in built.lines


def test_codebuild_variables_describe_the_build(build):
    built = build(
        "version: 0.2\nphases:\n  build:\n    commands:\n      - env | grep ^CODEBUILD_ | sort\n",
    )

    assert {
        "CODEBUILD_BUILD_ID=alice-project:42",
        "CODEBUILD_BUILD_NUMBER=42",
        "CODEBUILD_BUILD_SUCCEEDING=1",
        "CODEBUILD_INITIATOR=alice",
        "CODEBUILD_RESOLVED_SOURCE_VERSION=" + "a" * 40,
        "CODEBUILD_SOURCE_VERSION=refs/heads/main",
        "CODEBUILD_SRC_DIR=/workspace",
        "CODEBUILD_WEBHOOK_TRIGGER=branch/main",
        "CODEBUILD_WEBHOOK_EVENT=PUSH",
        "CODEBUILD_WEBHOOK_HEAD_REF=refs/heads/main",
    } <= set(built.lines)


def test_secrets_are_masked_plain_base64_and_url_encoded(build):
    secret = "p@ss w0rd/with:odd&chars"
    built = build(
        """\
version: 0.2
phases:
  build:
    commands:
      - echo "plain $DEPLOY_KEY"
      - printf '%s' "$DEPLOY_KEY" | base64 -w0; echo
      - printf 'x%s' "$DEPLOY_KEY" | base64 -w0; echo
      - printf 'xy%s' "$DEPLOY_KEY" | base64 -w0; echo
      - python3 -c 'import os, urllib.parse; print("url", urllib.parse.quote(os.environ["DEPLOY_KEY"], safe=""))'
      - python3 -c 'import os, urllib.parse; print("form", urllib.parse.quote_plus(os.environ["DEPLOY_KEY"]))'
""",
        secrets={"DEPLOY_KEY": secret},
    )

    assert built.result.status == Status.SUCCEEDED
    assert "plain ***" in built.lines
    assert "url ***" in built.lines
    assert "form ***" in built.lines
    for encoded in (
        base64.b64encode(secret.encode()).decode(),
        base64.b64encode(b"x" + secret.encode()).decode(),
        base64.b64encode(b"xy" + secret.encode()).decode(),
        quote(secret, safe=""),
    ):
        assert encoded[4:-4] not in built.log
    assert secret not in built.log


def test_the_log_names_buildspec_warnings(build):
    built = build("version: 0.2\nproxy:\n  upload-artifacts: yes\nphases:\n  build:\n    commands: [echo hi]\n")

    assert built.lines[0] == "[Container] Warning: buildspec line 2, proxy: not supported: ignored"


def test_a_stop_ends_the_build_as_stopped(tmp_path, build):
    lines = []

    built = build(
        """\
version: 0.2
phases:
  build:
    commands:
      - echo started; sleep 60
  post_build:
    commands:
      - echo post
""",
        should_stop=lambda: "started" in lines,
        on_line=lines.append,
    )

    assert built.result.status == Status.STOPPED
    assert built.result.phase("BUILD").status == Status.STOPPED
    assert built.result.phase("POST_BUILD") is None
