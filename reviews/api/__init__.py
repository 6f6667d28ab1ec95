"""Pull request, review, commit status, branch protection and approval rule endpoints, in Gitea's shapes.

Every endpoint asks repos.access first and changes state only through reviews.services. The services check the
user's role; the token's scopes are checked here, since only the API knows how the caller signed in.
The topic modules add their endpoints to the one router when imported.
"""

from reviews.api import hooks, pulls, reviews, rules, statuses  # noqa: F401  (importing them registers their endpoints)
from reviews.api.router import router

__all__ = ["router"]
