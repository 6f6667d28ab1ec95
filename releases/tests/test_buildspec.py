"""buildspec.yml read with CodeBuild's rules: the model, the warnings, and an error naming file, line and key."""

import pytest

from releases.buildspec import BuildspecError, OnFailure, parse_buildspec

FULL = """\
version: 0.2
env:
  shell: /bin/sh
  variables:
    JAVA_HOME: /usr/lib/jvm/java-17
    RETRIES: 3
  exported-variables:
    - IMAGE_TAG
phases:
  install:
    on-failure: ABORT
    commands:
      - make deps
  build:
    on-failure: CONTINUE
    commands:
      - make
      - |
        echo one
        echo two
    finally:
      - make clean-temp
  post_build:
    commands:
      - echo done
artifacts:
  files:
    - 'dist/**/*'
  name: app-$(date +%Y)
  base-directory: out
  discard-paths: yes
  exclude-paths: ['**/*.map']
  enable-symlinks: yes
  secondary-artifacts:
    docs:
      files: ['docs/**/*']
reports:
  unit:
    files: ['**/TEST-*.xml']
    base-directory: build/test-results
    file-format: junitxml
cache:
  paths:
    - 'node_modules/**/*'
"""


def parse_error(text: str) -> BuildspecError:
    with pytest.raises(BuildspecError) as caught:
        parse_buildspec(text, filename="ci/buildspec.yml")
    return caught.value


def test_it_reads_every_implemented_key_into_the_model():
    spec = parse_buildspec(FULL)

    assert spec.shell == "/bin/sh"
    assert spec.variables == (("JAVA_HOME", "/usr/lib/jvm/java-17"), ("RETRIES", "3"))
    assert spec.exported_variables == ("IMAGE_TAG",)
    assert [phase.name for phase in spec.phases] == ["install", "build", "post_build"]
    assert spec.phase("install").on_failure is OnFailure.ABORT
    build = spec.phase("build")
    assert build.on_failure is OnFailure.CONTINUE
    assert build.commands == ("make", "echo one\necho two\n")
    assert build.finally_commands == ("make clean-temp",)
    assert spec.phase("pre_build").commands == ()
    assert spec.artifacts.files == ("dist/**/*",)
    assert spec.artifacts.name == "app-$(date +%Y)"
    assert spec.artifacts.base_directory == "out"
    assert spec.artifacts.discard_paths is True
    assert spec.artifacts.exclude_paths == ("**/*.map",)
    assert spec.artifacts.enable_symlinks is True
    assert [(artifact.identifier, artifact.files) for artifact in spec.secondary_artifacts] == [
        ("docs", ("docs/**/*",))
    ]
    assert spec.reports[0].name == "unit"
    assert spec.reports[0].file_format == "JUNITXML"
    assert spec.reports[0].base_directory == "build/test-results"
    assert spec.cache_paths == ("node_modules/**/*",)
    assert spec.warnings == ()


def test_it_lists_keys_it_does_not_implement_as_warnings_with_their_lines():
    spec = parse_buildspec(
        """\
version: 0.2
run-as: root
proxy:
  upload-artifacts: yes
batch:
  fast-fail: false
env:
  parameter-store:
    DB_PASSWORD: /prod/db
  secrets-manager:
    TOKEN: arn:token:json-key
  git-credential-helper: yes
phases:
  install:
    runtime-versions:
      python: 3.12
  build:
    run-as: nobody
    commands: [make]
reports:
  coverage:
    files: [coverage.xml]
    file-format: COBERTURAXML
"""
    )

    assert [(warning.line, warning.path) for warning in spec.warnings] == [
        (2, "run-as"),
        (3, "proxy"),
        (5, "batch"),
        (8, "env.parameter-store"),
        (10, "env.secrets-manager"),
        (12, "env.git-credential-helper"),
        (15, "phases.install.runtime-versions"),
        (18, "phases.build.run-as"),
        (23, "reports.coverage.file-format"),
    ]
    assert "DB_PASSWORD not set" in spec.warnings[3].message
    assert "python not installed" in spec.warnings[6].message
    assert spec.reports == ()


def test_it_refuses_text_that_is_not_yaml_naming_the_line():
    error = parse_error("version: 0.2\nphases:\n  build:\n    commands:\n\t- make\n")

    assert error.filename == "ci/buildspec.yml"
    assert error.line == 5
    assert str(error) == "ci/buildspec.yml, line 5: not valid YAML: found character that cannot start any token"


@pytest.mark.parametrize("version", ["0.1", "1.0", "'0.3'"])
def test_it_refuses_a_version_other_than_0_2(version):
    error = parse_error(f"phases:\n  build:\n    commands: [make]\nversion: {version}\n")

    assert (error.line, error.path) == (4, "version")
    assert "expected 0.2" in str(error)


def test_it_refuses_a_buildspec_without_version():
    assert parse_error("phases:\n  build:\n    commands: [make]\n").path == "version"


def test_it_refuses_a_phase_without_commands():
    error = parse_error("version: 0.2\nphases:\n  pre_build:\n    finally:\n      - echo x\n")

    assert (error.line, error.path) == (3, "phases.pre_build.commands")
    assert str(error) == "ci/buildspec.yml, line 3, phases.pre_build.commands: a phase needs at least one command"


def test_it_refuses_an_empty_phase():
    error = parse_error("version: 0.2\nphases:\n  build:\n")

    assert (error.line, error.path) == (3, "phases.build")


def test_install_may_have_no_commands():
    spec = parse_buildspec("version: 0.2\nphases:\n  install:\n    runtime-versions:\n      java: corretto17\n")

    assert spec.phase("install").commands == ()


def test_it_refuses_a_string_where_a_list_belongs():
    error = parse_error("version: 0.2\nphases:\n  build:\n    commands: make all\n")

    assert str(error) == "ci/buildspec.yml, line 4, phases.build.commands: expected a list of strings"


@pytest.mark.parametrize(
    ("text", "line", "path"),
    [
        ("version: 0.2\nartifacts:\n  files: '**/*'\n", 3, "artifacts.files"),
        ("version: 0.2\nenv:\n  exported-variables: IMAGE\n", 3, "env.exported-variables"),
        ("version: 0.2\ncache:\n  paths: node_modules\n", 3, "cache.paths"),
        ("version: 0.2\nphases:\n  build:\n    commands: [make]\n    finally: make clean\n", 5, "phases.build.finally"),
        ("version: 0.2\nreports:\n  unit:\n    files: report.xml\n", 4, "reports.unit.files"),
        ("version: 0.2\nenv:\n  variables: [A, B]\n", 3, "env.variables"),
    ],
)
def test_it_refuses_each_string_where_codebuild_wants_a_list(text, line, path):
    error = parse_error(text)

    assert (error.line, error.path) == (line, path)


def test_it_explains_a_command_yaml_reads_as_a_mapping():
    error = parse_error("version: 0.2\nphases:\n  build:\n    commands:\n      - make\n      - echo key: value\n")

    assert (error.line, error.path) == (6, "phases.build.commands[1]")
    assert "quote it" in error.message


@pytest.mark.parametrize(
    ("text", "line", "path"),
    [
        ("version: 0.2\nstages: {}\n", 2, "stages"),
        ("version: 0.2\nphases:\n  test:\n    commands: [make]\n", 3, "phases.test"),
        ("version: 0.2\nphases:\n  build:\n    command: [make]\n", 4, "phases.build.command"),
        (
            "version: 0.2\nphases:\n  build:\n    commands: [make]\n    runtime-versions: {}\n",
            5,
            "phases.build.runtime-versions",
        ),
        ("version: 0.2\nenv:\n  vars: {}\n", 3, "env.vars"),
        ("version: 0.2\nartifacts:\n  files: [a]\n  packaging: zip\n", 4, "artifacts.packaging"),
        ("version: 0.2\nreports:\n  unit:\n    files: [a]\n    format: JUNITXML\n", 5, "reports.unit.format"),
    ],
)
def test_it_refuses_an_unknown_key(text, line, path):
    error = parse_error(text)

    assert (error.line, error.path) == (line, path)
    assert "unknown key" in error.message


@pytest.mark.parametrize(
    ("text", "line", "path", "message"),
    [
        (
            "version: 0.2\nphases:\n  build:\n    on-failure: RETRY\n    commands: [make]\n",
            4,
            "phases.build.on-failure",
            "ABORT or CONTINUE",
        ),
        ("version: 0.2\nenv:\n  shell: zsh\n", 3, "env.shell", "bash or /bin/sh"),
        ("version: 0.2\nenv:\n  variables:\n    CODEBUILD_X: 1\n", 4, "env.variables.CODEBUILD_X", "reserved"),
        ("version: 0.2\nenv:\n  variables:\n    1ABC: 1\n", 4, "env.variables.1ABC", "variable name"),
        (
            "version: 0.2\nartifacts:\n  files: [a]\n  base-directory: ../up\n",
            4,
            "artifacts.base-directory",
            "inside the source",
        ),
        ("version: 0.2\nartifacts:\n  files: [a]\n  discard-paths: maybe\n", 4, "artifacts.discard-paths", "yes or no"),
        ("version: 0.2\nartifacts:\n  name: x\n", 3, "artifacts.files", "missing"),
        (
            "version: 0.2\nreports:\n  unit:\n    files: [a]\n    file-format: XUNIT\n",
            5,
            "reports.unit.file-format",
            "unknown report format",
        ),
        (
            "version: 0.2\nphases:\n  build:\n    commands: [make]\n  build:\n    commands: [make]\n",
            5,
            "phases.build",
            "duplicate",
        ),
    ],
)
def test_it_refuses_a_wrong_value(text, line, path, message):
    error = parse_error(text)

    assert (error.line, error.path) == (line, path)
    assert message in error.message


def test_it_refuses_an_empty_file_and_a_list_at_the_top():
    assert "empty" in parse_error("").message
    assert parse_error("- version: 0.2\n").message == "expected a mapping of keys"


def test_exported_variables_never_include_aws_or_codebuild_names():
    spec = parse_buildspec("version: 0.2\nenv:\n  exported-variables: [AWS_REGION, CODEBUILD_BUILD_ID, TAG]\n")

    assert spec.exported_variables == ("TAG",)
    assert [warning.path for warning in spec.warnings] == [
        "env.exported-variables[0]",
        "env.exported-variables[1]",
    ]
