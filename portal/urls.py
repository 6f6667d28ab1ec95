from django.urls import include, path

urlpatterns = [
    path("accounts/", include("allauth.urls")),
    path("", include("portal.web_urls")),
    path("", include("repos.urls")),
]
