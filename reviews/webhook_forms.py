"""The webhook form of the settings pages: it shapes input; reviews.webhooks decides."""

from django import forms

from reviews.models import Webhook
from reviews.webhook_payloads import EVENTS


class WebhookForm(forms.Form):
    url = forms.URLField(label="Payload URL", max_length=2000, assume_scheme="https")
    type = forms.ChoiceField(
        choices=Webhook.Type.choices,
        initial=Webhook.Type.GITEA,
        widget=forms.RadioSelect,
        help_text="Gitea sends Gitea's (and GitHub's) payloads and headers; Slack sends a message to an incoming webhook.",
    )
    content_type = forms.ChoiceField(choices=Webhook.ContentType.choices, initial=Webhook.ContentType.JSON)
    secret = forms.CharField(
        required=False,
        max_length=200,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text="Signs each delivery (X-Hub-Signature-256, HMAC-SHA256 of the body). It is never shown again.",
    )
    remove_secret = forms.BooleanField(required=False, label="Remove the secret")
    events = forms.MultipleChoiceField(
        choices=list(EVENTS.items()), initial=["push"], widget=forms.CheckboxSelectMultiple
    )
    branch_filter = forms.CharField(
        required=False,
        max_length=500,
        help_text="Pushes, creations and deletions of branches matching this glob (main, release/*, {main,dev}); "
        "empty for every branch.",
    )
    channel = forms.CharField(required=False, max_length=200, label="Slack channel", help_text="#channel, for Slack.")
    active = forms.BooleanField(required=False, initial=True, label="Active: send deliveries")

    def __init__(self, *args, hook: Webhook | None = None, **kwargs):
        if hook is not None:
            kwargs.setdefault(
                "initial",
                {
                    "url": hook.url,
                    "type": hook.type,
                    "content_type": hook.content_type,
                    "events": hook.events,
                    "branch_filter": hook.branch_filter,
                    "channel": hook.slack.get("channel", ""),
                    "active": hook.active,
                },
            )
        super().__init__(*args, **kwargs)
        if hook is None or not hook.secret:
            del self.fields["remove_secret"]
        else:
            self.fields["secret"].help_text = "A secret is set. Type a new one to replace it; it is never shown."

    def changes(self) -> dict:
        """What to hand to reviews.webhooks.save_webhook."""
        data = self.cleaned_data
        secret = data["secret"] or None
        if data.get("remove_secret"):
            secret = ""
        return {
            "url": data["url"],
            "type": data["type"],
            "content_type": data["content_type"],
            "secret": secret,
            "events": data["events"],
            "branch_filter": data["branch_filter"],
            "slack": {"channel": data["channel"]} if data["channel"] else {},
            "active": data["active"],
        }
