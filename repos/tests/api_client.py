"""Calling the REST API as alice, bob, carol or mallory, with tokens that may read and write repositories."""

import json

import pytest
from django.test import Client

from portal import services as accounts
from portal.models import AccessToken

API = "/api/v1"
REPO_SCOPES = ("api", "read:repo", "write:repo")


def token_for(user, scopes=REPO_SCOPES) -> dict:
    """The Authorization header of a new token of user's."""
    name = f"test-{AccessToken.objects.filter(user=user).count()}"
    _, raw = accounts.create_access_token(user, actor=user, name=name, scopes=list(scopes), expires_at=None)
    return {"HTTP_AUTHORIZATION": f"token {raw}"}


def send(client: Client, method: str, path: str, body=None, **headers):
    data = json.dumps(body) if body is not None else None
    return getattr(client, method.lower())(API + path, data=data, content_type="application/json", **headers)


@pytest.fixture
def as_alice(alice):
    return token_for(alice)


@pytest.fixture
def as_bob(bob):
    return token_for(bob)


@pytest.fixture
def as_carol(carol):
    return token_for(carol)


@pytest.fixture
def as_mallory(mallory):
    return token_for(mallory)
