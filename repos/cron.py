"""What repos schedules on rq's cron scheduler (loaded by portal/cron.py)."""

from django.conf import settings
from rq import cron

from repos.jobs import run_ref_reconciler

cron.register(run_ref_reconciler, "default", interval=settings.PORTAL_JOB_RECONCILE_INTERVAL, name="ref reconciler")
