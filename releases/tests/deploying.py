"""What deployment and pipeline tests share (the fixtures `deploys`, `built`, `run_deploys`, `drive` and
`environments_of_release` are in conftest.py): deployable commits, environments with targets, statuses, the
release pipeline's executions and what a target runs."""

from releases import environments
from releases.local_target import LocalTarget
from releases.models import Deployment, Pipeline, PipelineExecution

BUILDSPEC = """version: 0.2
phases:
  build:
    commands:
      - echo packing
artifacts:
  files:
    - '**/*'
"""
EVENTS = ("BeforeInstall", "AfterInstall", "ApplicationStart", "ValidateService")
HOOK = '#!/bin/sh\necho "$LIFECYCLE_EVENT of $DEPLOYMENT_ID on $DEPLOYMENT_GROUP_NAME: {version}"\n{extra}\n'


def appspec_text(hooks=("ApplicationStop", *EVENTS), behavior="OVERWRITE") -> str:
    lines = ["version: 0.0", "os: linux", "files:", "  - source: app", "    destination: /srv/app"]
    lines.append(f"file_exists_behavior: {behavior}")
    lines.append("hooks:")
    for event in hooks:
        lines += [f"  {event}:", f"    - location: scripts/{event}.sh", "      timeout: 30"]
    return "\n".join(lines) + "\n"


def release_files(version: str, *, fail: dict | None = None, spec: str | None = None) -> dict[str, bytes]:
    """The files of a deployable commit: a buildspec that packs everything, an appspec and its hooks, an app file.

    fail maps a lifecycle event to the shell line that makes its hook fail (or the target name it fails on)."""
    fail = fail or {}
    files = {
        "buildspec.yml": BUILDSPEC.encode(),
        "appspec.yml": (spec or appspec_text()).encode(),
        "app/version.txt": f"{version}\n".encode(),
    }
    for event in ("ApplicationStop", *EVENTS):
        files[f"scripts/{event}.sh"] = HOOK.format(version=version, extra=fail.get(event, "")).encode()
    return files


def set_targets(repo, name: str, targets, actor, **settings):
    """The environment `name` of repo with these targets (names of local ones, or dicts) and settings."""
    targets = [{"name": target, "type": "local"} if isinstance(target, str) else target for target in targets]
    environment, _created, _keys = environments.set_environment(repo, name, actor=actor, targets=targets, **settings)
    return environment


def statuses(deployment: Deployment) -> list[str]:
    return list(deployment.statuses.order_by("created", "id").values_list("state", flat=True))


def release(repo) -> Pipeline:
    return Pipeline.objects.get(repository=repo, name="release")


def latest(repo) -> PipelineExecution:
    return release(repo).executions.order_by("-number").first()


def deployed_version(repo, environment: str) -> str:
    """The app version that target a of the environment runs now."""
    return (LocalTarget(repo.pk, environment, "a").current / "root/srv/app/version.txt").read_text().strip()


def uat_runs_v1_and_bobs_v2_waits(repo, alice, bob, drive):
    """Under environments_of_release: uat runs v1 (bob pushed it, alice approved it), and bob's pull request for v2
    from the branch feature is open and approved by alice. The uat commit, v2's commit and the pull request."""
    from releases import pipelines
    from releases.tests.test_builds import push_files
    from repos import git
    from reviews import services as reviews

    push_files(repo, bob, "main", release_files("v1"))
    drive()
    pipelines.answer_approval(latest(repo), "Approval", "Approve", user=alice, status="Approved")
    drive()
    assert deployed_version(repo, "uat") == "v1"
    git.update_ref(repo.path, "refs/heads/feature", git.branch_sha(repo.path, "main"), git.ZERO_SHA)
    change = push_files(repo, bob, "feature", release_files("v2"))
    pr = reviews.open_pull_request(repo, actor=bob, title="Release v2", base="main", head="feature")
    reviews.submit_review(pr, actor=alice, event="APPROVE", commit_sha=pr.head_sha, body="Looks right.")
    return latest(repo).source_sha, change, pr
