"""Organization and team pages. HTTP only: the services in portal/services.py decide."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from portal import org_forms, services
from portal.access import get_org_for_member, get_team_for_user, is_org_owner
from portal.confirm import ask_to_confirm, confirmed
from portal.models import Team, User


@login_required
def new_organization(request: HttpRequest) -> HttpResponse:
    form = org_forms.OrganizationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            org = services.create_organization(actor=request.user, **form.cleaned_data)
        except ValidationError as exc:
            form.add_error("name", exc)
        else:
            messages.success(request, f"Created the organization {org.username}; you are one of its owners.")
            return redirect("repos:owner", org.username)
    return render(request, "orgs/new.html", {"form": form}, status=400 if form.errors else 200)


def teams(request: HttpRequest, org: str) -> HttpResponse:
    organization = get_org_for_member(request.user, org)
    team_list = organization.teams.annotate(
        member_count=Count("members", distinct=True), repo_count=Count("repository_grants", distinct=True)
    )
    context = {"org": organization, "teams": team_list, "is_owner": is_org_owner(request.user, organization)}
    return render(request, "orgs/teams.html", context)


def new_team(request: HttpRequest, org: str) -> HttpResponse:
    organization = get_org_for_member(request.user, org, admin=True)
    form = org_forms.TeamForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            team = services.create_team(organization, actor=request.user, **form.cleaned_data)
        except ValidationError as exc:
            form.add_error("name", exc)
        else:
            messages.success(request, f"Created the team {team.name}.")
            return redirect("orgs:team", organization.username, team.name)
    return render(
        request, "orgs/new_team.html", {"org": organization, "form": form}, status=400 if form.errors else 200
    )


def _render_team(request: HttpRequest, team: Team, status: int = 200, form=None) -> HttpResponse:
    # The template lists the team's grants through repos' template tags (repo_lists), only for repositories the
    # viewer can read, so that names do not leak.
    context = {
        "org": team.organization,
        "team": team,
        "members": team.members.order_by("username"),
        "is_owner": is_org_owner(request.user, team.organization),
        "form": form or org_forms.MemberForm(),
    }
    return render(request, "orgs/team.html", context, status=status)


def team(request: HttpRequest, org: str, team: str) -> HttpResponse:
    team_obj = get_team_for_user(request.user, org, team)
    return _render_team(request, team_obj)


@require_POST
def member_add(request: HttpRequest, org: str, team: str) -> HttpResponse:
    team_obj = get_team_for_user(request.user, org, team, admin=True)
    form = org_forms.MemberForm(request.POST)
    if form.is_valid():
        user = form.cleaned_data["username"]
        try:
            services.add_team_member(team_obj, user, actor=request.user)
        except ValidationError as exc:
            form.add_error("username", exc)
        else:
            messages.success(request, f"Added {user.username} to {team_obj.name}.")
            return redirect("orgs:team", team_obj.organization.username, team_obj.name)
    return _render_team(request, team_obj, status=400, form=form)


@require_POST
def member_remove(request: HttpRequest, org: str, team: str, username: str) -> HttpResponse:
    team_obj = get_team_for_user(request.user, org, team, admin=True)
    user = get_object_or_404(User.objects.people(), username__iexact=username)
    if not confirmed(request):
        return ask_to_confirm(
            request,
            title=f"Remove {user.username} from the team {team_obj.name}?",
            consequences=[
                f"{user.username} loses the access {team_obj.name} gives to {team_obj.organization.username}'s repositories."
            ],
            button="Yes, remove this member",
            cancel_url=reverse("orgs:team", args=[team_obj.organization.username, team_obj.name]),
        )
    try:
        services.remove_team_member(team_obj, user, actor=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"Removed {user.username} from {team_obj.name}.")
    return redirect("orgs:team", team_obj.organization.username, team_obj.name)
