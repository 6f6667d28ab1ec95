from django.apps import AppConfig


class ReviewsConfig(AppConfig):
    name = "reviews"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from portal.signals import ssh_key_removed
        from reviews import notifications

        # The key's owner hears of it here, where the notifications (in the portal and by email) live.
        ssh_key_removed.connect(notifications.on_ssh_key_removed, dispatch_uid="reviews.notify_ssh_key_removed")
