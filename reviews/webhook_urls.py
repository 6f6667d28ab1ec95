from django.urls import path

from reviews import webhook_views as views

app_name = "webhooks"

REPO = "<str:owner>/<str:name>/settings/hooks"
ORG = "orgs/<str:org>/hooks"

# Full paths: portal/urls.py mounts these at the root, before the catch-all repository routes of repos.urls.
urlpatterns = [
    path(REPO, views.hooks, name="hooks"),
    path(f"{REPO}/<int:hook_id>", views.hook, name="hook"),
    path(f"{REPO}/<int:hook_id>/delete", views.hook_delete, name="hook_delete"),
    path(f"{REPO}/<int:hook_id>/test", views.hook_test, name="hook_test"),
    path(f"{REPO}/<int:hook_id>/deliveries/<int:delivery_id>", views.delivery, name="delivery"),
    path(f"{REPO}/<int:hook_id>/deliveries/<int:delivery_id>/redeliver", views.redeliver, name="redeliver"),
    path(ORG, views.org_hooks, name="org_hooks"),
    path(f"{ORG}/<int:hook_id>", views.org_hook, name="org_hook"),
    path(f"{ORG}/<int:hook_id>/delete", views.org_hook_delete, name="org_hook_delete"),
    path(f"{ORG}/<int:hook_id>/test", views.org_hook_test, name="org_hook_test"),
    path(f"{ORG}/<int:hook_id>/deliveries/<int:delivery_id>", views.org_delivery, name="org_delivery"),
    path(f"{ORG}/<int:hook_id>/deliveries/<int:delivery_id>/redeliver", views.org_redeliver, name="org_redeliver"),
]
