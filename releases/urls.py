from django.urls import include, path

from releases import views

app_name = "builds"

# Mounted before repos.urls, whose catch-all routes would take /<owner>/<repo>/builds for a path in the code.
REPO = "<str:owner>/<str:name>"
BUILD = f"{REPO}/builds/<int:number>"
ARTIFACT = f"{BUILD}/artifacts/<int:artifact_id>"

urlpatterns = [
    path(f"{REPO}/builds", views.build_list, name="list"),
    path(f"{REPO}/builds/run", views.build_run, name="run"),
    path(f"{REPO}/builds/badge.svg", views.badge, name="badge"),
    path(BUILD, views.build_detail, name="detail"),
    path(f"{BUILD}/log", views.build_log, name="log"),
    path(f"{BUILD}/log.txt", views.build_log_text, name="log_text"),
    path(f"{ARTIFACT}/<str:filename>.zip", views.artifact_download, name="artifact"),
    path(f"{ARTIFACT}/provenance.json", views.artifact_provenance, name="provenance"),
    path(f"{BUILD}/stop", views.build_stop, name="stop"),
    path(f"{BUILD}/rerun", views.build_rerun, name="rerun"),
    path(f"{REPO}/settings/builds", views.build_settings, name="settings"),
    path("", include("releases.approval_urls")),
]
