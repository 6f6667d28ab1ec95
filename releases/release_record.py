"""An execution's release record: what went out and who let it (issue 13, "Same bytes, recorded").

The source commit, the pull requests merged in it with their approvers, the build with its test report summary, the
artifact's digest and signed provenance, each deployment with its environment, targets and statuses, and the answers
of the approvals. One document, shown as a page and served as JSON."""

from collections import Counter

from django.db.models import Q

from releases.models import Deployment, PipelineExecution
from repos import git
from reviews.models import PullRequest, Review


def _time(value) -> str | None:
    return value.isoformat() if value is not None else None


def _previous_sha(execution: PipelineExecution) -> str:
    """The source of the execution before it that got past its build: the start of the range this one releases."""
    earlier = (
        execution.pipeline.executions.filter(number__lt=execution.number, rollback_of__isnull=True)
        .exclude(source_sha=execution.source_sha)
        .exclude(build__isnull=True)
        .order_by("-number")
        .first()
    )
    return earlier.source_sha if earlier is not None else ""


def _range(execution: PipelineExecution) -> list[str]:
    """The commits the execution releases: since the previous execution's source (the source alone when none)."""
    path = execution.pipeline.repository.path
    base = _previous_sha(execution)
    try:
        if base and git.is_ancestor(path, base, execution.source_sha):
            return [commit.sha for commit in git.commits_between(path, base, execution.source_sha)]
    except git.GitError:
        pass
    return [execution.source_sha]


def pull_requests(execution: PipelineExecution) -> list[dict]:
    """The pull requests merged into the released range (their merge commit or head in it), with who approved."""
    shas = set(_range(execution)) | {execution.source_sha}
    repository = execution.pipeline.repository
    found = PullRequest.objects.filter(repository=repository, state=PullRequest.State.MERGED).filter(
        Q(merge_commit_sha__in=shas) | Q(head_sha__in=shas)
    )
    rows = []
    for pull in found.select_related("author", "merged_by").order_by("number"):
        approvals = Review.objects.filter(pull_request=pull, state=Review.State.APPROVED).select_related("author")
        rows.append(
            {
                "number": pull.number,
                "title": pull.title,
                "url": pull.get_absolute_url(),
                "author": pull.author.username,
                "merged_by": pull.merged_by.username if pull.merged_by else None,
                "merged_at": _time(pull.merged_at),
                "merge_commit_sha": pull.merge_commit_sha,
                "approvers": sorted({review.author.username for review in approvals}),
            }
        )
    return rows


def _build(execution: PipelineExecution) -> dict | None:
    build = execution.build
    if build is None:
        return None
    counts: Counter = Counter()
    for report in build.reports or []:
        for case in report.get("cases", []):
            counts[case.get("status", "")] += 1
    repository = execution.pipeline.repository
    return {
        "number": build.number,
        "url": f"/{repository.full_name}/builds/{build.number}",
        "status": build.build_status,
        "source_sha": build.head_sha,
        "tests": dict(sorted(counts.items())),
    }


def _artifact(execution: PipelineExecution) -> dict | None:
    artifact = execution.artifact
    if artifact is None:
        return None
    return {
        "name": artifact.name,
        "build": artifact.build.number,
        "sha256": execution.artifact_sha256 or artifact.sha256,
        "provenance": artifact.provenance,
    }


def _deployments(execution: PipelineExecution) -> list[dict]:
    found = (
        Deployment.objects.filter(pipeline_action__execution=execution)
        .select_related("environment", "artifact", "pipeline_action")
        .prefetch_related("targets", "statuses")
        .order_by("created", "id")
    )
    return [
        {
            "id": deployment.pk,
            "url": f"/{execution.pipeline.repository.full_name}/deployments/{deployment.pk}",
            "environment": deployment.environment.name,
            "stage": deployment.pipeline_action.stage,
            "status": deployment.deployment_status,
            "artifact_sha256": deployment.artifact.sha256,
            "created": _time(deployment.created),
            "targets": [{"name": run.name, "status": run.status} for run in deployment.targets.all()],
            "statuses": [
                {"state": status.state, "description": status.description, "created": _time(status.created)}
                for status in sorted(deployment.statuses.all(), key=lambda status: (status.created, status.pk))
            ],
        }
        for deployment in found
    ]


def _approvals(execution: PipelineExecution) -> list[dict]:
    return [
        {
            "stage": approval.stage,
            "action": approval.action,
            "environment": approval.environment_name,
            "status": approval.status,
            "answers": [
                {
                    "user": answer.user.username,
                    "status": answer.status,
                    "summary": answer.summary,
                    "time": _time(answer.created),
                }
                for answer in approval.answers.select_related("user")
            ],
        }
        for approval in execution.approvals.order_by("created", "id")
    ]


def record(execution: PipelineExecution) -> dict:
    """The release record of an execution, as JSON-ready data."""
    repository = execution.pipeline.repository
    try:
        commit = git.commit(repository.path, execution.source_sha)
        source = {"sha": execution.source_sha, "message": commit.message, "author": commit.author.name}
    except (git.GitError, KeyError, ValueError):
        source = {"sha": execution.source_sha, "message": "", "author": ""}
    return {
        "repository": repository.full_name,
        "pipeline": execution.pipeline.name,
        "execution": execution.number,
        "status": execution.status,
        "trigger": execution.trigger,
        "requester": execution.requester.username if execution.requester else None,
        "rollback_of": execution.rollback_of.number if execution.rollback_of else None,
        "started": _time(execution.created),
        "ended": _time(execution.ended),
        "source": source,
        "pull_requests": pull_requests(execution),
        "build": _build(execution),
        "artifact": _artifact(execution),
        "deployments": _deployments(execution),
        "approvals": _approvals(execution),
    }
