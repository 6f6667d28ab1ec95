"""Provenance endpoints: the portal's public signing key, and an artifact's signed statements looked up by its
digest in the shape of GitHub's attestations API, so that `gh attestation`-like scripts find them."""

import re

from django.http import HttpRequest
from ninja import Field, Query, Schema

from portal.access import Principal
from portal.api import principal, session_auth, token_auth
from portal.api_scopes import READ_REPO
from portal.validators import field_error
from releases import provenance
from releases.api.router import router
from releases.models import BuildArtifact
from repos.access import get_repo_for_principal
from repos.models import Role

SUBJECT_DIGEST = re.compile(r"sha256:[0-9a-f]{64}\Z")
# The Sigstore bundle format GitHub answers with; ours holds the DSSE envelope and names the key by its id (there is
# no certificate nor transparency log entry: the key is the portal's own, published below).
BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"


def anonymous(request: HttpRequest) -> Principal:
    """Nobody signed in: accepted by the operations anyone may call."""
    return Principal()


class ProvenanceKeyOut(Schema):
    keyid: str
    public_key: str
    algorithm: str


class AttestationOut(Schema):
    bundle: dict
    repository_id: int
    build_url: str


class AttestationsOut(Schema):
    attestations: list[AttestationOut]


class AttestationsQuery(Schema):
    # GitHub's parameter: the object answered is GitHub's shape, not one of the API's paged lists.
    per_page: int = Field(30, ge=1, le=100, description="How many of the newest attestations to return.")


@router.get(
    "/builds/provenance-key",
    # Every token holds `api`: the key is public, so no other scope is asked, and no sign-in either.
    scope="api",
    auth=[token_auth, session_auth, anonymous],
    response=ProvenanceKeyOut,
    tags=["provenance"],
    summary="The public key that signs build provenance",
    description="Ed25519; `keyid` (the sha256 of the raw key, hex) is what each DSSE signature names. Statements "
    "signed before the portal's key was rotated verify with keys it no longer publishes here.",
)
def get_provenance_key(request: HttpRequest):
    return provenance.public_key()


@router.get(
    "/repos/{owner}/{repo}/attestations/{subject_digest}",
    scope=READ_REPO,
    response=AttestationsOut,
    tags=["provenance"],
    summary="The signed provenance of a repository's artifacts with this digest",
    description="`subject_digest` is `sha256:<hex>`. One attestation per stored artifact of the repository's "
    "builds with those bytes (expired ones included: their statements still say where the bytes came from), "
    "the newest `per_page` of them first.",
)
def list_attestations(
    request: HttpRequest, owner: str, repo: str, subject_digest: str, query: Query[AttestationsQuery]
):
    repository = get_repo_for_principal(principal(request), owner, repo, Role.READ)
    if not SUBJECT_DIGEST.match(subject_digest):
        raise field_error("A subject digest is sha256: followed by 64 lowercase hex digits.", "subject_digest")
    artifacts = (
        BuildArtifact.objects.filter(
            build__repository=repository, sha256=subject_digest.removeprefix("sha256:"), provenance__isnull=False
        )
        .select_related("build__repository__owner")
        .order_by("-created", "-id")
    )
    return {
        "attestations": [
            {
                "bundle": {
                    "mediaType": BUNDLE_MEDIA_TYPE,
                    "verificationMaterial": {"publicKey": {"hint": artifact.provenance["signatures"][0]["keyid"]}},
                    "dsseEnvelope": artifact.provenance,
                },
                "repository_id": repository.pk,
                "build_url": artifact.build.web_url,
            }
            for artifact in artifacts[: query.per_page]
        ]
    }
