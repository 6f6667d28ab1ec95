"""Build and deployment endpoints: runs and artifacts in GitHub Actions' shapes, secrets and variables in Gitea's,
environments and deployments in GitHub's, pipelines in CodePipeline's.

Every endpoint asks the access modules first and changes state only through the services (releases.services,
releases.environments, releases.deployments, releases.pipelines). The topic modules add their endpoints to the one router when
imported.
"""

from releases.api import (
    deployments,  # noqa: F401  (importing it registers its endpoints)
    pipelines,  # noqa: F401
    provenance,  # noqa: F401
    runs,  # noqa: F401
    secrets,  # noqa: F401
)
from releases.api.router import router

__all__ = ["router"]
