"""Deployment pages: the Environments tab, an environment's history, a deployment with its batches, targets and
live logs, the actions on a deployment (review, start now, stop, roll back) and "Deploy" from a build.

HTTP only: the repository's door (repos.access) and releases.access decide who sees and does what,
releases.deployments makes every change, releases.log_poll answers the page that follows a log (releases.logs reads
it wherever it is, releases.log_html renders it)."""

from functools import partial

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.html import format_html
from django.views.decorators.http import require_GET, require_POST

from releases import access, deployments, environments, log_html, log_poll
from releases.models import Build, Deployment, DeploymentReview, DeploymentTarget, Environment
from releases.templatetags.build_tags import seconds
from repos.access import can_administer, get_repo_for_user, role_for
from repos.models import Repository

PAGE_SIZE = 30


def _context(request: HttpRequest, repo: Repository, **more) -> dict:
    role = role_for(request.user, repo)
    return {
        "repo": repo,
        "prefix": f"/{repo.owner.username}/{repo.name}",
        "tab": "environments",
        "role": role,
        "is_admin": can_administer(request.user, repo, role=role),
        "can_deploy": access.can_deploy(request.user, repo, role=role),
        **more,
    }


def _environment(repo: Repository, name: str) -> Environment:
    environment = environments.find_environment(repo, name)
    if environment is None:
        raise Http404(f"{repo.full_name} has no environment named {name}.")
    return environment


def _deployment(repo: Repository, deployment_id: int) -> Deployment:
    found = Deployment.objects.select_related(
        "repository__owner", "environment", "artifact__build", "creator", "rollback_of", "override_by", "previous"
    )
    return get_object_or_404(found, repository=repo, pk=deployment_id)


@require_GET
def environment_list(request: HttpRequest, owner: str, name: str) -> HttpResponse:
    repo = get_repo_for_user(request.user, owner, name)
    rows = []
    for environment in environments.environments_of(repo):
        history = environment.deployments.select_related("artifact__build", "creator")
        rows.append(
            {
                "environment": environment,
                "targets": deployments.environment_state(environment),
                "last": history.first(),
                "waiting": list(history.filter(deployment_status=Deployment.Status.WAITING)),
                "config": environment.deployment_config.get("name", ""),
                "refs": environments.ref_policy_of(environment).describe(repo),
            }
        )
    return render(request, "releases/environments.html", _context(request, repo, rows=rows))


@require_GET
def environment_history(request: HttpRequest, owner: str, name: str, environment: str) -> HttpResponse:
    repo = get_repo_for_user(request.user, owner, name)
    found = _environment(repo, environment)
    history = found.deployments.select_related("artifact__build", "creator", "rollback_of").prefetch_related(
        "rollbacks"
    )
    page = Paginator(history.order_by("-created", "-id"), PAGE_SIZE).get_page(request.GET.get("page"))
    context = _context(request, repo, environment=found, page=page, filter_query="")
    return render(request, "releases/environment_history.html", context)


def _durations(run: DeploymentTarget) -> dict[str, str]:
    return {event["event"]: seconds(event["duration"]) for event in run.events if event.get("duration") is not None}


def _deployment_piece(deployment: Deployment, offset: int = 0, line: int = 0) -> dict:
    """The deployment's own log from offset (releases.log_poll)."""
    return log_poll.piece(deployment, offset, line, deployment.get_deployment_status_display())


def _target_piece(run: DeploymentTarget, offset: int = 0, line: int = 0) -> dict:
    """A target's log from offset as lines; a hook's "==> EventName" line is marked (data-phase) with its duration."""
    render = partial(log_html.render_lines, durations=_durations(run), header=log_html.HOOK)
    return log_poll.piece(run, offset, line, run.get_status_display(), render)


def _hook_sections(run: DeploymentTarget) -> dict:
    """A target's log from its start as the page first shows it: one section per hook, each starting at its
    "==> EventName" line (the page's script goes on the same way with the lines that come later)."""
    durations = _durations(run)

    def sections(data: bytes, first_number: int) -> str:
        lines = data.split(b"\n")[: log_html.count_lines(data)]
        hooks = {
            i: found for i, text in enumerate(lines) if (found := log_html.HOOK.match(text.decode(errors="replace")))
        }
        bounds = sorted({0, *hooks, len(lines)})
        rendered = []
        for start, end in zip(bounds, bounds[1:], strict=False):
            segment = b"".join(text + b"\n" for text in lines[start:end])
            attribute = format_html(' data-hook="{}"', hooks[start].group(1)) if start in hooks else ""
            body = log_html.render_lines(segment, first_number + start, durations, header=log_html.HOOK)
            rendered.append(f'<div class="hook-section"{attribute}>{body}</div>')
        return "".join(rendered)

    return log_poll.piece(run, 0, 0, run.get_status_display(), sections)


def _batches(runs: list[DeploymentTarget]) -> list[dict]:
    """The targets by the batch they were deployed in, in order; those not deployed (yet) last."""
    groups: dict[int | None, list] = {}
    for run in runs:
        groups.setdefault(run.batch, []).append(run)
    numbered = sorted(number for number in groups if number is not None)
    ordered = [{"number": number, "targets": groups[number]} for number in numbered]
    if None in groups:
        ordered.append({"number": None, "targets": groups[None]})
    return ordered


@require_GET
def deployment_detail(request: HttpRequest, owner: str, name: str, deployment_id: int) -> HttpResponse:
    repo = get_repo_for_user(request.user, owner, name)
    deployment = _deployment(repo, deployment_id)
    runs = list(deployment.targets.select_related("deployment"))
    for run in runs:
        run.log = _hook_sections(run)
    user = request.user
    context = _context(request, repo, deployment=deployment)
    waiting = deployment.deployment_status == Deployment.Status.WAITING
    reviewed = deployment.reviews.filter(user=user).first() if user.is_authenticated else None
    context.update(
        environment=deployment.environment,
        artifact=deployment.artifact,
        build=deployment.artifact.build,
        statuses=list(deployment.statuses.order_by("created", "id")),
        reviews=list(deployment.reviews.select_related("user")),
        batches=_batches(runs),
        target_count=len(runs),
        log=_deployment_piece(deployment),
        rolled_back_by=list(deployment.rollbacks.order_by("id")),
        can_review=waiting and deployments.can_review(user, deployment),
        my_review=reviewed,
        can_override=waiting and context["is_admin"] and not deployment.message.startswith("Waiting for review"),
        can_stop=context["can_deploy"] and not deployment.is_ended,
        can_roll_back=context["can_deploy"]
        and deployment.is_ended
        and deployments.last_success(deployment.environment, before=deployment) is not None,
    )
    return render(request, "releases/deployment.html", context)


@require_GET
def deployment_log(request: HttpRequest, owner: str, name: str, deployment_id: int) -> JsonResponse:
    """The deployment's own log after ?offset= (see releases.views.build_log), with how many targets it has so
    that a page opened before they were planned knows to show them."""
    repo = get_repo_for_user(request.user, owner, name)
    deployment = _deployment(repo, deployment_id)

    def piece_at(offset: int, line: int) -> dict:
        piece = _deployment_piece(deployment, offset, line)
        piece["targets"] = deployment.targets.count()
        return piece

    return log_poll.answer(request, piece_at)


@require_GET
def target_log(request: HttpRequest, owner: str, name: str, deployment_id: int, target: str) -> JsonResponse:
    """One target's log after ?offset=, its hooks' sections starting at their "==> EventName" lines."""
    repo = get_repo_for_user(request.user, owner, name)
    deployment = _deployment(repo, deployment_id)
    run = get_object_or_404(DeploymentTarget.objects.select_related("deployment"), deployment=deployment, name=target)
    return log_poll.answer(request, partial(_target_piece, run))


# Actions: each a POST answered by a redirect to the deployment's page, with the refusal as a message.


def _refused(request: HttpRequest, error: ValidationError | PermissionDenied) -> None:
    text = " ".join(error.messages) if isinstance(error, ValidationError) else str(error)
    messages.error(request, text or "Refused.")


@require_POST
def deployment_review(request: HttpRequest, owner: str, name: str, deployment_id: int) -> HttpResponse:
    repo = get_repo_for_user(request.user, owner, name)
    deployment = _deployment(repo, deployment_id)
    if not deployments.can_review(request.user, deployment):
        raise PermissionDenied(f"Only the reviewers of {deployment.environment.name} review its deployments.")
    state = request.POST.get("state", "")
    try:
        deployments.review(deployment, actor=request.user, state=state, comment=request.POST.get("comment", ""))
    except ValidationError as error:
        _refused(request, error)
    else:
        word = "Approved" if state == DeploymentReview.State.APPROVED else "Rejected"
        messages.success(request, f"{word} deployment {deployment.pk}.")
    return redirect("deployments:detail", owner, name, deployment.pk)


@require_POST
def deployment_override(request: HttpRequest, owner: str, name: str, deployment_id: int) -> HttpResponse:
    repo = get_repo_for_user(request.user, owner, name)
    deployment = _deployment(repo, deployment_id)
    access.require(can_administer, request.user, repo, "Only the repository's admins start a deployment early.")
    try:
        deployments.override(deployment, actor=request.user)
    except ValidationError as error:
        _refused(request, error)
    else:
        messages.success(request, f"Deployment {deployment.pk} starts now; your override is in the audit log.")
    return redirect("deployments:detail", owner, name, deployment.pk)


@require_POST
def deployment_stop(request: HttpRequest, owner: str, name: str, deployment_id: int) -> HttpResponse:
    repo = get_repo_for_user(request.user, owner, name)
    deployment = _deployment(repo, deployment_id)
    access.require(access.can_deploy, request.user, repo, "Only the repository's writers stop deployments.")
    deployments.stop(deployment, actor=request.user)
    messages.success(request, f"Deployment {deployment.pk} is stopping: a batch under way finishes first.")
    return redirect("deployments:detail", owner, name, deployment.pk)


@require_POST
def deployment_roll_back(request: HttpRequest, owner: str, name: str, deployment_id: int) -> HttpResponse:
    repo = get_repo_for_user(request.user, owner, name)
    deployment = _deployment(repo, deployment_id)
    access.require(access.can_deploy, request.user, repo, "Only the repository's writers roll back.")
    try:
        rollback = deployments.roll_back(deployment, actor=request.user)
    except ValidationError as error:
        _refused(request, error)
        return redirect("deployments:detail", owner, name, deployment.pk)
    if rollback is None:
        messages.error(
            request, f"{deployment.environment.name} has no successful deployment before this one to roll back to."
        )
        return redirect("deployments:detail", owner, name, deployment.pk)
    messages.success(request, f"Deployment {rollback.pk} rolls back deployment {deployment.pk}.")
    return redirect("deployments:detail", owner, name, rollback.pk)


@require_POST
def deploy_build(request: HttpRequest, owner: str, name: str, number: int) -> HttpResponse:
    """Deploy a successful build's primary artifact to the environment chosen."""
    repo = get_repo_for_user(request.user, owner, name)
    build = get_object_or_404(Build, repository=repo, number=number)
    access.require(access.can_deploy, request.user, repo, "Only the repository's writers deploy.")
    environment = environments.find_environment(repo, request.POST.get("environment", "").strip())
    artifact = build.artifacts.filter(identifier="").first() or build.artifacts.first()
    try:
        if environment is None:
            raise ValidationError("Choose an environment of this repository to deploy to.")
        if build.build_status != Build.BuildStatus.SUCCEEDED or artifact is None:
            raise ValidationError(f"Build #{build.number} has no artifact to deploy: only a successful build does.")
        if artifact.expired:
            raise ValidationError(f"The artifact of build #{build.number} expired and was removed; build it again.")
        deployment = deployments.request_deployment(
            repo, environment, actor=request.user, artifact=artifact, description=f"Build #{build.number}"
        )
    except (ValidationError, PermissionDenied) as error:
        _refused(request, error)
        return redirect("builds:detail", owner, name, build.number)
    messages.success(request, f"Deployment {deployment.pk} of build #{build.number} to {environment.name} requested.")
    return redirect("deployments:detail", owner, name, deployment.pk)
