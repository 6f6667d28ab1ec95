from django.apps import AppConfig


class ReposConfig(AppConfig):
    name = "repos"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from repos import receivers, signals

        signals.push_received.connect(receivers.follow_up_push, dispatch_uid="repos.follow_up_push")
