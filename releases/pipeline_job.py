"""The pipelines' scheduled job, run every minute on the `default` queue by rq's cron scheduler.

Pipelines have no job row of their own: their state is on the Pipeline row and moves in the transactions that
change it (a push, an answer, the end of a build or a deployment, releases.pipelines). What moves with time alone
is here: approvals that time out, and actions whose build or deployment ended while their pipeline could not move
on. Running it twice, or beside a change, is safe: each pipeline moves under its row's lock, and a rule applied
twice changes nothing the second time.

The one call a pipeline makes outside the portal, an invoke action's webhook, is a job row of its own
(PipelineInvocation): claimed by compare-and-swap, tried again while attempts are left, reconciled."""

from portal import jobs
from releases import pipelines
from releases.models import PipelineInvocation


def run_sweep() -> dict[str, int]:
    """rq entry point: move every pipeline under way on with time, finish actions whose run ended unheard."""
    return pipelines.sweep()


def run_invocation(invocation_id: int) -> None:
    """rq entry point: call an invoke action's webhook once (a second delivery of the same call does nothing)."""
    invocation = (
        PipelineInvocation.objects.filter(pk=invocation_id)
        .select_related("action_run__execution__pipeline__repository__owner", "action_run__execution__build")
        .first()
    )
    jobs.run_claimed(invocation, pipelines.invoke)
