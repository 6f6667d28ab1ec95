from django.conf import settings

from portal.access import is_site_admin
from portal.models import SiteSettings


def portal(request) -> dict:
    return {
        "PORTAL_BASE_URL": settings.PORTAL_BASE_URL,
        "is_site_admin": is_site_admin(getattr(request, "user", None)),
        # A callable, so the query runs only on pages that show the sign-up link.
        "signup_open": SiteSettings.signup_is_open,
    }
