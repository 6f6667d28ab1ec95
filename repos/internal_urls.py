from django.urls import path

from repos import internal

app_name = "internal"

urlpatterns = [
    path("hooks/pre-receive", internal.pre_receive, name="pre_receive"),
    path("hooks/post-receive", internal.post_receive, name="post_receive"),
]
