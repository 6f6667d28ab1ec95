from django.urls import path

from releases import approval_views

# Included from releases.urls (the builds namespace): a pipeline execution's approval page and its emailed links.
EXECUTION = "<str:owner>/<str:name>/pipelines/<str:pipeline>/executions/<int:number>"

urlpatterns = [
    path(f"{EXECUTION}/approval", approval_views.approval_page, name="pipeline_approval"),
    path(f"{EXECUTION}/approval/link/<str:token>", approval_views.approval_link, name="pipeline_approval_link"),
]
