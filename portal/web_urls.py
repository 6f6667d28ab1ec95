from django.urls import path

from portal import admin_views, health, views

app_name = "portal"

urlpatterns = [
    path("", views.home, name="home"),
    path("favicon.ico", views.favicon, name="favicon"),
    # The API's avatar_url of every account.
    path("-/avatars/<str:username>.svg", views.avatar, name="avatar"),
    # For monitoring and load balancers: what is up, no sign-in needed (portal/health.py).
    path("-/health", health.health, name="health"),
    # Under allauth's accounts/ (a reserved owner name), which has no route of this name itself.
    path("accounts/invitation/<str:token>", views.accept_invitation, name="accept_invitation"),
    # The user's own settings.
    path("settings/", views.settings_index, name="settings"),
    path("settings/profile", views.settings_profile, name="settings_profile"),
    path("settings/keys", views.settings_keys, name="settings_keys"),
    path("settings/keys/<int:key_id>/delete", views.settings_key_delete, name="settings_key_delete"),
    path("settings/tokens", views.settings_tokens, name="settings_tokens"),
    path("settings/tokens/<int:token_id>/revoke", views.settings_token_revoke, name="settings_token_revoke"),
    path("settings/sessions/<int:session_id>/revoke", views.settings_session_revoke, name="settings_session_revoke"),
    path("settings/security", views.settings_security, name="settings_security"),
    # Site administration (404 for everyone but site admins).
    path("-/admin/", admin_views.index, name="admin"),
    path("-/admin/users", admin_views.users, name="admin_users"),
    path("-/admin/users/new", admin_views.user_create, name="admin_user_create"),
    path("-/admin/users/<str:username>/active", admin_views.user_set_active, name="admin_user_active"),
    path("-/admin/users/<str:username>/admin", admin_views.user_set_admin, name="admin_user_admin"),
    path("-/admin/invitations", admin_views.invitations, name="admin_invitations"),
    path(
        "-/admin/invitations/<int:invitation_id>/revoke",
        admin_views.invitation_revoke,
        name="admin_invitation_revoke",
    ),
    path("-/admin/keys", admin_views.keys, name="admin_keys"),
    path("-/admin/keys/<int:key_id>/remove", admin_views.key_remove, name="admin_key_remove"),
    path("-/admin/keys/<int:key_id>/revoke", admin_views.key_revoke, name="admin_key_revoke"),
    path("-/admin/keys/revoked/<int:revocation_id>/lift", admin_views.key_lift, name="admin_key_lift"),
    path("-/admin/audit", admin_views.audit, name="admin_audit"),
    path("-/admin/settings", admin_views.site_settings, name="admin_settings"),
    path("-/admin/jobs", admin_views.job_queues, name="admin_jobs"),
    path("-/admin/jobs/<str:kind>/<int:row_id>/requeue", admin_views.job_requeue, name="admin_job_requeue"),
    path("-/admin/jobs/<str:kind>/<int:row_id>/cancel", admin_views.job_cancel, name="admin_job_cancel"),
]
