import re
from pathlib import Path

from django.conf import settings
from django.db import models
from django.db.models import Max, QuerySet, Value
from django.db.models.functions import Lower
from django.utils import timezone

from portal import jobs
from portal.templatetags.urls import quick_url
from portal.validators import validate_repo_name


class Role(models.IntegerChoices):
    """Roles on a repository, ordered so that a higher role includes the lower ones."""

    READ = 1, "read"
    WRITE = 2, "write"
    MAINTAIN = 3, "maintain"
    ADMIN = 4, "admin"

    @classmethod
    def from_name(cls, name: str) -> "Role":
        for role in cls:
            if role.label == name:
                return role
        raise ValueError(f"unknown role {name!r}: use read, write, maintain or admin")


class Visibility(models.TextChoices):
    PRIVATE = "private", "Private"
    INTERNAL = "internal", "Internal"
    PUBLIC = "public", "Public"


class RepositoryQuerySet(models.QuerySet):
    def by_path(self, owner: str, name: str):
        """The repository owner/name, either part in any case: found through the case-insensitive unique indexes
        on the owner's name and on the repository's name per owner, which LOWER(...) = LOWER(...) uses (iexact's
        LIKE on SQLite and UPPER on PostgreSQL use neither, and read every row)."""
        return self.alias(owner_key=Lower("owner__username"), name_key=Lower("name")).filter(
            owner_key=Lower(Value(owner)), name_key=Lower(Value(name))
        )


class Repository(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="repositories")
    name = models.CharField(max_length=100, validators=[validate_repo_name])
    description = models.CharField(max_length=500, blank=True)
    visibility = models.CharField(max_length=10, choices=Visibility.choices, default=Visibility.PRIVATE)
    default_branch = models.CharField(max_length=255, default="main")
    created = models.DateTimeField(default=timezone.now)
    updated = models.DateTimeField(default=timezone.now)
    pushed = models.DateTimeField(null=True, blank=True)

    objects = RepositoryQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "repositories"
        ordering = ["owner__username", "name"]
        constraints = [
            models.UniqueConstraint("owner", models.functions.Lower("name"), name="repository_unique_name_per_owner")
        ]

    def __str__(self) -> str:
        return self.full_name

    def get_absolute_url(self) -> str:
        """The repository's page, which every code page's address starts with."""
        return quick_url("repos:detail", self.owner.username, self.name)

    @property
    def full_name(self) -> str:
        return f"{self.owner.username}/{self.name}"

    @property
    def path(self) -> Path:
        """The bare repository on disk, named by id so that no user-chosen name reaches the filesystem."""
        return settings.GIT_ROOT / f"{self.pk}.git"

    @property
    def ssh_url(self) -> str:
        host = settings.PORTAL_SSH_DOMAIN
        port = settings.PORTAL_SSH_PORT
        if port == 22:
            return f"git@{host}:{self.full_name}.git"
        return f"ssh://git@{host}:{port}/{self.full_name}.git"

    @property
    def http_url(self) -> str:
        return f"{settings.PORTAL_BASE_URL}/{self.full_name}.git"

    @property
    def web_url(self) -> str:
        return f"{settings.PORTAL_BASE_URL}/{self.full_name}"


_SCP_LIKE = re.compile(r"[^/:@]+@[^/:]+:")


def clone_url_label(url: str) -> str:
    """What a clone URL is reached over, from its scheme: SSH (ssh:// or git's scp form user@host:path), HTTPS, HTTP."""
    scheme, sep, _rest = url.partition("://")
    if sep:
        return {"ssh": "SSH", "git+ssh": "SSH", "ssh+git": "SSH", "https": "HTTPS", "http": "HTTP"}.get(
            scheme.lower(), scheme.upper()
        )
    return "SSH" if _SCP_LIKE.match(url) else ""


class Collaborator(models.Model):
    repository = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="collaborators")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="collaborations")
    role = models.PositiveSmallIntegerField(choices=Role.choices, default=Role.WRITE)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["repository", "user"], name="collaborator_unique")]


class TeamRepository(models.Model):
    repository = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="team_grants")
    team = models.ForeignKey("portal.Team", on_delete=models.CASCADE, related_name="repository_grants")
    role = models.PositiveSmallIntegerField(choices=Role.choices, default=Role.WRITE)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["repository", "team"], name="team_repository_unique")]


class Push(models.Model):
    """One ref update received by a repository."""

    class Protocol(models.TextChoices):
        SSH = "ssh"
        HTTP = "http"
        WEB = "web"

    repository = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="pushes")
    pusher = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    deploy_key = models.ForeignKey("portal.SshKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    ref = models.CharField(max_length=255)
    old_sha = models.CharField(max_length=64)
    new_sha = models.CharField(max_length=64)
    forced = models.BooleanField(default=False)
    # Empty for an update the ref reconciler found without knowing how it came.
    protocol = models.CharField(max_length=8, choices=Protocol.choices, blank=True)
    created = models.DateTimeField(default=timezone.now, db_index=True)
    # Recorded by the ref reconciler, not by the push's own post-receive call (which failed or never came).
    recorded_late = models.BooleanField(default=False)

    class Meta:
        ordering = ["-created", "-id"]

    @property
    def is_create(self) -> bool:
        return set(self.old_sha) == {"0"}

    @property
    def is_delete(self) -> bool:
        return set(self.new_sha) == {"0"}


class PushSession(models.Model):
    """Credentials a transport hands to git's hooks for one push, checked by the hook endpoint.

    Each phase uses it once: pre-receive claims a new session (and deletes it when it refuses the push),
    post-receive claims an accepted one and deletes it. The transport deletes it when git exits, whatever
    happened, so a refused or abandoned push leaves nothing that could be replayed."""

    class Phase(models.TextChoices):
        NEW = "new"
        ACCEPTED = "accepted"

    repository = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.CASCADE, related_name="+")
    deploy_key = models.ForeignKey("portal.SshKey", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    # The token an HTTP push authenticated with: its scopes still apply in the hooks, and revoking it ends the push.
    token = models.ForeignKey("portal.AccessToken", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    secret_hash = models.CharField(max_length=64, unique=True)
    protocol = models.CharField(max_length=8, choices=Push.Protocol.choices)
    created = models.DateTimeField(default=timezone.now)
    phase = models.CharField(max_length=8, choices=Phase.choices, default=Phase.NEW)
    # The ref updates pre-receive accepted ({"ref", "old", "new", "forced"} each): post-receive may only
    # record updates among them.
    accepted_updates = models.JSONField(default=list, blank=True)
    # When git exited with the session still accepted: its post-receive never recorded the push, and the ref
    # reconciler will (an accepted session is what tells it a repository may have moved unrecorded).
    git_exited = models.DateTimeField(null=True, blank=True)


class RecordedRef(models.Model):
    """Where the portal last recorded a branch or tag of a repository: the ref reconciler records as pushed
    "late" every difference between these rows and the repository's refs.

    record_push moves a row only from the tip it read (compare-and-swap), in the push's transaction, so an
    update is recorded once however many recorders (the hook call, reconcilers) race for it."""

    repository = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="+")
    ref = models.CharField(max_length=255)
    sha = models.CharField(max_length=64)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["repository", "ref"], name="recorded_ref_unique")]


@jobs.register
class RepositoryMaintenance(jobs.JobRow):
    """One pending (or past) maintenance run of a repository; a burst of pushes moves the due time of one row."""

    job_function = "repos.jobs.run_repository_maintenance"
    debounced = True
    repository = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="+")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["repository"], condition=models.Q(state="queued"), name="one_queued_maintenance_per_repository"
            )
        ]

    def rq_job_id(self) -> str:
        # One rq job per repository: enqueuing it again moves the scheduled time later.
        return f"repository-maintenance-{self.repository_id}"

    def job_args(self) -> tuple:
        return (self.repository_id,)

    def describe(self) -> str:
        return f"maintenance of repository #{self.repository_id}"


def next_number(numbered: QuerySet) -> int:
    """The next number of a repository's own sequence (its pull requests, its builds): one more than the highest.
    Two creations racing for it meet the sequence's unique constraint, which refuses the second."""
    return (numbered.aggregate(n=Max("number"))["n"] or 0) + 1
