"""rq entry points for repositories: thin, they re-read rows by id and call git or services."""

import logging

from repos import git
from repos.models import Push

log = logging.getLogger(__name__)


def run_post_receive(push_ids: list[int]) -> None:
    """Follow up on recorded pushes: keep each pushed repository fast to read."""
    pushes = list(Push.objects.filter(pk__in=push_ids).select_related("repository"))
    # The repository may have been deleted since the push: then there is nothing left to do.
    repositories = {push.repository_id: push.repository for push in pushes}
    for repo in repositories.values():
        if not repo.path.exists():
            continue
        # Safe to repeat: a second run rewrites the same commit-graph.
        git.write_commit_graph(repo.path)
