"""Middleware of the portal's own."""

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse


class PasswordChangeRequiredMiddleware:
    """Send a signed-in user whose password must change (User.must_change_password) to the change page, from
    every page, until they have changed it.

    Only pages of a browser session are held back: the API and git authenticate with tokens and keys of their
    own, never with this session, and static files and the hooks' endpoint are no pages."""

    EXEMPT_PREFIXES = ("/api/", "/-/internal/")

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and getattr(user, "must_change_password", False):
            change = reverse("account_change_password")
            allowed = (change, reverse("account_logout"), f"/{settings.STATIC_URL.lstrip('/')}", *self.EXEMPT_PREFIXES)
            if not request.path.startswith(allowed):
                messages.info(
                    request, "Choose a new password before you go on: the one you signed in with was made for you."
                )
                return redirect(change)
        return self.get_response(request)
