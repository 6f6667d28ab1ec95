"""Repository endpoints of the REST API, in Gitea's shapes; every one asks repos.access first.

repositories: repositories, collaborators, deploy keys and transfers; code: branches, files, commits and tags;
orgs: organizations and their teams; absent: the routes of Gitea's features the portal does not have."""

from repos.api import absent, code, orgs, repositories  # noqa: F401  (each registers its operations)
from repos.api.repositories import RepositoryOut, repository_json, repository_out
from repos.api.router import router

__all__ = ["RepositoryOut", "repository_json", "repository_out", "router"]
