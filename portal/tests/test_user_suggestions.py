"""Usernames suggested as a field that names people is typed: signed-in users only, usernames only."""

import pytest
from django.urls import reverse

from portal import services as accounts
from repos import services as repo_services
from repos.models import Role

URL = "/-/users/suggest"


@pytest.fixture
def people(db):
    """alice, bob (a collaborator of alice/project), the organization bobcats and a deactivated bobby, and ten more
    whose names start with b."""
    alice = accounts.create_user(actor=None, username="alice", email="alice@example.com", password="pw-alice-123")
    bob = accounts.create_user(actor=None, username="bob", email="bob@example.com", password="pw-bob-1234")
    accounts.create_organization(actor=alice, name="bobcats")
    bobby = accounts.create_user(actor=None, username="bobby", email="bobby@example.com", password="pw-bobby-12")
    accounts.set_user_active(bobby, actor=None, active=False)
    for n in range(10):
        accounts.create_user(actor=None, username=f"b{n:02d}", email=f"b{n}@example.com", password="pw-many-1234")
    repo = repo_services.create_repository(actor=alice, owner=alice, name="project", initialize=True)
    repo_services.set_collaborator(repo, bob, actor=alice, role=Role.WRITE)
    return {"alice": alice, "bob": bob, "repo": repo}


def test_it_suggests_active_people_by_username_and_never_their_email(client, people):
    client.force_login(people["alice"])
    response = client.get(URL, {"q": "bob"})
    assert response.status_code == 200
    assert response.json() == {"users": ["bob"]}
    assert "example.com" not in response.content.decode()
    # An email address finds nobody: only usernames are searched.
    assert client.get(URL, {"q": "bob@example"}).json() == {"users": []}
    assert client.get(URL, {"q": ""}).json() == {"users": []}


def test_it_suggests_at_most_ten_names_starting_with_the_text_first(client, people):
    client.force_login(people["alice"])
    names = client.get(URL, {"q": "b"}).json()["users"]
    assert len(names) == 10
    assert names == sorted(names) and names[0] == "b00"


def test_people_with_a_role_on_the_repository_come_first(client, people):
    client.force_login(people["alice"])
    names = client.get(URL, {"q": "b", "repo": "alice/project"}).json()["users"]
    assert names[0] == "bob" and len(names) == 10


def test_a_repository_the_user_cannot_read_changes_nothing(client, people):
    mallory = accounts.create_user(actor=None, username="mallory", email="m@example.com", password="pw-mallory-1")
    client.force_login(mallory)
    names = client.get(URL, {"q": "b", "repo": "alice/project"}).json()["users"]
    assert names[0] == "b00"


def test_anonymous_visitors_are_sent_to_sign_in(client, people):
    response = client.get(URL, {"q": "bob"})
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_the_fields_that_name_people_ask_for_suggestions(client, people, admin):
    client.force_login(people["alice"])
    collaborators = client.get(reverse("repos:collaborators", args=["alice", "project"])).content.decode()
    assert 'data-suggest-users-field="username"' in collaborators and "portal/suggest.js" in collaborators
    client.force_login(admin)
    keys = client.get(reverse("portal:admin_keys")).content.decode()
    assert 'data-suggest-users-field="username"' in keys and "portal/suggest.js" in keys
