"""The one Router that every topic module of releases.api adds its endpoints to."""

from portal.api_scopes import ScopedRouter

router = ScopedRouter(tags=["builds"])
