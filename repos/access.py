"""The one door: every route, SSH command, git service and hook asks here.

Missing read access looks exactly like a missing repository (404). What is not allowed is denied.
"""

import threading

from django.core.exceptions import PermissionDenied
from django.db import connections, router
from django.db.models import Case, IntegerField, Max, Q, QuerySet, Value, When
from django.db.models.functions import Lower
from django.http import Http404

from portal.access import (
    Principal,
    get_org_for_member,
    get_org_for_user,
    get_owner_for_user,
    get_team_for_user,
    is_org_member,
    is_org_owner,
    is_site_admin,
    require_site_admin,
)
from portal.access import is_active_person as _active
from portal.models import Team, User
from repos.models import Collaborator, Repository, Role, TeamRepository, Visibility

NO_ACCESS = 0


def role_for(user: User | None, repo: Repository) -> int:
    """The highest role a user holds on a repository, from ownership, grants and visibility."""
    role = NO_ACCESS
    if repo.visibility == Visibility.PUBLIC:
        role = Role.READ
    if not _active(user):
        return role
    if repo.visibility == Visibility.INTERNAL:
        role = Role.READ
    if is_site_admin(user) or repo.owner_id == user.pk:
        return Role.ADMIN
    if repo.owner.is_organization and is_org_owner(user, repo.owner):
        return Role.ADMIN
    granted = Collaborator.objects.filter(repository=repo, user=user).aggregate(r=Max("role"))["r"]
    via_team = TeamRepository.objects.filter(repository=repo, team__members=user).aggregate(r=Max("role"))["r"]
    return max(role, granted or NO_ACCESS, via_team or NO_ACCESS)


def role_for_principal(principal: Principal, repo: Repository) -> int:
    """A principal's role: a read token's or a deploy key's own grant, or its user's role capped by token scopes."""
    if principal.read_token_repository_id is not None:
        # Reading its one repository is all a read token ever does, even where anyone may read.
        return Role.READ if principal.read_token_repository_id == repo.pk else NO_ACCESS
    if principal.deploy_key is not None:
        key = principal.deploy_key
        if key.repository_id == repo.pk:
            return Role.WRITE if key.writable else Role.READ
        return Role.READ if repo.visibility == Visibility.PUBLIC else NO_ACCESS
    role = role_for(principal.user, repo)
    token = principal.token
    if token is not None:
        if token.is_expired:
            return Role.READ if repo.visibility == Visibility.PUBLIC else NO_ACCESS
        if not token.has_scope("write:repo"):
            cap = Role.READ if token.has_scope("read:repo") else NO_ACCESS
            public = Role.READ if repo.visibility == Visibility.PUBLIC else NO_ACCESS
            role = max(min(role, cap), public)
    return role


def is_repo_owner(user: User | None, repo: Repository) -> bool:
    """Whether a user owns a repository: as its owner, an owner of its organization, or a site admin.

    Owning is more than the admin role: an admin collaborator must not be able to give the repository away."""
    if not _active(user):
        return False
    if is_site_admin(user) or repo.owner_id == user.pk:
        return True
    return repo.owner.is_organization and is_org_owner(user, repo.owner)


def can_administer(user: User | None, repo: Repository, *, role: int | None = None) -> bool:
    """Whether a user may change a repository's settings (the Settings tab), given their role when known."""
    return (role_for(user, repo) if role is None else role) >= Role.ADMIN


def check_role(role: int, need: int) -> None:
    """Raise Http404 when the repository may not even be seen, PermissionDenied when it may but not this."""
    if role < Role.READ:
        raise Http404("Repository not found")
    if role < need:
        raise PermissionDenied(f"This needs {Role(need).label} access to the repository.")


def get_repo_for_principal(principal: Principal, owner: str, name: str, need: int = Role.READ) -> Repository:
    """The repository owner/name if the principal may act on it with role need."""
    repo = _repository_by_path(owner, name)
    if repo is None:
        raise Http404("Repository not found")
    check_role(role_for_principal(principal, repo), need)
    return repo


# The SQL of Repository.objects.by_path(owner, name).select_related("owner").first(), compiled once per database
# (and of the same with fewer columns, for visitors).
_by_path_sql: dict[str, "_CompiledByPath | None"] = {}
_by_path_lock = threading.Lock()
_OWNER_MARK, _NAME_MARK = "\x00owner", "\x00name"
# What a page kept for visitors needs of a repository (repos.page_cache): what it shows of it, and its owner's name.
_VISITOR_FIELDS = ("name", "description", "visibility", "default_branch", "owner__username")


class _CompiledByPath:
    """The lookup of a repository by its path as the ORM writes it, with the owner's and name's parameters located.

    Every page of a repository starts with this lookup, and building its SQL took the ORM a millisecond each time,
    seven times what the database takes to answer; the row still becomes models the ORM's way (its converters,
    Model.from_db and the cache select_related fills). With only, the models get those fields and the rest are
    deferred (read from the database if ever asked for)."""

    def __init__(self, alias: str, only: tuple[str, ...] = ()):
        query = Repository.objects.using(alias).by_path(_OWNER_MARK, _NAME_MARK).select_related("owner")
        if only:
            query = query.only(*only)
        # The unique indexes the lookup goes through allow one row at most: nothing to order.
        compiler = query.order_by()[:1].query.get_compiler(alias)
        self.sql, params = compiler.as_sql()
        self.params = list(params)
        self.owner_at = self.params.index(_OWNER_MARK)
        self.name_at = self.params.index(_NAME_MARK)
        info = compiler.klass_info
        (related,) = info["related_klass_infos"]
        if info["model"] is not Repository or related["field"] is not Repository._meta.get_field("owner"):
            raise ValueError("the query selects other models than it should")
        self.repo_columns, self.owner_columns = info["select_fields"], related["select_fields"]
        # Each column's field, as the compiler selects them.
        attnames = [column.target.attname for column, _sql, _alias in compiler.select]
        self.repo_fields = [attnames[i] for i in self.repo_columns]
        self.owner_fields = [attnames[i] for i in self.owner_columns]
        self.converters = compiler.get_converters([column for column, _sql, _alias in compiler.select])

    def fetch(self, alias: str, owner: str, name: str) -> Repository | None:
        connection = connections[alias]
        params = list(self.params)
        params[self.owner_at] = owner
        params[self.name_at] = name
        with connection.cursor() as cursor:
            cursor.execute(self.sql, params)
            row = cursor.fetchone()
        if row is None:
            return None
        row = list(row)
        for position, (converters, expression) in self.converters.items():
            for convert in converters:
                row[position] = convert(row[position], expression, connection)
        owner_model = Repository._meta.get_field("owner").related_model
        repo = Repository.from_db(alias, self.repo_fields, [row[i] for i in self.repo_columns])
        owner = owner_model.from_db(alias, self.owner_fields, [row[i] for i in self.owner_columns])
        Repository._meta.get_field("owner").set_cached_value(repo, owner)
        return repo


def _repository_by_path(owner: str, name: str, only: tuple[str, ...] = ()) -> Repository | None:
    """Repository.objects.by_path(owner, name).select_related("owner") (.only(*only) if given) .first(), from SQL
    compiled once; through the ORM itself should the query ever take a shape the compiled one does not handle."""
    alias = router.db_for_read(Repository)
    key = f"{alias}:{connections[alias].vendor}:{','.join(only)}"
    if key not in _by_path_sql:
        with _by_path_lock:
            try:
                _by_path_sql[key] = _CompiledByPath(alias, only)
            except (ValueError, KeyError, AttributeError):
                _by_path_sql[key] = None
    compiled = _by_path_sql[key]
    if compiled is None:
        query = Repository.objects.by_path(owner, name).select_related("owner")
        return (query.only(*only) if only else query).first()
    return compiled.fetch(alias, owner, name)


def warm_up() -> None:
    """Compile the lookups every repository page starts with, by asking for a repository no one can name."""
    _repository_by_path("-", "-")
    _repository_by_path("-", "-", _VISITOR_FIELDS)


def get_repo_for_visitor(owner: str, name: str) -> Repository:
    """The repository owner/name if anyone may read it, without signing in; of its owner, only the name is read.

    What a page kept for visitors (repos.page_cache) asks before it is sent again."""
    repo = _repository_by_path(owner, name, _VISITOR_FIELDS)
    if repo is None:
        raise Http404("Repository not found")
    check_role(role_for_principal(Principal(), repo), Role.READ)
    return repo


def get_repo_for_user(user: User | None, owner: str, name: str, need: int = Role.READ) -> Repository:
    """The repository owner/name if the user may act on it with role need."""
    return get_repo_for_principal(Principal(user=user if _active(user) else None), owner, name, need)


def _granted_to(user: User) -> Q:
    """Repositories a user owns or holds a role on: directly, through a team, or as an organization owner."""
    return (
        Q(owner=user)
        | Q(collaborators__user=user)
        | Q(team_grants__team__members=user)
        | Q(owner__teams__name=Team.OWNERS, owner__teams__members=user)
    )


def visible_repositories(user: User | None) -> QuerySet[Repository]:
    """Every repository the user can read."""
    repos = Repository.objects.select_related("owner")
    if is_site_admin(user):
        return repos
    if not _active(user):
        return repos.filter(visibility=Visibility.PUBLIC)
    return repos.filter(Q(visibility__in=[Visibility.PUBLIC, Visibility.INTERNAL]) | _granted_to(user)).distinct()


def member_repositories(user: User | None) -> QuerySet[Repository]:
    """The repositories a user owns or was given a role on (directly, by a team or as an organization owner)."""
    if not _active(user):
        return Repository.objects.none()
    return (
        Repository.objects.select_related("owner")
        .filter(_granted_to(user))
        .distinct()
        .order_by("owner__username", "name")
    )


def people_with_access(repo: Repository) -> QuerySet[User]:
    """The people granted a role on a repository: its owner, its collaborators, members of its teams and of its
    organization's owners team (not everyone who reads a public or internal one)."""
    granted = (
        Q(pk=repo.owner_id)
        | Q(collaborations__repository=repo)
        | Q(team_memberships__repository_grants__repository=repo)
        | Q(team_memberships__organization_id=repo.owner_id, team_memberships__name=Team.OWNERS)
    )
    return User.objects.people().filter(granted, is_active=True).distinct()


def administrators(repo: Repository) -> list[User]:
    """The people who administer a repository: those of people_with_access whose role is admin."""
    return [user for user in people_with_access(repo) if can_administer(user, repo)]


def suggested_usernames(text: str, *, repo: Repository | None = None, limit: int = 10) -> list[str]:
    """Active people whose username holds text: those with a role on repo first, then names that start with it."""
    ranks = [Case(When(username__istartswith=text, then=Value(0)), default=Value(1), output_field=IntegerField())]
    if repo is not None:
        granted = people_with_access(repo).values("pk")
        ranks.insert(0, Case(When(pk__in=granted, then=Value(0)), default=Value(1), output_field=IntegerField()))
    people = User.objects.people().filter(is_active=True, username__icontains=text)
    return list(people.order_by(*ranks, Lower("username")).values_list("username", flat=True)[:limit])


def owners_for_creation(user: User | None) -> list[User]:
    """Where a user may create repositories: their own account first, then the organizations they own."""
    if not _active(user):
        return []
    orgs = User.objects.organizations().filter(is_active=True).order_by("username")
    if not is_site_admin(user):
        orgs = orgs.filter(teams__name=Team.OWNERS, teams__members=user).distinct()
    return [user, *orgs]


def can_create_in(user: User | None, owner: User) -> bool:
    """Whether a user may create a repository owned by owner (themselves or an org they own)."""
    if not _active(user):
        return False
    if owner.pk == user.pk:
        return True
    return owner.is_organization and is_org_owner(user, owner)


# Checks about people rather than repositories live in portal/access.py; repos code and the apps above it
# may keep asking for them here.
__all__ = [
    "Principal",
    "get_org_for_member",
    "get_org_for_user",
    "get_owner_for_user",
    "get_team_for_user",
    "is_org_member",
    "is_org_owner",
    "is_site_admin",
    "require_site_admin",
]
