from django.conf import settings

from repos.access import is_site_admin


def portal(request) -> dict:
    return {
        "PORTAL_BASE_URL": settings.PORTAL_BASE_URL,
        "is_site_admin": is_site_admin(getattr(request, "user", None)),
    }
