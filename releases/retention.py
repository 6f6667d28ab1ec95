"""Retention: the logs and artifacts of builds that ended more than PORTAL_BUILD_KEEP_DAYS ago are removed, daily.

An artifact that something still points at (any model with a foreign key to BuildArtifact, such as a deployment
of it) is kept, found through the model's relations, so that a new kind of user needs no change here. An expired
artifact keeps its row, marked `expired` as GitHub does, with its digest and provenance; its zip, stored once for
every build that made the same bytes, is deleted only when no artifact still kept names its digest. A build whose
log was removed keeps its log_size with an empty log_path.

Each step is safe to repeat: a zip is deleted before its rows are marked, so a run cut short between the two finds
the rows again next time (and the zip already gone), and nothing is left in the store that no row will reach."""

from collections import Counter
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from portal import audit
from releases import logs
from releases.models import Build, BuildArtifact
from releases.storage import artifact_storage


def referenced(model) -> Q:
    """The rows of model that a row of another model points at, through any relation to it: the visible ones,
    the hidden ones (related_name "+") and the tables of many-to-many fields (whose rows point with a hidden
    foreign key, which is why hidden relations are asked too)."""
    condition = Q(pk__in=[])
    for relation in model._meta.get_fields(include_hidden=True):
        if not (relation.auto_created and not relation.concrete and (relation.one_to_many or relation.one_to_one)):
            continue
        field = relation.field
        pointed = field.model._base_manager.filter(**{f"{field.attname}__isnull": False}).values(field.attname)
        condition |= Q(**{f"{field.target_field.attname}__in": pointed})
    return condition


def expire(now=None) -> dict[str, int]:
    """Remove what retention removes; the counts, also audited (one record per run)."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.PORTAL_BUILD_KEEP_DAYS)
    old = Build.objects.filter(build_status__in=Build.ENDED, build_ended__lt=cutoff)
    counts = Counter(logs=0, artifacts=0, zips=0, kept_in_use=0)
    for build in old.exclude(log_path="").select_related("repository"):
        logs.remove(build)
        Build.objects.filter(pk=build.pk).update(log_path="")
        counts["logs"] += 1
    candidates = BuildArtifact.objects.filter(build__in=old, expired=False)
    in_use = referenced(BuildArtifact)
    counts["kept_in_use"] = candidates.filter(in_use).count()
    storage = artifact_storage()
    for digest in candidates.exclude(in_use).values_list("sha256", flat=True).distinct().order_by("sha256"):
        with transaction.atomic():
            rows = candidates.exclude(in_use).filter(sha256=digest)
            ids = list(rows.values_list("pk", flat=True))
            kept = BuildArtifact.objects.filter(sha256=digest, expired=False).exclude(pk__in=ids)
            name = BuildArtifact(sha256=digest).storage_name
            # A build storing the same bytes right now finds the zip there and adds its row after this look:
            # its row then names a zip that is gone, as a download of it will say.
            if not kept.exists() and storage.exists(name):
                storage.delete(name)
                counts["zips"] += 1
            counts["artifacts"] += BuildArtifact.objects.filter(pk__in=ids).update(expired=True)
    audit.record(
        None,
        "build.retention",
        target_repr=f"builds ended before {cutoff.date().isoformat()}",
        after=dict(counts) | {"keep_days": settings.PORTAL_BUILD_KEEP_DAYS},
    )
    return dict(counts)


def run_retention() -> dict[str, int]:
    """rq entry point, run daily by the cron scheduler (releases/cron.py)."""
    return expire()
