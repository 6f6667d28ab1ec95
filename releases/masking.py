"""Secrets masked in build logs: as printed, URL-encoded, and base64-encoded at any alignment."""

import base64
import re
from urllib.parse import quote, quote_plus

MASK = "***"
# Shorter encoded fragments would mask ordinary text; a short secret is still masked as printed.
MIN_ENCODED_LENGTH = 4


def _base64_cores(value: bytes) -> set[str]:
    """The part of value's base64 that is the same whatever bytes come before or after it in a longer text."""
    cores = set()
    for offset in range(3):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            encoded = encode(b"\0" * offset + value).decode("ascii")
            start = -(-offset * 8 // 6)
            end = (offset + len(value)) * 8 // 6
            core = encoded[start:end]
            if len(core) >= MIN_ENCODED_LENGTH:
                cores.add(core)
    return cores


def secret_forms(secret: str) -> set[str]:
    """Every text a secret may show up as in a log line (each line of a multi-line secret on its own)."""
    forms = set()
    for part in [secret, *secret.splitlines()]:
        part = part.strip("\r")
        if not part:
            continue
        forms.add(part)
        if len(part) >= MIN_ENCODED_LENGTH:
            forms.update(form for form in (quote(part, safe=""), quote_plus(part, safe="")) if form != part)
            forms.update(_base64_cores(part.encode("utf-8")))
    return forms


class SecretMasker:
    def __init__(self, secrets):
        forms = set()
        for secret in secrets:
            forms |= secret_forms(secret)
        # The longest first, so a secret is masked whole rather than around a shorter one inside it.
        ordered = sorted(forms, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def mask(self, text: str) -> str:
        return self._pattern.sub(MASK, text) if self._pattern else text
