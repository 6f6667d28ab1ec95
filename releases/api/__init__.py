"""Build endpoints: runs and artifacts in GitHub Actions' shapes, secrets and variables in Gitea's.

Every endpoint asks the access modules first and changes state only through releases.services. The topic modules
add their endpoints to the one router when imported.
"""

from releases.api import (
    provenance,  # noqa: F401  (importing it registers its endpoints)
    runs,  # noqa: F401
    secrets,  # noqa: F401
)
from releases.api.router import router

__all__ = ["router"]
