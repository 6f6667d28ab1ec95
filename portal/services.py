"""Every state change of accounts, organizations, SSH keys and tokens."""

import logging
import secrets
from datetime import datetime

from django.conf import settings
from django.core import signing
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from portal import audit, signals
from portal.access import is_org_owner, is_site_admin
from portal.keys import InvalidKey, parse_public_key
from portal.models import (
    INVITATION_TTL,
    AccessToken,
    Invitation,
    RevokedKeyFingerprint,
    SiteSettings,
    SshKey,
    Team,
    User,
)
from portal.validators import validate_owner_name

logger = logging.getLogger(__name__)


def _require_admin(actor: User | None) -> None:
    if not is_site_admin(actor):
        raise PermissionDenied("Only site administrators can do this.")


def _name_taken(name: str) -> bool:
    return User.objects.filter(username__iexact=name).exists()


@transaction.atomic
def create_user(
    *,
    actor: User | None,
    username: str,
    email: str,
    password: str | None = None,
    is_admin: bool = False,
    must_change_password: bool = False,
) -> User:
    """Create a person's account (actor None: the system, such as the first admin).

    must_change_password: the password was chosen for them, so they choose their own at the first sign-in."""
    if actor is not None:
        _require_admin(actor)
    validate_owner_name(username)
    if _name_taken(username):
        raise ValidationError(f"The name {username!r} is already taken.", code="conflict")
    user = User(
        username=username,
        email=email,
        is_staff=is_admin,
        is_superuser=is_admin,
        must_change_password=must_change_password and bool(password),
    )
    if password:
        user.set_password(password)
    else:
        user.set_unusable_password()
    user.save()
    if email:
        from allauth.account.models import EmailAddress

        EmailAddress.objects.create(user=user, email=email, primary=True, verified=False)
    audit.record(
        actor,
        "user.create",
        user,
        after={"username": username, "is_admin": is_admin, "must_change_password": user.must_change_password},
    )
    return user


@transaction.atomic
def set_user_active(user: User, *, actor: User | None, active: bool) -> User:
    """Deactivate (or reactivate) an account; a deactivated user can neither sign in nor push."""
    # actor None is the system: `manage.py users` is run by whoever holds a shell on the server.
    if actor is not None:
        _require_admin(actor)
    if actor is not None and user.pk == actor.pk and not active:
        raise PermissionDenied("You cannot deactivate your own account.")
    before = user.is_active
    user.is_active = active
    user.save(update_fields=["is_active"])
    audit.record(
        actor,
        "user.activate" if active else "user.deactivate",
        user,
        before={"is_active": before},
        after={"is_active": active},
    )
    return user


@transaction.atomic
def set_site_admin(user: User, *, actor: User | None, admin: bool) -> User:
    """Promote a user to site administrator, or demote one (actor None: the system, as in set_user_active)."""
    if actor is not None:
        _require_admin(actor)
    if actor is not None and user.pk == actor.pk and not admin:
        raise PermissionDenied("You cannot remove your own administrator rights.")
    before = user.is_superuser
    user.is_staff = user.is_superuser = admin
    user.save(update_fields=["is_staff", "is_superuser"])
    audit.record(
        actor, "user.promote" if admin else "user.demote", user, before={"is_admin": before}, after={"is_admin": admin}
    )
    return user


@transaction.atomic
def update_profile(user: User, *, actor: User, full_name: str) -> User:
    """Change the name a person shows next to their username."""
    _key_owner_check(actor, user)
    before = user.full_name
    user.full_name = full_name.strip()[:200]
    user.save(update_fields=["full_name"])
    audit.record(
        actor, "user.profile", user, subject=user, before={"full_name": before}, after={"full_name": user.full_name}
    )
    return user


@transaction.atomic
def set_open_signup(*, actor: User, open_signup: bool) -> SiteSettings:
    """Open or close self-service sign-up."""
    _require_admin(actor)
    site = SiteSettings.load()
    before = site.open_signup
    site.open_signup = open_signup
    site.save()
    audit.record(
        actor,
        "site.signup",
        site,
        target_repr="site settings",
        before={"open_signup": before},
        after={"open_signup": open_signup},
    )
    return site


@transaction.atomic
def require_password_change(user: User, *, actor: User | None, required: bool) -> User:
    """Send the user to the password change page from every page until they change it (or stop doing so).

    actor None is the system, as for the first administrator, whose password `serve` prints."""
    if actor is not None and actor.pk != user.pk:
        _require_admin(actor)
    User.objects.filter(pk=user.pk).update(must_change_password=required)
    before, user.must_change_password = user.must_change_password, required
    audit.record(
        actor,
        "user.password_change_required" if required else "user.password_change_done",
        user,
        subject=user,
        before={"must_change_password": before},
        after={"must_change_password": required},
    )
    return user


# Invitations: a signed one-time sign-up link for one email address, which works while sign-up is closed.

INVITATION_SALT = "portal.invitation"


def invitation_link(invitation: Invitation) -> str:
    token = signing.dumps(invitation.pk, salt=INVITATION_SALT)
    return settings.PORTAL_BASE_URL + reverse("portal:accept_invitation", args=[token])


def invitation_for_token(token: str) -> Invitation | None:
    """The pending invitation a link names; None for a forged, expired, used or revoked one."""
    try:
        pk = signing.loads(token, salt=INVITATION_SALT, max_age=INVITATION_TTL)
    except signing.BadSignature:
        return None
    return Invitation.objects.pending().filter(pk=pk).first()


@transaction.atomic
def invite_user(*, actor: User, email: str) -> tuple[Invitation, str]:
    """Invite an email address to sign up; mails the link after commit and returns it too."""
    _require_admin(actor)
    from allauth.account.models import EmailAddress

    email = email.strip()
    if EmailAddress.objects.filter(email__iexact=email).exists() or User.objects.filter(email__iexact=email).exists():
        raise ValidationError(f"{email} already belongs to an account.", code="conflict")
    invitation = Invitation.objects.create(email=email, invited_by=actor)
    link = invitation_link(invitation)
    audit.record(actor, "invitation.create", invitation, target_repr=email, after={"email": email})
    days = INVITATION_TTL.days
    message = (
        f"{actor.display_name} invites you to the portal at {settings.PORTAL_BASE_URL}.\n\n"
        f"Choose your username and password here (the link works once, for {days} days):\n\n{link}\n"
    )
    transaction.on_commit(lambda: _send_invitation(email, message))
    return invitation, link


def _send_invitation(email: str, message: str) -> None:
    # The administrator sees the link on the page as well, so a mail server that is down costs a log line only.
    try:
        send_mail("Your invitation to the portal", message, None, [email])
    except OSError:
        logger.exception("could not mail the invitation to %s", email)


@transaction.atomic
def accept_invitation(invitation: Invitation, *, user: User) -> bool:
    """Mark the invitation used by the account just made; False when it was no longer pending."""
    claimed = Invitation.objects.pending().filter(pk=invitation.pk).update(accepted_by=user, accepted_at=timezone.now())
    if claimed:
        audit.record(user, "invitation.accept", invitation, target_repr=invitation.email, subject=user)
    return bool(claimed)


@transaction.atomic
def revoke_invitation(invitation: Invitation, *, actor: User) -> Invitation:
    """Make a pending invitation's link useless."""
    _require_admin(actor)
    if Invitation.objects.pending().filter(pk=invitation.pk).update(revoked_at=timezone.now()):
        audit.record(actor, "invitation.revoke", invitation, target_repr=invitation.email)
    invitation.refresh_from_db()
    return invitation


# SSH keys


def _key_owner_check(actor: User, user: User) -> None:
    if actor.pk != user.pk and not is_site_admin(actor):
        raise PermissionDenied("You can only manage your own keys.")


KEY_TAKEN = "This key is already registered (to an account or as a deploy key); a key can be used once."


def revocation_of(fingerprint: str) -> RevokedKeyFingerprint | None:
    """The administrator's block on this fingerprint, if there is one."""
    return RevokedKeyFingerprint.objects.filter(fingerprint=fingerprint).first()


def revoked_key_message(revocation: RevokedKeyFingerprint) -> str:
    when = timezone.localtime(revocation.created).strftime("%Y-%m-%d %H:%M %Z")
    return (
        f"An administrator revoked this key on {when}: it cannot be added again. "
        "Make a new key pair, or ask an administrator."
    )


def register_key(public_key: str, *, actor: User, title: str, **owner) -> SshKey:
    """Parse and store a key for owner (user=… or repository=…); the unique fingerprint refuses a reused key.

    It checks no permission: add_ssh_key and repos.services.add_deploy_key check who may add the key first."""
    parsed = parse_public_key(public_key)
    revocation = revocation_of(parsed.fingerprint)
    if revocation is not None:
        raise InvalidKey(revoked_key_message(revocation))
    try:
        with transaction.atomic():
            return SshKey.objects.create(
                title=(title or parsed.comment or parsed.key_type).strip()[:100],
                key_type=parsed.key_type,
                bits=parsed.bits,
                public_key=parsed.public_key,
                fingerprint=parsed.fingerprint,
                added_by=actor,
                **owner,
            )
    except IntegrityError as exc:
        raise InvalidKey(KEY_TAKEN) from exc


def key_summary(key: SshKey) -> dict:
    return {"fingerprint": key.fingerprint, "title": key.title, "type": key.key_type}


@transaction.atomic
def add_ssh_key(user: User, *, actor: User, title: str, public_key: str) -> SshKey:
    """Register a key on a user's account; raises InvalidKey with the reason."""
    _key_owner_check(actor, user)
    if user.is_organization:
        raise InvalidKey("Organizations cannot have SSH keys: add the key to a person's account or as a deploy key.")
    key = register_key(public_key, actor=actor, title=title, user=user)
    audit.record(actor, "key.add", key, subject=user, after=key_summary(key))
    return key


def _announce_removed(key: SshKey, *, actor: User, revoked: bool, reason: str) -> None:
    # Deploy keys belong to a repository, whose administrators removed it themselves (or see the audit log).
    if key.user_id is None:
        return
    signals.ssh_key_removed.send(
        sender=SshKey,
        key_owner=key.user,
        fingerprint=key.fingerprint,
        title=key.title,
        actor=actor,
        revoked=revoked,
        reason=reason,
    )


@transaction.atomic
def remove_ssh_key(key: SshKey, *, actor: User) -> None:
    """Delete a key; the next connection that offers it is refused, and its owner may add it again."""
    if key.repository_id is None:
        _key_owner_check(actor, key.user)
    else:
        # A repository's administrators remove its deploy keys through repos.services.remove_deploy_key.
        _require_admin(actor)
    before = key_summary(key)
    if key.repository_id is not None:
        audit.record(actor, "deploy_key.remove", key.repository, before=before)
    else:
        audit.record(actor, "key.remove", key, subject=key.user, before=before)
    _announce_removed(key, actor=actor, revoked=False, reason="")
    key.delete()


@transaction.atomic
def revoke_ssh_key(key: SshKey, *, actor: User, reason: str = "") -> RevokedKeyFingerprint:
    """Delete a key and block its fingerprint site-wide, so that nobody can register it again until lifted."""
    _require_admin(actor)
    reason = " ".join(reason.split())[:500]
    owner_name = key.user.username if key.user_id else f"deploy key of {key.repository.full_name}"
    revocation, _ = RevokedKeyFingerprint.objects.get_or_create(
        fingerprint=key.fingerprint,
        defaults={
            "key_type": key.key_type,
            "owner_name": owner_name,
            "title": key.title,
            "reason": reason,
            "revoked_by": actor,
        },
    )
    before, after = key_summary(key), {"blocked": True, "reason": reason}
    if key.repository_id is not None:
        audit.record(actor, "deploy_key.revoke", key.repository, before=before, after=after)
    else:
        audit.record(actor, "key.revoke", key, subject=key.user, before=before, after=after)
    _announce_removed(key, actor=actor, revoked=True, reason=reason)
    key.delete()
    return revocation


@transaction.atomic
def lift_key_revocation(revocation: RevokedKeyFingerprint, *, actor: User) -> None:
    """Let a revoked fingerprint be registered again (the key itself stays deleted)."""
    _require_admin(actor)
    subject = User.objects.people().filter(username=revocation.owner_name).first()
    audit.record(
        actor,
        "key.lift",
        revocation,
        target_repr=revocation.fingerprint,
        subject=subject,
        before={
            "fingerprint": revocation.fingerprint,
            "owner": revocation.owner_name,
            "reason": revocation.reason,
            "revoked_at": revocation.created.isoformat(),
        },
    )
    revocation.delete()


def touch_ssh_key(key: SshKey) -> None:
    """Record that a key was just used (no audit: this is not a change anyone made)."""
    SshKey.objects.filter(pk=key.pk).update(last_used=timezone.now())


# Sessions


@transaction.atomic
def end_user_session(session, *, actor: User) -> None:
    """Sign out one of a user's other browser sessions (the current one signs out the usual way)."""
    from allauth.usersessions.adapter import get_adapter

    if session.user_id != actor.pk and not is_site_admin(actor):
        raise PermissionDenied("You can only end your own sessions.")
    if session.is_current():
        raise ValidationError("This is the session you are using: sign out instead.")
    audit.record(
        actor,
        "session.revoke",
        subject=session.user,
        target_repr=f"session from {session.ip}",
        before={"ip": session.ip, "user_agent": session.user_agent[:200]},
    )
    get_adapter().end_sessions([session])


# Access tokens


@transaction.atomic
def create_access_token(
    user: User, *, actor: User, name: str, scopes: list[str], expires_at: datetime | None
) -> tuple[AccessToken, str]:
    """Create a token and return it with its raw value, which is never stored or shown again."""
    _key_owner_check(actor, user)
    if user.is_organization:
        raise ValidationError("Organizations cannot have access tokens: create one on a person's account.")
    name = name.strip()
    if not name:
        raise ValidationError("Give the token a name.")
    unknown = set(scopes) - set(AccessToken.SCOPES)
    if unknown or not scopes:
        raise ValidationError(f"Choose scopes from {', '.join(AccessToken.SCOPES)}.")
    if "admin" in scopes and not is_site_admin(user):
        raise ValidationError("Only site administrators can create tokens with the admin scope.")
    if expires_at is not None and expires_at <= timezone.now():
        raise ValidationError("The expiry date must be in the future.")
    if AccessToken.objects.filter(user=user, name=name).exists():
        raise ValidationError(f"You already have a token named {name!r}.", code="conflict")
    raw = AccessToken.PREFIX + secrets.token_urlsafe(30)
    token = AccessToken.objects.create(
        user=user,
        name=name,
        token_hash=AccessToken.hash(raw),
        last_eight=raw[-8:],
        scopes=sorted(set(scopes)),
        expires_at=expires_at,
    )
    audit.record(
        actor,
        "token.create",
        token,
        subject=user,
        after={"name": name, "scopes": token.scopes, "expires_at": expires_at.isoformat() if expires_at else None},
    )
    return token, raw


@transaction.atomic
def revoke_access_token(token: AccessToken, *, actor: User) -> None:
    """Delete a token; it stops working at once."""
    _key_owner_check(actor, token.user)
    audit.record(actor, "token.revoke", token, subject=token.user, before={"name": token.name, "scopes": token.scopes})
    token.delete()


def authenticate_token(raw: str) -> AccessToken | None:
    """The active token with this raw value, or None."""
    if not raw or not raw.startswith(AccessToken.PREFIX):
        return None
    token = AccessToken.objects.select_related("user").filter(token_hash=AccessToken.hash(raw)).first()
    # Organizations never authenticate, by any path.
    if token is None or token.is_expired or not token.user.is_active or token.user.is_organization:
        return None
    AccessToken.objects.filter(pk=token.pk).update(last_used=timezone.now())
    return token


# Organizations and teams


@transaction.atomic
def create_organization(
    *, actor: User, name: str, full_name: str = "", description: str = "", owner: User | None = None
) -> User:
    """Create an organization with an owners team holding its creator, or owner (for site admins only)."""
    if not actor.is_authenticated or actor.is_organization:
        raise PermissionDenied("Sign in to create an organization.")
    owner = owner or actor
    if owner.pk != actor.pk and not is_site_admin(actor):
        raise PermissionDenied("Only site administrators create organizations for someone else.")
    if owner.is_organization or not owner.is_active:
        raise ValidationError("Only an active person can own an organization.")
    validate_owner_name(name)
    if _name_taken(name):
        raise ValidationError(f"The name {name!r} is already taken.", code="conflict")
    org = User(username=name, is_organization=True, full_name=full_name, description=description)
    org.set_unusable_password()
    org.save()
    owners = Team.objects.create(organization=org, name=Team.OWNERS, description="Administers the organization")
    owners.members.add(owner)
    audit.record(actor, "org.create", org, subject=owner, after={"name": name, "owner": owner.username})
    return org


@transaction.atomic
def create_team(org: User, *, actor: User, name: str, description: str = "") -> Team:
    """Add a team to an organization."""
    if not is_org_owner(actor, org):
        raise PermissionDenied("Only the organization's owners can create teams.")
    validate_owner_name(name)
    if Team.objects.filter(organization=org, name__iexact=name).exists():
        raise ValidationError(f"The team {name!r} already exists.")
    team = Team.objects.create(organization=org, name=name, description=description)
    audit.record(actor, "team.create", team, after={"name": name})
    return team


@transaction.atomic
def add_team_member(team: Team, user: User, *, actor: User) -> Team:
    """Put a user in a team."""
    if not is_org_owner(actor, team.organization):
        raise PermissionDenied("Only the organization's owners can change teams.")
    if user.is_organization or not user.is_active:
        raise ValidationError("Only active people can join a team.")
    team.members.add(user)
    audit.record(actor, "team.member_add", team, subject=user, after={"member": user.username})
    return team


@transaction.atomic
def remove_team_member(team: Team, user: User, *, actor: User) -> Team:
    """Take a user out of a team; the owners team always keeps one member."""
    if not is_org_owner(actor, team.organization):
        raise PermissionDenied("Only the organization's owners can change teams.")
    if team.is_owners and team.members.count() <= 1:
        raise ValidationError("The owners team must keep at least one member.")
    team.members.remove(user)
    audit.record(actor, "team.member_remove", team, subject=user, before={"member": user.username})
    return team
