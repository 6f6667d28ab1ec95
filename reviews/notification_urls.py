from django.urls import path

from reviews import notification_views as views

app_name = "notifications"

urlpatterns = [
    path("", views.notification_list, name="list"),
    path("<int:notification_id>/read", views.notification_read, name="read"),
    path("read-all", views.notification_read_all, name="read_all"),
    path("settings", views.notification_settings, name="settings"),
]
