from django.urls import include, path

# Order matters: fixed prefixes first, then the git transports, then /<owner>/<repo> pages.
urlpatterns = [
    path("accounts/", include("allauth.urls")),
    path("api/v1/", include("portal.api_urls")),
    path("-/internal/", include("repos.internal_urls")),
    path("notifications/", include("reviews.notification_urls")),
    # The code pages first of a repository's routes: their third segment is a word of their own.
    path("", include("repos.browse_urls")),
    path("", include("repos.http_urls")),
    path("", include("portal.web_urls")),
    path("", include("portal.org_urls")),
    path("", include("reviews.urls")),
    path("", include("reviews.settings_urls")),
    path("", include("reviews.webhook_urls")),
    path("", include("releases.secret_urls")),
    path("", include("releases.urls")),
    path("", include("releases.deploy_urls")),
    path("", include("releases.pipeline_urls")),
    path("", include("repos.urls")),
]
