"""Middleware of the portal's own."""

from csp.constants import HEADER
from csp.middleware import CSPMiddleware
from csp.utils import build_policy
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ImproperlyConfigured
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse


class ContentSecurityPolicy(CSPMiddleware):
    """django-csp's middleware with the policy built once per process.

    The portal's policy is the same for every page (no nonce, no view that widens it; a view that needs a stricter
    one sets its own header, which is kept), and building it for each response (two policies, each from
    dataclasses turned into dicts) took 50 µs of every page."""

    def __init__(self, get_response):
        super().__init__(get_response)
        self.policy = build_policy()
        if getattr(settings, "CONTENT_SECURITY_POLICY_REPORT_ONLY", None):
            raise ImproperlyConfigured("ContentSecurityPolicy sends no report-only policy: use CSPMiddleware")

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        if settings.DEBUG and response.status_code in (404, 500):
            return response
        if self.policy and HEADER not in response and not getattr(response, "_csp_exempt", False):
            response[HEADER] = self.policy
        return response


class NoNulBytes:
    """An address with a NUL byte in its path or query names nothing (404) before any view reads it: no user,
    repository, ref, git path or filter value can hold one, and PostgreSQL refuses one in a query's text, which
    failed the request (500) wherever such a value reached the database."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        query = request.META.get("QUERY_STRING", "")
        if "\x00" in request.path_info or "%00" in query or "\x00" in query:
            raise Http404("No page has a NUL byte in its address.")
        return self.get_response(request)


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
