"""Short-lived read tokens: a signed credential that lets git over HTTP fetch one repository for a few minutes.

A machine that holds the portal's SECRET_KEY but not the repository's git directory (a build worker elsewhere)
mints one and fetches over the portal's own smart HTTP, with USERNAME and the token as HTTP Basic credentials.
The token is not stored anywhere: it is the repository's id and an expiry, signed with SECRET_KEY under a salt of
its own, so no other signed value of the portal passes for one. repos.access gives it the read role on that one
repository and nothing anywhere else, so it can neither push nor reach another repository, and smart HTTP refuses
it once expired."""

import time

from django.core import signing

from repos.models import Repository

# The Basic username that marks the password as a read token rather than a personal access token.
USERNAME = "x-read-token"
SALT = "repos.read_tokens"


def mint(repository: Repository, *, seconds: int, now: float | None = None) -> str:
    """A token that reads repository for the next seconds (counted from now, the current time by default)."""
    issued = time.time() if now is None else now
    return signing.dumps({"repository": repository.pk, "expires": int(issued + seconds)}, salt=SALT)


def repository_id(token: str) -> int | None:
    """The id of the repository a genuine, unexpired token reads; None for anything else."""
    try:
        payload = signing.loads(token, salt=SALT)
    except signing.BadSignature:
        return None
    if not isinstance(payload, dict):
        return None
    repository, expires = payload.get("repository"), payload.get("expires")
    if not isinstance(repository, int) or not isinstance(expires, int) or expires <= time.time():
        return None
    return repository
