"""What rq's cron scheduler runs (`manage.py rqcron portal.cron`, started by `manage.py serve`).

The schedule lives here, in code, not in Redis: losing Redis loses no schedule, and the reconciler it runs puts
back every job Redis lost."""

from django.conf import settings
from rq import cron

from portal.jobs import run_pruner, run_reconciler

cron.register(run_reconciler, "default", interval=settings.PORTAL_JOB_RECONCILE_INTERVAL, name="job reconciler")
cron.register(run_pruner, "default", interval=60 * 60, name="job pruner")
