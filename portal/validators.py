"""Name rules shared by users, organizations and repositories (close to Gitea's)."""

import re

from django.core.exceptions import ValidationError

# ASCII only, so that look-alike characters cannot impersonate another name.
NAME_RE = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?$")
RESERVED_OWNER_NAMES = frozenset(
    {
        "about",
        "accounts",
        "api",
        "assets",
        "explore",
        "favicon.ico",
        "healthz",
        "login",
        "logout",
        "new",
        "notifications",
        "org",
        "orgs",
        "pulls",
        "repo",
        "repos",
        "robots.txt",
        "settings",
        "signup",
        "static",
        "user",
        "users",
        # The HTTP Basic username of repository read tokens (repos/read_tokens.py).
        "x-read-token",
        "-",
    }
)
RESERVED_REPO_NAMES = frozenset({".", "..", "-", "settings", "new"})


def _check_name(value: str, what: str, max_length: int) -> None:
    if not value:
        raise ValidationError(f"{what} cannot be empty.")
    if len(value) > max_length:
        raise ValidationError(f"{what} can be at most {max_length} characters.")
    if not value.isascii():
        raise ValidationError(f"{what} may only use ASCII letters, digits, '-', '_' and '.'.")
    if value.startswith("-"):
        raise ValidationError(f"{what} cannot start with '-'.")
    # fullmatch, not match: "$" also matches before a final line break, which would let "bob\n" pass.
    if not NAME_RE.fullmatch(value):
        raise ValidationError(
            f"{what} may only use letters, digits, '-', '_' and '.', and cannot start or end with '-' or '.'."
        )
    if ".." in value:
        raise ValidationError(f"{what} cannot contain '..'.")
    lower = value.lower()
    if lower.endswith(".git") or lower.endswith(".atom"):
        raise ValidationError(f"{what} cannot end with '.git' or '.atom'.")


def validate_owner_name(value: str) -> None:
    _check_name(value, "Name", 40)
    if value.lower() in RESERVED_OWNER_NAMES:
        raise ValidationError(f"'{value}' is reserved.")


def validate_repo_name(value: str) -> None:
    _check_name(value, "Repository name", 100)
    if value.lower() in RESERVED_REPO_NAMES:
        raise ValidationError(f"'{value}' is reserved.")


username_validators = [validate_owner_name]


def field_error(message: str, field: str) -> ValidationError:
    """A service's refusal of one request field, which the API answers like a schema's: a 422 naming the field.

    The message is taken as it is: a value quoted in it (a type name such as "%d") is not a format."""
    return ValidationError(message.replace("%", "%%"), code="invalid_field", params={"field": field})
