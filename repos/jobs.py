"""rq entry points for repositories: thin, they re-read rows by id and call git or services."""

import logging
from datetime import timedelta

import django_rq
from django.conf import settings

from repos import git
from repos.models import Push, Repository

log = logging.getLogger(__name__)


def maintenance_job_id(repository_id: int) -> str:
    return f"repository-maintenance-{repository_id}"


def schedule_maintenance(repository_id: int) -> None:
    """Run maintenance a while after the last push: a burst of pushes costs one run, not one each.

    rq keeps one job per id, so enqueuing again under the same id moves the scheduled time later."""
    django_rq.get_queue("default").enqueue_in(
        timedelta(seconds=settings.PORTAL_MAINTENANCE_DELAY),
        "repos.jobs.run_repository_maintenance",
        repository_id,
        job_id=maintenance_job_id(repository_id),
    )


def run_post_receive(push_ids: list[int]) -> None:
    """Follow up on recorded pushes: schedule maintenance of each pushed repository."""
    repository_ids = set(Push.objects.filter(pk__in=push_ids).values_list("repository_id", flat=True))
    for repository_id in sorted(repository_ids):
        schedule_maintenance(repository_id)


def run_repository_maintenance(repository_id: int) -> None:
    """Keep a repository fast to read: geometric repack with a bitmap, then the commit-graph."""
    repo = Repository.objects.filter(pk=repository_id).first()
    # The repository may have been deleted since the push: then there is nothing left to do.
    if repo is None or not repo.path.exists() or git.is_empty(repo.path):
        return
    # Both steps are safe to repeat, and cheap when nothing changed since the last run.
    git.repack(repo.path)
    git.write_commit_graph(repo.path)
