from django.urls import path, re_path

from repos import browse_views, views

app_name = "repos"

# The owner and repository segments are catch-alls, so these come last in portal/urls.py;
# "new" and "settings" are reserved names and cannot be taken by an owner or a repository.
urlpatterns = [
    path("new", views.new_repository, name="new"),
    path("<str:owner>", views.owner_page, name="owner"),
    path("<str:owner>/<str:name>", browse_views.home, name="detail"),
    # Code browsing. Refs may contain '/', so the views read the ref and path from the raw request path.
    path("<str:owner>/<str:name>/tree/<path:rest>", browse_views.tree, name="tree"),
    path("<str:owner>/<str:name>/blob/<path:rest>", browse_views.blob, name="blob"),
    path("<str:owner>/<str:name>/raw/<path:rest>", browse_views.raw, name="raw"),
    path("<str:owner>/<str:name>/blame/<path:rest>", browse_views.blame, name="blame"),
    re_path(r"^(?P<owner>[^/]+)/(?P<name>[^/]+)/commits(?:/(?P<rest>.+))?$", browse_views.commits, name="commits"),
    path("<str:owner>/<str:name>/commit/<str:sha>", browse_views.commit, name="commit"),
    path("<str:owner>/<str:name>/compare", browse_views.compare_pick, name="compare_pick"),
    path("<str:owner>/<str:name>/compare/<path:spec>", browse_views.compare, name="compare"),
    path("<str:owner>/<str:name>/refs", browse_views.ref_menu, name="ref_menu"),
    path("<str:owner>/<str:name>/branches", browse_views.branches, name="branches"),
    path("<str:owner>/<str:name>/tags", browse_views.tags, name="tags"),
    path("<str:owner>/<str:name>/archive/<path:rest>", browse_views.archive, name="archive"),
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
