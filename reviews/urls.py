from django.urls import path

from reviews import status_views, views

app_name = "reviews"

# Mounted before repos.urls: "pulls" is a reserved owner name, and the pages below sit under /<owner>/<repo>/pulls.
PULL = "<str:owner>/<str:name>/pulls/<int:number>"

urlpatterns = [
    path("pulls", views.dashboard, name="dashboard"),
    path("<str:owner>/<str:name>/pulls", views.pull_list, name="list"),
    path("<str:owner>/<str:name>/pulls/new", views.pull_new, name="new"),
    path(PULL, views.conversation, name="detail"),
    path(f"{PULL}/commits", views.commits, name="commits"),
    path(f"{PULL}/files", views.files, name="files"),
    path(f"{PULL}/files/diff", views.files_fragment, name="files_fragment"),
    path(f"{PULL}/edit", views.edit, name="edit"),
    path(f"{PULL}/close", views.close, name="close"),
    path(f"{PULL}/reopen", views.reopen, name="reopen"),
    path(f"{PULL}/reviewers", views.reviewers, name="reviewers"),
    path(f"{PULL}/comments", views.comment_add, name="comment_add"),
    path(f"{PULL}/comments/<int:comment_id>/edit", views.comment_edit, name="comment_edit"),
    path(f"{PULL}/comments/<int:comment_id>/delete", views.comment_delete, name="comment_delete"),
    path(f"{PULL}/comments/<int:comment_id>/resolve", views.comment_resolve, name="comment_resolve"),
    path(f"{PULL}/comments/<int:comment_id>/apply", views.comment_apply, name="comment_apply"),
    path(f"{PULL}/review", views.review, name="review"),
    path(f"{PULL}/merge", views.merge, name="merge"),
    path(f"{PULL}/override", views.override, name="override"),
    path(f"{PULL}/dismiss/<int:review_id>", views.dismiss, name="dismiss"),
    path(f"{PULL}/delete-branch", views.delete_branch, name="delete_branch"),
    path("<str:owner>/<str:name>/statuses", status_views.commit_statuses_batch, name="statuses_batch"),
    path("<str:owner>/<str:name>/statuses/<str:sha>", status_views.commit_statuses, name="statuses"),
]
