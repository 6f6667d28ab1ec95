"""Build secrets encrypted at rest: Fernet (AES-128-CBC with HMAC-SHA256) under a key derived from SECRET_KEY.

The key is derived with HKDF-SHA256 under its own info string, so the encryption key is never the key that signs
sessions and links, and a leak of one ciphertext tells nothing about the other uses of SECRET_KEY. After a
rotation the old key goes to SECRET_KEY_FALLBACKS: secrets saved under it still decrypt (MultiFernet tries every
key) and are encrypted under the new key the next time they are saved.

The plaintext leaves the database only inside the build worker, into the sandbox's environment: never into a
job's arguments, Redis, a log, an audit event, a page or an API answer."""

import base64

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

HKDF_INFO = b"portal build secrets"


class SecretUnreadable(Exception):
    """A ciphertext that no key in SECRET_KEY or SECRET_KEY_FALLBACKS opens (the key it was made with is gone)."""


def _fernet(secret_key: str) -> Fernet:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=HKDF_INFO).derive(secret_key.encode())
    return Fernet(base64.urlsafe_b64encode(derived))


def _keys() -> MultiFernet:
    # The first key encrypts; every key decrypts.
    return MultiFernet([_fernet(key) for key in [settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS]])


def encrypt(plaintext: str) -> str:
    return _keys().encrypt(plaintext.encode("utf-8")).decode("ascii")


def decrypt(ciphertext: str) -> str:
    try:
        return _keys().decrypt(ciphertext.encode("ascii")).decode("utf-8")
    except InvalidToken:
        raise SecretUnreadable("The secret was encrypted with a key the portal no longer has.") from None
