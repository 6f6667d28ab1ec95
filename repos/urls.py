from django.urls import path

from repos import views

app_name = "repos"

urlpatterns = [
    path("<str:owner>/<str:name>", views.detail, name="detail"),
]
