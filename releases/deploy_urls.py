from django.urls import path

from releases import deploy_views as views
from releases import environment_views as settings_views

app_name = "deployments"

# Full paths: portal/urls.py mounts these at the root, before the catch-all repository routes of repos.urls.
REPO = "<str:owner>/<str:name>"
DEPLOYMENT = f"{REPO}/deployments/<int:deployment_id>"
SETTINGS = f"{REPO}/settings/environments"
ENVIRONMENT = f"{SETTINGS}/<str:environment>"

urlpatterns = [
    path(f"{REPO}/environments", views.environment_list, name="environments"),
    path(f"{REPO}/environments/<str:environment>", views.environment_history, name="history"),
    path(DEPLOYMENT, views.deployment_detail, name="detail"),
    path(f"{DEPLOYMENT}/log", views.deployment_log, name="log"),
    path(f"{DEPLOYMENT}/targets/<str:target>/log", views.target_log, name="target_log"),
    path(f"{DEPLOYMENT}/review", views.deployment_review, name="review"),
    path(f"{DEPLOYMENT}/override", views.deployment_override, name="override"),
    path(f"{DEPLOYMENT}/stop", views.deployment_stop, name="stop"),
    path(f"{DEPLOYMENT}/rollback", views.deployment_roll_back, name="roll_back"),
    path(f"{REPO}/builds/<int:number>/deploy", views.deploy_build, name="deploy"),
    path(SETTINGS, settings_views.environment_settings, name="settings"),
    path(ENVIRONMENT, settings_views.environment_edit, name="settings_environment"),
    path(f"{ENVIRONMENT}/delete", settings_views.environment_delete, name="settings_delete"),
    path(f"{ENVIRONMENT}/variables", settings_views.variable_set, name="settings_variable"),
    path(
        f"{ENVIRONMENT}/variables/<str:kind>/<str:variable>/delete",
        settings_views.variable_delete,
        name="settings_variable_delete",
    ),
]
