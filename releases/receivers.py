"""How releases follows what repos and reviews announce: builds of pushed branches and of pull requests.

Connected in ReleasesConfig.ready(). Only a commit holding a buildspec is built, and a commit is built once: a push
that also moves a pull request's head (reviews hears of the push first and synchronizes the pull request) makes one
build, of the pull request, whose status lands on the sha both name. Which branches a push builds, and whether
it builds tags, is the repository's build settings' choice (every branch and no tag by default)."""

import logging

from django.db import transaction

from portal.models import User
from releases import pipelines, services
from releases.models import Build
from repos.models import Repository
from repos.services import RefUpdate
from reviews.models import PullRequest

log = logging.getLogger(__name__)


def build_pushed_branches(
    sender, *, repository: Repository, updates: list[RefUpdate], pusher: User | None, **kwargs
) -> list[str]:
    """Queue a build of each pushed branch's new head, and answer where to watch it."""
    lines: list[str] = []
    settings = services.build_settings(repository)
    for update in updates:
        if update.is_delete or not services.builds_push_of(repository, update.ref, settings):
            continue
        if not services.has_buildspec(repository, update.new_sha, settings.buildspec_path):
            continue
        build = services.build_of(repository, update.new_sha)
        if build is None:
            build = services.start_build(
                repository, sha=update.new_sha, ref=update.ref, trigger=Build.Trigger.PUSH, initiator=pusher
            )
        lines += ["", f"Build #{build.number} of {update.new_sha[:12]}:", f"  {build.web_url}"]
    return lines


def build_pull_request(sender, *, pull_request: PullRequest, actor: User | None = None, **kwargs) -> None:
    """Queue a build of a pull request's head, opened or moved, unless that commit is built already."""
    repository = pull_request.repository
    sha = pull_request.head_sha
    path = services.build_settings(repository).buildspec_path
    if not services.has_buildspec(repository, sha, path) or services.build_of(repository, sha) is not None:
        return
    services.start_build(
        repository,
        sha=sha,
        ref=f"refs/pull/{pull_request.number}/head",
        trigger=Build.Trigger.PULL_REQUEST,
        initiator=actor,
        pull_request=pull_request,
    )


def run_pipelines(
    sender, *, repository: Repository, updates: list[RefUpdate], pusher: User | None, **kwargs
) -> list[str]:
    """Start an execution of the pipeline whose source is each pushed branch (a merge is a push), and answer what
    started. A pipeline that cannot start never refuses the push: git accepted it already."""
    lines: list[str] = []
    for update in updates:
        if update.is_delete or not update.ref.startswith("refs/heads/"):
            continue
        branch = update.ref.removeprefix("refs/heads/")
        try:
            with transaction.atomic():
                lines += pipelines.start_for_push(repository, branch, update.new_sha, pusher=pusher)
        except Exception:
            log.exception("could not start the pipeline of %s for %s", repository.full_name, update.ref)
    return lines
