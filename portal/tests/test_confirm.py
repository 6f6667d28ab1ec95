"""The confirmation step of destructive actions: a POST without confirmed=1 shows what will happen and changes
nothing; the page's button posts the same fields with confirmed=1, and that acts."""

import re
from collections.abc import Callable
from dataclasses import dataclass

import asyncssh
import pytest
from django.test import Client
from django.urls import reverse
from django.utils.html import escape

from portal import services as accounts
from portal.models import AccessToken, Invitation, RevokedKeyFingerprint, SshKey
from repos import services as repo_services
from repos.access import role_for
from repos.models import Repository, Role


def public_key() -> str:
    return asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()


@dataclass
class Action:
    who: str
    url: str
    data: dict
    title: str
    done: Callable[[], bool]


def _own_key(people) -> Action:
    key = accounts.add_ssh_key(people["alice"], actor=people["alice"], title="laptop", public_key=public_key())
    return Action(
        "alice",
        reverse("portal:settings_key_delete", args=[key.pk]),
        {},
        "Delete the SSH key laptop?",
        lambda: not SshKey.objects.filter(pk=key.pk).exists(),
    )


def _token(people) -> Action:
    token, _ = accounts.create_access_token(
        people["alice"], actor=people["alice"], name="ci", scopes=["api"], expires_at=None
    )
    return Action(
        "alice",
        reverse("portal:settings_token_revoke", args=[token.pk]),
        {},
        "Revoke the token ci?",
        lambda: not AccessToken.objects.filter(pk=token.pk).exists(),
    )


def _admin_remove(people) -> Action:
    key = accounts.add_ssh_key(people["bob"], actor=people["bob"], title="laptop", public_key=public_key())
    return Action(
        "root",
        reverse("portal:admin_key_remove", args=[key.pk]),
        {"next": "/-/admin/keys?q=bob"},
        "Remove bob's key laptop?",
        lambda: not SshKey.objects.filter(pk=key.pk).exists(),
    )


def _admin_revoke(people) -> Action:
    key = accounts.add_ssh_key(people["bob"], actor=people["bob"], title="laptop", public_key=public_key())
    return Action(
        "root",
        reverse("portal:admin_key_revoke", args=[key.pk]),
        {"reason": "stolen"},
        "Revoke bob's key laptop?",
        lambda: RevokedKeyFingerprint.objects.filter(fingerprint=key.fingerprint, reason="stolen").exists(),
    )


def _admin_lift(people) -> Action:
    key = accounts.add_ssh_key(people["bob"], actor=people["bob"], title="laptop", public_key=public_key())
    revocation = accounts.revoke_ssh_key(key, actor=people["root"])
    return Action(
        "root",
        reverse("portal:admin_key_lift", args=[revocation.pk]),
        {},
        f"Lift the block on {key.fingerprint}?",
        lambda: not RevokedKeyFingerprint.objects.exists(),
    )


def _deploy_key(people) -> Action:
    repo = Repository.objects.get(name="project")
    key = repo_services.add_deploy_key(repo, actor=people["alice"], title="ci", public_key=public_key())
    return Action(
        "alice",
        f"/alice/project/settings/keys/{key.pk}/remove",
        {},
        "Remove the deploy key ci?",
        lambda: not SshKey.objects.filter(pk=key.pk).exists(),
    )


def _collaborator(people) -> Action:
    repo = Repository.objects.get(name="project")
    return Action(
        "alice",
        "/alice/project/settings/collaborators/carol/remove",
        {},
        "Remove carol from alice/project?",
        lambda: role_for(people["carol"], repo) < Role.READ,
    )


def _org(people):
    org = accounts.create_organization(actor=people["alice"], name="acme")
    devs = accounts.create_team(org, actor=people["alice"], name="devs")
    accounts.add_team_member(devs, people["bob"], actor=people["alice"])
    return org, devs


def _repo_team(people) -> Action:
    org, devs = _org(people)
    repo = repo_services.create_repository(actor=people["alice"], owner=org, name="app")
    repo_services.set_team_role(repo, devs, actor=people["alice"], role=Role.WRITE)
    return Action(
        "alice",
        "/acme/app/settings/teams/devs/remove",
        {},
        "Remove team devs from acme/app?",
        lambda: not repo.team_grants.exists(),
    )


def _team_member(people) -> Action:
    _, devs = _org(people)
    return Action(
        "alice",
        "/orgs/acme/teams/devs/members/bob/remove",
        {},
        "Remove bob from the team devs?",
        lambda: not devs.members.filter(pk=people["bob"].pk).exists(),
    )


def _transfer(people) -> Action:
    _org(people)
    return Action(
        "alice",
        "/alice/project/settings/transfer",
        {"new_owner": "acme"},
        "Transfer alice/project to acme?",
        lambda: Repository.objects.get(name="project").owner.username == "acme",
    )


def _invitation(people) -> Action:
    invitation, _link = accounts.invite_user(actor=people["root"], email="dave@example.com")
    return Action(
        "root",
        reverse("portal:admin_invitation_revoke", args=[invitation.pk]),
        {},
        "Revoke the invitation of dave@example.com?",
        lambda: Invitation.objects.filter(pk=invitation.pk, revoked_at__isnull=False).exists(),
    )


ACTIONS = {
    "own ssh key": _own_key,
    "access token": _token,
    "admin remove": _admin_remove,
    "admin revoke": _admin_revoke,
    "admin lift": _admin_lift,
    "deploy key": _deploy_key,
    "collaborator": _collaborator,
    "repository team": _repo_team,
    "team member": _team_member,
    "transfer": _transfer,
    "invitation": _invitation,
}


@pytest.fixture
def people(private_repo, admin, alice, bob, carol):
    return {"root": admin, "alice": alice, "bob": bob, "carol": carol}


@pytest.mark.parametrize("name", ACTIONS)
def test_a_destructive_post_asks_first_and_acts_once_confirmed(people, name):
    action = ACTIONS[name](people)
    client = Client()
    client.force_login(people[action.who])

    asked = client.post(action.url, action.data)
    assert asked.status_code == 200
    page = asked.content.decode()
    assert escape(action.title) in page
    assert not action.done()
    # The page re-posts to the same address, with the same fields and confirmed=1, or cancels.
    form = re.search(
        r'<form method="post" action="([^"]+)"[^>]*aria-labelledby="confirm-title">(.*?)</form>', page, re.S
    )
    assert form and form.group(1) == action.url
    hidden = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form.group(2)))
    assert hidden.pop("confirmed") == "1"
    assert "csrfmiddlewaretoken" in hidden
    assert {k: v for k, v in hidden.items() if k != "csrfmiddlewaretoken"} == {
        k: v for k, v in action.data.items() if k != "reason"
    }
    assert ">Cancel</a>" in page

    done = client.post(action.url, action.data | {"confirmed": "1"})
    assert done.status_code == 302
    assert action.done()


def test_cancel_goes_back_to_the_page_the_form_came_from_within_the_site(people):
    action = _admin_remove(people)
    client = Client()
    client.force_login(people["root"])
    page = client.post(action.url, {"next": "/-/admin/keys?q=bob"}).content.decode()
    assert 'href="/-/admin/keys?q=bob">Cancel</a>' in page
    page = client.post(action.url, {"next": "https://evil.example/"}).content.decode()
    assert 'href="/-/admin/keys">Cancel</a>' in page


def test_the_revoke_confirmation_asks_for_a_reason(people):
    action = _admin_revoke(people)
    client = Client()
    client.force_login(people["root"])
    page = client.post(action.url).content.decode()
    assert '<textarea name="reason"' in page
    assert "nobody can add it again" in page
