"""The one router of the repository endpoints; each module of repos.api adds its operations to it."""

from portal.api_scopes import ScopedRouter

router = ScopedRouter(tags=["repository"])
