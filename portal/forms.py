"""Forms of the settings and site admin pages; they only validate shape, services decide the rest."""

from datetime import timedelta

from django import forms
from django.utils import timezone

from portal.keys import looks_like_private_key
from portal.models import AccessToken

EXPIRY_CHOICES = [
    ("7", "7 days"),
    ("30", "30 days"),
    ("60", "60 days"),
    ("90", "90 days"),
    ("365", "1 year"),
    ("never", "No expiry"),
]


class ProfileForm(forms.Form):
    full_name = forms.CharField(label="Full name", max_length=200, required=False)


class PublicKeyTextarea(forms.Textarea):
    """A textarea for a pasted public key that never sends a private key back to the browser."""

    def format_value(self, value):
        # A form that refuses a pasted private key comes back with an empty box: the secret is not put in the page.
        if value and looks_like_private_key(str(value)):
            return None
        return super().format_value(value)


class SshKeyForm(forms.Form):
    title = forms.CharField(
        max_length=100, required=False, help_text="Leave empty to use the key's comment, such as alice@laptop."
    )
    public_key = forms.CharField(
        label="Key",
        widget=PublicKeyTextarea(
            attrs={"rows": 5, "placeholder": "ssh-ed25519 AAAA… alice@laptop", "spellcheck": "false"}
        ),
        strip=False,
    )


class AdminSshKeyForm(SshKeyForm):
    username = forms.CharField(label="For user", max_length=40)

    field_order = ["username", "title", "public_key"]


class RevokeKeyForm(forms.Form):
    reason = forms.CharField(
        max_length=500,
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Told to the key's owner and kept in the audit log, such as: laptop reported stolen.",
    )


class AccessTokenForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What is this token for? For example: laptop git, CI.")
    scopes = forms.MultipleChoiceField(widget=forms.CheckboxSelectMultiple, choices=[])
    expiry = forms.ChoiceField(choices=EXPIRY_CHOICES, initial="30")

    SCOPE_HELP = {
        "read:repo": "read:repo: clone and fetch repositories",
        "write:repo": "write:repo: push to repositories (includes read:repo)",
        "api": "api: use the REST API",
        "admin": "admin: site administration through the API (includes every scope)",
    }

    def __init__(self, *args, allow_admin: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        # The admin scope is offered only to site administrators; the service refuses it for others too.
        scopes = [s for s in AccessToken.SCOPES if allow_admin or s != "admin"]
        self.fields["scopes"].choices = [(s, self.SCOPE_HELP.get(s, s)) for s in scopes]

    def expires_at(self):
        """The chosen expiry as a time, or None for a token that never expires."""
        value = self.cleaned_data["expiry"]
        if value == "never":
            return None
        return timezone.now() + timedelta(days=int(value))


class CreateUserForm(forms.Form):
    username = forms.CharField(max_length=40)
    email = forms.EmailField(required=False)
    password = forms.CharField(
        widget=forms.PasswordInput,
        required=False,
        help_text="Leave empty and the person sets one through password reset.",
    )
    is_admin = forms.BooleanField(label="Site administrator", required=False)


class AuditFilterForm(forms.Form):
    actor = forms.CharField(required=False)
    action = forms.CharField(required=False)
    target = forms.CharField(required=False)
    subject = forms.CharField(required=False)
    date_from = forms.DateField(label="From", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(label="To", required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def filter(self, events):
        """Narrow an AuditEvent queryset by the valid filters."""
        if not self.is_valid():
            return events
        data = self.cleaned_data
        if data["actor"]:
            events = events.filter(actor_name__iexact=data["actor"].strip())
        if data["action"]:
            events = events.filter(action__istartswith=data["action"].strip())
        if data["target"]:
            events = events.filter(target_repr__icontains=data["target"].strip())
        if data["subject"]:
            events = events.filter(subject_name__iexact=data["subject"].strip())
        if data["date_from"]:
            events = events.filter(created__date__gte=data["date_from"])
        if data["date_to"]:
            events = events.filter(created__date__lte=data["date_to"])
        return events


class SiteSettingsForm(forms.Form):
    open_signup = forms.BooleanField(
        label="Anyone can sign up", required=False, help_text="When off, only administrators create accounts."
    )
