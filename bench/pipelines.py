"""Pipelines: merge to dev deployed, and approval to uat deployed, on local targets, with the portal's own share
beside the build's and the hooks' time, over a running portal.

Run by hand, never by the test suite (as root, as the portal runs builds and deployments: each sandbox and each
local target's hooks get a uid of their own):

    .venv/bin/python bench/pipelines.py [--rounds 20] [--poll 0.02]

Setup, in a throw-away folder: migrate and start the portal as `make run` does (`manage.py serve`: SQLite, embedded
Valkey, gunicorn, the SSH server, one rq worker of every queue and the cron scheduler) on free ports; this process
then opens the same database and Valkey through Django to create the users `bench` (the repository's owner, who
merges) and `reviewer` (a writer, who approves: the requester never approves), their tokens, the repository `app`
and its environments dev and uat of one local target each, uat guarded by `reviewer` (one approval required). The
release is pushed over HTTP with the real git: a buildspec of one `true` command and an appspec whose five hooks
each run `true` (bench/deploys.py's release), so what is measured is the portal. That push runs the default pipeline
(Build, Deploy-dev, Approval, Deploy-uat) once, unmeasured, which warms the workers and gives each target a live
revision.

Then each round, as a user meets it: push a branch changing one file over HTTP, open its pull request through the
API, wait for its build (a pull request's head is built when it opens; its build is not the merge's), then

1. merge to dev deployed: merge the pull request through the API (a merge commit, so the pipeline's build is the
   merge's own), then watch dev's deployment (polling the database every --poll seconds) until it is Succeeded.
   Wall time from the merge call's start to Succeeded seen, split by the rows' timestamps (the workers' clock; one
   machine, so one clock with this process's): merge -> the build queued (the merge's request: the push recorded,
   its build and the execution created), queued -> claimed by the builds worker, claimed -> running, the build's
   run (build_started to build_ended: the checkout and the sandbox's start before its first phase, the commands'
   phases, the artifact stored and the sandbox removed after), the build's end -> dev's deployment queued (the
   result recorded, the pipeline moving to Deploy-dev), queued -> claimed by the deploys worker, claimed -> the
   target's start (the door), the target's run (of which the hooks: the sum of the durations of the hook events),
   the target's end -> the deployment's end, and its end -> seen here (the transaction that records the end also
   moves the pipeline: the stage's end, the approval's request and its notices). Beside those: the execution's
   creation after the merge's start, the Deploy-dev action's end after the deployment's (the stage recorded), and
   the approval's request after the deployment's end. Each job's queue (its row queued -> claimed) is split by
   rq's own timestamps into commit (the row's creation to rq holding the job: the rest of the transaction that
   queued it), rq (to the work horse's start: the worker's dequeue and fork) and claim (to the row claimed: the
   row's read and compare-and-swap).
2. approval to uat deployed: answer the approval (POST .../executions/{id}/approvals as `reviewer`), then watch uat's
   deployment until it is Succeeded: answer's start -> the approval recorded, -> uat's deployment queued, queued ->
   claimed, the door, the target (hooks), -> the deployment's end, -> seen; beside them the execution's end after
   the deployment's.

The portal's share = wall - the build's run - the hooks. Printed: each measure's median, p90 and max (a part of the
line above it indented under it), each round's wall and share (in full when the share passed a second), and the
load average (1 minute) at the start and the end of the rounds: the machine's other work slows every part.
"""

import argparse
import json
import os
import time
import urllib.error
import urllib.request
import warnings
from datetime import UTC, datetime, timedelta

from bench.builds import Clone, percentile, use_portal_from_here, wait_for
from bench.deploys import HOOKS, RELEASE, event_seconds
from bench.transport import migrate, portal_environment, running_portal, sandboxed_folder

PIPELINE = "release"


def api(base: str, token: str, method: str, path: str, body: dict | None = None) -> dict:
    request = urllib.request.Request(
        f"{base}/api/v1{path}",
        data=json.dumps(body).encode() if body is not None else None,
        method=method,
        headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            data = response.read()
    except urllib.error.HTTPError as error:
        raise SystemExit(f"{method} {path} answered {error.code}: {error.read()[:500]!r}") from None
    return json.loads(data) if data else {}


def set_up() -> tuple[object, object, str, str]:
    """The users bench and reviewer (a writer), their tokens, the repository app and its environments dev and uat
    of one local target each, uat guarded by reviewer: (bench, app, bench's token, reviewer's token)."""
    from django.utils import timezone

    from portal import services as accounts
    from releases import environments
    from repos import services as repos
    from repos.models import Role

    def user(name: str):
        person = accounts.create_user(actor=None, username=name, email=f"{name}@example.com", password="bench-pass-123")
        _, token = accounts.create_access_token(
            person,
            actor=person,
            name="bench",
            scopes=["api", "write:repo"],
            expires_at=timezone.now() + timedelta(days=1),
        )
        return person, token

    bench, bench_token = user("bench")
    reviewer, reviewer_token = user("reviewer")
    app = repos.create_repository(actor=bench, owner=bench, name="app", visibility="public", initialize=True)
    repos.set_collaborator(app, reviewer, actor=bench, role=Role.WRITE)
    for name in ("dev", "uat"):
        environments.set_environment(
            app, name, actor=bench, deployment_config="AllAtOnce", targets=[{"name": "t1", "type": "local"}]
        )
    # uat is guarded as a release's is: its reviewer answers the pipeline's approval, which is then the review of
    # the deployment the pipeline requests.
    environments.set_environment(
        app, "uat", actor=bench, required_approvals=1, reviewers=[{"type": "User", "id": reviewer.pk}]
    )
    return bench, app, bench_token, reviewer_token


def commit_all(clone: Clone, files: dict[str, bytes], message: str) -> str:
    for name, data in files.items():
        path = clone.path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        if name.endswith(".sh"):
            path.chmod(0o755)
    clone.git("add", "-A")
    clone.git("commit", "-qm", message)
    return clone.git("rev-parse", "HEAD")


def poll_until(condition, interval: float, timeout: float = 300):
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise SystemExit("timed out")
        time.sleep(interval)
    return value


def execution_of(app, sha: str):
    from releases.models import PipelineExecution

    return PipelineExecution.objects.filter(pipeline__repository=app, source_sha=sha).first()


def action_run(execution, stage: str):
    from releases.models import PipelineActionRun

    return PipelineActionRun.objects.filter(execution=execution, stage=stage).order_by("-attempt").first()


def deployment_seen(execution, stage: str, interval: float):
    """Wait for the deploy action of the stage to have a deployment that ended: (deployment, seen at)."""
    from releases.models import Deployment

    def ended():
        run = action_run(execution, stage)
        if run is None or run.deployment_id is None:
            return None
        status = Deployment.objects.filter(pk=run.deployment_id).values_list("deployment_status", flat=True)[0]
        return run.deployment_id if status in Deployment.ENDED else None

    deployment_id = poll_until(ended, interval)
    seen = time.time()
    deployment = Deployment.objects.select_related("environment").get(pk=deployment_id)
    if deployment.deployment_status != Deployment.Status.SUCCEEDED:
        raise SystemExit(f"{deployment} ended {deployment.deployment_status}: {deployment.message}")
    return deployment, seen


def pending_approval(execution, interval: float):
    from releases.models import PipelineApproval

    return poll_until(
        lambda: PipelineApproval.objects.filter(execution=execution, status=PipelineApproval.Status.PENDING).first(),
        interval,
    )


def ended_execution(execution):
    from releases.models import PipelineExecution

    def ended():
        execution.refresh_from_db()
        return execution.status not in (PipelineExecution.Status.IN_PROGRESS, PipelineExecution.Status.STOPPING)

    poll_until(ended, 0.02)
    if execution.status != PipelineExecution.Status.SUCCEEDED:
        raise SystemExit(f"execution {execution.number} ended {execution.status}: {execution.reason}")
    return execution


def stamp(value: datetime | None) -> float:
    if value is None:
        raise SystemExit("a timestamp the bench needs is empty")
    return value.timestamp()


def rq_times(row) -> tuple[float, float]:
    """When rq had the row's job enqueued (the transaction that queued it committed) and when a work horse started
    it (rq's own timestamps, kept for a while after the job)."""
    import django_rq
    from rq.job import Job

    job = Job.fetch(row.rq_job_id(), connection=django_rq.get_connection(row.queue_name))

    def seconds(value: datetime) -> float:
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()

    return seconds(job.enqueued_at), seconds(job.started_at)


def phase_span(build) -> tuple[float, float, float]:
    """The first phase's start, the last phase's end and the phases' total seconds of a build."""
    phases = build.phases
    if not phases:
        raise SystemExit(f"build #{build.number} recorded no phases")

    def seconds(value) -> float:
        return float(value) if not isinstance(value, str) else datetime.fromisoformat(value).timestamp()

    return (
        seconds(phases[0]["started"]),
        seconds(phases[-1]["ended"]),
        sum(phase["duration"] for phase in phases),
    )


def deployment_split(deployment) -> dict[str, float]:
    """The deployment's own timestamps: queued -> claimed, the door, the target, its hooks, the end."""
    (run,) = deployment.targets.all()
    hooks = event_seconds(run, HOOKS)
    enqueued, horse = rq_times(deployment)
    return {
        "queue": stamp(deployment.started_at) - stamp(deployment.created),
        "commit": enqueued - stamp(deployment.created),
        "rq": horse - enqueued,
        "claim": stamp(deployment.started_at) - horse,
        "door": stamp(run.started) - stamp(deployment.started_at),
        "target": stamp(run.ended) - stamp(run.started),
        "hooks": hooks,
        "end": stamp(deployment.deploy_ended) - stamp(run.ended),
    }


def deployment_rows(split: dict[str, float]) -> dict[str, float]:
    return {
        "deploy queue": split["queue"],
        "  commit": split["commit"],
        "  rq": split["rq"],
        "  claim": split["claim"],
        "door": split["door"],
        "target": split["target"],
        "  hooks": split["hooks"],
        "deploy end": split["end"],
    }


def run_round(base: str, clone: Clone, app, tokens: tuple[str, str], number: int, interval: float):
    """One pull request merged and its execution approved: (merge row, approval row) of seconds."""
    from releases.models import Build
    from reviews.models import PullRequest

    bench_token, reviewer_token = tokens
    branch = f"change-{number}"
    clone.git("checkout", "-q", "-B", branch, "origin/main")
    head = commit_all(clone, {"app/version.txt": f"1.0.{number}\n".encode()}, f"version 1.0.{number}")
    clone.git("push", "-q", "origin", f"HEAD:refs/heads/{branch}")
    pull = api(base, bench_token, "POST", "/repos/bench/app/pulls", {"title": branch, "head": branch, "base": "main"})
    head_build = poll_until(lambda: Build.objects.filter(repository=app, head_sha=head).first(), 0.05)
    poll_until(lambda: Build.objects.filter(pk=head_build.pk, build_status__in=Build.ENDED).exists(), 0.05)

    # 1. Merge to dev deployed.
    started = time.time()
    api(
        base,
        bench_token,
        "POST",
        f"/repos/bench/app/pulls/{pull['number']}/merge",
        {"Do": "merge", "head_commit_id": head, "delete_branch_after_merge": False},
    )
    answered = time.time()
    sha = PullRequest.objects.get(repository=app, number=pull["number"]).merge_commit_sha
    execution = poll_until(lambda: execution_of(app, sha), interval)
    dev, dev_seen = deployment_seen(execution, "Deploy-dev", interval)
    approval = pending_approval(execution, interval)
    build = Build.objects.get(pk=execution.build_id)
    dev_action = action_run(execution, "Deploy-dev")
    first_phase, last_phase, phases = phase_span(build)
    split = deployment_split(dev)
    build_run = stamp(build.build_ended) - stamp(build.build_started)
    wall = dev_seen - started
    enqueued, horse = rq_times(build)
    merge = {
        "wall": wall,
        "portal": wall - build_run - split["hooks"],
        "merge call": answered - started,
        "->execution": stamp(execution.created) - started,
        "->build queued": stamp(build.created) - started,
        "build queue": stamp(build.started_at) - stamp(build.created),
        "  commit": enqueued - stamp(build.created),
        "  rq": horse - enqueued,
        "  claim": stamp(build.started_at) - horse,
        "claim->run": stamp(build.build_started) - stamp(build.started_at),
        "build run": build_run,
        "  before cmds": first_phase - stamp(build.build_started),
        "  cmds": phases,
        "  after cmds": stamp(build.build_ended) - last_phase,
        "->deploy queued": stamp(dev.created) - stamp(build.build_ended),
        **deployment_rows(split),
        "->stage ended": stamp(dev_action.ended) - stamp(dev.deploy_ended),
        "->approval": stamp(approval.created) - stamp(dev.deploy_ended),
        "seen": dev_seen - stamp(dev.deploy_ended),
    }

    # 2. Approval to uat deployed.
    started = time.time()
    api(
        base,
        reviewer_token,
        "POST",
        f"/repos/bench/app/pipelines/{PIPELINE}/executions/{execution.number}/approvals",
        {"status": "Approved", "summary": "bench"},
    )
    answered = time.time()
    uat, uat_seen = deployment_seen(execution, "Deploy-uat", interval)
    execution = ended_execution(execution)
    approval.refresh_from_db()
    split = deployment_split(uat)
    wall = uat_seen - started
    approve = {
        "wall": wall,
        "portal": wall - split["hooks"],
        "answer call": answered - started,
        "->approved": stamp(approval.ended) - started,
        "->deploy queued": stamp(uat.created) - started,
        **deployment_rows(split),
        "->exec ended": stamp(execution.ended) - stamp(uat.deploy_ended),
        "seen": uat_seen - stamp(uat.deploy_ended),
    }
    clone.git("checkout", "-q", "main")
    clone.git("pull", "-q", "--ff-only", "origin", "main")
    return merge, approve


def table(title: str, rows: list[dict[str, float]]) -> None:
    """Each measure with its median, p90 and max; then each round's wall and portal's share, and in full each round
    whose share passed a second."""
    print(f"\n{title} (milliseconds)")
    print(f"  {'':<20}{'median':>9}{'p90':>9}{'max':>9}")
    for name in rows[0]:
        values = [row[name] * 1000 for row in rows]
        print(f"  {name:<20}{percentile(values, 0.5):9.1f}{percentile(values, 0.9):9.1f}{max(values):9.1f}")
    print(
        "  each round, wall / portal: "
        + ", ".join(f"{row['wall'] * 1000:.0f}/{row['portal'] * 1000:.0f}" for row in rows)
    )
    for number, row in enumerate(rows, 1):
        if row["portal"] > 1:
            parts = ", ".join(f"{name.strip()} {value * 1000:.0f}" for name, value in row.items())
            print(f"  round {number}, its share over a second: {parts}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=20, help="pull requests merged and approved, one by one")
    # Each look is two queries: on two cores, looking every 5 ms takes enough of a core to slow the portal down.
    parser.add_argument("--poll", type=float, default=0.02, help="seconds between this process's looks")
    args = parser.parse_args()
    # asyncssh, which the environments' deploy keys import, warns about DSA keys at import.
    warnings.filterwarnings("ignore", module="asyncssh")
    if os.geteuid() != 0:
        raise SystemExit("run as root, as the portal runs builds and deployments (each as a uid of its own)")

    with sandboxed_folder() as tmp:
        env, http_port = portal_environment(tmp)
        base = f"http://127.0.0.1:{http_port}"
        migrate(env)
        with running_portal(env, http_port):
            use_portal_from_here(env)
            from django.db import connections

            _bench, app, bench_token, reviewer_token = set_up()
            clone = Clone(f"http://bench:{bench_token}@127.0.0.1:{http_port}/bench/app.git", tmp / "work", env)
            sha = commit_all(clone, RELEASE, "a release")
            clone.git("push", "-q", "origin", "HEAD:refs/heads/main")
            # The release's own execution, unmeasured: the workers warm up, each target gets a live revision.
            execution = wait_for(lambda: execution_of(app, sha), timeout=60)
            deployment_seen(execution, "Deploy-dev", 0.05)
            pending_approval(execution, 0.05)
            api(
                base,
                reviewer_token,
                "POST",
                f"/repos/bench/app/pipelines/{PIPELINE}/executions/{execution.number}/approvals",
                {"status": "Approved"},
            )
            ended_execution(execution)

            load_before = os.getloadavg()
            merges, approvals = [], []
            for number in range(1, args.rounds + 1):
                merge, approve = run_round(base, clone, app, (bench_token, reviewer_token), number, args.poll)
                merges.append(merge)
                approvals.append(approve)
            load_after = os.getloadavg()
            connections.close_all()

    print(f"{args.rounds} rounds: a pull request merged, its execution approved; local targets, trivial hooks")
    table("1. merge (API) -> dev's deployment Succeeded; portal = wall - build run - hooks", merges)
    table("2. approval answered (API) -> uat's deployment Succeeded; portal = wall - hooks", approvals)
    for label, rows in (("merge -> dev", merges), ("approval -> uat", approvals)):
        portal = [row["portal"] for row in rows]
        print(
            f"\nportal's share, {label}: median {percentile(portal, 0.5) * 1000:.0f} ms, "
            f"p90 {percentile(portal, 0.9) * 1000:.0f} ms (target under 1000 ms)"
        )
    print(
        f"\nmachine: {os.cpu_count()} cores; load average (1 min) {load_before[0]:.2f} before the rounds, "
        f"{load_after[0]:.2f} after"
    )


if __name__ == "__main__":
    main()
