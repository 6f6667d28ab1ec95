"""Deployments: the portal's own overhead per deployment on a local target, beside its hooks' time, and deployments
to a fleet of local targets batch by batch, over a running portal.

Run by hand, never by the test suite (as root, as the portal runs deployments: each local target's hooks get a uid
of their own):

    .venv/bin/python bench/deploys.py [--deploys 20] [--targets 200] [--parallel 4,8] [--fleet-percent 90] [--files 0]

Setup, in a throw-away folder: migrate and start the portal as `make run` does (`manage.py serve`: SQLite, embedded
Valkey, gunicorn, the SSH server, one rq worker of every queue and the cron scheduler) on free ports; this process
then opens the same database and Valkey through Django to create the user `bench` and its repository `app`, commit a
small release (an appspec.yml whose five hooks ApplicationStop, BeforeInstall, AfterInstall, ApplicationStart and
ValidateService each run `true`, and a few files it installs under /srv/app; --files adds more) and have the portal's
worker build it. Every deployment is then requested as a person does (releases.deployments.request_deployment) and
run by the portal's own rq worker on the deploys queue; this process polls the database every 5 ms for the end. The
hooks do nothing, so what is measured is the portal. Measured:

1. The overhead of one deployment: --deploys deployments of that artifact, one after the other (each waits for the
   previous job to end), to an environment of one local target; a first, unmeasured one makes the target's first
   revision and warms the worker. Per deployment: the wall time from the request to Succeeded as a user meets it
   (the status seen in the database), the hooks' time (the sum of the durations of the hook events in the target's
   DeploymentTarget.events; each hook's time is its sandbox's start and stop, as `true` takes nothing), and the
   difference, the portal's own overhead. That overhead is split by the database's timestamps (the worker's clock)
   into: the request itself (the call, in this process), the queue (request to the worker's claim), itself split
   into rq (request to the work horse starting the job: Valkey, the worker's fork; rq's own timestamp) and claim
   (the horse's start to the claimed row: the job function's import, the row's read and compare-and-swap), the door (claim to the target's start: the look at what holds it, the artifact's copy, its sha256, provenance
   and ref checks, the target rows), unpack (the DownloadBundle event: sha256 again, unzip, the copy of the live
   root), install (the Install event), the rest of the target (its lock, log, old revisions pruned), the end
   (the target's end to the deployment's: bookkeeping, statuses) and seen (the end to this process seeing it).
   Median and p90 of each.
2. A fleet: an environment of --targets local targets, first deployed to once with AllAtOnce (unmeasured, so that
   each target has a live revision as a fleet in service does), then, for each PORTAL_DEPLOY_PARALLEL of
   --parallel (the portal restarted with it), one deployment with HalfAtATime and one with a custom minimum of
   FLEET_PERCENT --fleet-percent. For each: the batches, the total (request to Succeeded seen, and the deployment's
   own start to end), each batch's time (its first target's start to its last target's end) and the gap between
   batches, targets per second, the median time of one target's events and of its hooks (which grow with the
   parallelism when the targets compete for the CPUs), and how long targets show InProgress before a deploy thread
   takes them (a batch's targets all start InProgress; at most PORTAL_DEPLOY_PARALLEL run). A target that failed is
   shown with its message: HalfAtATime and a minimum below 100% still succeed with a few failed targets, which then
   come first, in a batch of their own, in the next deployment.
"""

import argparse
import os
import statistics
import time
import warnings

from bench.builds import ended, percentile, use_portal_from_here, wait_for
from bench.transport import migrate, portal_environment, running_portal, sandboxed_folder

HOOKS = ("ApplicationStop", "BeforeInstall", "AfterInstall", "ApplicationStart", "ValidateService")
BUILDSPEC = "version: 0.2\nphases:\n  build:\n    commands:\n      - 'true'\nartifacts:\n  files:\n    - '**/*'\n"
APPSPEC = (
    "version: 0.0\nos: linux\nfiles:\n  - source: app\n    destination: /srv/app\nfile_exists_behavior: OVERWRITE\n"
    "hooks:\n" + "".join(f"  {event}:\n    - location: scripts/{event}.sh\n      timeout: 60\n" for event in HOOKS)
)
RELEASE = {
    "buildspec.yml": BUILDSPEC.encode(),
    "appspec.yml": APPSPEC.encode(),
    "app/index.html": b"<!doctype html><title>app</title><p>hello</p>\n",
    "app/version.txt": b"1.0.0\n",
    "app/config/settings.json": b'{"debug": false, "workers": 4}\n',
    "app/static/app.css": b"body { font-family: sans-serif; }\n" * 20,
    **{f"scripts/{event}.sh": b"#!/bin/sh\ntrue\n" for event in HOOKS},
}
POLL = 0.005


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.1f}"


def set_up(extra_files: int):
    """The user bench, its repository app and the successful build of a small release, with extra_files more small
    files under app/lib: (user, repository, artifact)."""
    from portal import services as accounts
    from releases import deployments, services
    from releases.models import Build
    from repos import git
    from repos import services as repos

    user = accounts.create_user(actor=None, username="bench", email="bench@example.com", password="bench-pass-123")
    app = repos.create_repository(actor=user, owner=user, name="app", visibility="public", initialize=True)
    files = RELEASE | {f"app/lib/{n // 100:03d}/module{n}.py": f"VALUE = {n}\n".encode() for n in range(extra_files)}
    sha = git.commit_files(app.path, "main", files, "a release", name="bench", email="bench@example.com")
    build = services.start_build(app, sha=sha, ref="refs/heads/main", trigger="manual", initiator=user)
    wait_for(lambda: ended(build), timeout=300, interval=0.1)
    if build.build_status != Build.BuildStatus.SUCCEEDED:
        raise SystemExit(f"the release's build #{build.number} ended {build.build_status}: {build.message}")
    return user, app, deployments.artifact_of(app, sha)


def environment(app, user, name: str, targets: list[str], config):
    from releases import environments

    found, _created, _keys = environments.set_environment(
        app, name, actor=user, deployment_config=config, targets=[{"name": t, "type": "local"} for t in targets]
    )
    return found


def set_config(app, user, name: str, config):
    from releases import environments

    found, _created, _keys = environments.set_environment(app, name, actor=user, deployment_config=config)
    return found


def deploy(app, env, user, artifact) -> tuple[object, float, float]:
    """Request a deployment and wait for its end as a user sees it, then for its job's end: (deployment, the request
    call's seconds, request to the status seen ended)."""
    from releases import deployments
    from releases.models import Deployment

    started = time.monotonic()
    deployment = deployments.request_deployment(app, env, actor=user, artifact=artifact, description="bench")
    requested = time.monotonic()
    rows = Deployment.objects.filter(pk=deployment.pk)
    while rows.values_list("deployment_status", flat=True)[0] not in Deployment.ENDED:
        time.sleep(POLL)
    seen = time.monotonic()
    wait_for(lambda: rows.values_list("finished_at", flat=True)[0] is not None, timeout=600)
    deployment.refresh_from_db()
    if deployment.deployment_status != Deployment.Status.SUCCEEDED:
        raise SystemExit(f"deployment {deployment.pk} ended {deployment.deployment_status}: {deployment.message}")
    return deployment, requested - started, seen - started


def seconds(later, earlier) -> float:
    return (later - earlier).total_seconds()


def event_seconds(run, names) -> float:
    return sum(event["duration"] for event in run.events if event["event"] in names)


def overhead(app, user, artifact, count: int) -> None:
    """Part 1: count deployments one after the other to one local target."""
    import django_rq
    from rq.job import Job

    env = environment(app, user, "single", ["t1"], "AllAtOnce")
    deploy(app, env, user, artifact)
    columns = (
        "wall",
        "hooks",
        "overhead",
        "request",
        "queue",
        "rq",
        "claim",
        "door",
        "unpack",
        "install",
        "target rest",
        "end",
        "seen",
    )
    rows: list[dict[str, float]] = []
    for _ in range(count):
        deployment, request, wall = deploy(app, env, user, artifact)
        (run,) = deployment.targets.all()
        job = Job.fetch(deployment.rq_job_id(), connection=django_rq.get_connection("deploys"))
        hooks = event_seconds(run, HOOKS)
        unpack = event_seconds(run, ("DownloadBundle",))
        install = event_seconds(run, ("Install",))
        created_to_end = seconds(deployment.deploy_ended, deployment.created)
        rows.append(
            {
                "wall": wall,
                "hooks": hooks,
                "overhead": wall - hooks,
                "request": request,
                "queue": seconds(deployment.started_at, deployment.created),
                "rq": seconds(job.started_at, deployment.created),
                "claim": seconds(deployment.started_at, job.started_at),
                "door": seconds(run.started, deployment.started_at),
                "unpack": unpack,
                "install": install,
                "target rest": seconds(run.ended, run.started) - unpack - install - hooks,
                "end": seconds(deployment.deploy_ended, run.ended),
                "seen": max(0.0, wall - request - created_to_end),
            }
        )
    print(f"\n1. one local target, {count} deployments one after the other (milliseconds)")
    print("   five hooks each `true`: their time is the sandbox's; overhead = wall - hooks, split on the right")
    print("   " + "".join(f"{name:>12}" for name in ("#", *columns)))
    for number, row in enumerate(rows, 1):
        print("   " + f"{number:>12}" + "".join(f"    {ms(row[name])}" for name in columns))
    for label, fraction in (("median", 0.5), ("p90", 0.9)):
        print(
            "   " + f"{label:>12}" + "".join(f"    {ms(percentile([r[n] for r in rows], fraction))}" for n in columns)
        )
    hooks_each = statistics.median(row["hooks"] for row in rows) / len(HOOKS)
    print(f"   one hook (sandbox start and stop around `true`): median {hooks_each * 1000:.1f} ms")


def fleet(app, user, artifact, env, config, label: str, parallel: int) -> None:
    """Part 2: one deployment to every target of env with config; prints one block of results."""
    env = set_config(app, user, env.name, config)
    deployment, _request, wall = deploy(app, env, user, artifact)
    runs = list(deployment.targets.all())
    batches: dict[int, list] = {}
    for run in runs:
        batches.setdefault(run.batch, []).append(run)
    spans = []
    for number in sorted(batches):
        members = batches[number]
        spans.append((min(run.started for run in members), max(run.ended for run in members), len(members)))
    own = seconds(deployment.deploy_ended, deployment.deploy_started)
    per_batch = [seconds(end, start) for start, end, _size in spans]
    gaps = [seconds(spans[i + 1][0], spans[i][1]) for i in range(len(spans) - 1)]
    # A target is InProgress from its batch's start, but runs only once a deploy thread takes it: its own work is
    # the sum of its events, the rest of its time it waited for a thread.
    work = [sum(event["duration"] for event in run.events) for run in runs]
    waited = [seconds(run.ended, run.started) - busy for run, busy in zip(runs, work, strict=True)]
    hook_times = [event_seconds(run, HOOKS) for run in runs]
    sizes = sorted({size for _start, _end, size in spans})
    failed = [run for run in runs if run.status != "Succeeded"]
    print(f"\n   {label}, PORTAL_DEPLOY_PARALLEL={parallel}: {len(runs)} targets")
    print(f"     batches                 {len(spans)} (of {', '.join(map(str, sizes))} targets)")
    if failed:
        print(f"     FAILED targets          {len(failed)} (the deployment still succeeded, above its minimum):")
        for run in failed[:5]:
            print(f"       {run.name}: {run.message[:300]}")
    print(f"     request -> Succeeded    {wall:8.2f} s   ({len(runs) / wall:.1f} targets/s)")
    print(
        f"     deployment start->end   {own:8.2f} s   (door: {seconds(spans[0][0], deployment.deploy_started):.2f} s,"
    )
    print(f"                                          end: {seconds(deployment.deploy_ended, spans[-1][1]):.2f} s)")
    print(
        f"     one batch               median {statistics.median(per_batch):.2f} s, "
        f"min {min(per_batch):.2f} s, max {max(per_batch):.2f} s"
    )
    if gaps:
        print(
            f"     between batches         median {statistics.median(gaps) * 1000:.0f} ms, max {max(gaps) * 1000:.0f} ms"
        )
    print(
        f"     one target's events     median {statistics.median(work) * 1000:.0f} ms "
        f"(hooks {statistics.median(hook_times) * 1000:.0f} ms), p90 {percentile(work, 0.9) * 1000:.0f} ms"
    )
    print(
        f"     InProgress, not running median {statistics.median(waited) * 1000:.0f} ms, "
        f"max {max(waited) * 1000:.0f} ms (waiting for one of the {parallel} deploy threads)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deploys", type=int, default=20, help="sequential deployments to one target (part 1)")
    parser.add_argument("--targets", type=int, default=200, help="local targets of the fleet (part 2; 0 skips it)")
    parser.add_argument(
        "--parallel", default="4,8", help="PORTAL_DEPLOY_PARALLEL values for the fleet, comma-separated"
    )
    parser.add_argument(
        "--files",
        type=int,
        default=0,
        help="more small files in the release (under app/lib, 100 a directory), installed on every target",
    )
    parser.add_argument("--fleet-percent", type=int, default=90, help="the custom FLEET_PERCENT minimum (part 2)")
    args = parser.parse_args()
    # asyncssh, which the environments' deploy keys import, warns about DSA keys at import.
    warnings.filterwarnings("ignore", module="asyncssh")
    parallels = [int(value) for value in args.parallel.split(",") if value.strip()]
    if os.geteuid() != 0:
        raise SystemExit("run as root, as the portal runs deployments (each target's hooks as a uid of their own)")

    with sandboxed_folder() as tmp:
        env, http_port = portal_environment(tmp)
        migrate(env)
        use_portal_from_here(env)
        from django.db import connections

        user = app = artifact = fleet_env = None
        for index, parallel in enumerate(parallels or [4]):
            with running_portal(env | {"PORTAL_DEPLOY_PARALLEL": str(parallel)}, http_port):
                if index == 0:
                    user, app, artifact = set_up(args.files)
                    if args.deploys:
                        overhead(app, user, artifact, args.deploys)
                    if not args.targets or not parallels:
                        break
                    names = [f"t{number:03d}" for number in range(1, args.targets + 1)]
                    fleet_env = environment(app, user, "fleet", names, "AllAtOnce")
                    started = time.monotonic()
                    deploy(app, fleet_env, user, artifact)
                    print(f"\n2. a fleet of {args.targets} local targets (each deployment to every target)")
                    print(
                        f"   first deployment, AllAtOnce, PORTAL_DEPLOY_PARALLEL={parallel} (unmeasured, "
                        f"no ApplicationStop): {time.monotonic() - started:.1f} s"
                    )
                fleet(app, user, artifact, fleet_env, "HalfAtATime", "HalfAtATime", parallel)
                fleet(
                    app,
                    user,
                    artifact,
                    fleet_env,
                    {"type": "FLEET_PERCENT", "value": args.fleet_percent},
                    f"FLEET_PERCENT {args.fleet_percent}",
                    parallel,
                )
            connections.close_all()
        connections.close_all()
    print(f"\nmachine: {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
