from django.urls import path

from portal import org_views

app_name = "orgs"

urlpatterns = [
    path("orgs/new", org_views.new_organization, name="new"),
    path("orgs/<str:org>/teams", org_views.teams, name="teams"),
    path("orgs/<str:org>/teams/new", org_views.new_team, name="new_team"),
    path("orgs/<str:org>/teams/<str:team>", org_views.team, name="team"),
    path("orgs/<str:org>/teams/<str:team>/members", org_views.member_add, name="member_add"),
    path(
        "orgs/<str:org>/teams/<str:team>/members/<str:username>/remove", org_views.member_remove, name="member_remove"
    ),
]
