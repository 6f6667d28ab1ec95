"""Who may do what in the portal itself: site administration, organizations and their teams.

repos/access.py builds on these for repositories; services refuse on them and pages use them for their buttons."""

from dataclasses import dataclass

from django.core.exceptions import PermissionDenied
from django.http import Http404

from portal.models import AccessToken, SshKey, Team, User


@dataclass(frozen=True)
class Principal:
    """Who is asking: a user (through a session, an SSH key or a token), a deploy key, a repository read token,
    or nobody."""

    user: User | None = None
    deploy_key: SshKey | None = None
    token: AccessToken | None = None
    # A short-lived read token (repos/read_tokens.py): it reads the repository of this id and nothing else.
    read_token_repository_id: int | None = None

    @property
    def is_anonymous(self) -> bool:
        return self.user is None and self.deploy_key is None and self.read_token_repository_id is None

    @property
    def name(self) -> str:
        if self.user is not None:
            return self.user.username
        if self.deploy_key is not None:
            return f"deploy key {self.deploy_key.title}"
        if self.read_token_repository_id is not None:
            return "read token"
        return "anonymous"


def is_site_admin(user: User | None) -> bool:
    return bool(user and user.is_authenticated and user.is_active and user.is_superuser)


def is_active_person(user: User | None) -> bool:
    """A signed-in, active person (not an organization)."""
    return bool(user is not None and user.is_authenticated and user.is_active and not user.is_organization)


def is_org_owner(user: User | None, org: User) -> bool:
    """Members of an organization's owners team, and site admins, administer it."""
    if not org.is_organization or not is_active_person(user):
        return False
    if is_site_admin(user):
        return True
    return Team.objects.filter(organization=org, name=Team.OWNERS, members=user).exists()


def org_owners(org: User):
    """The active people of an organization's owners team: those who administer it."""
    return (
        User.objects.people()
        .filter(team_memberships__organization=org, team_memberships__name=Team.OWNERS, is_active=True)
        .distinct()
    )


def is_org_member(user: User | None, org: User) -> bool:
    if not org.is_organization or not is_active_person(user):
        return False
    return is_site_admin(user) or Team.objects.filter(organization=org, members=user).exists()


def get_owner_for_user(user: User | None, name: str) -> User:
    """A user or organization page; deactivated accounts are only visible to admins."""
    owner = User.objects.filter(username__iexact=name).first()
    if owner is None or (not owner.is_active and not is_site_admin(user)):
        raise Http404("No such user or organization")
    return owner


def get_org_for_user(user: User | None, name: str) -> User:
    """An organization by name (organizations are public; what may be done in one is for services to check)."""
    org = User.objects.organizations().filter(username__iexact=name).first()
    if org is None:
        raise Http404("No such organization")
    return org


def get_org_for_member(user: User | None, name: str, *, admin: bool = False) -> User:
    """An organization the user belongs to; outsiders get 404, members who are not owners PermissionDenied."""
    org = User.objects.organizations().filter(username__iexact=name, is_active=True).first()
    if org is None or not is_org_member(user, org):
        raise Http404("No such organization")
    if admin and not is_org_owner(user, org):
        raise PermissionDenied("Only the organization's owners can do this.")
    return org


def get_team_for_user(user: User | None, org_name: str, team_name: str, *, admin: bool = False) -> Team:
    """A team of an organization the user belongs to; with admin=True only for the organization's owners."""
    org = get_org_for_member(user, org_name)
    team = Team.objects.filter(organization=org, name__iexact=team_name).select_related("organization").first()
    if team is None:
        raise Http404("No such team")
    if admin and not is_org_owner(user, org):
        raise PermissionDenied("Only the organization's owners can do this.")
    return team


def require_site_admin(user: User | None) -> None:
    if not is_site_admin(user):
        raise Http404("Not found")
