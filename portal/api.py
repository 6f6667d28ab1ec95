"""The REST API under /api/v1/: authentication, errors, times, and the account, key, token and admin endpoints.

Shapes follow Gitea's API so that existing scripts need few changes. Organizations live in portal/api_orgs.py,
repository endpoints (and organizations' teams) in the repos.api package.
"""

import json
import logging
from datetime import UTC, datetime
from importlib.resources import files
from typing import Annotated, Any, Literal

from django.conf import settings
from django.contrib.auth import authenticate
from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from django.db import IntegrityError
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse
from django.middleware.csrf import get_token
from django.utils import timezone
from django.utils.html import escape
from ninja import NinjaAPI, Query, Schema, Status
from ninja.errors import AuthenticationError, AuthorizationError, HttpError, ValidationError
from ninja.openapi.docs import DocsBase
from ninja.renderers import JSONRenderer
from ninja.responses import NinjaJSONEncoder
from ninja.security import APIKeyCookie, HttpBasicAuth, HttpBearer
from ninja.security.http import DecodeError
from ninja.utils import check_csrf
from pydantic import AfterValidator, ConfigDict, field_validator
from pydantic_core import PydanticCustomError

from portal import services
from portal.access import Principal, is_site_admin
from portal.api_pages import PageParams, paginate
from portal.api_scopes import ADMIN, PASSWORD, READ_USER, WRITE_REPO, WRITE_USER, ScopedRouter
from portal.keys import InvalidKey
from portal.models import AccessToken, AuditEvent, RevokedKeyFingerprint, SshKey, User

logger = logging.getLogger(__name__)

API_PREFIX = "/api/v1"
# The Gitea release whose API (its swagger) the portal's shapes follow; GET /version says it, as Gitea does.
GITEA_VERSION = "1.22.1"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
UNAUTHENTICATED = "Authentication required: send 'Authorization: Bearer <token>' or sign in."


# Authentication: every callable returns a Principal or None, or raises to stop with 401/403.


def _require_api_scope(token: AccessToken) -> None:
    if not token.has_scope("api"):
        raise AuthorizationError(message="This token lacks the api scope, which every API call needs.")


class TokenAuth(HttpBearer):
    """A personal access token in `Authorization: Bearer <token>` or `Authorization: token <token>`."""

    def __call__(self, request: HttpRequest) -> Principal | None:
        scheme, _, value = request.headers.get("Authorization", "").strip().partition(" ")
        if scheme.lower() not in ("bearer", "token"):
            return None
        return self.authenticate(request, value.strip())

    def authenticate(self, request: HttpRequest, token: str) -> Principal:
        access_token = services.authenticate_token(token)
        if access_token is None:
            raise AuthenticationError(message="The token is invalid, expired or revoked.")
        _require_api_scope(access_token)
        return Principal(user=access_token.user, token=access_token)


class SessionAuth(APIKeyCookie):
    """The browser's Django session; writes must carry the CSRF token like any form."""

    param_name = settings.SESSION_COOKIE_NAME

    def _get_key(self, request: HttpRequest) -> str | None:
        # Only a signed-in session is checked for CSRF, so that an anonymous call gets 401, not a CSRF error.
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return None
        if request.method not in SAFE_METHODS and check_csrf(request) is not None:
            raise AuthorizationError(message="CSRF check failed: send the X-CSRFToken header with the session.")
        return request.COOKIES.get(self.param_name)

    def authenticate(self, request: HttpRequest, key: str | None) -> Principal | None:
        user = request.user
        if not user.is_authenticated or not user.is_active or user.is_organization:
            return None
        return Principal(user=user)


class PasswordAuth(HttpBasicAuth):
    """HTTP Basic with the account password: accepted only by the token endpoints."""

    def __call__(self, request: HttpRequest) -> Principal | None:
        header = request.headers.get(self.header)
        if not header:
            return None
        try:
            username, password = self.decode_authorization(header)
        except DecodeError:
            # One line, without the header (it may hold a password) and without a traceback.
            logger.warning("malformed Basic authorization header from %s", request.META.get("REMOTE_ADDR", "?"))
            return None
        return self.authenticate(request, username, password)

    def authenticate(self, request: HttpRequest, username: str, password: str) -> Principal:
        from allauth.core import ratelimit

        key = username.strip().lower()
        if not ratelimit.consume(request, action="login_failed", key=key, dry_run=True):
            raise HttpError(429, "Too many failed sign-in attempts; try again later.")
        user = authenticate(request, username=username, password=password)
        if user is None or not user.is_active or user.is_organization:
            ratelimit.consume(request, action="login_failed", key=key)
            raise AuthenticationError(message="Wrong username or password.")
        _check_second_factor(request, user)
        return Principal(user=user)


def _check_second_factor(request: HttpRequest, user: User) -> None:
    """A password alone must not mint tokens for an account protected by a second factor."""
    from allauth.mfa.models import Authenticator
    from allauth.mfa.totp.internal.auth import TOTP

    authenticators = Authenticator.objects.filter(user=user)
    if not authenticators.exists():
        return
    totp = authenticators.filter(type=Authenticator.Type.TOTP).first()
    code = request.headers.get("X-Portal-OTP", "").strip()
    if totp is None:
        raise AuthenticationError(
            message="This account signs in with a security key: create tokens in the web settings."
        )
    if not code:
        raise AuthenticationError(message="This account uses two-factor authentication: send the X-Portal-OTP header.")
    if not TOTP(totp).validate_code(code):
        raise AuthenticationError(message="The one-time code is wrong or was already used.")


token_auth = TokenAuth()
session_auth = SessionAuth()
password_auth = PasswordAuth()


DOCS_ASSETS = {
    "swagger-ui.css": "text/css",
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui-init.js": "text/javascript",
}
DOCS_PAGE = """<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
<link rel="stylesheet" href="{prefix}/docs/assets/swagger-ui.css">
<title>{title} API</title>
</head>
<body data-csrf-token="{csrf}" data-api-csrf="true">
<script type="application/json" id="swagger-settings">{settings}</script>
<div id="swagger-ui"></div>
<script src="{prefix}/docs/assets/swagger-ui-bundle.js"></script>
<script src="{prefix}/docs/assets/swagger-ui-init.js"></script>
</body>
</html>
"""


class LocalSwagger(DocsBase):
    """The Swagger page with the assets bundled in django-ninja, so the docs work without internet."""

    def render_page(self, request: HttpRequest, api: NinjaAPI, **kwargs: Any) -> HttpResponse:
        swagger_settings = {"url": self.get_openapi_url(api, kwargs), "layout": "BaseLayout", "deepLinking": True}
        page = DOCS_PAGE.format(
            prefix=API_PREFIX,
            title=escape(api.title),
            csrf=escape(get_token(request)),
            # Script contents are not HTML-decoded, so only "<" needs neutralizing to keep the JSON inert.
            settings=json.dumps(swagger_settings).replace("<", "\\u003c"),
        )
        return HttpResponse(page)


def docs_asset(request: HttpRequest, name: str) -> HttpResponse:
    """One of the Swagger files bundled with django-ninja, served by name from a fixed list."""
    if name not in DOCS_ASSETS:
        raise Http404("No such file")
    content = files("ninja").joinpath("static", "ninja", name).read_bytes()
    response = HttpResponse(content, content_type=DOCS_ASSETS[name])
    response["Cache-Control"] = "public, max-age=86400"
    return response


# Gitea's times for nothing: Go's zero time, and the Unix epoch of a timestamp never set.
ZERO_TIME = datetime(1, 1, 1, tzinfo=UTC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def gitea_time(value: datetime) -> str:
    """A time as Gitea writes it: RFC 3339 to the second, in the site's time zone, with its offset (`Z` for UTC),
    as Go's encoder does (`2026-12-06T08:55:41Z`, `2026-12-06T09:55:41+01:00`). Never milliseconds: Gitea's
    clients parse exactly this."""
    if timezone.is_naive(value):
        value = timezone.make_aware(value, timezone.get_default_timezone())
    try:
        value = timezone.localtime(value)
    except OverflowError:
        # Go's zero time has no local time west of UTC; Gitea writes it in UTC.
        value = value.astimezone(UTC)
    text = value.replace(microsecond=0).isoformat()
    return text.removesuffix("+00:00") + "Z" if text.endswith("+00:00") else text


class GiteaJSONEncoder(NinjaJSONEncoder):
    """Every API answer's JSON: times in Gitea's format, the rest as ninja encodes it."""

    def default(self, o: Any) -> Any:
        if isinstance(o, datetime):
            return gitea_time(o)
        return super().default(o)


class GiteaRenderer(JSONRenderer):
    encoder_class = GiteaJSONEncoder


api = NinjaAPI(
    title="portal",
    version="1",
    description="The portal's REST API. Shapes follow Gitea's API where one exists.",
    auth=[token_auth, session_auth],
    urls_namespace="api",
    docs=LocalSwagger(),
    renderer=GiteaRenderer(),
)
# The account, key, token, organization and admin endpoints; every operation names its token scope.
router = ScopedRouter(tags=["user"])


# Errors: always JSON with a message.


def error(request: HttpRequest, message: str, status: int, **extra: Any) -> HttpResponse:
    return api.create_response(request, {"message": message, **extra}, status=status)


@api.exception_handler(Http404)
def _not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    return error(request, str(exc) or "Not found", 404)


@api.exception_handler(PermissionDenied)
def _forbidden(request: HttpRequest, exc: PermissionDenied) -> HttpResponse:
    return error(request, str(exc) or "You are not allowed to do this.", 403)


@api.exception_handler(AuthenticationError)
def _unauthenticated(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    message = exc.message if exc.message != "Unauthorized" else UNAUTHENTICATED
    response = error(request, message, 401)
    response["WWW-Authenticate"] = 'Bearer realm="portal"'
    return response


@api.exception_handler(HttpError)
def _http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    return error(request, exc.message, exc.status_code)


@api.exception_handler(DjangoValidationError)
def _invalid(request: HttpRequest, exc: DjangoValidationError) -> HttpResponse:
    # Services mark "that name is taken" and similar refusals with the code "conflict", and a refusal of one
    # request field with "invalid_field" and the field's name, which the API reports like a schema's refusal.
    refusals = exc.error_list if hasattr(exc, "error_list") else []
    fields = [e for e in refusals if e.code == "invalid_field" and e.params and "field" in e.params]
    if fields:
        loc = ("body", "payload")
        return _schema_invalid(
            request,
            ValidationError(
                [{"loc": (*loc, e.params["field"]), "msg": e.message % e.params, "type": "invalid"} for e in fields]
            ),
        )
    codes = {getattr(e, "code", None) for e in refusals}
    return error(request, " ".join(exc.messages), 409 if "conflict" in codes else 400)


@api.exception_handler(InvalidKey)
def _invalid_key(request: HttpRequest, exc: InvalidKey) -> HttpResponse:
    return error(request, str(exc), 400)


@api.exception_handler(IntegrityError)
def _conflict(request: HttpRequest, exc: IntegrityError) -> HttpResponse:
    # Two requests raced to create the same thing; the loser is told so rather than getting a 500.
    logger.info("integrity error in API call: %s", exc)
    return error(request, "This conflicts with something that already exists.", 409)


def _field_name(err: dict) -> str:
    return ".".join(str(part) for part in err.get("loc", ()) if part not in ("body", "payload"))


def _describe_error(err: dict) -> str:
    location = _field_name(err)
    if err.get("type") == "extra_forbidden":
        return f"unknown field: {location}"
    return f"{location}: {err.get('msg', 'invalid')}" if location else str(err.get("msg", "invalid"))


@api.exception_handler(ValidationError)
def _schema_invalid(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    errors = [
        {"loc": list(e.get("loc", ())), "field": _field_name(e), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in exc.errors
    ]
    unknown = [e for e in errors if e["type"] == "extra_forbidden"]
    # A misspelt or unsupported field is named first: it is the one mistake a client cannot see in its own output.
    if unknown and len(unknown) == len(errors):
        message = f"unknown field{'s' if len(unknown) > 1 else ''}: " + ", ".join(e["field"] for e in unknown)
    else:
        message = "Invalid request: " + "; ".join(_describe_error(e) for e in errors)
    return error(request, message, 422, errors=errors)


# Schemas (Gitea's field names).


def _holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(key) or _holds_nul(item) for key, item in value.items())
    if isinstance(value, list | tuple):
        return any(_holds_nul(item) for item in value)
    return False


class InputSchema(Schema):
    """Every request body of the API: a field it does not declare is refused (422, naming it), never ignored; so
    is a text with a NUL byte (no name, description or comment holds one, and PostgreSQL refuses to keep one)."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        if _holds_nul(value):
            raise PydanticCustomError("nul_byte", "holds a NUL byte, which no text here may")
        return value


def gitea_unsupported(kind: Any, why: str, *also_off: object) -> Any:
    """The type of a Gitea field whose feature the portal lacks: Gitea's clients send it, so it is declared, but
    only its off value (false, 0, "", [] or null, or one of also_off) is accepted; any other is refused with 422,
    naming the field, so that no client believes it got what it asked for."""

    def check(value: Any) -> Any:
        blank = isinstance(value, str) and not value.strip()
        if value is None or blank or value in also_off or (not isinstance(value, str) and not value):
            return value
        raise PydanticCustomError(
            "unsupported",
            "not supported ({why}); send it off (false, 0, an empty string or list) or leave it out",
            {"why": why},
        )

    return Annotated[kind | None, AfterValidator(check)]


# Schemas (Gitea's field names).


class Message(Schema):
    message: str


class UserOut(Schema):
    """Gitea's User."""

    id: int
    login: str
    login_name: str
    source_id: int
    username: str
    full_name: str
    email: str
    avatar_url: str
    html_url: str
    language: str
    is_admin: bool
    active: bool
    prohibit_login: bool
    restricted: bool
    created: datetime
    last_login: datetime
    location: str
    website: str
    description: str
    visibility: str
    followers_count: int
    following_count: int
    starred_repos_count: int


class OrganizationOut(Schema):
    """Gitea's Organization."""

    id: int
    name: str
    username: str
    full_name: str
    email: str
    avatar_url: str
    description: str
    website: str
    location: str
    visibility: str
    repo_admin_change_team_access: bool


class KeyOut(Schema):
    """Gitea's PublicKey (and when it was last used)."""

    id: int
    key: str
    url: str
    title: str
    fingerprint: str
    key_type: str
    created_at: datetime
    read_only: bool
    last_used_at: datetime | None
    user: UserOut | None = None


class KeyIn(InputSchema):
    key: str
    title: str = ""
    # Gitea's clients send it for every key; a user's own keys are never read-only.
    read_only: gitea_unsupported(bool, "a user's keys may do what the user may") = None


class RevokedKeyOut(Schema):
    id: int
    fingerprint: str
    key_type: str
    title: str
    owner: str
    reason: str
    revoked_by: str | None
    revoked_at: datetime


class TokenOut(Schema):
    id: int
    name: str
    sha1: str
    token_last_eight: str
    scopes: list[str]
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None


class TokenIn(InputSchema):
    name: str
    scopes: list[Literal[AccessToken.SCOPES]]
    expires_at: datetime | None = None


class UserCreateIn(InputSchema):
    username: str
    email: str
    password: str | None = None
    admin: bool = False
    # Sent by Gitea's clients; accepted only when they ask for nothing the portal lacks.
    source_id: gitea_unsupported(int, "accounts are local") = None
    login_name: gitea_unsupported(str, "accounts are local") = None
    full_name: gitea_unsupported(str, "users set their own full name") = None
    # As in Gitea, a password chosen by an admin is changed at the first sign-in unless this says false.
    must_change_password: bool | None = None
    send_notify: gitea_unsupported(bool, "no welcome email is sent") = None
    restricted: gitea_unsupported(bool, "there are no restricted users") = None
    visibility: gitea_unsupported(str, "users have no visibility setting", "public") = None


class OrganizationCreateIn(InputSchema):
    username: str
    full_name: str = ""
    description: str = ""
    # Sent by Gitea's clients; accepted only when they ask for nothing the portal lacks.
    email: gitea_unsupported(str, "organizations have no email address") = None
    website: gitea_unsupported(str, "organizations have no website") = None
    location: gitea_unsupported(str, "organizations have no location") = None
    visibility: gitea_unsupported(str, "organizations have no visibility setting", "public") = None
    repo_admin_change_team_access: gitea_unsupported(bool, "teams are managed by the organization's owners") = None


class AuditEventOut(Schema):
    id: int
    actor: str | None
    action: str
    target_type: str
    target_id: str
    target: str
    subject: str | None
    before: dict | None
    after: dict | None
    ip_address: str | None
    created_at: datetime


# Helpers shared with repos/api.py.


def principal(request: HttpRequest) -> Principal:
    return request.auth


def current_user(request: HttpRequest) -> User:
    return request.auth.user


def require_admin(request: HttpRequest) -> User:
    """The caller, if a site admin (the admin operations also ask a token for the admin scope)."""
    user = current_user(request)
    if not is_site_admin(user):
        raise AuthorizationError(message="Only site administrators can do this.")
    return user


def api_url(path: str) -> str:
    return f"{settings.PORTAL_BASE_URL}{API_PREFIX}{path}"


def avatar_url(account: User) -> str:
    """The picture of a person or an organization (portal.views.avatar)."""
    return f"{settings.PORTAL_BASE_URL}/-/avatars/{account.username}.svg"


def user_out(user: User, viewer: User | None) -> dict:
    """A user (or an organization as a repository's owner) in Gitea's User shape; the email address only for the
    user themselves and admins. Fields of features the portal lacks (followers, stars, locations) have Gitea's
    empty values."""
    show_email = viewer is not None and (viewer.pk == user.pk or is_site_admin(viewer))
    return {
        "id": user.pk,
        "login": user.username,
        "login_name": "",
        "source_id": 0,
        "username": user.username,
        "full_name": user.full_name or user.get_full_name(),
        "email": user.email if show_email else "",
        "avatar_url": avatar_url(user),
        "html_url": f"{settings.PORTAL_BASE_URL}/{user.username}",
        "language": "",
        "is_admin": user.is_superuser,
        "active": user.is_active,
        # A deactivated account cannot sign in: Gitea's prohibit_login.
        "prohibit_login": not user.is_active,
        "restricted": False,
        "created": user.date_joined,
        # Gitea's zero time when hidden, the Unix epoch for an account that never signed in.
        "last_login": (user.last_login or EPOCH) if show_email else ZERO_TIME,
        "location": "",
        "website": "",
        "description": user.description,
        "visibility": "public",
        "followers_count": 0,
        "following_count": 0,
        "starred_repos_count": 0,
    }


def organization_out(org: User) -> dict:
    """An organization in Gitea's shape: organizations are public, and their teams are managed by their owners."""
    return {
        "id": org.pk,
        "name": org.username,
        "username": org.username,
        "full_name": org.full_name,
        "email": "",
        "avatar_url": avatar_url(org),
        "description": org.description,
        "website": "",
        "location": "",
        "visibility": "public",
        "repo_admin_change_team_access": False,
    }


def key_out(key: SshKey, viewer: User | None, url: str) -> dict:
    return {
        "id": key.pk,
        "key": key.public_key,
        "url": url,
        "title": key.title,
        "fingerprint": key.fingerprint,
        # Gitea's kind of key (the algorithm is the key's first word).
        "key_type": "deploy" if key.is_deploy_key else "user",
        "created_at": key.created,
        "read_only": key.is_deploy_key and not key.writable,
        "last_used_at": key.last_used,
        "user": user_out(key.user, viewer) if key.user_id else None,
    }


def _user_key_out(key: SshKey, viewer: User) -> dict:
    return key_out(key, viewer, api_url(f"/user/keys/{key.pk}"))


def token_out(token: AccessToken, raw: str = "") -> dict:
    return {
        "id": token.pk,
        "name": token.name,
        "sha1": raw,
        "token_last_eight": token.last_eight,
        "scopes": token.scopes,
        "created_at": token.created,
        "last_used_at": token.last_used,
        "expires_at": token.expires_at,
    }


def _person(username: str) -> User:
    user = User.objects.people().filter(username__iexact=username).first()
    if user is None:
        raise Http404(f"No user named {username!r}.")
    return user


# The version: Gitea's clients read it to know which API they talk to.


def anyone(request: HttpRequest) -> Principal:
    """No credentials at all: for the few answers that are the same for everyone."""
    return Principal()


class VersionOut(Schema):
    version: str


@router.get(
    "/version",
    # Every token holds `api`; without credentials the answer is the same.
    scope="api",
    auth=[token_auth, session_auth, anyone],
    response=VersionOut,
    tags=["miscellaneous"],
    summary="The Gitea version whose API the portal follows",
)
def get_version(request: HttpRequest):
    return {"version": GITEA_VERSION}


# The signed-in user.


@router.get("/user", scope=READ_USER, response=UserOut, tags=["user"], summary="Get the authenticated user")
def get_current_user(request: HttpRequest):
    user = current_user(request)
    return user_out(user, user)


class UserSettingsOut(Schema):
    full_name: str
    description: str


class UserSettingsIn(InputSchema):
    full_name: str


@router.get("/user/settings", scope=READ_USER, response=UserSettingsOut, tags=["user"], summary="Get your settings")
def get_user_settings(request: HttpRequest):
    user = current_user(request)
    return {"full_name": user.full_name, "description": user.description}


@router.patch(
    "/user/settings", scope=WRITE_USER, response=UserSettingsOut, tags=["user"], summary="Change your settings"
)
def update_user_settings(request: HttpRequest, payload: UserSettingsIn):
    user = current_user(request)
    user = services.update_profile(user, actor=user, full_name=payload.full_name)
    return {"full_name": user.full_name, "description": user.description}


@router.get("/user/keys", scope=READ_USER, response=list[KeyOut], tags=["user"], summary="List your SSH keys")
def list_own_keys(request: HttpRequest):
    user = current_user(request)
    return [_user_key_out(key, user) for key in SshKey.objects.user_keys().filter(user=user).select_related("user")]


@router.post(
    "/user/keys",
    scope=(WRITE_USER, WRITE_REPO),
    response={201: KeyOut},
    tags=["user"],
    summary="Add an SSH key to your account",
)
def add_own_key(request: HttpRequest, payload: KeyIn):
    user = current_user(request)
    key = services.add_ssh_key(user, actor=user, title=payload.title, public_key=payload.key)
    return Status(201, _user_key_out(key, user))


def _own_key(user: User, key_id: int) -> SshKey:
    key = SshKey.objects.user_keys().filter(user=user, pk=key_id).select_related("user").first()
    if key is None:
        raise Http404("Key not found")
    return key


@router.get("/user/keys/{id}", scope=READ_USER, response=KeyOut, tags=["user"], summary="Get one of your SSH keys")
def get_own_key(request: HttpRequest, id: int):
    user = current_user(request)
    return _user_key_out(_own_key(user, id), user)


@router.delete(
    "/user/keys/{id}", scope=WRITE_USER, response={204: None}, tags=["user"], summary="Delete one of your SSH keys"
)
def delete_own_key(request: HttpRequest, id: int):
    user = current_user(request)
    services.remove_ssh_key(_own_key(user, id), actor=user)
    return Status(204, None)


# Access tokens: created with the password (or a browser session), never with another token.


def _token_owner(request: HttpRequest, username: str) -> User:
    """The user whose tokens are managed; someone else's only for site admins."""
    target = _person(username)
    if target.pk != current_user(request).pk:
        require_admin(request)
    return target


@router.post(
    "/users/{username}/tokens",
    scope=PASSWORD,
    response={201: TokenOut},
    auth=[password_auth, session_auth],
    tags=["user"],
    summary="Create an access token (HTTP Basic with the account password)",
    description="The raw token is returned once, in `sha1`; only its hash is stored.",
)
def create_token(request: HttpRequest, username: str, payload: TokenIn):
    target = _token_owner(request, username)
    token, raw = services.create_access_token(
        target,
        actor=current_user(request),
        name=payload.name,
        scopes=list(payload.scopes),
        expires_at=payload.expires_at,
    )
    return Status(201, token_out(token, raw))


@router.get(
    "/users/{username}/tokens",
    scope=PASSWORD,
    response=list[TokenOut],
    auth=[password_auth, session_auth],
    tags=["user"],
    summary="List a user's access tokens",
)
def list_tokens(request: HttpRequest, username: str):
    target = _token_owner(request, username)
    return [token_out(token) for token in AccessToken.objects.filter(user=target)]


@router.delete(
    "/users/{username}/tokens/{id}",
    scope=PASSWORD,
    response={204: None},
    auth=[password_auth, session_auth],
    tags=["user"],
    summary="Revoke an access token",
)
def delete_token(request: HttpRequest, username: str, id: int):
    target = _token_owner(request, username)
    token = AccessToken.objects.filter(user=target, pk=id).first()
    if token is None:
        raise Http404("Token not found")
    services.revoke_access_token(token, actor=current_user(request))
    return Status(204, None)


# Site administration.


@router.get("/admin/users", scope=ADMIN, response=list[UserOut], tags=["admin"], summary="List every account")
def admin_list_users(
    request: HttpRequest,
    response: HttpResponse,
    pages: Query[PageParams],
    q: str = "",
):
    admin = require_admin(request)
    users = User.objects.people().order_by("username")
    if q:
        users = users.filter(Q(username__icontains=q) | Q(email__icontains=q) | Q(full_name__icontains=q))
    return [user_out(user, admin) for user in paginate(users, response, pages)]


@router.post("/admin/users", scope=ADMIN, response={201: UserOut}, tags=["admin"], summary="Create an account")
def admin_create_user(request: HttpRequest, payload: UserCreateIn):
    admin = require_admin(request)
    validate_email(payload.email)
    user = services.create_user(
        actor=admin,
        username=payload.username,
        email=payload.email,
        password=payload.password,
        is_admin=payload.admin,
        must_change_password=payload.must_change_password is not False,
    )
    return Status(201, user_out(user, admin))


def _admin_key_out(key: SshKey, viewer: User) -> dict:
    return key_out(key, viewer, api_url(f"/admin/users/{key.user.username}/keys/{key.pk}"))


@router.get("/admin/keys", scope=ADMIN, response=list[KeyOut], tags=["admin"], summary="List every user's SSH keys")
def admin_list_all_keys(
    request: HttpRequest,
    response: HttpResponse,
    pages: Query[PageParams],
    user: str = "",
    fingerprint: str = "",
):
    admin = require_admin(request)
    keys = SshKey.objects.user_keys().select_related("user").order_by("user__username", "-created")
    if user:
        keys = keys.filter(user__username__icontains=user)
    if fingerprint:
        keys = keys.filter(fingerprint__icontains=fingerprint.strip())
    return [_admin_key_out(key, admin) for key in paginate(keys, response, pages)]


@router.get(
    "/admin/users/{username}/keys", scope=ADMIN, response=list[KeyOut], tags=["admin"], summary="List a user's SSH keys"
)
def admin_list_keys(request: HttpRequest, username: str):
    admin = require_admin(request)
    user = _person(username)
    return [_admin_key_out(key, admin) for key in SshKey.objects.user_keys().filter(user=user).select_related("user")]


@router.post(
    "/admin/users/{username}/keys",
    scope=ADMIN,
    response={201: KeyOut},
    tags=["admin"],
    summary="Add an SSH key for a user",
)
def admin_add_key(request: HttpRequest, username: str, payload: KeyIn):
    admin = require_admin(request)
    user = _person(username)
    key = services.add_ssh_key(user, actor=admin, title=payload.title, public_key=payload.key)
    return Status(201, _admin_key_out(key, admin))


@router.delete(
    "/admin/users/{username}/keys/{id}",
    scope=ADMIN,
    response={204: None},
    tags=["admin"],
    summary="Remove or revoke a user's SSH key",
    description="Removes the key; the user may add it again. With `revoke=true` the key's fingerprint is blocked "
    "too, so nobody can add it again until an administrator lifts the block; `reason` is told to the user.",
)
def admin_revoke_key(request: HttpRequest, username: str, id: int, revoke: bool = False, reason: str = ""):
    admin = require_admin(request)
    user = _person(username)
    key = SshKey.objects.user_keys().filter(user=user, pk=id).first()
    if key is None:
        raise Http404("Key not found")
    if revoke:
        services.revoke_ssh_key(key, actor=admin, reason=reason)
    else:
        services.remove_ssh_key(key, actor=admin)
    return Status(204, None)


@router.get(
    "/admin/revoked_keys",
    scope=ADMIN,
    response=list[RevokedKeyOut],
    tags=["admin"],
    summary="List revoked key fingerprints",
    description="Nobody can add a key with one of these fingerprints until an administrator lifts the block.",
)
def admin_list_revoked_keys(
    request: HttpRequest,
    response: HttpResponse,
    pages: Query[PageParams],
):
    require_admin(request)
    revocations = RevokedKeyFingerprint.objects.select_related("revoked_by")
    return [
        {
            "id": revocation.pk,
            "fingerprint": revocation.fingerprint,
            "key_type": revocation.key_type,
            "title": revocation.title,
            "owner": revocation.owner_name,
            "reason": revocation.reason,
            "revoked_by": revocation.revoked_by.username if revocation.revoked_by else None,
            "revoked_at": revocation.created,
        }
        for revocation in paginate(revocations, response, pages)
    ]


@router.delete(
    "/admin/revoked_keys/{id}",
    scope=ADMIN,
    response={204: None},
    tags=["admin"],
    summary="Lift the block on a revoked key fingerprint",
)
def admin_lift_revoked_key(request: HttpRequest, id: int):
    admin = require_admin(request)
    revocation = RevokedKeyFingerprint.objects.filter(pk=id).first()
    if revocation is None:
        raise Http404("No such revoked fingerprint")
    services.lift_key_revocation(revocation, actor=admin)
    return Status(204, None)


@router.get("/admin/audit", scope=ADMIN, response=list[AuditEventOut], tags=["admin"], summary="Read the audit log")
def admin_audit(
    request: HttpRequest,
    response: HttpResponse,
    pages: Query[PageParams],
    actor: str = "",
    action: str = Query("", description="An exact action such as key.add, or a prefix ending in a dot: key."),
    target: str = Query("", description="Part of the target's name, such as alice/project."),
    since: datetime | None = None,
    until: datetime | None = None,
):
    require_admin(request)
    events = AuditEvent.objects.all()
    if actor:
        events = events.filter(actor_name__iexact=actor)
    if action:
        events = events.filter(action__startswith=action) if action.endswith(".") else events.filter(action=action)
    if target:
        events = events.filter(target_repr__icontains=target)
    if since:
        events = events.filter(created__gte=since)
    if until:
        events = events.filter(created__lt=until)
    return [
        {
            "id": event.pk,
            "actor": event.actor_name or None,
            "action": event.action,
            "target_type": event.target_type,
            "target_id": event.target_id,
            "target": event.target_repr,
            "subject": event.subject_name or None,
            "before": event.before,
            "after": event.after,
            "ip_address": event.ip_address,
            "created_at": event.created,
        }
        for event in paginate(events, response, pages)
    ]


api.add_router("", router)
