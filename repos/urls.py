from django.urls import path, re_path

from repos import browse_views, views

app_name = "repos"

# The owner and repository segments are catch-alls, so these come last in portal/urls.py;
# "new" and "settings" are reserved names and cannot be taken by an owner or a repository.
# The code pages are in repos/browse_urls.py.
urlpatterns = [
    path("new", views.new_repository, name="new"),
    # Usernames for the fields that name people, as they are typed (people with access to ?repo= first).
    path("-/users/suggest", views.users_suggest, name="users_suggest"),
    path("<str:owner>", views.owner_page, name="owner"),
    path("<str:owner>/<str:name>", browse_views.home, name="detail"),
    path("<str:owner>/<str:name>/settings", views.settings, name="settings"),
    path("<str:owner>/<str:name>/settings/rename", views.rename, name="rename"),
    path("<str:owner>/<str:name>/settings/transfer", views.transfer, name="transfer"),
    path("<str:owner>/<str:name>/settings/delete", views.delete, name="delete"),
    path("<str:owner>/<str:name>/settings/collaborators", views.collaborators, name="collaborators"),
    path(
        "<str:owner>/<str:name>/settings/collaborators/<str:username>/role",
        views.collaborator_role,
        name="collaborator_role",
    ),
    path(
        "<str:owner>/<str:name>/settings/collaborators/<str:username>/remove",
        views.collaborator_remove,
        name="collaborator_remove",
    ),
    path("<str:owner>/<str:name>/settings/teams", views.team_add, name="team_add"),
    path("<str:owner>/<str:name>/settings/teams/<str:team>/role", views.team_role, name="team_role"),
    path("<str:owner>/<str:name>/settings/teams/<str:team>/remove", views.team_remove, name="team_remove"),
    path("<str:owner>/<str:name>/settings/keys", views.deploy_keys, name="deploy_keys"),
    path("<str:owner>/<str:name>/settings/keys/<int:key_id>/remove", views.deploy_key_remove, name="deploy_key_remove"),
    # Last of all: any other address with a trailing slash moves to the one without it. The prefixes whose own
    # addresses end in a slash (the accounts pages, the API, static files, the portal's /-/ pages) are left alone.
    re_path(
        r"^(?!accounts/|api/|static/|-/)(?P<rest>.*[^/])/+$",
        views.without_trailing_slash,
        name="without_trailing_slash",
    ),
]
