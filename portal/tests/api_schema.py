"""The API's routes as the OpenAPI document lists them, for tests that must cover every endpoint."""

from typing import Any

HTTP_METHODS = frozenset({"get", "put", "post", "delete", "patch", "head", "options", "trace"})


def schema_operations(schema: dict[str, Any]) -> list[tuple[str, str]]:
    """Every (METHOD, path) pair in an OpenAPI document, such as ("GET", "/api/v1/repos/{owner}/{repo}")."""
    return sorted(
        (method.upper(), path)
        for path, operations in schema.get("paths", {}).items()
        for method in operations
        if method in HTTP_METHODS
    )


def api_operations() -> list[tuple[str, str]]:
    """Every (METHOD, path) pair of the REST API, read from the same document /api/v1/openapi.json serves."""
    import portal.api_urls  # noqa: F401  (mounting the URLs adds the repository routes to the API)
    from portal.api import api

    return schema_operations(api.get_openapi_schema())
