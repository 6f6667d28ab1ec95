"""Artifacts, test reports and the cache, made by real builds."""

import zipfile

import pytest

from releases.artifacts import glob_pattern
from releases.reports import ReportError, TestStatus, parse_junit
from releases.runner import Status


def names_in(artifact) -> list[str]:
    with zipfile.ZipFile(artifact.path) as archive:
        return sorted(archive.namelist())


def artifacts_build(build, artifacts_yaml: str, **options):
    return build(
        f"""\
version: 0.2
phases:
  build:
    commands:
      - mkdir -p out/lib/deep docs
      - echo app > out/app.bin
      - echo lib > out/lib/lib.so
      - echo map > out/lib/lib.so.map
      - echo deep > out/lib/deep/data.txt
      - echo guide > docs/guide.md
      - echo top > README.md
      - export VERSION=1.2.3
artifacts:
{artifacts_yaml}""",
        **options,
    )


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("**/*", "a/b/c.txt", True),
        ("**/*", "top.txt", True),
        ("out/**/*", "out/a/b", True),
        ("out/**/*", "other/a", False),
        ("*.txt", "a.txt", True),
        ("*.txt", "dir/a.txt", False),
        ("**/*.txt", "dir/sub/a.txt", True),
        ("**/*.txt", "a.txt", True),
        ("out/*/lib.so", "out/x/lib.so", True),
        ("file?.log", "file1.log", True),
        ("[ab].c", "b.c", True),
        ("./out/app.bin", "out/app.bin", True),
    ],
)
def test_glob_patterns_match_as_codebuilds_do(pattern, path, matches):
    assert bool(glob_pattern(pattern).match(path)) == matches


def test_files_globs_select_recursively(build):
    built = artifacts_build(build, "  files:\n    - 'out/**/*'\n    - README.md\n")

    assert built.result.status == Status.SUCCEEDED
    (artifact,) = built.result.artifacts
    assert names_in(artifact) == [
        "README.md",
        "out/app.bin",
        "out/lib/deep/data.txt",
        "out/lib/lib.so",
        "out/lib/lib.so.map",
    ]
    assert artifact.name == "artifact"
    assert artifact.files == tuple(names_in(artifact))


def test_base_directory_exclude_paths_and_a_shell_expanded_name(build):
    built = artifacts_build(
        build,
        "  files: ['**/*']\n  base-directory: out\n  exclude-paths: ['**/*.map', 'lib/deep/**/*']\n"
        "  name: app-$VERSION-$(echo built)\n",
    )

    (artifact,) = built.result.artifacts
    assert artifact.name == "app-1.2.3-built"
    assert artifact.path.name == "app-1.2.3-built.zip"
    assert names_in(artifact) == ["app.bin", "lib/lib.so"]
    with zipfile.ZipFile(artifact.path) as archive:
        assert archive.read("app.bin") == b"app\n"


def test_discard_paths_flattens_and_refuses_two_files_of_one_name(build):
    built = artifacts_build(build, "  files: ['out/**/*.so', 'out/**/*.txt']\n  discard-paths: yes\n")

    (artifact,) = built.result.artifacts
    assert names_in(artifact) == ["data.txt", "lib.so"]

    clash = build(
        "version: 0.2\nphases:\n  build:\n    commands:\n      - mkdir a b && touch a/x b/x\n"
        "artifacts:\n  files: ['**/*']\n  discard-paths: yes\n"
    )
    assert clash.result.status == Status.FAILED
    assert clash.result.phase("UPLOAD_ARTIFACTS").status == Status.FAILED
    assert "discard-paths makes two files named 'x'" in clash.result.phase("UPLOAD_ARTIFACTS").message


def test_secondary_artifacts_are_collected_under_their_identifiers(build):
    built = artifacts_build(
        build,
        "  files: ['out/app.bin']\n  secondary-artifacts:\n    docs:\n      files: ['docs/**/*']\n"
        "    readme:\n      files: [README.md]\n      name: readme-$VERSION\n",
    )

    by_identifier = {artifact.identifier: artifact for artifact in built.result.artifacts}
    assert set(by_identifier) == {None, "docs", "readme"}
    assert names_in(by_identifier["docs"]) == ["docs/guide.md"]
    assert by_identifier["docs"].name == "docs"
    assert by_identifier["readme"].name == "readme-1.2.3"


def test_no_matching_files_fails_upload_artifacts_with_codebuilds_reason(build):
    built = artifacts_build(build, "  files: ['nothing/**/*']\n")

    assert built.result.status == Status.FAILED
    assert built.result.phase("UPLOAD_ARTIFACTS").message == (
        "CLIENT_ERROR: no matching artifact paths found for nothing/**/*"
    )


def test_links_are_kept_as_links_only_with_enable_symlinks_and_never_followed(build, builds_root):
    outside = builds_root / "host-secret.txt"
    outside.write_text("host secret\n")
    buildspec = f"""\
version: 0.2
phases:
  build:
    commands:
      - echo real > real.txt
      - ln -s real.txt link.txt
      - ln -s {outside} escape.txt
artifacts:
  files: ['*.txt']
"""
    plain = build(buildspec)
    (artifact,) = plain.result.artifacts
    assert names_in(artifact) == ["real.txt"]
    assert "[Container] Warning: escape.txt is a symbolic link and was left out (set enable-symlinks: yes)" in (
        plain.lines
    )

    kept = build(buildspec + "  enable-symlinks: yes\n")
    (artifact,) = kept.result.artifacts
    with zipfile.ZipFile(artifact.path) as archive:
        assert archive.read("link.txt") == b"real.txt"
        assert archive.read("escape.txt") == str(outside).encode()
        assert (archive.getinfo("escape.txt").external_attr >> 16) & 0o170000 == 0o120000


def test_the_same_files_make_the_same_bytes(build, tmp_path):
    spec = "  files: ['out/**/*']\n"
    first = artifacts_build(build, spec, artifacts_dir=tmp_path / "one")
    second = artifacts_build(build, spec, artifacts_dir=tmp_path / "two")

    assert first.result.artifacts[0].sha256 == second.result.artifacts[0].sha256
    assert first.result.artifacts[0].path.read_bytes() == second.result.artifacts[0].path.read_bytes()


def test_artifacts_can_be_a_directory(build, tmp_path):
    built = artifacts_build(build, "  files: ['lib/**/*']\n  base-directory: out\n", packaging="directory")

    (artifact,) = built.result.artifacts
    assert artifact.path.is_dir()
    assert (artifact.path / "lib" / "deep" / "data.txt").read_text() == "deep\n"
    assert artifact.size_in_bytes == len("lib\n") + len("map\n") + len("deep\n")


JUNIT = """\
<?xml version="1.0" encoding="UTF-8"?>
<testsuites>
  <testsuite name="unit" tests="4">
    <testcase classname="app.MathTest" name="adds" time="0.012"/>
    <testcase classname="app.MathTest" name="divides" time="1,204.5">
      <failure message="expected 2 but was 3" type="AssertionError">trace line 1
trace line 2</failure>
    </testcase>
    <testcase classname="app.IoTest" name="reads" time="0.5"><error message="boom">stack</error></testcase>
    <testsuite name="nested">
      <testcase classname="app.Slow" name="later"><skipped message="not today"/></testcase>
    </testsuite>
  </testsuite>
</testsuites>
"""


def test_junit_xml_gives_every_case_with_status_time_and_message():
    cases = parse_junit(JUNIT.encode(), filename="TEST-unit.xml")

    assert [(case.suite, case.classname, case.name, case.status) for case in cases] == [
        ("unit", "app.MathTest", "adds", TestStatus.SUCCEEDED),
        ("unit", "app.MathTest", "divides", TestStatus.FAILED),
        ("unit", "app.IoTest", "reads", TestStatus.ERROR),
        ("nested", "app.Slow", "later", TestStatus.SKIPPED),
    ]
    assert [case.duration_seconds for case in cases] == [0.012, 1204.5, 0.5, None]
    assert cases[1].message == "expected 2 but was 3"
    assert cases[1].details == "trace line 1\ntrace line 2"
    assert cases[3].message == "not today"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"<testsuite><testcase", "not valid XML"),
        (b"<html/>", "not a JUnit report"),
        (b'<!DOCTYPE x [<!ENTITY a "aaaa">]><testsuite/>', "entity declarations"),
    ],
)
def test_a_bad_report_file_is_refused_with_a_reason(data, message):
    with pytest.raises(ReportError, match=message):
        parse_junit(data, filename="bad.xml")


def test_report_groups_are_read_after_a_failing_build(build):
    built = build(
        """\
version: 0.2
phases:
  build:
    commands:
      - mkdir -p build/test-results
      - cp fixtures/unit.xml build/test-results/TEST-unit.xml
      - echo 'not xml' > build/test-results/TEST-broken.xml
      - exit_code=1; (exit $exit_code)
reports:
  unit-tests:
    files: ['TEST-*.xml']
    base-directory: build/test-results
  missing:
    files: ['nothing/*.xml']
""",
        files={"fixtures/unit.xml": JUNIT},
    )

    assert built.result.status == Status.FAILED
    unit, missing = built.result.reports
    assert unit.group == "unit-tests"
    assert unit.files == ("TEST-broken.xml", "TEST-unit.xml")
    assert unit.count(TestStatus.FAILED) == 1
    assert unit.count(TestStatus.SUCCEEDED) == 1
    assert unit.errors[0].startswith("TEST-broken.xml: not valid XML")
    assert missing.errors == ("no report files match nothing/*.xml",)


def test_cache_paths_are_restored_in_the_next_build(build, tmp_path):
    cache_dir = tmp_path / "cache"
    buildspec = """\
version: 0.2
phases:
  build:
    commands:
      - cat node_modules/dep.js || echo no-cache
      - cat ~/.m2/repository/pom.xml || echo no-home-cache
      - mkdir -p node_modules ~/.m2/repository
      - echo "dep from build $CODEBUILD_BUILD_NUMBER" > node_modules/dep.js
      - echo pom > ~/.m2/repository/pom.xml
cache:
  paths:
    - 'node_modules/**/*'
    - '/root/.m2/**/*'
    - '/opt/elsewhere/**/*'
"""
    first = build(buildspec, cache_dir=cache_dir)
    assert "no-cache" in first.lines
    assert "no-home-cache" in first.lines
    assert "[Container] cache path 'node_modules/**/*' saved" in first.lines

    second = build(buildspec, cache_dir=cache_dir, files={"node_modules/dep.js": "from the source\n"})

    assert second.result.status == Status.SUCCEEDED
    # The cached copy wins over the file of the same name in the source, as CodeBuild's local cache does.
    assert "dep from build 42" in second.lines
    assert "pom" in second.lines
    assert (
        "[Container] cache path '/opt/elsewhere/**/*' is not under the source directory or the home: not cached"
        in second.lines
    )
