"""Where an artifact's bytes came from: a signed provenance statement per artifact a build stores.

The statement is an in-toto Statement v1 whose subject is the artifact's zip (its name and sha256) and whose
predicate is SLSA provenance v1: what was built (the repository, the ref, the commit, the buildspec and its digest,
the variables the build was started with), how (the trigger, the build's number, the network and the time limit),
by whom (the portal, named by its URL) and when. It is signed as a DSSE envelope with Ed25519, so that a deployment
can check, before it takes the bytes, that this portal built them from that commit.

The buildType, <PORTAL_BASE_URL>/-/build-types/buildspec/v0.2, names "a CodeBuild buildspec version 0.2 run by
this portal" and so says how to read externalParameters and internalParameters: a URI of the portal's own, like the
builder's id (the portal's URL), so both change only when the portal moves to another address, and its last part
changes only when those parameters change meaning. A policy checks the two together.

The signing key is not a file: it is derived with HKDF-SHA256 from SECRET_KEY (info SIGNING_KEY_INFO). Every
machine that runs builds already holds SECRET_KEY (it shares the database and the signed links), so every one of
them signs with the same key, and there is no second secret to copy, back up or lose. Whoever reads SECRET_KEY can
sign, which is no more than they could do already (sign in as anyone). Rotating SECRET_KEY rotates the signing
key: keep the old key in SECRET_KEY_FALLBACKS and statements signed with it still verify, as Django's signed
values do. The public key is published by the API (GET /api/v1/builds/provenance-key) with its keyid, the sha256
of its raw 32 bytes in hex, which each signature names."""

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
BUILD_TYPE_PATH = "/-/build-types/buildspec/v0.2"
SIGNING_KEY_INFO = b"portal provenance signing key"
ALGORITHM = "ed25519"


class ProvenanceError(ValueError):
    """An envelope that does not prove what it is asked to: the message says which check failed."""


@dataclass(frozen=True)
class BuildInputs:
    """What the job knew when it ran the build and the statement records: the buildspec's digest and the settings
    the build ran with (they may change before the result is recorded)."""

    buildspec_sha256: str
    network: bool
    timeout_minutes: int


# Keys.


def _derive(secret: str) -> Ed25519PrivateKey:
    seed = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=SIGNING_KEY_INFO).derive(secret.encode())
    return Ed25519PrivateKey.from_private_bytes(seed)


def _raw(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(public: Ed25519PublicKey) -> str:
    return hashlib.sha256(_raw(public)).hexdigest()


def signing_key() -> Ed25519PrivateKey:
    return _derive(settings.SECRET_KEY)


def verifying_keys() -> dict[str, Ed25519PublicKey]:
    """The current key and those of SECRET_KEY_FALLBACKS, by keyid."""
    secrets = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    keys = {}
    for secret in secrets:
        public = _derive(secret).public_key()
        keys.setdefault(key_id(public), public)
    return keys


def public_key() -> dict:
    """The current public key as the API publishes it."""
    public = signing_key().public_key()
    pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return {"keyid": key_id(public), "public_key": pem.decode(), "algorithm": ALGORITHM}


# The statement.


def _timestamp(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def statement(build, *, name: str, sha256: str, inputs: BuildInputs, log_sha256: str = "") -> dict:
    """The in-toto statement about the artifact name.zip (sha256) that build made."""
    repository = build.repository
    predicate = {
        "buildDefinition": {
            "buildType": settings.PORTAL_BASE_URL + BUILD_TYPE_PATH,
            "externalParameters": {
                "repository": repository.http_url,
                "ref": build.ref,
                "buildspec": {"path": build.buildspec_path, "digest": {"sha256": inputs.buildspec_sha256}},
                # Given when the build was started; never secrets (those are neither kept on the build nor here).
                "variables": dict(build.start_variables),
            },
            "internalParameters": {
                "trigger": build.trigger,
                "buildNumber": build.number,
                "network": inputs.network,
                "timeoutMinutes": inputs.timeout_minutes,
            },
            "resolvedDependencies": [{"uri": repository.http_url, "digest": {"gitCommit": build.head_sha}}],
        },
        "runDetails": {
            "builder": {"id": settings.PORTAL_BASE_URL},
            "metadata": {
                "invocationId": build.web_url,
                "startedOn": _timestamp(build.build_started),
                "finishedOn": _timestamp(build.build_ended),
            },
            "byproducts": [{"name": "build.log", "digest": {"sha256": log_sha256}}] if log_sha256 else [],
        },
    }
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": f"{name}.zip", "digest": {"sha256": sha256}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": predicate,
    }


# DSSE.


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE's pre-authentication encoding: what is signed, so that the type cannot be swapped under a signature."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %b %d %b" % (len(kind), kind, len(payload), payload)


def sign(statement: dict) -> dict:
    """The statement as a DSSE envelope signed with the portal's key."""
    payload = json.dumps(statement, sort_keys=True, separators=(",", ":")).encode()
    key = signing_key()
    signature = key.sign(pae(PAYLOAD_TYPE, payload))
    return {
        "payloadType": PAYLOAD_TYPE,
        "payload": base64.b64encode(payload).decode(),
        "signatures": [{"keyid": key_id(key.public_key()), "sig": base64.b64encode(signature).decode()}],
    }


def attest(build, *, name: str, sha256: str, inputs: BuildInputs, log_sha256: str = "") -> dict:
    """The signed envelope of an artifact that build stored."""
    return sign(statement(build, name=name, sha256=sha256, inputs=inputs, log_sha256=log_sha256))


def _b64(value, what: str) -> bytes:
    if not isinstance(value, str):
        raise ProvenanceError(f"The envelope's {what} is not a base64 string.")
    try:
        # DSSE allows either alphabet.
        return base64.b64decode(value.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        raise ProvenanceError(f"The envelope's {what} is not valid base64.")


def digest_of(artifact: bytes | str) -> str:
    """The sha256 in hex of the artifact's bytes, or the digest given ("<hex>" or "sha256:<hex>")."""
    if isinstance(artifact, bytes | bytearray | memoryview):
        return hashlib.sha256(artifact).hexdigest()
    digest = artifact.strip().lower().removeprefix("sha256:")
    if len(digest) != 64 or any(char not in "0123456789abcdef" for char in digest):
        raise ProvenanceError(f"{artifact!r} is not a sha256 digest (64 hex digits, optionally after 'sha256:').")
    return digest


def verify(envelope: dict, artifact: bytes | str) -> dict:
    """The statement of envelope, after checking that the portal's key (current or a fallback) signed it, that it
    is an in-toto statement with the SLSA v1 predicate, and that artifact (its bytes, or their sha256) is its
    subject. Raises ProvenanceError saying what failed."""
    expected = digest_of(artifact)
    if not isinstance(envelope, dict) or not {"payloadType", "payload", "signatures"} <= envelope.keys():
        raise ProvenanceError("Not a DSSE envelope: it needs payloadType, payload and signatures.")
    payload_type = envelope["payloadType"]
    if payload_type != PAYLOAD_TYPE:
        raise ProvenanceError(f"The envelope's payloadType is {payload_type!r}, not {PAYLOAD_TYPE!r}.")
    payload = _b64(envelope["payload"], "payload")
    signatures = envelope["signatures"]
    if not isinstance(signatures, list) or not signatures:
        raise ProvenanceError("The envelope holds no signature.")
    keys = verifying_keys()
    message = pae(payload_type, payload)
    named = []
    for signature in signatures:
        if not isinstance(signature, dict):
            raise ProvenanceError("A signature of the envelope is not an object with keyid and sig.")
        keyid = signature.get("keyid") or ""
        named.append(keyid or "no keyid")
        candidates = [keys[keyid]] if keyid in keys else list(keys.values()) if not keyid else []
        raw = _b64(signature.get("sig"), "signature")
        for key in candidates:
            try:
                key.verify(raw, message)
            except InvalidSignature:
                continue
            return _statement(payload, expected)
    raise ProvenanceError(
        f"No signature verifies with the portal's key (keyid {next(iter(keys))}): the envelope was changed or "
        f"signed by another key (signatures by {', '.join(named)})."
    )


def _statement(payload: bytes, expected: str) -> dict:
    try:
        found = json.loads(payload)
    except ValueError:
        raise ProvenanceError("The signed payload is not JSON.")
    if not isinstance(found, dict) or found.get("_type") != STATEMENT_TYPE:
        raise ProvenanceError(f"The signed payload is not an in-toto statement ({STATEMENT_TYPE}).")
    if found.get("predicateType") != PREDICATE_TYPE:
        raise ProvenanceError(f"The statement's predicateType is {found.get('predicateType')!r}, not {PREDICATE_TYPE}.")
    subjects = [subject for subject in found.get("subject") or [] if isinstance(subject, dict)]
    digests = [str((subject.get("digest") or {}).get("sha256", "")) for subject in subjects]
    if expected not in digests:
        raise ProvenanceError(
            f"The artifact's sha256 {expected} is not the statement's subject ({', '.join(digests) or 'none'})."
        )
    return found


def summary(statement: dict) -> dict:
    """What a person checks first: the repository, the commit, the build and the artifact."""
    predicate = statement.get("predicate") or {}
    definition = predicate.get("buildDefinition") or {}
    dependencies = definition.get("resolvedDependencies") or [{}]
    metadata = (predicate.get("runDetails") or {}).get("metadata") or {}
    return {
        "repository": (definition.get("externalParameters") or {}).get("repository", ""),
        "commit": (dependencies[0].get("digest") or {}).get("gitCommit", ""),
        "build": metadata.get("invocationId", ""),
        "artifact": ", ".join(subject.get("name", "") for subject in statement.get("subject") or []),
    }
