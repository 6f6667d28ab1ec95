"""Parsing pasted SSH public keys, with a reason for every refusal."""

from dataclasses import dataclass

import asyncssh

ALLOWED_ALGORITHMS = {
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
}
MIN_RSA_BITS = 2048


class InvalidKey(ValueError):
    """A pasted key that cannot be registered; the message says why."""


PRIVATE_KEY_MESSAGE = (
    "That is a private key: paste the public key (the .pub file) instead, and keep the private one secret."
)

# Markers of private key files: PEM and OpenSSH (-----BEGIN … PRIVATE KEY-----), SSH.com, and PuTTY's .ppk.
_PRIVATE_KEY_MARKERS = ("PRIVATE KEY", "PuTTY-User-Key-File", "Private-Lines:", "Private-MAC:")


def looks_like_private_key(text: str) -> bool:
    """True when the text holds (part of) a private key file, which must never be stored or shown back."""
    return any(marker.lower() in text.lower() for marker in _PRIVATE_KEY_MARKERS)


@dataclass(frozen=True)
class ParsedKey:
    key_type: str
    bits: int | None
    fingerprint: str
    public_key: str
    comment: str


def parse_public_key(text: str) -> ParsedKey:
    """Parse exactly one OpenSSH public key line, refusing options, private keys and weak keys."""
    text = text.strip()
    if not text:
        raise InvalidKey("Paste a public key, such as the contents of ~/.ssh/id_ed25519.pub.")
    if looks_like_private_key(text):
        raise InvalidKey(PRIVATE_KEY_MESSAGE)
    lines = [line for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n") if line.strip()]
    if len(lines) > 1:
        if sum(1 for line in lines if _looks_like_key(line)) > 1:
            raise InvalidKey("Paste one key at a time: this text holds several keys.")
        raise InvalidKey("A public key is a single line; this text has line breaks inside it.")
    line = lines[0].strip()
    first = line.split(None, 1)[0]
    if first not in ALLOWED_ALGORITHMS and not first.startswith("ssh-") and not first.startswith("ecdsa-"):
        if _has_options(line):
            raise InvalidKey("Key options (such as command= or from=) are not allowed: paste the bare key.")
        # The text is not repeated: it may be something secret pasted by mistake.
        raise InvalidKey("Unrecognized key: a public key starts with its type, such as ssh-ed25519.")
    if first not in ALLOWED_ALGORITHMS:
        raise InvalidKey(
            f"Key type {first} is not accepted. Use ed25519, ecdsa, rsa (2048 bits or more), "
            "sk-ssh-ed25519 or sk-ecdsa."
        )
    try:
        key = asyncssh.import_public_key(line)
    except (asyncssh.KeyImportError, ValueError) as exc:
        raise InvalidKey(f"This public key could not be read: {exc}.") from exc
    algorithm = key.get_algorithm()
    if algorithm not in ALLOWED_ALGORITHMS:
        raise InvalidKey(f"Key type {algorithm} is not accepted.")
    bits = None
    if algorithm == "ssh-rsa":
        bits = key.pyca_key.key_size
        if bits < MIN_RSA_BITS:
            raise InvalidKey(f"RSA keys must have at least {MIN_RSA_BITS} bits; this one has {bits}.")
    comment = key.get_comment() or ""
    key.set_comment(None)
    return ParsedKey(
        key_type=algorithm,
        bits=bits,
        fingerprint=key.get_fingerprint("sha256"),
        public_key=key.export_public_key("openssh").decode().strip(),
        comment=comment,
    )


def _looks_like_key(line: str) -> bool:
    return any(part in ALLOWED_ALGORITHMS for part in line.split())


def _has_options(line: str) -> bool:
    parts = line.split()
    return any(part in ALLOWED_ALGORITHMS for part in parts[1:])
