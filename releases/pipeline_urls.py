from django.urls import path

from releases import pipeline_views as views

app_name = "pipelines"

# Full paths: portal/urls.py mounts these at the root, before the catch-all repository routes of repos.urls.
REPO = "<str:owner>/<str:name>"
PIPELINE = f"{REPO}/pipelines/<str:pipeline>"
EXECUTION = f"{PIPELINE}/executions/<int:number>"

urlpatterns = [
    path(f"{REPO}/pipelines", views.pipeline_list, name="list"),
    path(PIPELINE, views.pipeline_detail, name="detail"),
    path(f"{PIPELINE}/state.json", views.pipeline_state, name="state"),
    path(f"{PIPELINE}/start", views.pipeline_start, name="start"),
    path(f"{PIPELINE}/stages/<str:stage>/transition", views.transition, name="transition"),
    path(f"{PIPELINE}/stages/<str:stage>/rollback", views.stage_rollback, name="rollback"),
    path(f"{PIPELINE}/executions", views.execution_list, name="executions"),
    path(EXECUTION, views.execution_detail, name="execution"),
    path(f"{EXECUTION}/stop", views.execution_stop, name="stop"),
    path(f"{EXECUTION}/retry", views.execution_retry, name="retry"),
    path(f"{EXECUTION}/release", views.release_page, name="release"),
    path(f"{EXECUTION}/release.json", views.release_json, name="release_json"),
]
