"""The "Environments" pages of a repository's settings (its admins): the list, one environment's settings and
targets, its variables and secrets, deleting it.

HTTP only: releases.environments decides and validates, and its refusals (a field_error naming "targets.1.host_key"
or "freeze_windows.0.cron") are shown beside the field they name. A secret's value is taken in and never rendered
back; a deploy key's public line is shown for the host's authorized_keys, its private half never."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from portal.confirm import ask_to_confirm, confirmed
from releases import environment_forms as shapes
from releases import environments
from releases.environment_forms import EnvironmentForm, NewEnvironmentForm
from releases.models import Environment
from releases.secret_forms import SecretForm, VariableForm
from repos.access import get_repo_for_user
from repos.models import Repository, Role

VARIABLE_FORMS = {"secret": SecretForm, "variable": VariableForm}
# Where a refusal's field goes on the form: the first part of the service's field name.
FIELD_OF = {
    "deployment_config": "config",
    "reviewers": "reviewers",
    "required_approvals": "required_approvals",
    "prevent_self_review": "prevent_self_review",
    "deployment_branch_policy": "patterns",
    "wait_timer": "wait_timer",
    "freeze_windows": "freeze_windows",
}


def _admin_repo(request: HttpRequest, owner: str, name: str) -> Repository:
    return get_repo_for_user(request.user, owner, name, need=Role.ADMIN)


def _environment(repo: Repository, name: str) -> Environment:
    environment = environments.find_environment(repo, name)
    if environment is None:
        raise Http404(f"{repo.full_name} has no environment named {name}.")
    return environment


def _field_of(error: ValidationError) -> str:
    return (getattr(error, "params", None) or {}).get("field") or ""


def environment_settings(request: HttpRequest, owner: str, name: str) -> HttpResponse:
    """The environments in promotion order, and a form that adds one."""
    repo = _admin_repo(request, owner, name)
    form = NewEnvironmentForm(request.POST if request.method == "POST" else None)
    if form.is_bound and form.is_valid():
        try:
            environment, created, _keys = environments.set_environment(
                repo, form.cleaned_data["name"], actor=request.user
            )
        except ValidationError as error:
            form.add_error("name", error.messages)
        else:
            messages.success(request, f"{'Created' if created else 'Opened'} the environment {environment.name}.")
            return redirect("deployments:settings_environment", owner, name, environment.name)
    context = {
        "repo": repo,
        "active": "environments",
        "is_admin": True,
        "environments": environments.environments_of(repo).prefetch_related("targets"),
        "form": form,
    }
    return render(request, "releases/environment_settings.html", context, status=400 if form.errors else 200)


def _variable_forms() -> dict:
    return {kind: form_class(auto_id=f"id_{kind}_%s") for kind, form_class in VARIABLE_FORMS.items()}


def _edit_page(
    request: HttpRequest, repo: Repository, environment: Environment, *, status: int = 200, **more
) -> HttpResponse:
    forms = more.pop("variable_forms", None) or _variable_forms()
    context = {
        "repo": repo,
        "active": "environments",
        "is_admin": True,
        "environment": environment,
        "form": more.pop("form", None) or EnvironmentForm(initial=shapes.initial_of(environment)),
        "rows": more.pop("rows", None) or shapes.target_rows(environment),
        "secrets": environment.variables.filter(secret=True),
        "variables": environment.variables.filter(secret=False),
        "secret_form": forms["secret"],
        "variable_form": forms["variable"],
        **more,
    }
    context["target_count"] = len(context["rows"])
    return render(request, "releases/environment_edit.html", context, status=status)


def environment_edit(request: HttpRequest, owner: str, name: str, environment: str) -> HttpResponse:
    """One environment's settings and targets, saved in one call of set_environment."""
    repo = _admin_repo(request, owner, name)
    found = _environment(repo, environment)
    if request.method != "POST":
        return _edit_page(request, repo, found)
    form = EnvironmentForm(request.POST)
    rows = shapes.posted_rows(request.POST, found)
    targets, origins = shapes.targets_of(rows)
    given = None
    if form.is_valid():
        try:
            given = shapes.reviewers(form.cleaned_data["reviewers"], repo)
        except ValidationError as error:
            form.add_error("reviewers", error)
    if form.is_valid() and given is not None and not any(row["errors"] for row in rows):
        data = form.cleaned_data
        try:
            _saved, _created, new_keys = environments.set_environment(
                repo,
                found.name,
                actor=request.user,
                deployment_config=shapes.deployment_config(data),
                required_approvals=data["required_approvals"] or 0,
                reviewers=given,
                prevent_self_review=data["prevent_self_review"],
                deployment_branch_policy={
                    "default_branch": data["default_branch"],
                    "protected_branches": data["protected_branches"],
                    "patterns": data["patterns"],
                },
                wait_timer=data["wait_timer"] or 0,
                freeze_windows=data["freeze_windows"],
                targets=targets,
            )
        except ValidationError as error:
            _place_error(error, form, rows, origins)
        else:
            messages.success(request, f"Saved the environment {found.name}.")
            for target, line in new_keys.items():
                messages.info(request, f"Add the deploy key of {target} to its user's authorized_keys: {line}")
            return redirect("deployments:settings_environment", owner, name, found.name)
    return _edit_page(request, repo, found, form=form, rows=rows, status=400)


def _place_error(error: ValidationError, form: EnvironmentForm, rows: list[dict], origins: list[int]) -> None:
    """Put the service's refusal beside the field it names: a target row's cell, or a field of the form."""
    field = _field_of(error)
    parts = field.split(".")
    if parts[0] == "targets" and len(parts) >= 2 and parts[1].isdigit() and int(parts[1]) < len(origins):
        key = parts[2] if len(parts) > 2 and parts[2] in shapes.TARGET_FIELDS else "name"
        rows[origins[int(parts[1])]]["errors"][key] = " ".join(error.messages)
        return
    where = FIELD_OF.get(parts[0])
    if where == "config" and form.cleaned_data.get("config") in ("HOST_COUNT", "FLEET_PERCENT"):
        # A minimum of healthy hosts is refused for its number.
        where = "config_value"
    if parts[0] == "freeze_windows" and len(parts) > 1 and parts[1].isdigit():
        text = f"Window {int(parts[1]) + 1}{' (' + parts[2] + ')' if len(parts) > 2 else ''}: "
        form.add_error(where, text + " ".join(error.messages))
        return
    form.add_error(where, error.messages)


@require_POST
def environment_delete(request: HttpRequest, owner: str, name: str, environment: str) -> HttpResponse:
    repo = _admin_repo(request, owner, name)
    found = _environment(repo, environment)
    if not confirmed(request):
        return ask_to_confirm(
            request,
            title=f"Delete the environment {found.name}?",
            consequences=[
                "Its targets, variables, secrets and deployment history go with it; what was deployed to its "
                "targets stays where it is. This cannot be undone."
            ],
            button="Yes, delete this environment",
            cancel_url=reverse("deployments:settings_environment", args=[owner, name, found.name]),
        )
    environments.delete_environment(found, actor=request.user)
    messages.success(request, f"Deleted the environment {found.name}.")
    return redirect("deployments:settings", owner, name)


@require_POST
def variable_set(request: HttpRequest, owner: str, name: str, environment: str) -> HttpResponse:
    """Add a variable or a secret to the environment, or give one a new value."""
    repo = _admin_repo(request, owner, name)
    found = _environment(repo, environment)
    kind = request.POST.get("kind", "")
    if kind not in VARIABLE_FORMS:
        # Only a hand-made request lacks the forms' hidden field.
        return HttpResponseBadRequest("Say whether this is a secret or a variable (kind).")
    forms = _variable_forms()
    form = forms[kind] = VARIABLE_FORMS[kind](request.POST, auto_id=f"id_{kind}_%s")
    if form.is_valid():
        try:
            row, created = environments.set_variable(
                found,
                form.cleaned_data["name"],
                form.cleaned_data["value"],
                secret=kind == "secret",
                actor=request.user,
            )
        except ValidationError as error:
            field = _field_of(error)
            form.add_error(field if field in form.fields else None, error.messages)
        else:
            messages.success(request, f"{'Added' if created else 'Updated'} the {kind} {row.name} of {found.name}.")
            return redirect("deployments:settings_environment", owner, name, found.name)
    return _edit_page(request, repo, found, variable_forms=forms, status=400)


@require_POST
def variable_delete(
    request: HttpRequest, owner: str, name: str, environment: str, kind: str, variable: str
) -> HttpResponse:
    repo = _admin_repo(request, owner, name)
    found = _environment(repo, environment)
    row = environments.find_variable(found, variable, secret=kind == "secret") if kind in VARIABLE_FORMS else None
    if row is None:
        raise Http404(f"No such {kind}")
    url = reverse("deployments:settings_environment", args=[owner, name, found.name])
    if not confirmed(request):
        return ask_to_confirm(
            request,
            title=f"Delete the {kind} {row.name} of {found.name}?",
            consequences=[f"Deployments to {found.name} from now on no longer get {row.name}; this cannot be undone."],
            button=f"Yes, delete this {kind}",
            cancel_url=url,
        )
    environments.delete_variable(row, actor=request.user)
    messages.success(request, f"Deleted the {kind} {row.name} of {found.name}.")
    return redirect(url)
