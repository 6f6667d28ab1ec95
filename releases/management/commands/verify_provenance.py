"""manage.py verify_provenance <file.zip> <envelope.json>: check that this portal built the file, and from what.

The envelope is the DSSE envelope of the artifact (BuildArtifact.provenance), or a bundle holding it as the
attestations API answers ({"dsseEnvelope": …}). It is checked with the portal's key, current or from
SECRET_KEY_FALLBACKS; the command exits non-zero, saying why, when it does not verify."""

import hashlib
import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from releases import provenance


class Command(BaseCommand):
    help = "Verify an artifact against its signed provenance and print the repository, commit and build."

    def add_arguments(self, parser):
        parser.add_argument("artifact", type=Path, help="the artifact's zip")
        parser.add_argument("envelope", type=Path, help="its DSSE envelope (JSON)")

    def handle(self, *args, artifact: Path, envelope: Path, **options):
        digest = hashlib.sha256()
        try:
            with artifact.open("rb") as content:
                while chunk := content.read(1024 * 1024):
                    digest.update(chunk)
            document = json.loads(envelope.read_text())
        except OSError as error:
            raise CommandError(f"{error.filename}: {error.strerror}")
        except ValueError as error:
            raise CommandError(f"{envelope}: not JSON ({error})")
        if isinstance(document, dict) and "dsseEnvelope" in document:
            document = document["dsseEnvelope"]
        try:
            statement = provenance.verify(document, digest.hexdigest())
        except provenance.ProvenanceError as error:
            raise CommandError(f"{artifact} does not verify: {error}")
        summary = provenance.summary(statement)
        self.stdout.write(f"Verified: {artifact} (sha256:{digest.hexdigest()})")
        for label in ("repository", "commit", "build", "artifact"):
            self.stdout.write(f"{label}: {summary[label]}")
