"""Pipeline pages: the Pipelines tab, a pipeline's live picture (its stages as boxes, the execution in each, the
actions, a waiting approval, disabled transitions) with the JSON the page polls, the buttons of writers (start,
stop, retry, disable and enable a transition, roll a stage back), the execution history, an execution and its
release record (page and JSON).

HTTP only: the repository's door (repos.access) and releases.access decide who sees and does what,
releases.pipelines makes every change, releases.release_record assembles the record."""

import json

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.views.decorators.http import require_GET, require_POST

from releases import access, pipelines, release_record
from releases.models import Pipeline, PipelineActionRun, PipelineExecution
from releases.pipeline_rules import RetryMode, StopMode
from releases.pipelinespec import PipelineSpecError
from repos import git
from repos.access import can_administer, get_repo_for_user, role_for
from repos.models import Repository

PAGE_SIZE = 30


def _context(request: HttpRequest, repo: Repository, **more) -> dict:
    role = role_for(request.user, repo)
    return {
        "repo": repo,
        "prefix": f"/{repo.owner.username}/{repo.name}",
        "tab": "pipelines",
        "role": role,
        "is_admin": can_administer(request.user, repo, role=role),
        "can_run": access.can_deploy(request.user, repo, role=role),
        **more,
    }


def _pipeline(repo: Repository, name: str) -> Pipeline:
    return get_object_or_404(Pipeline.objects.select_related("repository__owner"), repository=repo, name=name)


def _execution(pipeline: Pipeline, number: int) -> PipelineExecution:
    found = pipelines.executions_of(pipeline).select_related("pipeline__repository__owner", "artifact__build")
    return get_object_or_404(found, pipeline=pipeline, number=number)


def _error(pipeline: Pipeline) -> dict | None:
    """The pipeline.yml refused last, with where: shown until a good one comes."""
    if not pipeline.error:
        return None
    return {
        "message": pipeline.error,
        "line": pipeline.error_line,
        "key": pipeline.error_key,
        "sha": pipeline.error_sha,
    }


def _latest_runs(execution_ids: list[int]) -> dict[tuple[int, str], list[PipelineActionRun]]:
    """The latest attempt of every action of the executions, by (execution, stage), in the order they started."""
    runs = (
        PipelineActionRun.objects.filter(execution_id__in=execution_ids)
        .select_related("build", "approval")
        .prefetch_related("deployments", "approval__answers__user")
        .order_by("started", "id")
    )
    latest: dict[tuple[int, str, str], PipelineActionRun] = {}
    for run in runs:
        key = (run.execution_id, run.stage, run.action)
        if key not in latest or latest[key].attempt < run.attempt:
            latest[key] = run
    grouped: dict[tuple[int, str], list[PipelineActionRun]] = {}
    for (execution_id, stage, _action), run in latest.items():
        grouped.setdefault((execution_id, stage), []).append(run)
    return grouped


def _action(run: PipelineActionRun, prefix: str, execution_url: str) -> dict:
    """An action's latest attempt as the pages show it; an approval with the address of its page, where its
    reviewers see what the release changes and answer."""
    found = {
        "name": run.action,
        "type": run.type,
        "status": run.status,
        "attempt": run.attempt,
        "message": run.message,
        "build": None,
        "deployments": [],
        "approval": None,
    }
    if run.build is not None:
        found["build"] = {"number": run.build.number, "url": f"{prefix}/builds/{run.build.number}"}
    for deployment in run.deployments.all():
        found["deployments"].append(
            {
                "id": deployment.pk,
                "url": f"{prefix}/deployments/{deployment.pk}",
                "status": deployment.deployment_status,
            }
        )
    approval = getattr(run, "approval", None) if run.type == "approval" else None
    if approval is not None:
        found["approval"] = {
            "environment": approval.environment_name,
            "status": approval.status,
            "deadline": approval.deadline.isoformat(),
            "url": f"{execution_url}/approval",
            "answers": [
                {"user": answer.user.username, "status": answer.status, "summary": answer.summary}
                for answer in approval.answers.all()
            ],
        }
    return found


def picture(pipeline: Pipeline) -> dict:
    """The pipeline now: each stage in order with the execution in it (the one holding it, else the last that ran
    it), that execution's actions, the executions waiting in front of it and whether its transition is disabled."""
    prefix = f"/{pipeline.repository.full_name}"
    try:
        spec = pipelines.spec_of(pipeline)
    except PipelineSpecError:
        spec = None
    if spec is None or pipeline.version == 0:
        return {"name": pipeline.name, "version": pipeline.version, "stages": [], "executions": []}
    state = pipelines.rules_of(pipeline)
    rows = {row.number: row for row in pipeline.executions.all()}
    chosen: dict[str, object] = {}
    for stage in spec.stage_names:
        execution = state.holder(stage)
        if execution is None:
            ran = [item for item in state.executions if item.run(stage) is not None]
            execution = max(ran, key=lambda item: item.run(stage).entry) if ran else None
        chosen[stage] = execution
    ids = [rows[item.id].pk for item in chosen.values() if item is not None and item.id in rows]
    runs = _latest_runs(ids)
    stages = []
    for stage in spec.stage_names:
        execution = chosen[stage]
        disabled = state.transition_disabled(stage)
        box = {
            "name": stage,
            "status": None,
            "execution": None,
            "actions": [],
            "waiting": [item.id for item in state.waiting(stage)],
            "disabled": {"reason": disabled.reason, "at": disabled.disabled_at.isoformat()} if disabled else None,
        }
        row = rows.get(execution.id) if execution is not None else None
        if execution is not None and row is not None:
            box["status"] = str(execution.stage_status(stage))
            box["execution"] = {
                "number": execution.id,
                "source_sha": execution.source_sha,
                "status": row.status,
                "url": f"{prefix}/pipelines/{pipeline.name}/executions/{execution.id}",
            }
            box["actions"] = [_action(run, prefix, box["execution"]["url"]) for run in runs.get((row.pk, stage), [])]
        stages.append(box)
    return {"name": pipeline.name, "version": pipeline.version, "stages": stages}


def _stages_html(request: HttpRequest, pipeline: Pipeline, context: dict) -> str:
    return render_to_string("releases/_pipeline_stages.html", context, request=request)


def _rollback_choices(pipeline: Pipeline) -> list[PipelineExecution]:
    return list(pipeline.executions.filter(status=PipelineExecution.Status.SUCCEEDED).order_by("-number")[:20])


@require_GET
def pipeline_list(request: HttpRequest, owner: str, name: str) -> HttpResponse:
    repo = get_repo_for_user(request.user, owner, name)
    rows = [
        {"pipeline": pipeline, "error": _error(pipeline), "last": pipeline.executions.order_by("-number").first()}
        for pipeline in Pipeline.objects.filter(repository=repo).order_by("name")
    ]
    return render(request, "releases/pipelines.html", _context(request, repo, rows=rows))


def _detail_context(request: HttpRequest, repo: Repository, pipeline: Pipeline) -> dict:
    context = _context(request, repo, pipeline=pipeline, error=_error(pipeline))
    context.update(picture=picture(pipeline), rollback_choices=_rollback_choices(pipeline))
    return context


@require_GET
def pipeline_detail(request: HttpRequest, owner: str, name: str, pipeline: str) -> HttpResponse:
    repo = get_repo_for_user(request.user, owner, name)
    found = _pipeline(repo, pipeline)
    context = _detail_context(request, repo, found)
    context["recent"] = list(pipelines.executions_of(found)[:5])
    return render(request, "releases/pipeline.html", context)


@require_GET
def pipeline_state(request: HttpRequest, owner: str, name: str, pipeline: str) -> JsonResponse:
    """What the pipeline page polls: the picture as data, and its stages rendered as the page shows them."""
    repo = get_repo_for_user(request.user, owner, name)
    found = _pipeline(repo, pipeline)
    context = _detail_context(request, repo, found)
    data = dict(context["picture"])
    data["html"] = _stages_html(request, found, context)
    return JsonResponse(data)


@require_GET
def execution_list(request: HttpRequest, owner: str, name: str, pipeline: str) -> HttpResponse:
    repo = get_repo_for_user(request.user, owner, name)
    found = _pipeline(repo, pipeline)
    page = Paginator(pipelines.executions_of(found).order_by("-number"), PAGE_SIZE).get_page(request.GET.get("page"))
    context = _context(request, repo, pipeline=found, page=page, filter_query="")
    return render(request, "releases/pipeline_executions.html", context)


@require_GET
def execution_detail(request: HttpRequest, owner: str, name: str, pipeline: str, number: int) -> HttpResponse:
    repo = get_repo_for_user(request.user, owner, name)
    found = _pipeline(repo, pipeline)
    execution = _execution(found, number)
    runs = list(
        execution.action_runs.select_related("build", "approval")
        .prefetch_related("deployments", "approval__answers__user")
        .order_by("started", "id")
    )
    prefix = f"/{repo.full_name}"
    execution_url = f"{prefix}/pipelines/{found.name}/executions/{execution.number}"
    context = _context(
        request,
        repo,
        pipeline=found,
        execution=execution,
        runs=[{"run": run, **_action(run, prefix, execution_url)} for run in runs],
        can_stop=not execution.is_ended,
        can_retry=execution.status in (PipelineExecution.Status.FAILED, PipelineExecution.Status.STOPPED),
    )
    return render(request, "releases/pipeline_execution.html", context)


@require_GET
def release_page(request: HttpRequest, owner: str, name: str, pipeline: str, number: int) -> HttpResponse:
    repo = get_repo_for_user(request.user, owner, name)
    found = _pipeline(repo, pipeline)
    execution = _execution(found, number)
    record = release_record.record(execution)
    context = _context(request, repo, pipeline=found, execution=execution, record=record)
    context["provenance"] = json.dumps(record["artifact"]["provenance"], indent=2) if record["artifact"] else ""
    return render(request, "releases/release_record.html", context)


@require_GET
def release_json(request: HttpRequest, owner: str, name: str, pipeline: str, number: int) -> JsonResponse:
    repo = get_repo_for_user(request.user, owner, name)
    execution = _execution(_pipeline(repo, pipeline), number)
    return JsonResponse(release_record.record(execution), json_dumps_params={"indent": 2})


# Actions: each a POST answered by a redirect to the pipeline's page, with the refusal as a message.


def _refused(request: HttpRequest, error: ValidationError | PermissionDenied) -> None:
    text = " ".join(error.messages) if isinstance(error, ValidationError) else str(error)
    messages.error(request, text or "Refused.")


def _writer(request: HttpRequest, repo: Repository, what: str) -> None:
    access.require(access.can_deploy, request.user, repo, f"Only the repository's writers {what}.")


@require_POST
def pipeline_start(request: HttpRequest, owner: str, name: str, pipeline: str) -> HttpResponse:
    """Start an execution of the source branch's head, or of the commit named."""
    repo = get_repo_for_user(request.user, owner, name)
    found = _pipeline(repo, pipeline)
    _writer(request, repo, "start pipelines")
    wanted = request.POST.get("sha", "").strip() or found.source_branch or repo.default_branch
    try:
        sha = git.resolve_commit(repo.path, wanted).sha
    except (git.GitError, KeyError, ValueError):
        messages.error(request, f"{wanted!r} names no commit of {repo.full_name}.")
        return redirect("pipelines:detail", owner, name, found.name)
    try:
        execution = pipelines.start_execution(
            repo, found.name, sha, requester=request.user, trigger=PipelineExecution.Trigger.MANUAL
        )
    except (ValidationError, PermissionDenied) as error:
        _refused(request, error)
    else:
        messages.success(request, f"Execution {execution.number} of {sha[:12]} started.")
    return redirect("pipelines:detail", owner, name, found.name)


@require_POST
def execution_stop(request: HttpRequest, owner: str, name: str, pipeline: str, number: int) -> HttpResponse:
    repo = get_repo_for_user(request.user, owner, name)
    execution = _execution(_pipeline(repo, pipeline), number)
    _writer(request, repo, "stop pipeline executions")
    mode = request.POST.get("mode", StopMode.WAIT)
    try:
        if mode not in set(StopMode):
            raise ValidationError(f"A stop's mode is wait or abandon, not {mode!r}.")
        pipelines.stop(execution, actor=request.user, mode=mode, reason=request.POST.get("reason", "").strip())
    except (ValidationError, PermissionDenied) as error:
        _refused(request, error)
    else:
        messages.success(request, f"Execution {execution.number} is stopping ({mode}).")
    return redirect("pipelines:detail", owner, name, pipeline)


@require_POST
def execution_retry(request: HttpRequest, owner: str, name: str, pipeline: str, number: int) -> HttpResponse:
    repo = get_repo_for_user(request.user, owner, name)
    execution = _execution(_pipeline(repo, pipeline), number)
    _writer(request, repo, "retry pipeline stages")
    mode = request.POST.get("mode", RetryMode.FAILED_ACTIONS)
    try:
        if mode not in set(RetryMode):
            raise ValidationError(f"A retry's mode is {' or '.join(RetryMode)}, not {mode!r}.")
        pipelines.retry(execution, actor=request.user, stage=request.POST.get("stage") or None, mode=mode)
    except (ValidationError, PermissionDenied) as error:
        _refused(request, error)
    else:
        messages.success(request, f"Execution {execution.number}: its failed stage runs again.")
    return redirect("pipelines:detail", owner, name, pipeline)


@require_POST
def transition(request: HttpRequest, owner: str, name: str, pipeline: str, stage: str) -> HttpResponse:
    repo = get_repo_for_user(request.user, owner, name)
    found = _pipeline(repo, pipeline)
    _writer(request, repo, "disable or enable transitions")
    enabled = request.POST.get("enabled") == "true"
    try:
        pipelines.set_transition(
            found, stage, actor=request.user, enabled=enabled, reason=request.POST.get("reason", "").strip()
        )
    except (ValidationError, PermissionDenied) as error:
        _refused(request, error)
    else:
        messages.success(request, f"The transition into {stage} is {'enabled' if enabled else 'disabled'}.")
    return redirect("pipelines:detail", owner, name, found.name)


@require_POST
def stage_rollback(request: HttpRequest, owner: str, name: str, pipeline: str, stage: str) -> HttpResponse:
    repo = get_repo_for_user(request.user, owner, name)
    found = _pipeline(repo, pipeline)
    _writer(request, repo, "roll pipeline stages back")
    try:
        number = int(request.POST.get("execution", ""))
    except ValueError:
        messages.error(request, "Choose the earlier successful execution to roll back to.")
        return redirect("pipelines:detail", owner, name, found.name)
    target = found.executions.filter(number=number).first()
    try:
        if target is None:
            raise ValidationError(f"Pipeline {found.name} has no execution {number}.")
        execution = pipelines.rollback_stage(found, stage, target, actor=request.user)
    except (ValidationError, PermissionDenied) as error:
        _refused(request, error)
    else:
        messages.success(request, f"Execution {execution.number} rolls {stage} back to execution {number}.")
    return redirect("pipelines:detail", owner, name, found.name)
