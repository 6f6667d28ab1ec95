"""The secret key a portal makes for itself on its first start, kept in a file only its owner can read."""

import os
import secrets
import tempfile
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured


def load_or_create_secret_key(path: Path) -> str:
    """The key stored at path, created first (mode 0600) when there is none yet."""
    try:
        return _read(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    # The key is written in full to a private temporary file and then linked into place. A link never replaces
    # an existing file, so when two processes start together one of them wins and both read the winner's key;
    # and nobody ever reads a half-written file.
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "w") as stream:
            stream.write(secrets.token_urlsafe(50) + "\n")
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass
    finally:
        os.unlink(temporary)
    return _read(path)


def _read(path: Path) -> str:
    key = path.read_text().strip()
    if not key:
        raise ImproperlyConfigured(f"{path} is empty: remove it to have a new secret key made, or set SECRET_KEY")
    return key
