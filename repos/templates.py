"""Repository templates: what "New repository" offers to start from, beside an empty repository or a README.

A template is registered by the app that owns what it makes, in its AppConfig.ready() (the release template is
releases': a sample app with its build, deployment and pipeline files and environments). repos lists them and calls
the chosen one's creator without importing that app, as it announces pushes without knowing who listens.

A creator takes the new repository form's fields as keyword arguments (actor, owner, name, description, visibility,
default_branch) and returns the repository; it creates it through repos.services.create_repository, so the same
access check and name rules apply, and it leaves nothing behind when it fails.
"""

from collections.abc import Callable
from dataclasses import dataclass

from repos.models import Repository

Creator = Callable[..., Repository]


@dataclass(frozen=True)
class RepositoryTemplate:
    key: str
    label: str
    description: str
    create: Creator


_registry: dict[str, RepositoryTemplate] = {}


def register(key: str, label: str, description: str, create: Creator) -> RepositoryTemplate:
    """Offer a template on the new repository page; registering the same key again replaces it."""
    template = RepositoryTemplate(key=key, label=label, description=description, create=create)
    _registry[key] = template
    return template


def registered() -> list[RepositoryTemplate]:
    """The templates on offer, in the order they were registered."""
    return list(_registry.values())


def find(key: str) -> RepositoryTemplate | None:
    return _registry.get(key)
