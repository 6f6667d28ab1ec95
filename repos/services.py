"""Every state change of repositories: create, settings, grants, deletion, pushes."""

import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from portal import audit, jobs
from portal import services as accounts
from portal.models import AccessToken, SshKey, Team, User
from portal.validators import validate_repo_name
from repos import git, signals
from repos.access import Principal, can_create_in, check_role, is_repo_owner, role_for, role_for_principal
from repos.models import (
    Collaborator,
    Push,
    PushSession,
    RecordedRef,
    Repository,
    Role,
    TeamRepository,
    Visibility,
)

log = logging.getLogger(__name__)

README_TEMPLATE = "# {name}\n\n{description}\n"


def _require(actor: User, repo: Repository, need: Role) -> None:
    check_role(role_for(actor, repo), need)


def _check_name_free(owner: User, name: str, exclude: Repository | None = None) -> None:
    validate_repo_name(name)
    taken = Repository.objects.filter(owner=owner, name__iexact=name)
    if exclude is not None:
        taken = taken.exclude(pk=exclude.pk)
    if taken.exists():
        raise ValidationError(f"{owner.username} already has a repository named {name!r}.", code="conflict")


def _save_name(repo: Repository, update_fields: list[str]) -> None:
    """Save a new name or owner; when a concurrent change took the name first, say so instead of failing."""
    try:
        with transaction.atomic():
            repo.save(update_fields=update_fields)
    except IntegrityError:
        raise ValidationError(
            f"{repo.owner.username} already has a repository named {repo.name!r}.", code="conflict"
        ) from None


def _check_branch_name(branch: str) -> None:
    if (
        not branch
        or branch.startswith("-")
        or ".." in branch
        or any(c in branch for c in " ~^:?*[\\")
        or not branch.isascii()
        # git's own rules catch the rest (control characters, '.lock', '//', '@{'), which would otherwise
        # fail half-way through creating the repository or moving HEAD.
        or not git.is_valid_branch_name(branch)
    ):
        raise ValidationError(f"{branch!r} is not a valid branch name.")


def create_repository(
    *,
    actor: User,
    owner: User,
    name: str,
    description: str = "",
    visibility: str = Visibility.PRIVATE,
    default_branch: str = "main",
    initialize: bool = False,
) -> Repository:
    """Create a repository row and its bare repository on disk (with a README commit if asked)."""
    if not can_create_in(actor, owner):
        raise PermissionDenied("You cannot create repositories there.")
    _check_branch_name(default_branch)
    if visibility not in Visibility.values:
        raise ValidationError(f"Visibility must be one of {', '.join(Visibility.values)}.")
    with transaction.atomic():
        _check_name_free(owner, name)
        repo = Repository.objects.create(
            owner=owner, name=name, description=description, visibility=visibility, default_branch=default_branch
        )
        audit.record(actor, "repo.create", repo, after={"name": repo.full_name, "visibility": visibility})
        # The disk follows the row inside the transaction: if it fails, the row is rolled back too.
        try:
            git.init_bare(repo.path, default_branch=default_branch)
            if initialize:
                git.commit_files(
                    repo.path,
                    default_branch,
                    {"README.md": README_TEMPLATE.format(name=name, description=description).encode()},
                    "Initial commit",
                    name=actor.display_name,
                    email=actor.email or f"{actor.username}@users.noreply",
                )
        except Exception:
            git.delete(repo.path)
            raise
        RecordedRef.objects.bulk_create(
            RecordedRef(repository=repo, ref=ref, sha=sha) for ref, sha in git.ref_tips(repo.path).items()
        )
        signals.repository_created.send(Repository, repository=repo, actor=actor)
    return repo


@transaction.atomic
def update_repository(
    repo: Repository,
    *,
    actor: User,
    description: str | None = None,
    default_branch: str | None = None,
    visibility: str | None = None,
) -> Repository:
    """Change the description, the default branch or (through set_visibility, audited apart) the visibility."""
    _require(actor, repo, Role.ADMIN)
    if visibility is not None:
        set_visibility(repo, actor=actor, visibility=visibility)
    before, after = {}, {}
    if description is not None and description != repo.description:
        before["description"], after["description"] = repo.description, description
        repo.description = description
    if default_branch is not None and default_branch != repo.default_branch:
        _check_branch_name(default_branch)
        before["default_branch"], after["default_branch"] = repo.default_branch, default_branch
        repo.default_branch = default_branch
        git.set_default_branch(repo.path, default_branch)
    if after:
        repo.updated = timezone.now()
        repo.save()
        audit.record(actor, "repo.update", repo, before=before, after=after)
    return repo


@transaction.atomic
def rename_repository(repo: Repository, *, actor: User, name: str) -> Repository:
    """Rename; the repository keeps its directory on disk, which is named by id."""
    _require(actor, repo, Role.ADMIN)
    _check_name_free(repo.owner, name, exclude=repo)
    before = repo.full_name
    repo.name = name
    _save_name(repo, ["name"])
    audit.record(actor, "repo.rename", repo, before={"name": before}, after={"name": repo.full_name})
    signals.repository_renamed.send(Repository, repository=repo, actor=actor, old_name=before.partition("/")[2])
    return repo


@transaction.atomic
def transfer_repository(repo: Repository, *, actor: User, new_owner: User) -> Repository:
    """Give the repository to another user or organization the actor can create repositories in."""
    _require(actor, repo, Role.ADMIN)
    if new_owner.pk == repo.owner_id:
        raise ValidationError(f"{repo.full_name} already belongs to {new_owner.username}.", code="conflict")
    if not is_repo_owner(actor, repo):
        raise PermissionDenied(f"Only the owner of {repo.full_name} can transfer it.")
    if not can_create_in(actor, new_owner):
        raise PermissionDenied(f"You cannot move repositories to {new_owner.username}.")
    _check_name_free(new_owner, repo.name)
    before = repo.full_name
    old_owner = repo.owner
    repo.owner = new_owner
    _save_name(repo, ["owner"])
    # Team grants belong to the old organization's teams: they do not travel.
    TeamRepository.objects.filter(repository=repo).exclude(team__organization=new_owner).delete()
    audit.record(actor, "repo.transfer", repo, before={"name": before}, after={"name": repo.full_name})
    signals.repository_transferred.send(Repository, repository=repo, actor=actor, old_owner=old_owner)
    return repo


@transaction.atomic
def set_visibility(repo: Repository, *, actor: User, visibility: str) -> Repository:
    """Make a repository private, internal or public."""
    _require(actor, repo, Role.ADMIN)
    if visibility not in Visibility.values:
        raise ValidationError(f"Visibility must be one of {', '.join(Visibility.values)}.")
    before = repo.visibility
    if before != visibility:
        repo.visibility = visibility
        repo.save(update_fields=["visibility"])
        audit.record(actor, "repo.visibility", repo, before={"visibility": before}, after={"visibility": visibility})
    return repo


@transaction.atomic
def set_collaborator(repo: Repository, user: User, *, actor: User, role: Role) -> Collaborator:
    """Give a user a role on the repository (or change it)."""
    _require(actor, repo, Role.ADMIN)
    if user.is_organization or not user.is_active:
        raise ValidationError("Only active people can be collaborators.")
    existing = Collaborator.objects.filter(repository=repo, user=user).first()
    before = {"role": Role(existing.role).label} if existing else None
    collab, _ = Collaborator.objects.update_or_create(repository=repo, user=user, defaults={"role": role})
    audit.record(
        actor,
        "repo.collaborator_set",
        repo,
        subject=user,
        before=before,
        after={"user": user.username, "role": Role(role).label},
    )
    return collab


@transaction.atomic
def remove_collaborator(repo: Repository, user: User, *, actor: User) -> None:
    """Take a user's role away."""
    _require(actor, repo, Role.ADMIN)
    existing = Collaborator.objects.filter(repository=repo, user=user).first()
    if existing is None:
        return
    audit.record(
        actor,
        "repo.collaborator_remove",
        repo,
        subject=user,
        before={"user": user.username, "role": Role(existing.role).label},
    )
    existing.delete()


@transaction.atomic
def set_team_role(repo: Repository, team: Team, *, actor: User, role: Role) -> TeamRepository:
    """Give one of the owning organization's teams a role on the repository."""
    _require(actor, repo, Role.ADMIN)
    if team.organization_id != repo.owner_id:
        raise ValidationError("Only teams of the organization that owns the repository can be added.")
    existing = TeamRepository.objects.filter(repository=repo, team=team).first()
    before = {"role": Role(existing.role).label} if existing else None
    grant, _ = TeamRepository.objects.update_or_create(repository=repo, team=team, defaults={"role": role})
    audit.record(actor, "repo.team_set", repo, before=before, after={"team": team.name, "role": Role(role).label})
    return grant


@transaction.atomic
def remove_team(repo: Repository, team: Team, *, actor: User) -> None:
    """Take a team's role away."""
    _require(actor, repo, Role.ADMIN)
    existing = TeamRepository.objects.filter(repository=repo, team=team).first()
    if existing is None:
        return
    audit.record(actor, "repo.team_remove", repo, before={"team": team.name, "role": Role(existing.role).label})
    existing.delete()


def delete_repository(repo: Repository, *, actor: User, confirm: str) -> None:
    """Delete the row and the bare repository; confirm must be the repository's full name."""
    _require(actor, repo, Role.ADMIN)
    if confirm.strip() != repo.full_name:
        raise ValidationError(f"Type {repo.full_name} to confirm.")
    path = repo.path
    with transaction.atomic():
        audit.record(actor, "repo.delete", repo, before={"name": repo.full_name})
        signals.repository_deleted.send(Repository, repository=repo, actor=actor)
        repo.delete()
        # Remove from disk only once the row is gone for good.
        transaction.on_commit(lambda: git.delete(path))


@transaction.atomic
def edit_repository(
    repo: Repository,
    *,
    actor: User,
    name: str | None = None,
    description: str | None = None,
    visibility: str | None = None,
    default_branch: str | None = None,
) -> Repository:
    """Rename and change settings in one go (the API's PATCH): all of it happens, or none."""
    _require(actor, repo, Role.ADMIN)
    if name is not None and name != repo.name:
        rename_repository(repo, actor=actor, name=name)
    # update_repository moves HEAD on disk, so it comes last: a refusal before it leaves the disk untouched.
    return update_repository(
        repo, actor=actor, description=description, default_branch=default_branch, visibility=visibility
    )


# Pushes: the session a transport opens for git's hooks, the decision pre-receive asks for, and the
# record post-receive writes.


@transaction.atomic
def add_deploy_key(
    repository: Repository, *, actor: User, title: str, public_key: str, writable: bool = False
) -> SshKey:
    """Register a deploy key of one repository, read-only unless writable; raises InvalidKey with the reason."""
    # Deploy keys grant access to the repository, so only its administrators may manage them.
    _require(actor, repository, Role.ADMIN)
    key = accounts.register_key(public_key, actor=actor, title=title, repository=repository, writable=writable)
    audit.record(actor, "deploy_key.add", repository, after=accounts.key_summary(key) | {"writable": writable})
    return key


@transaction.atomic
def remove_deploy_key(key: SshKey, *, actor: User) -> None:
    """Delete a repository's deploy key; the next connection that offers it is refused."""
    _require(actor, key.repository, Role.ADMIN)
    audit.record(actor, "deploy_key.remove", key.repository, before=accounts.key_summary(key))
    key.delete()


PUSHABLE_PREFIXES = ("refs/heads/", "refs/tags/")


class PushRefused(Exception):
    """What a hook sent does not match the push session or the repository; the message says what."""


@dataclass(frozen=True)
class RefUpdate:
    """One line of what git gives pre-receive and post-receive, with whether it rewrites history."""

    ref: str
    old_sha: str
    new_sha: str
    forced: bool = False

    @property
    def is_create(self) -> bool:
        return self.old_sha.strip("0") == ""

    @property
    def is_delete(self) -> bool:
        return self.new_sha.strip("0") == ""

    def as_json(self) -> dict:
        return {"ref": self.ref, "old": self.old_sha, "new": self.new_sha, "forced": self.forced}


def push_session_max_age() -> timedelta:
    """How long a push session is valid at most (PORTAL_PUSH_SESSION_MAX_AGE seconds).

    A session lives as long as one git process, and the transport deletes it when git exits; this bound is for a
    transport that died without doing so. It also bounds the time from the start of an upload to pre-receive."""
    return timedelta(seconds=settings.PORTAL_PUSH_SESSION_MAX_AGE)


def start_push_session(principal: Principal, repo: Repository, *, protocol: str) -> tuple[PushSession, str]:
    """Open the session git's hooks authenticate with for one push; returns it and its secret."""
    now = timezone.now()
    # Sessions whose transport died before it could delete them; an accepted one stays for the ref reconciler.
    PushSession.objects.filter(created__lt=now - push_session_max_age(), phase=PushSession.Phase.NEW).delete()
    secret = secrets.token_urlsafe(32)
    session = PushSession.objects.create(
        repository=repo,
        user=principal.user,
        deploy_key=principal.deploy_key,
        token=principal.token,
        secret_hash=AccessToken.hash(secret),
        protocol=protocol,
        created=now,
    )
    return session, secret


def end_push_session(session_id: int) -> None:
    """Retire a push session once its git process has exited, whether the push was accepted, refused or abandoned.

    A session still accepted means post-receive recorded nothing (its call failed, or git stopped before it): it
    stays as the mark that the repository may have moved unrecorded, and its ref reconciliation is enqueued."""
    with transaction.atomic():
        left = PushSession.objects.filter(pk=session_id, phase=PushSession.Phase.ACCEPTED)
        repository_id = left.values_list("repository_id", flat=True).first()
        if repository_id is not None and left.update(git_exited=timezone.now()):
            jobs.enqueue_after_commit("ref reconciliation", "repos.jobs.run_ref_reconciler", repository_id)
        PushSession.objects.filter(pk=session_id, phase=PushSession.Phase.NEW).delete()


def _ref_blocker(repo: Repository, update: RefUpdate) -> str | None:
    ref = update.ref
    if not ref.startswith(PUSHABLE_PREFIXES) or ref in PUSHABLE_PREFIXES:
        return f"refusing to update {ref!r}: only branches (refs/heads/...) and tags (refs/tags/...) can be pushed"
    if any(part.startswith("-") for part in ref.split("/")):
        return f"refusing to update {ref!r}: a ref name component cannot start with '-'"
    if ref == f"refs/heads/{repo.default_branch}":
        if update.is_delete:
            return f"refusing to delete the default branch {repo.default_branch!r} (rule: default branch protection)"
        if update.forced and not update.is_create:
            return (
                f"refusing to force-push the default branch {repo.default_branch!r} (rule: default branch protection)"
            )
    return None


def _update_refusals(principal: Principal, repo: Repository, update: RefUpdate) -> list[str]:
    """Why one ref update must be refused: the repository's own rules, else what the listeners answer."""
    reason = _ref_blocker(repo, update)
    if reason is not None:
        return [reason]
    answers = signals.push_checked.send(Repository, repository=repo, principal=principal, update=update)
    return [reason for _receiver, reason in answers if reason]


def push_blocker(principal: Principal, repo: Repository, updates: list[RefUpdate]) -> str | None:
    """Why this push must be refused as a whole, or None: write access, then every ref's rules."""
    if principal.is_anonymous or role_for_principal(principal, repo) < Role.WRITE:
        if principal.deploy_key is not None and principal.deploy_key.repository_id == repo.pk:
            return f"refusing the push: {principal.name} is read-only"
        return f"refusing the push: {principal.name} has no write access to {repo.full_name}"
    reasons = [reason for update in updates for reason in _update_refusals(principal, repo, update)]
    return "\n".join(reasons) or None


@transaction.atomic
def accept_push(session: PushSession, principal: Principal, updates: list[RefUpdate]) -> str | None:
    """pre-receive: claim the session for its one pre-receive, then why the push is refused, or None.

    An accepted push's updates are kept on the session for post-receive; a refused push's session is deleted."""
    claimed = PushSession.objects.filter(pk=session.pk, phase=PushSession.Phase.NEW).update(
        phase=PushSession.Phase.ACCEPTED, accepted_updates=[update.as_json() for update in updates]
    )
    if not claimed:
        raise PushRefused("this push session was already used; push again")
    reason = push_blocker(principal, session.repository, updates)
    if reason is not None:
        PushSession.objects.filter(pk=session.pk).delete()
    return reason


def received_updates(session: PushSession, updates: list[RefUpdate]) -> list[RefUpdate]:
    """post-receive: the claimed updates, checked against what pre-receive accepted and against the repository.

    Raises PushRefused naming the first update that does not match. Whether an update was forced is taken
    from what pre-receive accepted, which is what branch protection judged."""
    repo = session.repository
    if not updates:
        # git runs post-receive only when it updated at least one ref.
        raise PushRefused("post-receive names no ref update")
    accepted = {(item["ref"], item["old"], item["new"]): bool(item.get("forced")) for item in session.accepted_updates}
    checked = []
    for update in updates:
        key = (update.ref, update.old_sha, update.new_sha)
        if key not in accepted:
            raise PushRefused(f"{update.ref}: this update is not one that pre-receive accepted for this push")
        current = git.ref_target(repo.path, update.ref)
        if update.is_delete:
            if current is not None:
                raise PushRefused(f"{update.ref}: the ref still exists, it was not deleted")
        else:
            if current != update.new_sha:
                raise PushRefused(f"{update.ref}: the ref does not point at {update.new_sha}")
            if not git.has_object(repo.path, update.new_sha):
                raise PushRefused(f"{update.ref}: the object {update.new_sha} does not exist")
        checked.append(RefUpdate(update.ref, update.old_sha, update.new_sha, forced=accepted[key]))
    return checked


@dataclass(frozen=True)
class RecordedPush:
    """The rows a push was recorded as, and the lines its listeners want printed to whoever pushed."""

    pushes: list[Push]
    messages: list[str]


@transaction.atomic
def record_hook_push(session: PushSession, updates: list[RefUpdate]) -> RecordedPush:
    """post-receive: record what the push did, once, after checking it against the repository; retires the session."""
    if session.phase != PushSession.Phase.ACCEPTED:
        raise PushRefused("pre-receive did not accept this push")
    checked = received_updates(session, updates)
    # Deleting the session is the claim: a second post-receive with the same secret finds nothing.
    deleted, _ = PushSession.objects.filter(pk=session.pk, phase=PushSession.Phase.ACCEPTED).delete()
    if not deleted:
        raise PushRefused("this push session was already used")
    principal = Principal(user=session.user, deploy_key=session.deploy_key, token=session.token)
    return record_push(session.repository, actor=principal, protocol=session.protocol, updates=checked)


def _move_recorded_ref(repo: Repository, update: RefUpdate, *, from_old: bool) -> bool:
    """Move the recorded tip of the update's ref to its new object by compare-and-swap; False when the update is
    recorded already (another recorder got there first) or, with from_old, when the recorded tip is no longer
    the update's old object (the reconciler's next run sees what moved since)."""
    target = None if update.is_delete else update.new_sha
    rows = RecordedRef.objects.filter(repository=repo, ref=update.ref)
    while True:
        recorded = rows.values_list("sha", flat=True).first()
        if recorded == target:
            # Recorded already; except the deletion of a ref that was never recorded (made on disk), which a
            # reconciler could not have recorded (it sees no difference there), so is news all the same.
            return target is None and not from_old
        if from_old and recorded != (None if update.is_create else update.old_sha):
            return False
        if recorded is None:
            try:
                with transaction.atomic():
                    RecordedRef.objects.create(repository=repo, ref=update.ref, sha=target)
                return True
            except IntegrityError:
                continue
        swapped = rows.filter(sha=recorded)
        if (swapped.delete()[0] if target is None else swapped.update(sha=target)) > 0:
            return True


@transaction.atomic
def record_push(
    repo: Repository, *, actor: Principal, protocol: str, updates: list[RefUpdate], late: bool = False
) -> RecordedPush:
    """Record each ref update of an accepted push, however it came, and announce it once (push_received).

    An update already recorded (the ref reconciler recorded it before a late post-receive call, or the other way
    round) is left out; when nothing is left, nothing is announced. late marks updates the reconciler found, whose
    old objects are the tips it read as recorded: such an update is left out too once another recorder moved on."""
    updates = [update for update in updates if _move_recorded_ref(repo, update, from_old=late)]
    if not updates:
        return RecordedPush(pushes=[], messages=[])
    now = timezone.now()
    pushes = Push.objects.bulk_create(
        Push(
            repository=repo,
            pusher=actor.user,
            deploy_key=actor.deploy_key,
            ref=update.ref,
            old_sha=update.old_sha,
            new_sha=update.new_sha,
            forced=update.forced,
            protocol=protocol,
            created=now,
            recorded_late=late,
        )
        for update in updates
    )
    repo.pushed = now
    repo.save(update_fields=["pushed"])
    after = {
        "protocol": protocol,
        "deploy_key": actor.deploy_key.title if actor.deploy_key is not None else None,
        "refs": [update.as_json() for update in updates],
    }
    audit.record(actor.user, "repo.push", repo, after=after | ({"recorded_late": True} if late else {}))
    answers = signals.push_received.send(
        Repository,
        repository=repo,
        updates=list(updates),
        pusher=actor.user,
        deploy_key=actor.deploy_key,
        push_ids=[push.pk for push in pushes],
        protocol=protocol,
    )
    return RecordedPush(pushes=pushes, messages=[line for _receiver, lines in answers for line in lines or ()])


# The ref reconciler: what post-receive did not record, found by comparing the refs with the recorded tips.


def unrecorded_push_sessions():
    """Accepted push sessions post-receive never retired: git exited without it, or the transport died."""
    return PushSession.objects.filter(phase=PushSession.Phase.ACCEPTED).filter(
        Q(git_exited__isnull=False) | Q(created__lt=timezone.now() - push_session_max_age())
    )


def _zero(sha: str) -> str:
    return "0" * len(sha)


def _differences(repo: Repository) -> list[RefUpdate]:
    """The branches and tags whose recorded tip is not where the repository's ref is, as updates."""
    actual = git.ref_tips(repo.path) if repo.path.exists() else {}
    recorded = dict(RecordedRef.objects.filter(repository=repo).values_list("ref", "sha"))
    updates = []
    for ref in sorted(actual.keys() | recorded.keys()):
        old, new = recorded.get(ref), actual.get(ref)
        if old == new:
            continue
        old = old or _zero(new)
        new = new or _zero(old)
        forced = not (old.strip("0") == "" or new.strip("0") == "" or git.is_fast_forward(repo.path, old, new))
        updates.append(RefUpdate(ref=ref, old_sha=old, new_sha=new, forced=forced))
    return updates


def _who_pushed(update: RefUpdate, sessions: list[PushSession]) -> PushSession | None:
    """The unretired session whose pre-receive accepted this very change of the ref, if any."""
    for session in sessions:
        for item in session.accepted_updates:
            if item.get("ref") == update.ref and item.get("new") == update.new_sha:
                return session
    return None


def reconcile_refs(repo: Repository) -> list[Push]:
    """Record as pushed late every change of the repository's refs that no push recorded; returns the new rows.

    A change that an unretired session accepted is recorded as that session's push (its user, key and protocol);
    any other (a ref moved on disk by hand, or a session lost with its transport) as the system's. Refs that a
    push in flight accepted are left to its own post-receive. Safe to run twice or beside a late hook call:
    record_push leaves out what is recorded already."""
    # The refs are read before the sessions: a change seen here was accepted by a pre-receive before, so its
    # session is either still there (in flight, or unretired) or gone because its post-receive recorded it.
    differences = _differences(repo)
    sessions = list(
        PushSession.objects.filter(repository=repo, phase=PushSession.Phase.ACCEPTED).select_related(
            "user", "deploy_key", "token"
        )
    )
    unretired = {session.pk for session in unrecorded_push_sessions().filter(repository=repo)}
    in_flight = {
        item.get("ref") for session in sessions if session.pk not in unretired for item in session.accepted_updates
    }
    groups: dict[int | None, list[RefUpdate]] = {}
    by_id = {session.pk: session for session in sessions}
    for update in differences:
        if update.ref in in_flight:
            continue
        session = _who_pushed(update, [session for session in sessions if session.pk in unretired])
        groups.setdefault(session.pk if session else None, []).append(update)
    recorded: list[Push] = []
    with transaction.atomic():
        for session_id, updates in groups.items():
            session = by_id.get(session_id)
            if session is None:
                principal, protocol = Principal(), ""
            else:
                principal = Principal(user=session.user, deploy_key=session.deploy_key, token=session.token)
                protocol = session.protocol
            recorded += record_push(repo, actor=principal, protocol=protocol, updates=updates, late=True).pushes
        PushSession.objects.filter(pk__in=unretired).delete()
    if recorded:
        log.warning("recorded %d ref update(s) of %s late", len(recorded), repo.full_name)
    return recorded


# Branches and files written through the API: the same rules as any push (write access, the repository's own
# rules, branch protection), then the branch moves by compare-and-swap and the push is recorded like any other.


def _write_ref(repo: Repository, principal: Principal, update: RefUpdate, *, message: str) -> RecordedPush:
    reason = push_blocker(principal, repo, [update])
    if reason is not None:
        raise PermissionDenied(reason)
    try:
        git.update_ref(repo.path, update.ref, update.new_sha, update.old_sha, message=message)
    except git.GitError:
        raise ValidationError(f"{update.ref} changed meanwhile; try again.", code="conflict") from None
    return record_push(repo, actor=principal, protocol=Push.Protocol.WEB, updates=[update])


@transaction.atomic
def create_branch(repo: Repository, *, actor: Principal, name: str, start_sha: str) -> str:
    """Create branch name at start_sha, as a push of it would; returns the sha it points at."""
    _check_branch_name(name)
    if git.ref_target(repo.path, f"refs/heads/{name}") is not None:
        raise ValidationError(f"The branch {name!r} already exists.", code="conflict")
    update = RefUpdate(ref=f"refs/heads/{name}", old_sha=git.ZERO_SHA, new_sha=start_sha)
    _write_ref(repo, actor, update, message=f"portal: branch {name} created by {actor.name}")
    return start_sha


@dataclass(frozen=True)
class FileCommit:
    """A commit the API wrote: its sha and the branch it went on."""

    sha: str
    branch: str


@transaction.atomic
def create_file(
    repo: Repository,
    *,
    actor: Principal,
    file_path: str,
    content: bytes,
    branch: str,
    new_branch: str = "",
    message: str = "",
    author: git.Person,
    committer: git.Person,
) -> FileCommit:
    """Commit a new file on branch (or on new_branch, started from branch), as a push of that commit would: refused
    with the rule's reason when the push rules refuse it, and when the file already exists."""
    parts = file_path.strip("/").split("/")
    if not file_path.strip("/") or any(part in ("", ".", "..", ".git") or "\x00" in part for part in parts):
        raise ValidationError(f"{file_path!r} is not a valid file path.")
    file_path = "/".join(parts)
    parent = git.ref_target(repo.path, f"refs/heads/{branch}")
    if parent is None and not git.is_empty(repo.path):
        raise ValidationError(f"There is no branch {branch!r}.")
    if parent is not None:
        try:
            git.entry(repo.path, parent, file_path)
        except git.PathNotFound:
            pass
        else:
            raise ValidationError(f"{file_path} already exists on {branch}.", code="conflict")
    target = new_branch or branch
    if new_branch:
        _check_branch_name(new_branch)
        if git.ref_target(repo.path, f"refs/heads/{new_branch}") is not None:
            raise ValidationError(f"The branch {new_branch!r} already exists.", code="conflict")
    old = git.ref_target(repo.path, f"refs/heads/{target}") or git.ZERO_SHA
    sha = git.write_commit(
        repo.path,
        parent,
        {file_path: content},
        (message or f"Add {file_path}").rstrip("\n") + "\n",
        author=author,
        committer=committer,
    )
    update = RefUpdate(ref=f"refs/heads/{target}", old_sha=old, new_sha=sha)
    _write_ref(repo, actor, update, message=f"portal: {file_path} added by {actor.name}")
    return FileCommit(sha=sha, branch=target)
