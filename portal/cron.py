"""What rq's cron scheduler runs (`manage.py rqcron portal.cron`, started by `manage.py serve`).

The schedule lives here, in code, not in Redis: losing Redis loses no schedule, and the reconciler it runs puts
back every job Redis lost."""

from rq import cron

from portal.jobs import run_reconciler
from repos.jobs import run_ref_reconciler

cron.register(run_reconciler, "default", interval=60, name="job reconciler")
cron.register(run_ref_reconciler, "default", interval=60, name="ref reconciler")
