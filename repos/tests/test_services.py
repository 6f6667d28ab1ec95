import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404

from portal.models import AuditEvent, User
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


def test_an_admin_collaborator_cannot_transfer_the_repository_away_from_its_owner(private_repo, alice, bob):
    from portal import services as accounts

    services.set_collaborator(private_repo, bob, actor=alice, role=Role.ADMIN)
    accounts.create_organization(actor=bob, name="bobs-org")
    for new_owner in (bob, User.objects.get(username="bobs-org")):
        with pytest.raises(PermissionDenied, match="Only the owner of alice/project can transfer it"):
            services.transfer_repository(private_repo, actor=bob, new_owner=new_owner)
    private_repo.refresh_from_db()
    assert private_repo.owner == alice
    assert not AuditEvent.objects.filter(action="repo.transfer").exists()


def test_an_owner_of_the_owning_organization_can_transfer_its_repository(alice, bob):
    from portal import services as accounts

    org = accounts.create_organization(actor=alice, name="acme")
    repo = services.create_repository(actor=alice, owner=org, name="tool")
    services.transfer_repository(repo, actor=alice, new_owner=alice)
    assert repo.full_name == "alice/tool"


def test_a_rename_that_loses_a_race_for_the_name_is_refused_cleanly(private_repo, alice):
    other = services.create_repository(actor=alice, owner=alice, name="other")
    # As if another request took the name between the check and the save.
    other.name = "PROJECT"
    with pytest.raises(ValidationError, match="already has a repository named"):
        services._save_name(other, ["name"])
    other.refresh_from_db()
    assert other.name == "other"
