"""What rq's cron scheduler runs (`manage.py rqcron portal.cron`, started by `manage.py serve`).

The schedule lives here, in code, not in Redis: losing Redis loses no schedule, and the reconciler it runs puts
back every job Redis lost."""

from importlib import import_module

from django.apps import apps
from django.conf import settings
from django.utils.module_loading import module_has_submodule
from rq import cron

from portal.jobs import run_pruner, run_reconciler

cron.register(run_reconciler, "default", interval=settings.PORTAL_JOB_RECONCILE_INTERVAL, name="job reconciler")
cron.register(run_pruner, "default", interval=60 * 60, name="job pruner")

# Each app schedules its own jobs in its cron module (the ref reconciler in repos/cron.py): found through the app
# registry, so that portal names no app above it.
for config in apps.get_app_configs():
    if config.name != "portal" and module_has_submodule(config.module, "cron"):
        import_module(f"{config.name}.cron")
