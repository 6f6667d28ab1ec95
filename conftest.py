"""Shared fixtures: the named people of the house style and real repositories on disk."""

import pytest

from portal import services as accounts
from repos import services as repo_services
from repos.models import Role


@pytest.fixture(autouse=True)
def _isolated_storage(settings, tmp_path):
    """Every test gets its own GIT_ROOT, so repositories never leak between tests."""
    settings.GIT_ROOT = tmp_path / "git"
    settings.GIT_ROOT.mkdir()
    settings.VAR_DIR = tmp_path / "var"
    settings.VAR_DIR.mkdir()


def _person(username: str, *, admin: bool = False):
    user = accounts.create_user(
        actor=None,
        username=username,
        email=f"{username}@example.com",
        password="correct horse battery staple",
        is_admin=admin,
    )
    return user


@pytest.fixture
def password():
    return "correct horse battery staple"


@pytest.fixture
def admin(db):
    return _person("root", admin=True)


@pytest.fixture
def alice(db):
    return _person("alice")


@pytest.fixture
def bob(db):
    return _person("bob")


@pytest.fixture
def carol(db):
    return _person("carol")


@pytest.fixture
def mallory(db):
    return _person("mallory")


@pytest.fixture
def private_repo(alice, bob, carol):
    """alice/project: private, alice owns, bob writes, carol reads, with one README commit on main."""
    repo = repo_services.create_repository(actor=alice, owner=alice, name="project", initialize=True)
    repo_services.set_collaborator(repo, bob, actor=alice, role=Role.WRITE)
    repo_services.set_collaborator(repo, carol, actor=alice, role=Role.READ)
    return repo
