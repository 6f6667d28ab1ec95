"""What portal announces to the apps above it, and the audit events for what happens inside django-allauth and
django.contrib.auth, not in our services."""

from allauth.account import signals as account_signals
from allauth.account.adapter import get_adapter
from allauth.mfa import signals as mfa_signals
from django.contrib.auth import signals as auth_signals
from django.core.exceptions import PermissionDenied
from django.dispatch import Signal
from django.http import HttpRequest

from portal import audit
from portal.models import User

# Someone took an SSH key off a user's account: sent once, inside the transaction, by
# portal.services.remove_ssh_key and revoke_ssh_key, with the keyword arguments
# key_owner, fingerprint, title, actor, revoked (True when the fingerprint is now blocked), reason.
ssh_key_removed = Signal()


def _ip(request: HttpRequest | None) -> str | None:
    if request is None:
        return None
    # allauth's adapter reads the client address the same way its rate limits do.
    try:
        return get_adapter(request).get_client_ip(request)
    except PermissionDenied:
        return None


def on_login_failed(sender, credentials: dict, request: HttpRequest | None = None, **kwargs) -> None:
    """Record the name that was tried and where from; Django has already masked the password."""
    attempted = str(credentials.get("username") or credentials.get("email") or "")[:150]
    subject = (
        User.objects.filter(username__iexact=attempted).first() or User.objects.filter(email__iexact=attempted).first()
        if attempted
        else None
    )
    audit.record(
        None,
        "login.failed",
        target_repr=attempted,
        subject=subject,
        after={"username": attempted},
        ip_address=_ip(request),
    )


def on_logged_in(sender, request: HttpRequest | None, user: User, **kwargs) -> None:
    audit.record(user, "login", user, subject=user, ip_address=_ip(request))


def on_signed_up(sender, request: HttpRequest | None, user: User, **kwargs) -> None:
    audit.record(user, "user.signup", user, subject=user, after={"username": user.username}, ip_address=_ip(request))


def _authenticator_event(action: str):
    def handler(sender, request: HttpRequest | None, user: User, authenticator, **kwargs) -> None:
        audit.record(
            user,
            action,
            target_repr=f"{authenticator.get_type_display()} of {user.username}",
            subject=user,
            after={"type": authenticator.type},
            ip_address=_ip(request),
        )

    return handler


def _password_event(action: str):
    def handler(sender, request: HttpRequest | None, user: User, **kwargs) -> None:
        audit.record(user, action, user, subject=user, ip_address=_ip(request))

    return handler


def connect() -> None:
    """Hook the handlers up; called once from PortalConfig.ready()."""
    auth_signals.user_login_failed.connect(on_login_failed, dispatch_uid="portal.audit.login_failed")
    auth_signals.user_logged_in.connect(on_logged_in, dispatch_uid="portal.audit.logged_in")
    account_signals.user_signed_up.connect(on_signed_up, dispatch_uid="portal.audit.signed_up")
    for signal, action in (
        (mfa_signals.authenticator_added, "mfa.add"),
        (mfa_signals.authenticator_removed, "mfa.remove"),
        (mfa_signals.authenticator_reset, "mfa.reset"),
    ):
        signal.connect(_authenticator_event(action), dispatch_uid=f"portal.audit.{action}", weak=False)
    for signal, action in (
        (account_signals.password_changed, "password.change"),
        (account_signals.password_set, "password.set"),
        (account_signals.password_reset, "password.reset"),
    ):
        signal.connect(_password_event(action), dispatch_uid=f"portal.audit.{action}", weak=False)
