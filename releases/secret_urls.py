from django.urls import path

from releases import secret_views as views

app_name = "build_secrets"

# Full paths: portal/urls.py mounts these at the root, before the catch-all repository routes of repos.urls. The
# organization's come first: /orgs/acme/settings/… would otherwise read as the repository "orgs/acme".
urlpatterns = [
    path("orgs/<str:org>/settings/builds/secrets", views.org_page, name="org"),
    path(
        "orgs/<str:org>/settings/builds/secrets/<str:kind>/<str:variable>/delete", views.org_delete, name="org_delete"
    ),
    path("<str:owner>/<str:name>/settings/builds/secrets", views.repo_page, name="repo"),
    path(
        "<str:owner>/<str:name>/settings/builds/secrets/<str:kind>/<str:variable>/delete",
        views.repo_delete,
        name="repo_delete",
    ),
]
