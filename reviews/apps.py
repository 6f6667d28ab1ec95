from django.apps import AppConfig


class ReviewsConfig(AppConfig):
    name = "reviews"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from portal.signals import ssh_key_removed
        from repos import signals as repo_signals
        from reviews import notifications, receivers

        # The key's owner hears of it here, where the notifications (in the portal and by email) live.
        ssh_key_removed.connect(notifications.on_ssh_key_removed, dispatch_uid="reviews.notify_ssh_key_removed")
        # Branch protection refuses inside pre-receive, and the pushed branches' pull requests follow inside
        # post-receive, whose output prints their links: both answer synchronously.
        repo_signals.push_checked.connect(receivers.refuse_protected_update, dispatch_uid="reviews.protection")
        repo_signals.push_received.connect(receivers.follow_pushed_branches, dispatch_uid="reviews.follow_push")
