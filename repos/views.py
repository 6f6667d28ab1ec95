"""Repository pages: create, owner profile, repository home and settings. HTTP only: services decide."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponsePermanentRedirect, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.common import no_append_slash
from django.views.decorators.http import require_POST

from portal.confirm import ask_to_confirm, confirmed
from portal.keys import InvalidKey
from portal.models import SshKey, Team, User
from repos import forms, git, services
from repos.access import (
    get_owner_for_user,
    get_repo_for_user,
    is_org_member,
    is_org_owner,
    owners_for_creation,
    suggested_usernames,
    visible_repositories,
)
from repos.models import Repository, Role, TeamRepository

# How many usernames a field that names people suggests at once.
SUGGESTIONS = 10


def _settings_url(repo: Repository, page: str = "settings") -> str:
    return reverse(f"repos:{page}", args=[repo.owner.username, repo.name])


@login_required
def new_repository(request: HttpRequest) -> HttpResponse:
    owners = owners_for_creation(request.user)
    initial = {"owner": request.GET.get("owner", request.user.username)}
    form = forms.NewRepositoryForm(request.POST or None, owners=owners, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = dict(form.cleaned_data)
        template = data.pop("template", None)
        try:
            if template is None:
                repo = services.create_repository(actor=request.user, **data)
            else:
                # A template brings its own first commit, README included.
                data.pop("initialize")
                repo = template.create(actor=request.user, **data)
        except ValidationError as exc:
            form.add_error("name", exc)
        else:
            messages.success(request, f"Created {repo.full_name}.")
            return redirect("repos:detail", repo.owner.username, repo.name)
    context = {"form": form, "visibility_help": forms.VISIBILITY_HELP, "template_help": form.template_help}
    return render(request, "repos/new.html", context)


def owner_page(request: HttpRequest, owner: str) -> HttpResponse:
    account = get_owner_for_user(request.user, owner)
    context = {
        "account": account,
        "repositories": visible_repositories(request.user).filter(owner=account).order_by("name"),
        "is_org_member": is_org_member(request.user, account),
        "is_org_owner": is_org_owner(request.user, account),
        "is_self": request.user.is_authenticated and request.user.pk == account.pk,
    }
    if context["is_org_member"]:
        context["teams"] = account.teams.prefetch_related("members")
    if context["is_self"]:
        context["organizations"] = User.objects.organizations().filter(teams__members=account).distinct()
    return render(request, "repos/owner.html", context)


def _render_settings(request: HttpRequest, repo: Repository, status: int = 200, **bound) -> HttpResponse:
    branch_names = [branch.name for branch in git.branches(repo.path)]
    context = {
        "repo": repo,
        "active": "general",
        "visibility_help": forms.VISIBILITY_HELP,
        "general_form": bound.get("general_form") or forms.RepositorySettingsForm(repo=repo, branch_names=branch_names),
        "rename_form": bound.get("rename_form") or forms.RenameForm(initial={"name": repo.name}),
        "transfer_form": bound.get("transfer_form") or forms.TransferForm(),
        "delete_form": bound.get("delete_form") or forms.DeleteForm(),
    }
    return render(request, "repos/settings.html", context, status=status)


def settings(request: HttpRequest, owner: str, name: str) -> HttpResponse:
    repo = get_repo_for_user(request.user, owner, name, need=Role.ADMIN)
    if request.method != "POST":
        return _render_settings(request, repo)
    branch_names = [branch.name for branch in git.branches(repo.path)]
    form = forms.RepositorySettingsForm(request.POST, repo=repo, branch_names=branch_names)
    if form.is_valid():
        try:
            services.update_repository(repo, actor=request.user, **form.cleaned_data)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, "Settings saved.")
            return redirect(_settings_url(repo))
    repo.refresh_from_db()
    return _render_settings(request, repo, status=400, general_form=form)


@require_POST
def rename(request: HttpRequest, owner: str, name: str) -> HttpResponse:
    repo = get_repo_for_user(request.user, owner, name, need=Role.ADMIN)
    form = forms.RenameForm(request.POST)
    if form.is_valid():
        try:
            services.rename_repository(repo, actor=request.user, name=form.cleaned_data["name"])
        except ValidationError as exc:
            form.add_error("name", exc)
        else:
            messages.success(request, f"Renamed to {repo.full_name}. The old address no longer works.")
            return redirect(_settings_url(repo))
    repo.refresh_from_db()
    return _render_settings(request, repo, status=400, rename_form=form)


@require_POST
def transfer(request: HttpRequest, owner: str, name: str) -> HttpResponse:
    repo = get_repo_for_user(request.user, owner, name, need=Role.ADMIN)
    form = forms.TransferForm(request.POST)
    if form.is_valid() and not confirmed(request):
        new_owner = form.cleaned_data["new_owner"]
        return ask_to_confirm(
            request,
            title=f"Transfer {repo.full_name} to {new_owner.username}?",
            consequences=[
                f"It becomes {new_owner.username}/{repo.name}: the old address stops working for clones and links.",
                *(["Team grants of the current organization are removed."] if repo.owner.is_organization else []),
            ],
            button="Yes, transfer this repository",
            cancel_url=_settings_url(repo),
        )
    if form.is_valid():
        try:
            services.transfer_repository(repo, actor=request.user, new_owner=form.cleaned_data["new_owner"])
        except (ValidationError, PermissionDenied) as exc:
            form.add_error("new_owner", str(exc) if isinstance(exc, PermissionDenied) else exc)
        else:
            messages.success(request, f"Transferred to {repo.full_name}.")
            return redirect("repos:detail", repo.owner.username, repo.name)
    repo.refresh_from_db()
    return _render_settings(request, repo, status=400, transfer_form=form)


@require_POST
def delete(request: HttpRequest, owner: str, name: str) -> HttpResponse:
    repo = get_repo_for_user(request.user, owner, name, need=Role.ADMIN)
    form = forms.DeleteForm(request.POST)
    if form.is_valid():
        try:
            services.delete_repository(repo, actor=request.user, confirm=form.cleaned_data["confirm"])
        except ValidationError as exc:
            form.add_error("confirm", exc)
        else:
            messages.success(request, f"Deleted {owner}/{name}.")
            return redirect("repos:owner", repo.owner.username)
    return _render_settings(request, repo, status=400, delete_form=form)


def _render_collaborators(request: HttpRequest, repo: Repository, status: int = 200, **bound) -> HttpResponse:
    context = {
        "repo": repo,
        "active": "collaborators",
        "role_choices": forms.ROLE_CHOICES,
        "collaborators": repo.collaborators.select_related("user").order_by("user__username"),
        "form": bound.get("form") or forms.CollaboratorForm(),
    }
    if repo.owner.is_organization:
        context["team_grants"] = repo.team_grants.select_related("team").order_by("team__name")
        context["team_form"] = bound.get("team_form") or forms.TeamGrantForm(repo=repo)
    return render(request, "repos/collaborators.html", context, status=status)


def collaborators(request: HttpRequest, owner: str, name: str) -> HttpResponse:
    repo = get_repo_for_user(request.user, owner, name, need=Role.ADMIN)
    if request.method != "POST":
        return _render_collaborators(request, repo)
    form = forms.CollaboratorForm(request.POST)
    if form.is_valid():
        user = form.cleaned_data["username"]
        try:
            services.set_collaborator(repo, user, actor=request.user, role=form.cleaned_data["role"])
        except ValidationError as exc:
            form.add_error("username", exc)
        else:
            messages.success(request, f"{user.username} now has {form.cleaned_data['role'].label} access.")
            return redirect(_settings_url(repo, "collaborators"))
    return _render_collaborators(request, repo, status=400, form=form)


def _person(username: str) -> User:
    return get_object_or_404(User.objects.people(), username__iexact=username)


@require_POST
def collaborator_role(request: HttpRequest, owner: str, name: str, username: str) -> HttpResponse:
    repo = get_repo_for_user(request.user, owner, name, need=Role.ADMIN)
    user = _person(username)
    form = forms.RoleForm(request.POST)
    if not form.is_valid() or not repo.collaborators.filter(user=user).exists():
        messages.error(request, "Choose read, write, maintain or admin for an existing collaborator.")
    else:
        services.set_collaborator(repo, user, actor=request.user, role=form.cleaned_data["role"])
        messages.success(request, f"{user.username} now has {form.cleaned_data['role'].label} access.")
    return redirect(_settings_url(repo, "collaborators"))


@require_POST
def collaborator_remove(request: HttpRequest, owner: str, name: str, username: str) -> HttpResponse:
    repo = get_repo_for_user(request.user, owner, name, need=Role.ADMIN)
    user = _person(username)
    if not confirmed(request):
        return ask_to_confirm(
            request,
            title=f"Remove {user.username} from {repo.full_name}?",
            consequences=[f"{user.username} loses the access granted here (teams may still grant some)."],
            button="Yes, remove this collaborator",
            cancel_url=_settings_url(repo, "collaborators"),
        )
    services.remove_collaborator(repo, user, actor=request.user)
    messages.success(request, f"Removed {user.username} from the collaborators.")
    return redirect(_settings_url(repo, "collaborators"))


def _org_team(repo: Repository, team_name: str) -> Team:
    if not repo.owner.is_organization:
        raise Http404("Only repositories of organizations have teams")
    return get_object_or_404(Team, organization=repo.owner, name__iexact=team_name)


@require_POST
def team_add(request: HttpRequest, owner: str, name: str) -> HttpResponse:
    repo = get_repo_for_user(request.user, owner, name, need=Role.ADMIN)
    if not repo.owner.is_organization:
        raise Http404("Only repositories of organizations have teams")
    form = forms.TeamGrantForm(request.POST, repo=repo)
    if form.is_valid():
        team = form.cleaned_data["team"]
        services.set_team_role(repo, team, actor=request.user, role=form.cleaned_data["role"])
        messages.success(request, f"Team {team.name} now has {form.cleaned_data['role'].label} access.")
        return redirect(_settings_url(repo, "collaborators"))
    return _render_collaborators(request, repo, status=400, team_form=form)


@require_POST
def team_role(request: HttpRequest, owner: str, name: str, team: str) -> HttpResponse:
    repo = get_repo_for_user(request.user, owner, name, need=Role.ADMIN)
    team_obj = _org_team(repo, team)
    form = forms.RoleForm(request.POST)
    if not form.is_valid() or not TeamRepository.objects.filter(repository=repo, team=team_obj).exists():
        messages.error(request, "Choose read, write, maintain or admin for a team that has access.")
    else:
        services.set_team_role(repo, team_obj, actor=request.user, role=form.cleaned_data["role"])
        messages.success(request, f"Team {team_obj.name} now has {form.cleaned_data['role'].label} access.")
    return redirect(_settings_url(repo, "collaborators"))


@require_POST
def team_remove(request: HttpRequest, owner: str, name: str, team: str) -> HttpResponse:
    repo = get_repo_for_user(request.user, owner, name, need=Role.ADMIN)
    team_obj = _org_team(repo, team)
    if not confirmed(request):
        return ask_to_confirm(
            request,
            title=f"Remove team {team_obj.name} from {repo.full_name}?",
            consequences=[f"Members of {team_obj.name} lose the access the team gave them here."],
            button="Yes, remove this team",
            cancel_url=_settings_url(repo, "collaborators"),
        )
    services.remove_team(repo, team_obj, actor=request.user)
    messages.success(request, f"Removed team {team_obj.name}.")
    return redirect(_settings_url(repo, "collaborators"))


def deploy_keys(request: HttpRequest, owner: str, name: str) -> HttpResponse:
    repo = get_repo_for_user(request.user, owner, name, need=Role.ADMIN)
    form = forms.DeployKeyForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            key = services.add_deploy_key(repo, actor=request.user, **form.cleaned_data)
        except InvalidKey as exc:
            form.add_error("public_key", str(exc))
        else:
            access = "read and write" if key.writable else "read-only"
            messages.success(request, f"Added deploy key {key.title} ({access}).")
            return redirect(_settings_url(repo, "deploy_keys"))
    context = {"repo": repo, "active": "deploy_keys", "keys": repo.deploy_keys.all(), "form": form}
    return render(request, "repos/deploy_keys.html", context, status=400 if form.errors else 200)


@require_POST
def deploy_key_remove(request: HttpRequest, owner: str, name: str, key_id: int) -> HttpResponse:
    repo = get_repo_for_user(request.user, owner, name, need=Role.ADMIN)
    key = get_object_or_404(SshKey, pk=key_id, repository=repo)
    if not confirmed(request):
        return ask_to_confirm(
            request,
            title=f"Remove the deploy key {key.title}?",
            consequences=[f"{key.fingerprint} can no longer reach {repo.full_name}, from its next connection on."],
            button="Yes, remove this deploy key",
            cancel_url=_settings_url(repo, "deploy_keys"),
        )
    services.remove_deploy_key(key, actor=request.user)
    messages.success(request, f"Removed deploy key {key.title}; it can no longer reach this repository.")
    return redirect(_settings_url(repo, "deploy_keys"))


# CommonMiddleware must not answer a path it cannot resolve by adding the slash that this view takes away again.
@no_append_slash
def without_trailing_slash(request: HttpRequest, rest: str) -> HttpResponse:
    """An address with a trailing slash moves to the one without it, as on GitHub (a GET or HEAD only: a browser
    would turn a redirected form post into a GET and lose its fields).

    Nothing is looked up first, so a private repository's address redirects for anyone and then answers 404 like
    every missing one."""
    if request.method not in ("GET", "HEAD"):
        raise Http404("No such page.")
    path, mark, query = request.get_full_path().partition("?")
    target = path.rstrip("/")
    # A path such as //evil.example/ would become an address on another site.
    if not target or not url_has_allowed_host_and_scheme(target, allowed_hosts=None):
        raise Http404("No such page.")
    return HttpResponsePermanentRedirect(f"{target}{mark}{query}")


@login_required
def users_suggest(request: HttpRequest) -> HttpResponse:
    """Usernames for a field that names people, as it is typed (?q=): with ?repo=owner/name, people who have a role
    on that repository come first. Usernames only: nothing else about anyone leaves here."""
    # No username is longer than 40 characters, so neither is anything worth looking for.
    query = request.GET.get("q", "").strip().lstrip("@")[:40]
    if not query:
        return JsonResponse({"users": []})
    repo = None
    owner, _slash, name = request.GET.get("repo", "").partition("/")
    if owner and name:
        try:
            repo = get_repo_for_user(request.user, owner, name)
        except Http404:
            pass
    return JsonResponse({"users": suggested_usernames(query, repo=repo, limit=SUGGESTIONS)})
