"""What releases schedules on rq's cron scheduler (loaded by portal/cron.py)."""

from rq import cron

from releases.deploy_job import check_health
from releases.pipeline_job import run_sweep
from releases.retention import run_retention

cron.register(run_retention, "default", interval=24 * 60 * 60, name="build retention")
cron.register(check_health, "deploys", interval=5 * 60, name="target health checks")
cron.register(run_sweep, "default", interval=60, name="pipeline sweep")
