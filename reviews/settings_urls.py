from django.urls import path

from reviews import settings_views as views

app_name = "review_settings"

# Full paths: portal/urls.py mounts these at the root, before the catch-all repository routes of repos.urls.
urlpatterns = [
    path("<str:owner>/<str:name>/settings/branches", views.branches, name="branches"),
    path("<str:owner>/<str:name>/settings/branches/<int:protection_id>", views.branch, name="branch"),
    path(
        "<str:owner>/<str:name>/settings/branches/<int:protection_id>/delete", views.branch_delete, name="branch_delete"
    ),
    path("<str:owner>/<str:name>/settings/rules", views.rules_page, name="rules"),
    path("<str:owner>/<str:name>/settings/rules/<int:rule_id>", views.rule_page, name="rule"),
    path("<str:owner>/<str:name>/settings/rules/<int:rule_id>/delete", views.rule_delete, name="rule_delete"),
    path("<str:owner>/<str:name>/settings/merging", views.merging, name="merging"),
    path("orgs/<str:org>/rules", views.org_rules, name="org_rules"),
    path("orgs/<str:org>/rules/<int:rule_id>", views.org_rule, name="org_rule"),
    path("orgs/<str:org>/rules/<int:rule_id>/delete", views.org_rule_delete, name="org_rule_delete"),
]
