from django.apps import AppConfig


class ReposConfig(AppConfig):
    name = "repos"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from repos import receivers, signals

        signals.push_received.connect(receivers.follow_up_push, dispatch_uid="repos.follow_up_push")

    def warm_up(self) -> None:
        """Load what the code pages otherwise load on their first use (called by portal.warmup at a web start)."""
        from repos import access, render

        render.warm_up()
        access.warm_up()
