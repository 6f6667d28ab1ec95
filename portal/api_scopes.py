"""What a token must carry to call each API operation, declared where the operation is registered.

Every operation names its scope on its route (`@router.get("/user", scope=READ_USER, …)`); a router refuses to
register one that does not, the OpenAPI document shows it (`x-token-scopes`), and it is checked after
authentication, before the view runs. A signed-in browser session carries every scope of its user.
"""

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest
from ninja import Router
from ninja.errors import AuthorizationError

from portal.models import AccessToken

READ_REPO = "read:repo"
WRITE_REPO = "write:repo"
READ_USER = "read:user"
WRITE_USER = "write:user"
READ_ORG = "read:org"
WRITE_ORG = "write:org"
ADMIN = "admin"
# Not a token scope: the operation takes the account password (HTTP Basic) or a signed-in session, never a
# token, so that a leaked token cannot mint, list or revoke tokens.
PASSWORD = "password"

# The scopes a token can be given; `api` lets a token use the REST API at all (without it, git over HTTP only).
TOKEN_SCOPES = AccessToken.SCOPES

OPENAPI_KEY = "x-token-scopes"


def require_scopes(request: HttpRequest, scopes: tuple[str, ...]) -> None:
    """Refuse the call unless the caller's token holds every scope (a session or the password holds them all)."""
    token = request.auth.token
    if token is None:
        return
    if PASSWORD in scopes:
        raise AuthorizationError(message="Tokens cannot manage tokens: use the account password or sign in.")
    missing = [scope for scope in scopes if not token.has_scope(scope)]
    if missing:
        raise AuthorizationError(message=f"This token lacks the {', '.join(missing)} scope.")


def _checked(view: Callable, scopes: tuple[str, ...]) -> Callable:
    # ninja reads the parameters from the signature, which inspect follows through functools.wraps.
    @wraps(view)
    def checked(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        require_scopes(request, scopes)
        return view(request, *args, **kwargs)

    checked.token_scopes = scopes
    return checked


class ScopedRouter(Router):
    """A ninja Router whose every operation must name the token scopes it needs."""

    def _route(self, methods: list[str], path: str, scope: str | tuple[str, ...], kwargs: dict) -> Callable:
        scopes = (scope,) if isinstance(scope, str) else tuple(scope)
        unknown = set(scopes) - {*TOKEN_SCOPES, PASSWORD}
        if not scopes or unknown:
            raise ImproperlyConfigured(f"{' '.join(methods)} {path}: unknown or missing scopes {sorted(unknown)}")
        kwargs["openapi_extra"] = {**(kwargs.get("openapi_extra") or {}), OPENAPI_KEY: list(scopes)}
        register = self.api_operation(methods, path, **kwargs)
        return lambda view: register(_checked(view, scopes))

    def get(self, path: str, *, scope: str | tuple[str, ...], **kwargs: Any) -> Callable:
        return self._route(["GET"], path, scope, kwargs)

    def post(self, path: str, *, scope: str | tuple[str, ...], **kwargs: Any) -> Callable:
        return self._route(["POST"], path, scope, kwargs)

    def put(self, path: str, *, scope: str | tuple[str, ...], **kwargs: Any) -> Callable:
        return self._route(["PUT"], path, scope, kwargs)

    def patch(self, path: str, *, scope: str | tuple[str, ...], **kwargs: Any) -> Callable:
        return self._route(["PATCH"], path, scope, kwargs)

    def delete(self, path: str, *, scope: str | tuple[str, ...], **kwargs: Any) -> Callable:
        return self._route(["DELETE"], path, scope, kwargs)

    def add_api_operation(self, path: str, methods: list[str], view_func: Callable, **kwargs: Any) -> None:
        if not getattr(view_func, "token_scopes", None):
            raise ImproperlyConfigured(f"{' '.join(methods)} {path} declares no token scope (scope=…)")
        super().add_api_operation(path, methods, view_func, **kwargs)
