"""The release template: a new repository that goes build → dev → approval → uat from its first commit.

What CodeStar did for a new team: one click makes a repository holding a small sample application with everything a
release needs, and the places it is released to.

- `src/hello.py` and `src/VERSION`: the application, in Python with its standard library only, so it runs in the
  build sandbox and on a local target as they are. It greets, and tells its version and the commit it was built from.
- `tests/`: its unit tests and `run.py`, which runs them with unittest and writes a JUnit report (`reports:` in the
  buildspec, so the build's page shows the tests).
- `buildspec.yml` (CodeBuild 0.2): the tests, then the artifact: the application stamped with the commit, the
  appspec and the hook scripts.
- `appspec.yml` (CodeDeploy 0.0) and `scripts/`: the application installed to /srv/<repository>, a hook at each
  lifecycle event saying what it does, and a ValidateService that fails the deployment (which then rolls back) when
  the installed version is not the one deployed.
- `pipeline.yml`: the default pipeline (releases.pipelinespec.default_pipeline_yaml) on the default branch.
- `README.md`: the journey, step by step.

And the environments `dev` and `uat`, each with one local target named `local` whose health check asks the installed
application its version. dev needs no approval. Who approves uat is decided here, because an approval nobody may
give would stop every release there: the requester of a release (whoever pushed, merged or started it) never counts.
So uat names reviewers only when they leave someone besides any requester: an organization's owners team with two
people or more (one approval of them, self-review prevented). A personal repository, or an organization with a
single owner, gets uat without reviewers, and its pipeline's approval is then answered by any writer of the
repository other than the requester; a team adds its approvers in the environment's settings.

The first commit is recorded as the creator's push, from the web like a merge: its announcement queues the build of
the commit, as any push's does.
"""

from django.db import transaction

from portal import audit
from portal.models import Team, User
from releases import environments
from releases.pipelinespec import default_pipeline_yaml
from repos import git
from repos import services as repo_services
from repos.access import Principal
from repos.models import Repository, Visibility

KEY = "release"
LABEL = "Start from the release template (build, dev and uat)"
DESCRIPTION = (
    "A sample app with its buildspec.yml, appspec.yml and pipeline.yml, and the environments dev and uat on local "
    "targets: a push builds it, deploys it to dev and, once approved, to uat."
)
COMMIT_MESSAGE = "Start from the release template"
ENVIRONMENTS = ("dev", "uat")
TARGET_NAME = "local"
# Where the files are installed on a target; the hooks find it with the same name.
INSTALL_DIRECTORY = "/srv/{name}"
# Replaced in the files below by the repository's name (shell and YAML use braces of their own).
NAME_MARK = "@NAME@"

APP = '''\
#!/usr/bin/env python3
"""The sample application: it greets, and tells which version of it runs and where.

The build puts REVISION (the commit it built) next to this file, and a deployment's AfterInstall hook writes
ENVIRONMENT (where it was installed).
"""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def read(name: str, default: str = "") -> str:
    path = HERE / name
    return path.read_text().strip() if path.is_file() else default


def version() -> str:
    """The version, with the commit it was built from once a build recorded it: "1.0.0 (0123456789ab)"."""
    number, revision = read("VERSION", "0.0.0"), read("REVISION")
    return f"{number} ({revision[:12]})" if revision else number


def greeting(name: str, environment: str = "") -> str:
    where = f" from {environment}" if environment else ""
    return f"Hello, {name}{where}!"


def main(argv: list[str]) -> int:
    if argv[1:] == ["--version"]:
        print(version())
        return 0
    print(greeting(argv[1] if len(argv) > 1 else "world", read("ENVIRONMENT")))
    print(f"Version {version()}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
'''

APP_TESTS = """\
import re
import unittest

import hello


class GreetingTest(unittest.TestCase):
    def test_it_greets_the_world_by_default(self):
        self.assertEqual(hello.greeting("world"), "Hello, world!")

    def test_it_says_which_environment_it_runs_in(self):
        self.assertEqual(hello.greeting("team", "dev"), "Hello, team from dev!")


class VersionTest(unittest.TestCase):
    def test_the_version_is_a_release_number(self):
        self.assertRegex(hello.version().split()[0], re.compile(r"^\\d+\\.\\d+\\.\\d+$"))
"""

TEST_RUNNER = '''\
"""Run the unit tests (tests/test_*.py) and write their JUnit XML report, which the build's page shows.

Usage: python3 tests/run.py [report path, reports/junit.xml by default]. Python's standard library only.
"""

import sys
import time
import unittest
import xml.etree.ElementTree as ElementTree
from pathlib import Path

TESTS = Path(__file__).resolve().parent
SOURCE = TESTS.parent / "src"


class Recorder(unittest.TextTestResult):
    """unittest's own result, which also keeps each test's outcome and duration for the report."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.cases = []

    def startTest(self, test):
        self.started = time.monotonic()
        super().startTest(test)

    def record(self, test, outcome, message=""):
        self.cases.append((test, outcome, message, time.monotonic() - self.started))

    def addSuccess(self, test):
        super().addSuccess(test)
        self.record(test, "passed")

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self.record(test, "failure", self._exc_info_to_string(err, test))

    def addError(self, test, err):
        super().addError(test, err)
        self.record(test, "error", self._exc_info_to_string(err, test))

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self.record(test, "skipped", reason)


def junit(cases) -> ElementTree.ElementTree:
    counts = {outcome: sum(1 for case in cases if case[1] == outcome) for outcome in ("failure", "error", "skipped")}
    suite = ElementTree.Element(
        "testsuite",
        name="unit",
        tests=str(len(cases)),
        failures=str(counts["failure"]),
        errors=str(counts["error"]),
        skipped=str(counts["skipped"]),
    )
    for test, outcome, message, seconds in cases:
        kind = type(test)
        case = ElementTree.SubElement(
            suite,
            "testcase",
            classname=f"{kind.__module__}.{kind.__name__}",
            name=getattr(test, "_testMethodName", str(test)),
            time=f"{seconds:.3f}",
        )
        if outcome != "passed":
            lines = message.strip().splitlines()
            ElementTree.SubElement(case, outcome, message=lines[-1] if lines else "").text = message
    return ElementTree.ElementTree(suite)


def main(argv) -> int:
    report = Path(argv[1] if len(argv) > 1 else "reports/junit.xml")
    sys.path.insert(0, str(SOURCE))
    tests = unittest.defaultTestLoader.discover(str(TESTS), pattern="test_*.py")
    result = unittest.TextTestRunner(verbosity=2, resultclass=Recorder).run(tests)
    report.parent.mkdir(parents=True, exist_ok=True)
    junit(result.cases).write(report, encoding="utf-8", xml_declaration=True)
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
'''

BUILDSPEC = """\
version: 0.2

env:
  variables:
    # No __pycache__ in the workspace: the artifact takes only the files named below.
    PYTHONDONTWRITEBYTECODE: "1"

phases:
  pre_build:
    commands:
      - echo "Testing $CODEBUILD_RESOLVED_SOURCE_VERSION"
      - python3 tests/run.py reports/junit.xml
  build:
    commands:
      - echo "Packing version $(cat src/VERSION) into the artifact"
      - mkdir -p app
      - cp src/hello.py src/VERSION app/
      - echo "$CODEBUILD_RESOLVED_SOURCE_VERSION" > app/REVISION
      - python3 app/hello.py --version

reports:
  unit-tests:
    files:
      - junit.xml
    base-directory: reports
    file-format: JUNITXML

artifacts:
  files:
    - appspec.yml
    - app/**/*
    - scripts/**/*
"""

APPSPEC = f"""\
version: 0.0
os: linux
files:
  - source: app
    destination: {INSTALL_DIRECTORY.format(name=NAME_MARK)}
file_exists_behavior: OVERWRITE
hooks:
  ApplicationStop:
    - location: scripts/application_stop.sh
      timeout: 60
  BeforeInstall:
    - location: scripts/before_install.sh
      timeout: 60
  AfterInstall:
    - location: scripts/after_install.sh
      timeout: 60
  ApplicationStart:
    - location: scripts/application_start.sh
      timeout: 60
  ValidateService:
    - location: scripts/validate_service.sh
      timeout: 60
"""

HOOK_COMMON = f"""\
# Sourced by every hook: where the bundle is, and where the application is installed. A local target's hooks see
# the target's "/" under $PORTAL_TARGET_ROOT; an ssh target's hooks run on the host, whose "/" it is.
BUNDLE_DIR="$(cd "$(dirname "$0")/.." && pwd)"
APP_DIR="${{PORTAL_TARGET_ROOT:-}}{INSTALL_DIRECTORY.format(name=NAME_MARK)}"
"""

HOOKS = {
    "application_stop.sh": """\
#!/bin/sh
# ApplicationStop runs the previous revision's copy of this script, before the new revision is installed.
set -eu
. "$(dirname "$0")/common.sh"
# A failure here would block every later deployment to the target, so a missing application is only reported.
version="$(python3 "$APP_DIR/hello.py" --version 2>/dev/null || echo "unknown (not found in $APP_DIR)")"
echo "ApplicationStop: stopping version $version in $DEPLOYMENT_GROUP_NAME"
echo "ApplicationStop: the sample runs no service between deployments, so there is nothing else to stop"
""",
    "before_install.sh": """\
#!/bin/sh
set -eu
. "$(dirname "$0")/common.sh"
echo "BeforeInstall: deployment $DEPLOYMENT_ID of $APPLICATION_NAME to $DEPLOYMENT_GROUP_NAME"
echo "BeforeInstall: about to install $(cat "$BUNDLE_DIR/app/VERSION") of commit ${BUNDLE_COMMIT:-unknown} to $APP_DIR"
""",
    "after_install.sh": """\
#!/bin/sh
set -eu
. "$(dirname "$0")/common.sh"
echo "AfterInstall: writing the environment's name for the application to read"
echo "$DEPLOYMENT_GROUP_NAME" > "$APP_DIR/ENVIRONMENT"
echo "AfterInstall: installed files:"
ls -l "$APP_DIR"
""",
    "application_start.sh": """\
#!/bin/sh
set -eu
. "$(dirname "$0")/common.sh"
echo "ApplicationStart: running the application once (a long-running service would be started here)"
python3 "$APP_DIR/hello.py" "$APPLICATION_NAME"
""",
    "validate_service.sh": """\
#!/bin/sh
# ValidateService: the installed application must answer with the version this deployment carries; otherwise the
# deployment fails, and the environment rolls back to the revision it ran before.
set -eu
. "$(dirname "$0")/common.sh"
expected="$(python3 "$BUNDLE_DIR/app/hello.py" --version)"
installed="$(python3 "$APP_DIR/hello.py" --version)"
echo "ValidateService: expecting $expected, the installed application answers $installed"
if [ "$installed" != "$expected" ]; then
    echo "ValidateService: the installed version is not the one deployed" >&2
    exit 1
fi
if [ -n "${BUNDLE_COMMIT:-}" ] && [ "$(cat "$APP_DIR/REVISION")" != "$BUNDLE_COMMIT" ]; then
    echo "ValidateService: the installed build is of $(cat "$APP_DIR/REVISION"), not of $BUNDLE_COMMIT" >&2
    exit 1
fi
echo "ValidateService: version $installed is live in $DEPLOYMENT_GROUP_NAME"
""",
}

README = """\
# {name}

{description}

This repository started from the portal's release template: a small application with everything a release needs,
so the whole journey (build, deploy to dev, approval, deploy to uat) works from the first commit. Change the
application, keep the journey.

## What is here

| Path | What it does |
|------|--------------|
| `src/hello.py`, `src/VERSION` | The application: it greets, and tells its version and the commit it was built from. Python's standard library only. |
| `tests/test_hello.py` | Its unit tests. |
| `tests/run.py` | Runs the tests with unittest and writes a JUnit report to `reports/junit.xml`. |
| `buildspec.yml` | The build (CodeBuild's buildspec 0.2): the tests first, then the artifact: `app/` (the application stamped with the commit in `app/REVISION`), `appspec.yml` and `scripts/`. |
| `appspec.yml`, `scripts/` | The deployment (CodeDeploy's appspec 0.0): the application is installed to `{install_directory}`, and a hook runs at each lifecycle event, saying what it does. |
| `pipeline.yml` | The release pipeline: Source (`{branch}`) → Build → Deploy-dev → Approval → Deploy-uat. |

## The journey

1. **Change something and push.** Edit the greeting in `src/hello.py` (and its test), raise `src/VERSION`, and push
   to `{branch}`. Try it first on your machine: `python3 tests/run.py` and `python3 src/hello.py`.
2. **Build.** The push builds the commit in the build sandbox: the tests run first, and the build's page shows their
   report (the `unit-tests` group); a failing test fails the build and nothing is released. A passing build keeps
   one artifact, with its sha256 and provenance: every environment receives those same bytes.
3. **Deploy to dev.** The artifact is installed on dev's target. The deployment's page shows each lifecycle event
   with its hook's output: ApplicationStop (the previous version), BeforeInstall, Install, AfterInstall,
   ApplicationStart (the application runs once and greets) and ValidateService, which checks that the installed
   application answers with the version and commit just deployed. Had it failed, dev would have rolled back to what
   it ran before.
4. **Approval.** The release waits for uat's approval. {approvers} The person who pushed, merged or started the
   release never counts.
5. **Deploy to uat.** Once approved, the same artifact (the same sha256 as dev received) is installed on uat.

Every push to `{branch}`, a merged pull request's too, starts an execution of the `release` pipeline, which runs
these steps one after the other by itself: follow it on the repository's Pipelines tab. At the approval, uat's
approvers are told in the portal and by email, with a link to the approval's page: the commits since what uat runs,
the pull requests merged in them with who approved them, the diff, the build's tests and the artifact's sha256.
They approve or reject there, with a comment; an approval nobody answers in 7 days fails the execution. While one
execution waits at the approval, the next waits in front of it, and a newer one arriving there replaces it
(`execution_mode: SUPERSEDED` in `pipeline.yml`). Each execution keeps its release record: the commit, the pull
requests, the build, the artifact's digest, the deployments and the approvals' answers.

## The environments

- **dev**: one local target named `local`, a directory on the portal's host; no approval needed.
- **uat**: one local target named `local`; {uat_rule}

A local target runs the hooks in the portal's sandbox, with no network: the sample needs nothing more. To release to
real machines, replace the targets with ssh targets in the repository's settings (Environments), and add
reviewers there.
"""

ORG_APPROVERS = "One of the {team} team approves it, with a comment."
WRITER_APPROVERS = (
    "Anyone who may write to this repository approves it, with a comment; add reviewers to uat to choose who."
)
ORG_UAT_RULE = "one approval of the {team} team is required."
WRITER_UAT_RULE = "no reviewers yet: the pipeline's approval is answered by any writer other than the requester."


def _uat_reviewers(owner: User) -> Team | None:
    """The team that approves uat: an organization's owners, when they are two people or more (so that whoever
    requests a release, someone else may approve it); None otherwise."""
    if not owner.is_organization:
        return None
    team = Team.objects.filter(organization=owner, name=Team.OWNERS).first()
    if team is None or team.members.filter(is_active=True, is_organization=False).count() < 2:
        return None
    return team


def template_files(
    name: str, *, description: str = "", default_branch: str = "main", approvers: Team | None = None
) -> dict[str, bytes]:
    """The files of a repository made from the release template, by path."""
    install_directory = INSTALL_DIRECTORY.format(name=name)
    readme = README.format(
        name=name,
        description=description or "A sample application released with the portal.",
        install_directory=install_directory,
        branch=default_branch,
        approvers=ORG_APPROVERS.format(team=approvers) if approvers else WRITER_APPROVERS,
        uat_rule=ORG_UAT_RULE.format(team=approvers) if approvers else WRITER_UAT_RULE,
    )
    files = {
        "README.md": readme,
        "src/hello.py": APP,
        "src/VERSION": "1.0.0\n",
        "tests/test_hello.py": APP_TESTS,
        "tests/run.py": TEST_RUNNER,
        "buildspec.yml": BUILDSPEC,
        "appspec.yml": APPSPEC.replace(NAME_MARK, name),
        "scripts/common.sh": HOOK_COMMON.replace(NAME_MARK, name),
        "pipeline.yml": default_pipeline_yaml(default_branch, ENVIRONMENTS),
        **{f"scripts/{script}": text for script, text in HOOKS.items()},
        ".gitignore": "__pycache__/\nreports/\napp/\n",
    }
    return {path: text.encode() for path, text in files.items()}


def _health_check(name: str) -> str:
    """The targets' health check: the installed application answers with its version."""
    return f'python3 "$PORTAL_TARGET_ROOT{INSTALL_DIRECTORY.format(name=name)}/hello.py" --version'


def create_from_release_template(
    actor: User,
    owner: User,
    name: str,
    *,
    description: str = "",
    visibility: str = Visibility.PRIVATE,
    default_branch: str = "main",
) -> Repository:
    """Create a repository from the release template: its files as the first commit of the default branch (recorded
    as the actor's push, which queues its build) and the environments dev and uat on local targets."""
    with transaction.atomic():
        repo = repo_services.create_repository(
            actor=actor,
            owner=owner,
            name=name,
            description=description,
            visibility=visibility,
            default_branch=default_branch,
        )
        # The rows roll back with the transaction; the directory on disk has to be removed by hand.
        try:
            approvers = _uat_reviewers(owner)
            for environment in ENVIRONMENTS:
                settings = {}
                if environment == "uat" and approvers is not None:
                    settings = {"reviewers": [{"type": "Team", "id": approvers.pk}], "required_approvals": 1}
                environments.set_environment(
                    repo,
                    environment,
                    actor=actor,
                    targets=[{"name": TARGET_NAME, "type": "local", "health_check": _health_check(repo.name)}],
                    **settings,
                )
            files = template_files(
                repo.name, description=description, default_branch=default_branch, approvers=approvers
            )
            sha = git.commit_files(
                repo.path,
                default_branch,
                files,
                COMMIT_MESSAGE,
                name=actor.display_name,
                email=actor.email or f"{actor.username}@users.noreply",
            )
            audit.record(actor, "repo.create_from_template", repo, after={"template": KEY, "commit": sha})
            # Recorded as the actor's push, as a merge is: whatever follows a push (the build, the pipeline) follows
            # the first commit too, once the transaction commits.
            update = repo_services.RefUpdate(ref=f"refs/heads/{default_branch}", old_sha=git.ZERO_SHA, new_sha=sha)
            repo_services.record_push(repo, actor=Principal(user=actor), protocol="web", updates=[update])
        except BaseException:
            git.delete(repo.path)
            raise
    return repo
