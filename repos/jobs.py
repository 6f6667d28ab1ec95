"""rq entry points for repositories: thin, they re-read rows by id and call git or services."""

import logging
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from portal.jobs import run_claimed
from repos import code, git, services
from repos.models import Push, PushSession, Repository, RepositoryMaintenance

log = logging.getLogger(__name__)


def maintenance_job_id(repository_id: int) -> str:
    return RepositoryMaintenance(repository_id=repository_id).rq_job_id()


def schedule_maintenance(repository_id: int) -> RepositoryMaintenance:
    """Run maintenance a while after the last push: a burst of pushes costs one run, not one each.

    The repository's one queued row gets a later due time, and rq keeps one job per id, so enqueuing it again
    moves the scheduled time later too."""
    due_at = timezone.now() + timedelta(seconds=settings.PORTAL_MAINTENANCE_DELAY)
    with transaction.atomic():
        row = RepositoryMaintenance.objects.filter(repository_id=repository_id, state="queued").first()
        if row is None:
            try:
                with transaction.atomic():
                    row = RepositoryMaintenance.objects.create(repository_id=repository_id, due_at=due_at)
            except IntegrityError:
                # Another worker queued one at the same moment: move that one instead.
                row = RepositoryMaintenance.objects.get(repository_id=repository_id, state="queued")
        RepositoryMaintenance.objects.filter(pk=row.pk).update(due_at=due_at, enqueued_at=timezone.now())
        row.refresh_from_db()
        row.enqueue()
    return row


def run_post_receive(push_ids: list[int]) -> None:
    """Follow up on recorded pushes: schedule maintenance of each pushed repository, and render ahead the READMEs
    of the directories each push to a default branch changed."""
    pushes = list(Push.objects.filter(pk__in=push_ids).select_related("repository__owner").order_by("pk"))
    for repository_id in sorted({push.repository_id for push in pushes}):
        schedule_maintenance(repository_id)
    for push in pushes:
        prepare_readmes(push)


def prepare_readmes(push: Push) -> int:
    """The READMEs a push to the repository's default branch changed, rendered and kept for the directory pages at
    that branch (the repository's home first), so that their first readers do not wait for Markdown. Other
    branches' folder pages are seldom read (their pull requests are), and a new one would have every README
    rendered again for its own links. Only a head start: what fails is logged, and the pages render it."""
    repo = push.repository
    if push.ref != f"refs/heads/{repo.default_branch}" or push.is_delete or not repo.path.exists():
        return 0
    old = None if push.is_create else push.old_sha
    try:
        return code.prepare_readmes(
            repo.path, push.new_sha, old, prefix=repo.get_absolute_url(), ref=push.ref.removeprefix("refs/heads/")
        )
    except Exception:
        log.exception("rendering the READMEs pushed to %s %s failed", repo.full_name, push.ref)
        return 0


def run_repository_maintenance(repository_id: int) -> None:
    """Keep a repository fast to read: geometric repack with a bitmap, then the commit-graph."""
    row = RepositoryMaintenance.objects.filter(repository_id=repository_id, state="queued").first()
    # Nothing queued: another delivery of the same job ran it already, or the repository was deleted.
    run_claimed(row, _maintain)


def _maintain(row: RepositoryMaintenance) -> None:
    repo = Repository.objects.filter(pk=row.repository_id).first()
    # The repository may have been deleted since the push: then there is nothing left to do.
    if repo is None or not repo.path.exists():
        return
    # Every step is safe to repeat, and cheap when nothing changed since the last run.
    remove_stale_incoming(repo)
    if git.is_empty(repo.path):
        return
    git.repack(repo.path)
    git.write_commit_graph(repo.path)


def remove_stale_incoming(repo: Repository) -> list[str]:
    """Remove what killed pushes left in the repository's objects/ (their quarantine directories), never while a
    push to it may still be running."""
    pushing = PushSession.objects.filter(repository=repo, git_exited__isnull=True)
    if pushing.filter(created__gte=timezone.now() - services.push_session_max_age()).exists():
        return []
    removed = git.remove_stale_incoming(repo.path, older_than=settings.PORTAL_STALE_INCOMING_AGE)
    if removed:
        log.info("removed %d stale push quarantine(s) from %s", len(removed), repo.full_name)
    return removed


def run_ref_reconciler(repository_id: int | None = None) -> int:
    """Record late what post-receive did not: for one repository (enqueued when git exits with its push session
    unretired), or, from rq's cron, for every repository such a session names. Returns the updates recorded.

    The unretired sessions in the database are the record of what is left to do, so a lost job loses nothing (the
    next cron run finds them), and a repeated one records nothing twice (record_push's compare-and-swap)."""
    sessions = services.unrecorded_push_sessions()
    if repository_id is not None:
        sessions = sessions.filter(repository_id=repository_id)
    recorded = 0
    for repo in Repository.objects.filter(pk__in=sessions.values("repository_id")).select_related("owner"):
        recorded += len(services.reconcile_refs(repo))
    return recorded
