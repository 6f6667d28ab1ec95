import hashlib
import time

from django.conf import settings
from django.contrib.auth.models import AbstractUser, UserManager
from django.core.cache import cache
from django.db import models, transaction
from django.utils import timezone

from portal.validators import validate_owner_name


class AccountManager(UserManager):
    def people(self):
        return self.filter(is_organization=False)

    def organizations(self):
        return self.filter(is_organization=True)

    def named(self, names: list[str]) -> tuple[list["User"], list[str]]:
        """The active people these usernames name (in any case, as at sign-in), once each in the order given, and
        the names that match nobody."""
        wanted = list(dict.fromkeys(name for name in names if name))
        if not wanted:
            return [], []
        query = models.Q()
        for name in wanted:
            query |= models.Q(username__iexact=name)
        found = {user.username.lower(): user for user in self.people().filter(query, is_active=True)}
        users = list({found[name.lower()].pk: found[name.lower()] for name in wanted if name.lower() in found}.values())
        return users, [name for name in wanted if name.lower() not in found]


class User(AbstractUser):
    """A person or, with is_organization set, an organization: one namespace for owners."""

    username = models.CharField(max_length=40, unique=True, validators=[validate_owner_name])
    is_organization = models.BooleanField(default=False)
    full_name = models.CharField(max_length=200, blank=True)
    description = models.TextField(blank=True)

    objects = AccountManager()

    class Meta:
        constraints = [models.UniqueConstraint(models.functions.Lower("username"), name="user_username_ci_unique")]

    def __str__(self) -> str:
        return self.username

    @property
    def display_name(self) -> str:
        return self.full_name or self.get_full_name() or self.username


class Team(models.Model):
    """A group of users inside an organization; members of the owners team administer it."""

    OWNERS = "owners"

    organization = models.ForeignKey(User, on_delete=models.CASCADE, related_name="teams")
    name = models.CharField(max_length=40, validators=[validate_owner_name])
    description = models.CharField(max_length=255, blank=True)
    members = models.ManyToManyField(User, related_name="team_memberships", blank=True)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["organization", "name"], name="team_unique_name")]
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.organization.username}/{self.name}"

    @property
    def is_owners(self) -> bool:
        return self.name == self.OWNERS


class SshKeyQuerySet(models.QuerySet):
    def user_keys(self):
        return self.filter(repository__isnull=True)

    def deploy_keys(self):
        return self.filter(repository__isnull=False)


class SshKey(models.Model):
    """A user's SSH key, or a repository's deploy key when repository is set.

    One table for both, so a key can be registered only once anywhere."""

    user = models.ForeignKey(User, null=True, blank=True, on_delete=models.CASCADE, related_name="ssh_keys")
    repository = models.ForeignKey(
        "repos.Repository", null=True, blank=True, on_delete=models.CASCADE, related_name="deploy_keys"
    )
    writable = models.BooleanField(default=False, help_text="Deploy keys only: may push.")
    title = models.CharField(max_length=100)
    key_type = models.CharField(max_length=64)
    bits = models.PositiveIntegerField(null=True, blank=True)
    public_key = models.TextField()
    fingerprint = models.CharField(max_length=100, unique=True)
    added_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created = models.DateTimeField(default=timezone.now)
    last_used = models.DateTimeField(null=True, blank=True)

    objects = SshKeyQuerySet.as_manager()

    class Meta:
        ordering = ["-created"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(user__isnull=False, repository__isnull=True)
                | models.Q(user__isnull=True, repository__isnull=False),
                name="sshkey_user_xor_repository",
            )
        ]

    def __str__(self) -> str:
        return f"{self.title} ({self.fingerprint})"

    @property
    def is_deploy_key(self) -> bool:
        return self.repository_id is not None


class RevokedKeyFingerprint(models.Model):
    """A key an administrator revoked: no account or repository may register it again until the block is lifted."""

    fingerprint = models.CharField(max_length=100, unique=True)
    key_type = models.CharField(max_length=64, blank=True)
    # Whose key it was when revoked, kept as text: the block outlives the key, and may outlive the account.
    owner_name = models.CharField(max_length=150, blank=True)
    title = models.CharField(max_length=100, blank=True)
    reason = models.CharField(max_length=500, blank=True)
    revoked_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created", "-id"]

    def __str__(self) -> str:
        return f"revoked {self.fingerprint}"


class AccessTokenQuerySet(models.QuerySet):
    def active(self):
        return self.filter(models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=timezone.now()))


class AccessToken(models.Model):
    """A personal access token: shown once, stored as a SHA-256 hash."""

    SCOPES = ("read:repo", "write:repo", "api", "admin")
    PREFIX = "ptl_"

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="access_tokens")
    name = models.CharField(max_length=100)
    token_hash = models.CharField(max_length=64, unique=True)
    last_eight = models.CharField(max_length=8)
    scopes = models.JSONField(default=list)
    expires_at = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(default=timezone.now)
    last_used = models.DateTimeField(null=True, blank=True)

    objects = AccessTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created"]
        constraints = [models.UniqueConstraint(fields=["user", "name"], name="token_unique_name")]

    def __str__(self) -> str:
        return f"{self.name} (…{self.last_eight})"

    @staticmethod
    def hash(raw: str) -> str:
        return hashlib.sha256(raw.encode()).hexdigest()

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()

    def has_scope(self, scope: str) -> bool:
        """admin implies every scope; write:repo implies read:repo."""
        scopes = set(self.scopes)
        if "admin" in scopes or scope in scopes:
            return True
        return scope == "read:repo" and "write:repo" in scopes


class AuditEvent(models.Model):
    """Who did what to which object, with the state before and after."""

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_name = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=64, db_index=True)
    target_type = models.CharField(max_length=64, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    target_repr = models.CharField(max_length=255, blank=True)
    # The user an action was done for, when that differs from the actor (an admin adding a key).
    subject = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    subject_name = models.CharField(max_length=150, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    created = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created", "-id"]

    def __str__(self) -> str:
        return f"{self.actor_name or 'system'} {self.action} {self.target_repr}"


# SiteSettings.signup_is_open's value in this process, and until when it holds.
_signup_memo: list = [False, 0.0]


class SiteSettings(models.Model):
    """Settings an admin changes at run time; one row."""

    open_signup = models.BooleanField(default=True)

    CACHE_KEY = "site-settings:open-signup"

    def save(self, *args, **kwargs) -> None:
        super().save(*args, **kwargs)
        _signup_memo[:] = [False, 0.0]
        cache.delete(self.CACHE_KEY)
        # Again after the commit: another process may have read the old value back in the meantime.
        transaction.on_commit(lambda: cache.delete(self.CACHE_KEY))

    @classmethod
    def load(cls) -> "SiteSettings":
        obj, _ = cls.objects.get_or_create(pk=1)
        return obj

    @classmethod
    def signup_is_open(cls) -> bool:
        """open_signup, read through the cache: every page for a visitor shows (or hides) the sign-up link.

        This process remembers it for a few seconds too, which spares a visitor's cached page a round trip."""
        remembered, until = _signup_memo
        if until > time.monotonic():
            return remembered
        value = cache.get(cls.CACHE_KEY)
        if value is None:
            value = cls.load().open_signup
            # A minute at most, in case another process (with its own local cache) changed it.
            cache.set(cls.CACHE_KEY, value, 60)
        _signup_memo[:] = [value, time.monotonic() + 5]
        return value
