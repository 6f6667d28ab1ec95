"""Home page and the user's own settings: profile, SSH keys, access tokens, security."""

import hashlib

from allauth.account.adapter import get_adapter
from allauth.mfa.models import Authenticator
from allauth.usersessions.models import UserSession
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.templatetags.static import static
from django.urls import reverse
from django.utils.html import escape
from django.views.decorators.http import require_POST

from portal import services
from portal.access import get_owner_for_user, is_site_admin
from portal.adapters import INVITATION_SESSION_KEY
from portal.confirm import ask_to_confirm, confirmed
from portal.forms import AccessTokenForm, ProfileForm, SshKeyForm
from portal.keys import InvalidKey
from portal.models import AccessToken, SshKey

# The raw value of a new token waits here for exactly one render of the tokens page.
NEW_TOKEN_SESSION_KEY = "portal.new_token"


def home(request: HttpRequest) -> HttpResponse:
    # The page lists the repositories its viewer can read through repos' template tags (repo_lists).
    return render(request, "portal/home.html")


def favicon(request: HttpRequest) -> HttpResponse:
    # Browsers and feed readers ask for /favicon.ico whatever the page links to.
    return redirect(static("portal/favicon.svg"), permanent=True)


AVATAR = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64" viewBox="0 0 64 64">'
    '<rect width="64" height="64" fill="hsl({hue}, 45%, 45%)"/>'
    '<text x="32" y="43" font-family="sans-serif" font-size="30" text-anchor="middle" fill="#fff">{letter}</text>'
    "</svg>"
)


def avatar(request: HttpRequest, username: str) -> HttpResponse:
    """An account's picture, as the API's avatar_url gives it: its first letter on a colour of its own (the
    portal stores no pictures). Accounts are public; a deactivated one has none."""
    account = get_owner_for_user(None, username)
    hue = int(hashlib.sha256(account.username.lower().encode()).hexdigest()[:4], 16) % 360
    svg = AVATAR.format(hue=hue, letter=escape(account.username[:1].upper()))
    response = HttpResponse(svg, content_type="image/svg+xml")
    response["Cache-Control"] = "public, max-age=86400"
    response["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'"
    return response


def accept_invitation(request: HttpRequest, token: str) -> HttpResponse:
    invitation = services.invitation_for_token(token)
    if invitation is None:
        return render(request, "portal/invitation_invalid.html")
    request.session[INVITATION_SESSION_KEY] = invitation.pk
    # The link came to this address, so it needs no confirmation mail; allauth also fills it into the form.
    get_adapter(request).stash_verified_email(request, invitation.email)
    return redirect("account_signup")


def _error_text(exc: ValidationError) -> str:
    return " ".join(exc.messages)


@login_required
def settings_index(request: HttpRequest) -> HttpResponse:
    return redirect("portal:settings_profile")


@login_required
def settings_profile(request: HttpRequest) -> HttpResponse:
    form = ProfileForm(
        request.POST if request.method == "POST" else None, initial={"full_name": request.user.full_name}
    )
    if request.method == "POST" and form.is_valid():
        services.update_profile(request.user, actor=request.user, full_name=form.cleaned_data["full_name"])
        messages.success(request, "Profile saved.")
        return redirect("portal:settings_profile")
    return render(request, "portal/settings/profile.html", {"form": form, "section": "profile"})


@login_required
def settings_keys(request: HttpRequest) -> HttpResponse:
    form = SshKeyForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            key = services.add_ssh_key(
                request.user,
                actor=request.user,
                title=form.cleaned_data["title"],
                public_key=form.cleaned_data["public_key"],
            )
        except InvalidKey as exc:
            form.add_error("public_key", str(exc))
        else:
            messages.success(request, f"Added key {key.title} ({key.fingerprint}).")
            return redirect("portal:settings_keys")
    keys = SshKey.objects.user_keys().filter(user=request.user)
    return render(request, "portal/settings/keys.html", {"form": form, "keys": keys, "section": "keys"})


@login_required
@require_POST
def settings_key_delete(request: HttpRequest, key_id: int) -> HttpResponse:
    key = get_object_or_404(SshKey.objects.user_keys(), pk=key_id, user=request.user)
    if not confirmed(request):
        return ask_to_confirm(
            request,
            title=f"Delete the SSH key {key.title}?",
            consequences=[f"{key.fingerprint} will no longer reach your repositories, from its next connection on."],
            button="Yes, delete this key",
            cancel_url=reverse("portal:settings_keys"),
        )
    services.remove_ssh_key(key, actor=request.user)
    messages.success(request, f"Deleted key {key.title} ({key.fingerprint}).")
    return redirect("portal:settings_keys")


@require_POST
@login_required
def settings_session_revoke(request: HttpRequest, session_id: int) -> HttpResponse:
    session = get_object_or_404(UserSession, pk=session_id, user=request.user)
    if not confirmed(request):
        return ask_to_confirm(
            request,
            title=f"Sign out the session from {session.ip}?",
            consequences=["That browser is signed out at its next request and must sign in again."],
            button="Yes, sign it out",
            cancel_url=reverse("usersessions_list"),
        )
    try:
        services.end_user_session(session, actor=request.user)
    except ValidationError as exc:
        messages.error(request, _error_text(exc))
    else:
        messages.success(request, f"Signed out the session from {session.ip}.")
    return redirect("usersessions_list")


@login_required
def settings_tokens(request: HttpRequest) -> HttpResponse:
    form = AccessTokenForm(request.POST if request.method == "POST" else None, allow_admin=is_site_admin(request.user))
    if request.method == "POST" and form.is_valid():
        try:
            token, raw = services.create_access_token(
                request.user,
                actor=request.user,
                name=form.cleaned_data["name"],
                scopes=form.cleaned_data["scopes"],
                expires_at=form.expires_at(),
            )
        except ValidationError as exc:
            form.add_error(None, _error_text(exc))
        else:
            # Post/redirect/get without the secret in the URL: the session carries it to one render.
            request.session[NEW_TOKEN_SESSION_KEY] = {"id": token.pk, "raw": raw}
            return redirect("portal:settings_tokens")
    new_token = request.session.pop(NEW_TOKEN_SESSION_KEY, None)
    tokens = AccessToken.objects.filter(user=request.user)
    context = {"form": form, "tokens": tokens, "new_token": new_token, "section": "tokens"}
    return render(request, "portal/settings/tokens.html", context)


@login_required
@require_POST
def settings_token_revoke(request: HttpRequest, token_id: int) -> HttpResponse:
    token = get_object_or_404(AccessToken, pk=token_id, user=request.user)
    if not confirmed(request):
        return ask_to_confirm(
            request,
            title=f"Revoke the token {token.name}?",
            consequences=["Scripts and git clients that use it stop working at once. This cannot be undone."],
            button="Yes, revoke this token",
            cancel_url=reverse("portal:settings_tokens"),
        )
    services.revoke_access_token(token, actor=request.user)
    messages.success(request, f"Revoked token {token.name}.")
    return redirect("portal:settings_tokens")


@login_required
def settings_security(request: HttpRequest) -> HttpResponse:
    authenticators = Authenticator.objects.filter(user=request.user).order_by("type")
    emails = request.user.emailaddress_set.order_by("-primary", "email")
    context = {
        "authenticators": authenticators,
        "emails": emails,
        "has_unverified_email": any(not address.verified for address in emails),
        "section": "security",
    }
    return render(request, "portal/settings/security.html", context)
