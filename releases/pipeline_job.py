"""The pipelines' jobs on the `default` queue: the sweep, run every minute by rq's cron scheduler, and the calls of
invoke actions.

Pipelines have no job row of their own: their state is on the Pipeline row and moves in the transactions that
change it (a push, an answer, the end of a build or a deployment, releases.pipelines). What moves with time alone
is here: approvals that time out, and actions whose build or deployment ended while their pipeline could not move
on. Running it twice, or beside a change, is safe: each pipeline moves under its row's lock, and a rule applied
twice changes nothing the second time.

The one call a pipeline makes outside the portal, an invoke action's webhook, is a job row of its own
(PipelineInvocation): claimed by compare-and-swap, tried again while attempts are left, reconciled. The call is
signed with a repository secret (HMAC-SHA256 of the body, as Gitea and GitHub sign) and succeeds when the receiver
answers 2xx; a worker lost mid-call makes it again, so a receiver may see a call twice."""

import hashlib
import hmac
import http.client
import json

from django.conf import settings
from django.db.models import Q

from portal import jobs, outbound
from releases import approvals, pipelines, secrets, variables
from releases.models import BuildVariable, PipelineActionRun, PipelineExecution, PipelineInvocation


def run_sweep() -> dict[str, int]:
    """rq entry point: move every pipeline under way on with time, finish actions whose run ended unheard, and
    remind the approvers of approvals waiting too long."""
    counts = pipelines.sweep()
    counts["reminded"] = approvals.send_reminders()
    return counts


def run_invocation(invocation_id: int) -> None:
    """rq entry point: call an invoke action's webhook once (a second delivery of the same call does nothing)."""
    invocation = (
        PipelineInvocation.objects.filter(pk=invocation_id)
        .select_related("action_run__execution__pipeline__repository__owner", "action_run__execution__build")
        .first()
    )
    jobs.run_claimed(invocation, invoke)


class InvocationFailed(Exception):
    """The webhook could not be reached or did not answer 2xx: the call is tried again while it may be."""


def _invocation_secret(execution: PipelineExecution, name: str) -> tuple[str | None, str]:
    """The value of the secret that signs an invoke action's call, or why there is none to use. The secret goes
    where the execution's build could take it: a branch allowed secrets (releases.variables)."""
    repository = execution.pipeline.repository
    place = Q(repository=repository)
    if repository.owner.is_organization:
        place |= Q(organization=repository.owner)
    rows = sorted(
        BuildVariable.objects.filter(place, secret=True, name__iexact=name), key=lambda row: row.repository_id is None
    )
    if not rows:
        return None, f"There is no build secret named {name} to sign the call with."
    if execution.build is None:
        return None, "The execution has no build, so no branch that could be given secrets."
    if withheld := variables.secrets_withheld_because(execution.build):
        return None, f"The secret {name} is not used: {withheld}."
    try:
        return secrets.decrypt(rows[0].value), ""
    except secrets.SecretUnreadable as error:
        return None, f"The secret {name} cannot be read: {error}"


def invocation_body(invocation: PipelineInvocation) -> bytes:
    """What an invoke action sends: which pipeline, execution, stage and action call, for which commit and
    artifact."""
    run = invocation.action_run
    execution = run.execution
    pipeline = execution.pipeline
    return json.dumps(
        {
            "repository": pipeline.repository.full_name,
            "pipeline": pipeline.name,
            "execution": execution.number,
            "stage": run.stage,
            "action": run.action,
            "attempt": run.attempt,
            "source_sha": execution.source_sha,
            "artifact_digest": f"sha256:{execution.artifact_sha256}" if execution.artifact_sha256 else None,
            "rollback_of": execution.rollback_of.number if execution.rollback_of_id else None,
        },
        sort_keys=True,
    ).encode()


def invoke(invocation: PipelineInvocation) -> None:
    """Call a claimed invocation's webhook once and finish its action with the answer; raise InvocationFailed to
    be tried again while attempts are left. A call the portal may not send (a private address) is not tried
    again."""
    run = invocation.action_run
    if run.status != PipelineActionRun.Status.IN_PROGRESS:
        return
    secret, why = _invocation_secret(run.execution, invocation.secret_name)
    if secret is None:
        _finish_invocation(invocation, False, why)
        return
    body = invocation_body(invocation)
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "portal-pipeline",
        "X-Portal-Pipeline": run.execution.pipeline.name,
        "X-Hub-Signature-256": f"sha256={digest}",
    }
    try:
        response = outbound.post(invocation.url, body, headers, timeout=settings.PORTAL_WEBHOOK_TIMEOUT)
    except outbound.UnresolvedHost as error:
        failure = str(error)
    except outbound.OutboundRefused as error:
        _finish_invocation(invocation, False, f"The call of {invocation.url} was refused: {error}")
        return
    except (OSError, http.client.HTTPException) as error:
        failure = str(error) or type(error).__name__
    else:
        invocation.status_code = response.status
        invocation.response = response.body.decode("utf-8", "replace")[:5000]
        invocation.save(update_fields=["status_code", "response"])
        if 200 <= response.status < 300:
            _finish_invocation(invocation, True, f"{invocation.url} answered {response.status}.")
            return
        failure = f"the receiver answered {response.status}"
    if invocation.attempts >= invocation.max_attempts:
        _finish_invocation(
            invocation, False, f"The call of {invocation.url} failed {invocation.attempts} times: {failure}."
        )
        return
    raise InvocationFailed(failure)


def _finish_invocation(invocation: PipelineInvocation, succeeded: bool, summary: str) -> None:
    pipelines.finish_action(invocation.action_run, succeeded=succeeded, summary=summary)
