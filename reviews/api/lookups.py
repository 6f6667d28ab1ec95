"""Access checks and lookups shared by the reviews API's endpoints."""

from django.core.exceptions import ValidationError
from django.http import HttpRequest

from portal.api import principal
from portal.models import Team, User
from repos.access import get_repo_for_principal
from repos.models import Repository, Role


def get_repo(request: HttpRequest, owner: str, repo: str, need: int = Role.READ) -> Repository:
    return get_repo_for_principal(principal(request), owner, repo, need)


def find_people(usernames: list[str]) -> list[User]:
    users, unknown = User.objects.named([name.strip() for name in usernames])
    if unknown:
        raise ValidationError(f"No user named {unknown[0]!r}.")
    return users


def find_teams(owner: User, names: list[str]) -> list[Team]:
    found = []
    for name in names:
        team = Team.objects.filter(organization=owner, name__iexact=name.strip()).first()
        if team is None:
            raise ValidationError(f"{owner.username} has no team named {name!r}.")
        found.append(team)
    return found
