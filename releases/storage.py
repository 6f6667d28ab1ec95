"""Where artifacts are kept: once per sha256, through Django's storage API.

The `artifacts` storage of settings.STORAGES when one is configured (an S3-compatible store through
django-storages), else files under PORTAL_BUILDS_ROOT/store. A name is the content's digest, so the same bytes made
by two builds are stored once, and a stored file is never overwritten."""

from pathlib import Path

from django.conf import settings
from django.core.files import File
from django.core.files.storage import FileSystemStorage, Storage, storages


def artifact_storage() -> Storage:
    if "artifacts" in settings.STORAGES:
        return storages["artifacts"]
    return FileSystemStorage(location=Path(settings.PORTAL_BUILDS_ROOT) / "store")


def store_artifact(path: Path, name: str) -> None:
    """Keep the file at path under name (a digest's name), unless the store already holds it."""
    storage = artifact_storage()
    if storage.exists(name):
        return
    with path.open("rb") as content:
        saved = storage.save(name, File(content))
    if saved != name:
        # Another build stored the same bytes at the same moment: keep one copy.
        storage.delete(saved)
