import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404

from portal.models import AuditEvent
from repos import git, services
from repos.access import get_repo_for_user
from repos.models import Repository, Role


def test_it_creates_a_bare_repository_named_by_id(alice, settings):
    repo = services.create_repository(actor=alice, owner=alice, name="tool", initialize=True)
    assert repo.path == settings.GIT_ROOT / f"{repo.pk}.git"
    assert [b.name for b in git.branches(repo.path)] == ["main"]
    assert AuditEvent.objects.filter(action="repo.create", target_id=str(repo.pk)).exists()


@pytest.mark.parametrize("name", ["..", "-x", "a/b", "rеpo", "x.git", ".", "", "a..b", "new"])
def test_it_refuses_bad_repository_names(alice, name):
    with pytest.raises(ValidationError):
        services.create_repository(actor=alice, owner=alice, name=name)
    assert not Repository.objects.exists()


def test_outsiders_get_404_and_readers_cannot_write(private_repo, carol, mallory, bob):
    with pytest.raises(Http404):
        get_repo_for_user(mallory, "alice", "project")
    assert get_repo_for_user(carol, "alice", "project") == private_repo
    with pytest.raises(PermissionDenied):
        get_repo_for_user(carol, "alice", "project", need=Role.WRITE)
    assert get_repo_for_user(bob, "alice", "project", need=Role.WRITE) == private_repo


def test_rename_keeps_the_directory(private_repo, alice):
    path = private_repo.path
    services.rename_repository(private_repo, actor=alice, name="renamed")
    assert private_repo.path == path
    assert get_repo_for_user(alice, "alice", "renamed") == private_repo
