"""The "Secrets and variables" pages of a repository (its admins) and of an organization (its owners).

HTTP only: releases.variables decides and validates. A secret's value is taken in and never rendered back."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from portal.confirm import ask_to_confirm, confirmed
from releases import services, variables
from releases.secret_forms import SecretForm, VariableForm
from repos.access import get_org_for_member, get_repo_for_user
from repos.models import Role

FORMS = {"secret": SecretForm, "variable": VariableForm}


def _repo_place(request: HttpRequest, owner: str, name: str) -> tuple[dict, str]:
    repo = get_repo_for_user(request.user, owner, name, need=Role.ADMIN)
    return {"repository": repo}, reverse("build_secrets:repo", args=[repo.owner.username, repo.name])


def _org_place(request: HttpRequest, org: str) -> tuple[dict, str]:
    organization = get_org_for_member(request.user, org, admin=True)
    return {"organization": organization}, reverse("build_secrets:org", args=[organization.username])


def _save(request: HttpRequest, place: dict, form) -> bool:
    """Save a valid form's variable or secret; False with the refusal on the form."""
    kind = request.POST["kind"]
    try:
        row, created = variables.set_build_variable(
            actor=request.user, secret=kind == "secret", **place, **form.cleaned_data
        )
    except ValidationError as exc:
        field = getattr(exc, "params", None) and exc.params.get("field")
        form.add_error(field if field in form.fields else None, exc.messages)
        return False
    messages.success(request, f"{'Added' if created else 'Updated'} the {kind} {row.name}.")
    return True


def _page(request: HttpRequest, place: dict, url: str) -> HttpResponse:
    forms = {kind: form_class(auto_id=f"id_{kind}_%s") for kind, form_class in FORMS.items()}
    if request.method == "POST":
        kind = request.POST.get("kind", "")
        if kind not in FORMS:
            # Only a hand-made request lacks the forms' hidden field.
            return HttpResponseBadRequest("Say whether this is a secret or a variable (kind).")
        forms[kind] = FORMS[kind](request.POST, auto_id=f"id_{kind}_%s")
        if forms[kind].is_valid() and _save(request, place, forms[kind]):
            return redirect(url)
    context = {
        **place,
        "active": "build_secrets",
        "secrets": variables.variables_of(secret=True, **place),
        "variables": variables.variables_of(secret=False, **place),
        "secret_form": forms["secret"],
        "variable_form": forms["variable"],
    }
    repository = place.get("repository")
    if repository is not None:
        context["secret_branches"] = services.build_settings(repository).secret_branches
        if repository.owner.is_organization:
            organization = {"organization": repository.owner}
            context["org_secrets"] = variables.variables_of(secret=True, **organization)
            context["org_variables"] = variables.variables_of(secret=False, **organization)
    failed = any(form.errors for form in forms.values())
    return render(request, "releases/secrets.html", context, status=400 if failed else 200)


def _delete(request: HttpRequest, place: dict, url: str, kind: str, name: str) -> HttpResponse:
    row = variables.find_variable(name, secret=kind == "secret", **place) if kind in FORMS else None
    if row is None:
        raise Http404(f"No such {kind}")
    if not confirmed(request):
        return ask_to_confirm(
            request,
            title=f"Delete the {kind} {row.name}?",
            consequences=[f"Builds started from now on no longer get {row.name}; this cannot be undone."],
            button=f"Yes, delete this {kind}",
            cancel_url=url,
        )
    variables.delete_build_variable(row, actor=request.user)
    messages.success(request, f"Deleted the {kind} {row.name}.")
    return redirect(url)


def repo_page(request: HttpRequest, owner: str, name: str) -> HttpResponse:
    return _page(request, *_repo_place(request, owner, name))


@require_POST
def repo_delete(request: HttpRequest, owner: str, name: str, kind: str, variable: str) -> HttpResponse:
    return _delete(request, *_repo_place(request, owner, name), kind, variable)


def org_page(request: HttpRequest, org: str) -> HttpResponse:
    return _page(request, *_org_place(request, org))


@require_POST
def org_delete(request: HttpRequest, org: str, kind: str, variable: str) -> HttpResponse:
    return _delete(request, *_org_place(request, org), kind, variable)
