"""Organization and team pages through the Django client."""

import pytest

from portal import services as accounts
from portal.models import AuditEvent, Team, User
from repos import services as repo_services
from repos.access import NO_ACCESS, is_org_owner, role_for
from repos.models import Role


@pytest.fixture
def acme(alice, bob):
    """acme: alice owns it; bob is in its devs team, which writes to acme/app."""
    org = accounts.create_organization(actor=alice, name="acme")
    devs = accounts.create_team(org, actor=alice, name="devs", description="Builds the app")
    accounts.add_team_member(devs, bob, actor=alice)
    app = repo_services.create_repository(actor=alice, owner=org, name="app")
    repo_services.set_team_role(app, devs, actor=alice, role=Role.WRITE)
    return org


def test_creating_an_organization_makes_the_creator_an_owner(client, alice):
    client.force_login(alice)
    response = client.post("/orgs/new", {"name": "acme", "full_name": "Acme Inc.", "description": "Tools"})
    assert response["Location"] == "/acme"
    org = User.objects.get(username="acme")
    assert org.is_organization and org.full_name == "Acme Inc."
    assert is_org_owner(alice, org)
    assert list(Team.objects.get(organization=org, name="owners").members.all()) == [alice]
    assert AuditEvent.objects.filter(action="org.create", target_id=str(org.pk)).exists()
    page = client.get("/acme").content.decode()
    assert "Acme Inc." in page and "owners" in page and "/orgs/acme/teams/new" in page


@pytest.mark.parametrize(
    ("name", "reason"), [("settings", "reserved"), ("bob", "already taken"), ("-acme", "cannot start with")]
)
def test_a_bad_organization_name_is_refused_with_the_reason(client, alice, bob, name, reason):
    client.force_login(alice)
    response = client.post("/orgs/new", {"name": name})
    assert response.status_code == 400
    assert reason in response.content.decode()
    assert not User.objects.organizations().exists()


def test_anonymous_users_are_sent_to_sign_in_to_create_an_organization(client, db):
    assert "/accounts/login/" in client.get("/orgs/new")["Location"]
    assert not User.objects.organizations().exists()


def test_owners_create_teams(client, acme, alice):
    client.force_login(alice)
    response = client.post("/orgs/acme/teams/new", {"name": "qa", "description": "Tests releases"})
    assert response["Location"] == "/orgs/acme/teams/qa"
    assert Team.objects.filter(organization=acme, name="qa").exists()
    response = client.post("/orgs/acme/teams/new", {"name": "QA"})
    assert response.status_code == 400
    assert "already exists" in response.content.decode()
    assert "qa" in client.get("/orgs/acme/teams").content.decode()


def test_team_membership_gives_the_teams_role_on_a_repository(client, acme, alice, carol):
    app = acme.repositories.get(name="app")
    assert role_for(carol, app) == NO_ACCESS
    client.force_login(alice)
    response = client.post("/orgs/acme/teams/devs/members", {"username": "carol"})
    assert response["Location"] == "/orgs/acme/teams/devs"
    assert role_for(carol, app) == Role.WRITE
    page = client.get("/orgs/acme/teams/devs").content.decode()
    assert "carol" in page and "acme/app" in page and "write" in page

    client.post("/orgs/acme/teams/devs/members/carol/remove", {"confirmed": "1"})
    assert role_for(carol, app) == NO_ACCESS
    actions = list(AuditEvent.objects.filter(subject=carol).values_list("action", flat=True))
    assert sorted(actions) == ["team.member_add", "team.member_remove"]


def test_adding_an_unknown_member_says_so(client, acme, alice):
    client.force_login(alice)
    response = client.post("/orgs/acme/teams/devs/members", {"username": "nobody"})
    assert response.status_code == 400
    assert "There is no active user named" in response.content.decode()


def test_the_owners_team_keeps_its_last_member(client, acme, alice):
    client.force_login(alice)
    response = client.post("/orgs/acme/teams/owners/members/alice/remove", {"confirmed": "1"}, follow=True)
    assert "The owners team must keep at least one member" in response.content.decode()
    assert is_org_owner(alice, acme)


def test_members_who_are_not_owners_see_teams_read_only(client, acme, bob, carol):
    client.force_login(bob)
    assert client.get("/orgs/acme/teams").status_code == 200
    page = client.get("/orgs/acme/teams/devs").content.decode()
    assert "bob" in page and "Add a member" not in page and "Remove" not in page
    assert client.get("/orgs/acme/teams/new").status_code == 403
    assert client.post("/orgs/acme/teams/new", {"name": "mine"}).status_code == 403
    assert client.post("/orgs/acme/teams/devs/members", {"username": "carol"}).status_code == 403
    assert client.post("/orgs/acme/teams/devs/members/bob/remove").status_code == 403
    assert not Team.objects.filter(name="mine").exists()
    assert list(Team.objects.get(organization=acme, name="devs").members.all()) == [bob]
    assert "/orgs/acme/teams/new" not in client.get("/acme").content.decode()


@pytest.mark.parametrize("who", ["anonymous", "mallory"])
def test_outsiders_get_404_on_team_pages(client, acme, mallory, who):
    if who == "mallory":
        client.force_login(mallory)
    for url in ("/orgs/acme/teams", "/orgs/acme/teams/new", "/orgs/acme/teams/devs", "/orgs/acme/teams/owners"):
        assert client.get(url).status_code == 404, url
    assert client.post("/orgs/acme/teams/devs/members", {"username": "mallory"}).status_code == 404
    assert client.post("/orgs/acme/teams/new", {"name": "x"}).status_code == 404
    assert not Team.objects.filter(members=mallory).exists()
    assert Team.objects.filter(organization=acme).count() == 2


def test_the_organization_page_shows_teams_to_members_only(client, acme, bob, mallory):
    client.force_login(bob)
    page = client.get("/acme").content.decode()
    assert "devs" in page and "app" in page
    client.force_login(mallory)
    page = client.get("/acme").content.decode()
    assert client.get("/acme").status_code == 200
    assert "devs" not in page and "acme/app" not in page and "/acme/app" not in page


def test_unknown_teams_and_organizations_are_404(client, acme, alice):
    client.force_login(alice)
    assert client.get("/orgs/acme/teams/nope").status_code == 404
    assert client.get("/orgs/nope/teams").status_code == 404
    # A person is not an organization.
    assert client.get("/orgs/alice/teams").status_code == 404


def test_a_team_page_lists_only_the_grants_its_viewer_can_read(client, acme, alice, carol):
    ops = accounts.create_team(acme, actor=alice, name="ops")
    accounts.add_team_member(ops, carol, actor=alice)
    client.force_login(carol)
    page = client.get("/orgs/acme/teams/devs").content.decode()
    assert "acme/app" not in page
    client.force_login(alice)
    assert "acme/app" in client.get("/orgs/acme/teams/devs").content.decode()


def test_the_home_page_lists_the_repositories_its_viewer_can_read(client, acme, alice, bob, mallory):
    repo_services.create_repository(actor=alice, owner=alice, name="private-notes")
    client.force_login(bob)
    page = client.get("/").content.decode()
    assert "acme/app" in page and "alice/private-notes" not in page
    client.force_login(mallory)
    assert "acme/app" not in client.get("/").content.decode()
