"""Builds: one row per run of a repository's buildspec, a job on the rq `builds` queue (DESIGN §11).

The job's state (queued, running, done…) says where the job is; build_status says how the build went, with
CodeBuild's words. The phases are kept as the runner reported them, in order."""

from pathlib import Path

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from portal import jobs
from portal.models import Team, User
from repos.models import Repository
from reviews.models import PullRequest

# CodeBuild's longest build.
MAX_TIMEOUT_MINUTES = 8 * 60


@jobs.register
class Build(jobs.JobRow):
    """One build of one commit of a repository."""

    class Trigger(models.TextChoices):
        PUSH = "push", "Push"
        PULL_REQUEST = "pull_request", "Pull request"
        MANUAL = "manual", "Manual"
        RERUN = "rerun", "Rerun"

    class BuildStatus(models.TextChoices):
        QUEUED = "QUEUED", "Queued"
        IN_PROGRESS = "IN_PROGRESS", "In progress"
        SUCCEEDED = "SUCCEEDED", "Succeeded"
        FAILED = "FAILED", "Failed"
        FAULT = "FAULT", "Fault"
        TIMED_OUT = "TIMED_OUT", "Timed out"
        STOPPED = "STOPPED", "Stopped"

    ENDED = (
        BuildStatus.SUCCEEDED,
        BuildStatus.FAILED,
        BuildStatus.FAULT,
        BuildStatus.TIMED_OUT,
        BuildStatus.STOPPED,
    )

    job_function = "releases.jobs.run_build"
    queue_name = "builds"
    # A build is not repeated behind its author's back: a worker lost mid-build ends it, and a rerun is a new build.
    max_attempts = 1
    describe_related = ("repository__owner",)

    repository = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="builds")
    # Per repository, as pull request numbers are.
    number = models.PositiveIntegerField()
    head_sha = models.CharField(max_length=64)
    # The ref built ("refs/heads/main", "refs/pull/3/head"), and its branch when it is one.
    ref = models.CharField(max_length=300)
    head_branch = models.CharField(max_length=255, blank=True)
    trigger = models.CharField(max_length=20, choices=Trigger.choices)
    initiator = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    pull_request = models.ForeignKey(
        PullRequest, null=True, blank=True, on_delete=models.SET_NULL, related_name="builds"
    )
    buildspec_path = models.CharField(max_length=500, default="buildspec.yml")
    build_status = models.CharField(max_length=12, choices=BuildStatus.choices, default=BuildStatus.QUEUED)
    # Why the build ended as it did ("COMMAND_EXECUTION_ERROR: …", a buildspec error), empty when it succeeded.
    message = models.TextField(blank=True)
    # The runner's phases in order: [{"name", "status", "started", "ended", "duration", "message"}].
    phases = models.JSONField(default=list)
    # Variables given when the build was started (never secrets), and what env.exported-variables held at the end.
    start_variables = models.JSONField(default=dict)
    exported_variables = models.JSONField(default=dict)
    # The buildspec's keys accepted but not acted on, as "line N, key: why".
    warnings = models.JSONField(default=list)
    # The report groups' test cases: [{"group", "files", "errors", "cases": [{"suite", "classname", "name",
    # "status", "duration", "message", "details", "file"}]}], as releases.reports read them.
    reports = models.JSONField(default=list)
    # The names (never the values) of the secrets the build was given, and why it was given none when it had some.
    secret_names = models.JSONField(default=list)
    secrets_withheld = models.CharField(max_length=300, blank=True)
    # Set by a stop of a running build; the worker running it reads it about once a second.
    stop_requested = models.BooleanField(default=False)
    # The log's name in the artifact store (releases/logs.py); cleared when retention removes the log (log_size
    # stays, so that an ended build with a size and no path is one whose log was removed).
    log_path = models.CharField(max_length=500, blank=True)
    log_size = models.BigIntegerField(default=0)
    created = models.DateTimeField(default=timezone.now)
    build_started = models.DateTimeField(null=True, blank=True)
    build_ended = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created", "-id"]
        constraints = [models.UniqueConstraint(fields=["repository", "number"], name="build_unique_number")]
        indexes = [
            models.Index(fields=["repository", "head_sha"]),
            models.Index(fields=["repository", "head_branch", "-created"]),
        ]

    def __str__(self) -> str:
        return f"{self.repository.full_name} build #{self.number}"

    def describe(self) -> str:
        return f"build #{self.number} of {self.repository.full_name} at {self.head_sha[:12]} ({self.trigger})"

    def fail(self, error: str, *, retry: bool = True) -> bool:
        """End a run that went wrong; a build left unfinished (its worker lost, found by the reconciler) ends FAULT
        with its commit status posted."""
        ended = super().fail(error, retry=retry)
        if ended and self.state == self.State.FAILED:
            self.refresh_from_db()
            if not self.is_ended:
                from releases import logs
                from releases.services import record_result

                record_result(self, status=self.BuildStatus.FAULT, message=error, log_size=logs.store_left_over(self))
        return ended

    @property
    def web_url(self) -> str:
        return f"{settings.PORTAL_BASE_URL}/{self.repository.full_name}/builds/{self.number}"

    @property
    def is_ended(self) -> bool:
        return self.build_status in self.ENDED

    # Where its log is (releases.logs).
    @property
    def log_key(self) -> str:
        return f"portal:build-log:{self.pk}"

    @property
    def log_stored_name(self) -> str:
        return f"logs/{self.repository_id}/{self.pk}.log"

    @property
    def log_local_path(self) -> Path:
        return Path(settings.PORTAL_BUILDS_ROOT) / "logs" / f"{self.pk}.log"

    @property
    def log_removed(self) -> bool:
        """Whether retention removed the log (releases/retention.py)."""
        return self.is_ended and not self.log_path and self.log_size > 0


class BuildSettings(models.Model):
    """How a repository builds; a repository without a row builds with the defaults."""

    repository = models.OneToOneField(Repository, on_delete=models.CASCADE, related_name="build_settings")
    # Gitea's branch filter syntax (a glob with {a,b} alternatives); empty builds every branch.
    branch_filter = models.CharField(max_length=500, blank=True)
    build_tags = models.BooleanField(default=False)
    # A newer build of a branch stops the older one still queued; with this, the running one too.
    stop_running = models.BooleanField(default=False)
    buildspec_path = models.CharField(max_length=500, default="buildspec.yml")
    # Outbound network for builds (still no route to the host's loopback).
    network = models.BooleanField(default=False)
    timeout_minutes = models.PositiveIntegerField(
        default=60, validators=[MinValueValidator(1), MaxValueValidator(MAX_TIMEOUT_MINUTES)]
    )
    # The branches whose builds get secrets, in the branch filter's syntax; empty: the protected branches.
    secret_branches = models.CharField(max_length=500, blank=True)
    updated = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "build settings"

    def __str__(self) -> str:
        return f"build settings of {self.repository.full_name}"


class BuildArtifact(models.Model):
    """One artifact a build made (its primary one or a secondary one): a zip stored once by its sha256."""

    build = models.ForeignKey(Build, on_delete=models.CASCADE, related_name="artifacts")
    # The secondary artifact's identifier; empty for the primary one.
    identifier = models.CharField(max_length=255, blank=True)
    name = models.CharField(max_length=255)
    sha256 = models.CharField(max_length=64, db_index=True)
    size_in_bytes = models.BigIntegerField()
    # The paths inside the zip, sorted.
    files = models.JSONField(default=list)
    # The signed provenance statement: a DSSE envelope {"payloadType", "payload", "signatures"} over an in-toto
    # statement with the SLSA v1 predicate; null until signed.
    provenance = models.JSONField(null=True, blank=True)
    # Removed by retention (releases/retention.py), as GitHub marks an artifact past its retention: the row stays,
    # with its digest and provenance, so that bytes kept elsewhere can still be traced; the zip may be gone.
    expired = models.BooleanField(default=False)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["build", "identifier", "id"]

    def __str__(self) -> str:
        return f"{self.name}.zip ({self.sha256[:12]})"

    @property
    def storage_name(self) -> str:
        return f"sha256/{self.sha256[:2]}/{self.sha256}.zip"


class BuildVariable(models.Model):
    """A variable or a secret given to builds, of one repository or of every repository of one organization.

    A secret's value is kept encrypted (releases.secrets) and never shown again; a variable's is plain text.
    Secrets and variables are two namespaces, as in GitHub: a secret and a variable may share a name."""

    repository = models.ForeignKey(
        Repository, null=True, blank=True, on_delete=models.CASCADE, related_name="build_variables"
    )
    organization = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.CASCADE, related_name="build_variables"
    )
    name = models.CharField(max_length=255)
    secret = models.BooleanField(default=False)
    # A variable's value, or a secret's ciphertext.
    value = models.TextField(blank=True)
    created = models.DateTimeField(default=timezone.now)
    updated = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(repository__isnull=False, organization__isnull=True)
                | models.Q(repository__isnull=True, organization__isnull=False),
                name="build_variable_one_owner",
            ),
            models.UniqueConstraint(
                fields=["repository", "secret", "name"],
                condition=models.Q(repository__isnull=False),
                name="build_variable_unique_in_repository",
            ),
            models.UniqueConstraint(
                fields=["organization", "secret", "name"],
                condition=models.Q(organization__isnull=False),
                name="build_variable_unique_in_organization",
            ),
        ]

    def __str__(self) -> str:
        kind = "secret" if self.secret else "variable"
        return f"{kind} {self.name} of {self.repository or self.organization}"


# Deployments: environments and their targets (AWS release semantics §2–4).


def _one_at_a_time() -> dict:
    return {"name": "OneAtATime", "type": "MOST_CONCURRENCY", "value": 1}


def _open_ref_policy() -> dict:
    return {"default_branch": False, "protected_branches": False, "patterns": []}


class Environment(models.Model):
    """Where a repository's builds are deployed (dev, uat, …), in the order they are promoted through, with its
    protection: the approvals it needs, the refs it takes, a wait timer and change-freeze windows.

    Settings are kept as the validators of releases.deploy_checks and releases.batches take them, so that a
    deployment reads them back through the same functions that checked them (releases.environments)."""

    repository = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="environments")
    # One path component of the local targets' directories (releases.local_target.check_name).
    name = models.CharField(max_length=100)
    position = models.PositiveIntegerField(default=0)
    # A CodeDeploy configuration: {"name", "type", "value"} as releases.batches.DeploymentConfig holds it.
    deployment_config = models.JSONField(default=_one_at_a_time)
    # N approvals from the pool of reviewer users and teams' members; 0 when there are no reviewers.
    required_approvals = models.PositiveIntegerField(default=0)
    reviewer_users = models.ManyToManyField(User, blank=True, related_name="+")
    reviewer_teams = models.ManyToManyField(Team, blank=True, related_name="+")
    # The person who requested a deployment never counts as its approver, unless this is off.
    prevent_self_review = models.BooleanField(default=True)
    # The keyword arguments of releases.deploy_checks.ref_policy: default_branch, protected_branches, patterns.
    ref_policy = models.JSONField(default=_open_ref_policy)
    wait_timer = models.PositiveIntegerField(default=0, help_text="Minutes")
    # A list of windows as releases.deploy_checks.windows takes them.
    freeze_windows = models.JSONField(default=list)
    created = models.DateTimeField(default=timezone.now)
    updated = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["position", "name"]
        constraints = [models.UniqueConstraint(fields=["repository", "name"], name="environment_unique_name")]

    def __str__(self) -> str:
        return f"environment {self.name} of {self.repository}"


class EnvironmentTarget(models.Model):
    """A host an environment deploys to: a directory under the site's targets root (local), or a host reached over
    SSH with a deploy key the portal generated and a pinned host key (ssh)."""

    class Kind(models.TextChoices):
        LOCAL = "local"
        SSH = "ssh"

    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="targets")
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=5, choices=Kind.choices, default=Kind.LOCAL)
    position = models.PositiveIntegerField(default=0)
    host = models.CharField(max_length=255, blank=True)
    port = models.PositiveIntegerField(null=True, blank=True)
    user = models.CharField(max_length=32, blank=True)
    # The host's public key line; a connection to a host showing another key is refused.
    host_key = models.TextField(blank=True)
    # The deploy key: its private half encrypted (releases.secrets) and never shown, its public line in clear for the
    # host's authorized_keys.
    deploy_key_private = models.TextField(blank=True)
    deploy_key_public = models.CharField(max_length=500, blank=True)
    # The health check: a command run on the target, or an HTTP URL that must answer 2xx; at most one of the two.
    health_command = models.TextField(blank=True)
    health_url = models.URLField(max_length=500, blank=True)
    # CodeDeploy's bookkeeping after each deployment (releases.batches.GroupState): healthy or unhealthy, and the
    # deployment whose revision it runs (null: nothing installed yet).
    health = models.CharField(max_length=10, default="healthy")
    revision = models.ForeignKey("Deployment", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    last_deployment = models.ForeignKey(
        "Deployment", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The last run of the health check: None before any, with what it printed.
    check_healthy = models.BooleanField(null=True, blank=True)
    check_detail = models.TextField(blank=True)
    checked_at = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(default=timezone.now)
    updated = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["position", "name"]
        constraints = [models.UniqueConstraint(fields=["environment", "name"], name="environment_target_unique_name")]

    def __str__(self) -> str:
        return f"target {self.name} of {self.environment}"


class EnvironmentVariable(models.Model):
    """A variable or a secret given to an environment's deployment hooks, with the rules of BuildVariable: a
    secret's value is kept encrypted and never shown again, and secrets and variables are two namespaces."""

    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="variables")
    name = models.CharField(max_length=255)
    secret = models.BooleanField(default=False)
    # A variable's value, or a secret's ciphertext.
    value = models.TextField(blank=True)
    created = models.DateTimeField(default=timezone.now)
    updated = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["environment", "secret", "name"], name="environment_variable_unique_name")
        ]

    def __str__(self) -> str:
        kind = "secret" if self.secret else "variable"
        return f"{kind} {self.name} of {self.environment}"


# Deployments (AWS release semantics §2–4): one artifact to one environment, target by target, batch by batch.


@jobs.register
class Deployment(jobs.JobRow):
    """One deployment of one build artifact to one environment, a job on the rq `deploys` queue.

    The job's state says where the job is; deployment_status says how the deployment went, in CodeDeploy's words. A
    deployment waits (Waiting) while the environment's approvals, wait timer or a change freeze hold it, and is
    queued once nothing does."""

    class Status(models.TextChoices):
        WAITING = "Waiting", "Waiting"
        QUEUED = "Queued", "Queued"
        IN_PROGRESS = "InProgress", "In progress"
        SUCCEEDED = "Succeeded", "Succeeded"
        FAILED = "Failed", "Failed"
        STOPPED = "Stopped", "Stopped"

    ENDED = (Status.SUCCEEDED, Status.FAILED, Status.STOPPED)

    job_function = "releases.deploy_job.run_deployment"
    queue_name = "deploys"
    # A deployment is not repeated behind anyone's back: a worker lost mid-deployment fails it, which rolls back.
    max_attempts = 1
    describe_related = ("repository__owner", "environment")

    repository = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="deployments")
    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="deployments")
    # What is deployed: kept while a deployment names it, so that retention never removes the bytes a rollback needs.
    artifact = models.ForeignKey(BuildArtifact, on_delete=models.PROTECT, related_name="deployments")
    sha = models.CharField(max_length=64)
    ref = models.CharField(max_length=300, blank=True)
    creator = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    description = models.TextField(blank=True)
    # The deployment this one undoes, when it is a rollback; automatic when the portal started it on a failure.
    rollback_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="rollbacks")
    automatic = models.BooleanField(default=False)
    deployment_status = models.CharField(max_length=12, choices=Status.choices, default=Status.QUEUED)
    # Why it waits, failed or stopped; empty once it succeeded.
    message = models.TextField(blank=True)
    # The configuration it ran with ({"name", "type", "value"}), the minimum it kept, and the environment's last
    # successful deployment when it started (which tells Old targets from Current ones).
    config = models.JSONField(default=dict)
    minimum_healthy = models.PositiveIntegerField(null=True, blank=True)
    previous = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # A repository admin who started it through a freeze or before its wait timer ended.
    override_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    stop_requested = models.BooleanField(default=False)
    # The pipeline action that requested it, when a pipeline did: its approval action, once passed, is the review.
    pipeline_action = models.ForeignKey(
        "PipelineActionRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="deployments"
    )
    log_size = models.BigIntegerField(default=0)
    created = models.DateTimeField(default=timezone.now)
    deploy_started = models.DateTimeField(null=True, blank=True)
    deploy_ended = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created", "-id"]
        indexes = [models.Index(fields=["environment", "deployment_status", "-created"])]

    def __str__(self) -> str:
        return f"deployment {self.pk} of {self.repository.full_name} to {self.environment.name}"

    def describe(self) -> str:
        kind = " (rollback)" if self.rollback_of_id else ""
        return (
            f"deployment {self.pk}{kind} of {self.repository.full_name} at {self.sha[:12]} to {self.environment.name}"
        )

    def fail(self, error: str, *, retry: bool = True) -> bool:
        """A deployment left unfinished (its worker lost, found by the reconciler) ends Failed, and rolls back."""
        ended = super().fail(error, retry=retry)
        if ended and self.state == self.State.FAILED:
            self.refresh_from_db()
            if not self.is_ended:
                from releases import deployments

                deployments.record_lost(self, error)
        return ended

    @property
    def is_ended(self) -> bool:
        return self.deployment_status in self.ENDED

    @property
    def web_url(self) -> str:
        return f"{settings.PORTAL_BASE_URL}/{self.repository.full_name}/deployments/{self.pk}"

    # Its own log (the door checks, the batches): releases.logs.
    @property
    def log_key(self) -> str:
        return f"portal:deploy-log:{self.pk}"

    @property
    def log_stored_name(self) -> str:
        return f"deploy-logs/{self.repository_id}/{self.pk}/deployment.log"

    @property
    def log_local_path(self):
        return Path(settings.PORTAL_DEPLOYS_ROOT) / "logs" / f"{self.pk}.log"


class DeploymentTarget(models.Model):
    """One target's part in a deployment: its batch, status, lifecycle events with their timings, and its log."""

    class Status(models.TextChoices):
        PENDING = "Pending", "Pending"
        IN_PROGRESS = "InProgress", "In progress"
        SUCCEEDED = "Succeeded", "Succeeded"
        FAILED = "Failed", "Failed"
        SKIPPED = "Skipped", "Skipped"

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="targets")
    target = models.ForeignKey(
        "EnvironmentTarget", null=True, blank=True, on_delete=models.SET_NULL, related_name="deployment_runs"
    )
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=5)
    # Where it stood in CodeDeploy's order, the batch it was deployed in (1, 2…; null until then).
    position = models.PositiveIntegerField(default=0)
    batch = models.PositiveIntegerField(null=True, blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    # What CodeDeploy ordered it by: healthy or unhealthy, and unknown, old or current.
    health_before = models.CharField(max_length=10, blank=True)
    revision_before = models.CharField(max_length=10, blank=True)
    # [{"event", "status", "duration", "message"}] as the target reported them.
    events = models.JSONField(default=list)
    message = models.TextField(blank=True)
    log_size = models.BigIntegerField(default=0)
    started = models.DateTimeField(null=True, blank=True)
    ended = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["deployment", "position"]
        constraints = [models.UniqueConstraint(fields=["deployment", "name"], name="deployment_target_unique_name")]

    def __str__(self) -> str:
        return f"{self.name} in {self.deployment}"

    @property
    def is_ended(self) -> bool:
        return self.status in (self.Status.SUCCEEDED, self.Status.FAILED, self.Status.SKIPPED)

    @property
    def duration_seconds(self) -> float | None:
        if self.started and self.ended:
            return round((self.ended - self.started).total_seconds(), 3)
        return None

    @property
    def log_key(self) -> str:
        return f"portal:deploy-target-log:{self.pk}"

    @property
    def log_stored_name(self) -> str:
        return f"deploy-logs/{self.deployment.repository_id}/{self.deployment_id}/{self.name}.log"

    @property
    def log_local_path(self):
        return Path(settings.PORTAL_DEPLOYS_ROOT) / "logs" / f"target-{self.pk}.log"


class DeploymentStatus(models.Model):
    """A deployment's statuses in GitHub's words, newest last here and first in the API."""

    class State(models.TextChoices):
        WAITING = "waiting"
        QUEUED = "queued"
        IN_PROGRESS = "in_progress"
        SUCCESS = "success"
        FAILURE = "failure"
        ERROR = "error"
        INACTIVE = "inactive"

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="statuses")
    state = models.CharField(max_length=12, choices=State.choices)
    description = models.CharField(max_length=500, blank=True)
    creator = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created", "-id"]

    def __str__(self) -> str:
        return f"{self.state} of {self.deployment}"


class DeploymentReview(models.Model):
    """An approval or a rejection of a waiting deployment by one of the environment's reviewers."""

    class State(models.TextChoices):
        APPROVED = "approved"
        REJECTED = "rejected"

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="reviews")
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+")
    state = models.CharField(max_length=10, choices=State.choices)
    comment = models.TextField(blank=True)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created", "id"]
        constraints = [models.UniqueConstraint(fields=["deployment", "user"], name="deployment_review_once")]

    def __str__(self) -> str:
        return f"{self.state} by {self.user} of {self.deployment}"


# Pipelines (AWS release semantics §5): the structure read from pipeline.yml, the state kept by
# releases.pipeline_rules, and rows that mirror that state for pages and the API (releases.pipelines).


class Pipeline(models.Model):
    """A repository's pipeline: the structure it runs (the pipeline.yml it was read from and its version), the
    state of its executions as releases.pipeline_rules keeps it, and the last file refused, with where and why."""

    repository = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="pipelines")
    name = models.CharField(max_length=100)
    # The branch whose pushes start an execution, as the structure says.
    source_branch = models.CharField(max_length=255, blank=True)
    # The YAML of the current structure: the repository's pipeline.yml, or the default pipeline's when it has none.
    source = models.TextField(blank=True)
    from_file = models.BooleanField(default=False)
    # The commit the structure was read from, and its version (0 until a structure was read).
    source_sha = models.CharField(max_length=64, blank=True)
    version = models.PositiveIntegerField(default=0)
    # releases.pipeline_rules.Pipeline.to_json(): the source of truth for which execution runs where.
    state = models.JSONField(default=dict)
    # The last pipeline.yml refused, at error_sha: the message, its line and key path (empty once a good one came).
    error = models.TextField(blank=True)
    error_line = models.PositiveIntegerField(null=True, blank=True)
    error_key = models.CharField(max_length=500, blank=True)
    error_sha = models.CharField(max_length=64, blank=True)
    created = models.DateTimeField(default=timezone.now)
    updated = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["repository", "name"], name="pipeline_unique_name")]

    def __str__(self) -> str:
        return f"pipeline {self.name} of {self.repository.full_name}"


class PipelineExecution(models.Model):
    """One execution of a pipeline, numbered per pipeline as the rules number it, mirrored from its state."""

    class Trigger(models.TextChoices):
        PUSH = "push", "Push"
        MANUAL = "manual", "Manual"
        ROLLBACK = "rollback", "Rollback"

    class Status(models.TextChoices):
        IN_PROGRESS = "InProgress", "In progress"
        STOPPING = "Stopping", "Stopping"
        STOPPED = "Stopped", "Stopped"
        SUCCEEDED = "Succeeded", "Succeeded"
        SUPERSEDED = "Superseded", "Superseded"
        FAILED = "Failed", "Failed"

    ENDED = (Status.STOPPED, Status.SUCCEEDED, Status.SUPERSEDED, Status.FAILED)

    pipeline = models.ForeignKey(Pipeline, on_delete=models.CASCADE, related_name="executions")
    number = models.PositiveIntegerField()
    source_sha = models.CharField(max_length=64)
    trigger = models.CharField(max_length=10, choices=Trigger.choices)
    # Whoever pushed or merged the source, or started the execution; never counted as its approver.
    requester = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.IN_PROGRESS)
    # Why it ended as it did.
    reason = models.TextField(blank=True)
    structure_version = models.PositiveIntegerField(default=1)
    # The build of its source commit, and the artifact every deploy of the execution installs, with the digest
    # taken when the build action chose it (a rollback's are its target's).
    build = models.ForeignKey(Build, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    artifact = models.ForeignKey(BuildArtifact, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    artifact_sha256 = models.CharField(max_length=64, blank=True)
    rollback_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created = models.DateTimeField(default=timezone.now)
    ended = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-number"]
        constraints = [models.UniqueConstraint(fields=["pipeline", "number"], name="pipeline_execution_unique_number")]

    def __str__(self) -> str:
        return f"execution {self.number} of {self.pipeline}"

    @property
    def is_ended(self) -> bool:
        return self.status in self.ENDED


class PipelineActionRun(models.Model):
    """One attempt of one action of an execution's stage, with the build or deployment it follows."""

    class Status(models.TextChoices):
        IN_PROGRESS = "InProgress", "In progress"
        SUCCEEDED = "Succeeded", "Succeeded"
        FAILED = "Failed", "Failed"
        ABANDONED = "Abandoned", "Abandoned"

    execution = models.ForeignKey(PipelineExecution, on_delete=models.CASCADE, related_name="action_runs")
    stage = models.CharField(max_length=100)
    action = models.CharField(max_length=100)
    # releases.pipelinespec.ActionType: source, build, deploy, approval, invoke.
    type = models.CharField(max_length=10)
    attempt = models.PositiveIntegerField(default=1)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.IN_PROGRESS)
    build = models.ForeignKey(
        Build, null=True, blank=True, on_delete=models.SET_NULL, related_name="pipeline_action_runs"
    )
    deployment = models.ForeignKey(Deployment, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    message = models.TextField(blank=True)
    started = models.DateTimeField(default=timezone.now)
    ended = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["execution", "started", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["execution", "stage", "action", "attempt"], name="pipeline_action_run_unique_attempt"
            )
        ]

    def __str__(self) -> str:
        return f"{self.stage}.{self.action} (attempt {self.attempt}) of {self.execution}"


class PipelineApproval(models.Model):
    """A pipeline's manual approval: the environment whose reviewers answer it, and until when."""

    class Status(models.TextChoices):
        PENDING = "Pending", "Pending"
        APPROVED = "Approved", "Approved"
        REJECTED = "Rejected", "Rejected"
        TIMED_OUT = "TimedOut", "Timed out"
        # The execution was stopped by abandoning its actions: nobody answers it any more.
        ABANDONED = "Abandoned", "Abandoned"

    execution = models.ForeignKey(PipelineExecution, on_delete=models.CASCADE, related_name="approvals")
    action_run = models.OneToOneField(PipelineActionRun, on_delete=models.CASCADE, related_name="approval")
    stage = models.CharField(max_length=100)
    action = models.CharField(max_length=100)
    attempt = models.PositiveIntegerField(default=1)
    environment = models.ForeignKey(
        Environment, null=True, blank=True, on_delete=models.SET_NULL, related_name="pipeline_approvals"
    )
    environment_name = models.CharField(max_length=100)
    custom_data = models.TextField(blank=True)
    review_url = models.URLField(max_length=500, blank=True)
    deadline = models.DateTimeField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    created = models.DateTimeField(default=timezone.now)
    ended = models.DateTimeField(null=True, blank=True)
    # After how many hours the sweep reminds the approvers (pipeline.yml's remind_hours); None: the site's default.
    remind_hours = models.PositiveIntegerField(null=True, blank=True)
    # When the approvers who had not answered were reminded (once), by the sweep.
    reminded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created", "-id"]

    def __str__(self) -> str:
        return f"approval {self.stage}.{self.action} of {self.execution}"

    @property
    def is_pending(self) -> bool:
        return self.status == self.Status.PENDING


class PipelineApprovalAnswer(models.Model):
    """One reviewer's answer to an approval, with PutApprovalResult's words: Approved or Rejected, and a summary."""

    class Status(models.TextChoices):
        APPROVED = "Approved", "Approved"
        REJECTED = "Rejected", "Rejected"

    approval = models.ForeignKey(PipelineApproval, on_delete=models.CASCADE, related_name="answers")
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+")
    status = models.CharField(max_length=10, choices=Status.choices)
    summary = models.TextField(blank=True)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created", "id"]
        constraints = [models.UniqueConstraint(fields=["approval", "user"], name="pipeline_approval_answer_once")]

    def __str__(self) -> str:
        return f"{self.status} by {self.user} of {self.approval}"


class PipelineApprovalLink(models.Model):
    """A signed link to an approval's page emailed to one approver: it works once, until the approval's deadline."""

    approval = models.ForeignKey(PipelineApproval, on_delete=models.CASCADE, related_name="links")
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+")
    created = models.DateTimeField(default=timezone.now)
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created", "id"]

    def __str__(self) -> str:
        return f"link to {self.approval} for {self.user}"


@jobs.register
class PipelineInvocation(jobs.JobRow):
    """One invoke action's call of its webhook, a job on the rq `default` queue, tried again while attempts are
    left; the last answer is kept."""

    job_function = "releases.pipeline_job.run_invocation"
    max_attempts = 3
    describe_related = ("action_run__execution__pipeline__repository",)

    action_run = models.OneToOneField(PipelineActionRun, on_delete=models.CASCADE, related_name="invocation")
    url = models.URLField(max_length=500)
    # The name of the repository's (or its organization's) build secret that signs the call.
    secret_name = models.CharField(max_length=255)
    status_code = models.PositiveIntegerField(null=True, blank=True)
    response = models.TextField(blank=True)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created", "-id"]

    def __str__(self) -> str:
        return f"call of {self.url} by {self.action_run}"
