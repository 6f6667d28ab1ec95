from collections.abc import Iterable
from fnmatch import fnmatchcase

from django.conf import settings
from django.db import models
from django.db.models import Count, Q
from django.utils import timezone

from portal import jobs
from repos.access import visible_repositories
from repos.models import Repository

User = settings.AUTH_USER_MODEL


class MergeStrategy(models.TextChoices):
    MERGE = "merge", "Merge commit"
    SQUASH = "squash", "Squash and merge"
    REBASE = "rebase", "Rebase and merge"
    FAST_FORWARD = "fast-forward-only", "Fast-forward only"


class ReviewSettings(models.Model):
    """How pull requests merge in one repository."""

    repository = models.OneToOneField(Repository, on_delete=models.CASCADE, related_name="review_settings")
    allow_merge = models.BooleanField(default=True)
    allow_squash = models.BooleanField(default=True)
    allow_rebase = models.BooleanField(default=True)
    allow_fast_forward = models.BooleanField(default=True)
    # By default an approval counts toward every rule whose pool holds the approver (as in CodeCommit).
    distinct_approvers = models.BooleanField(default=False)
    delete_branch_after_merge = models.BooleanField(default=False)

    def allowed_strategies(self) -> list[str]:
        flags = {
            MergeStrategy.MERGE: self.allow_merge,
            MergeStrategy.SQUASH: self.allow_squash,
            MergeStrategy.REBASE: self.allow_rebase,
            MergeStrategy.FAST_FORWARD: self.allow_fast_forward,
        }
        return [strategy.value for strategy, allowed in flags.items() if allowed]


class PullRequestQuerySet(models.QuerySet):
    def open(self):
        return self.filter(state=PullRequest.State.OPEN)

    def for_head(self, repository: Repository, branch: str):
        return self.filter(repository=repository, head_branch=branch)

    def visible_to(self, user):
        """Those of repositories the user can read."""
        return self.filter(repository__in=visible_repositories(user).values("pk"))

    def authored_by(self, user):
        return self.filter(author=user)

    def awaiting_review_by(self, user):
        """Those the user is asked to review, by name or through a team, and did not open.

        A team request stays after a member reviews; that member has done their part."""
        direct = ReviewRequest.objects.filter(user=user).values("pull_request")
        via_team = ReviewRequest.objects.filter(team__members=user).values("pull_request")
        reviewed = Review.objects.filter(author=user, submitted_at__isnull=False).values("pull_request")
        return self.filter(Q(pk__in=direct) | (Q(pk__in=via_team) & ~Q(pk__in=reviewed))).exclude(author=user)

    def involving(self, user):
        """Those the user commented on or reviewed (pending reviews and their comments do not count)."""
        published = Q(review__isnull=True) | Q(review__submitted_at__isnull=False)
        commented = Comment.objects.filter(published, author=user).values("pull_request")
        reviewed = Review.objects.filter(author=user, submitted_at__isnull=False).values("pull_request")
        return self.filter(Q(pk__in=commented) | Q(pk__in=reviewed))

    def opened_by_name(self, username: str):
        return self.filter(author__username__iexact=username)

    def with_reviewer_named(self, username: str):
        """Those the user named was asked to review or has reviewed."""
        asked = ReviewRequest.objects.filter(user__username__iexact=username).values("pull_request")
        reviewed = Review.objects.filter(author__username__iexact=username, submitted_at__isnull=False)
        return self.filter(Q(pk__in=asked) | Q(pk__in=reviewed.values("pull_request")))

    def in_repository_named(self, full_name: str):
        owner, _slash, name = full_name.partition("/")
        return self.filter(repository__owner__username__iexact=owner, repository__name__iexact=name)

    def for_list(self):
        """The rows of a list, with what each shows: repository, author and published comment count."""
        published = Q(comments__review__isnull=True) | Q(comments__review__submitted_at__isnull=False)
        return self.select_related("repository__owner", "author").annotate(
            comment_count=Count("comments", filter=published, distinct=True)
        )


class PullRequest(models.Model):
    class State(models.TextChoices):
        OPEN = "open"
        CLOSED = "closed"
        MERGED = "merged"

    TRANSITIONS = {
        State.OPEN: {State.CLOSED, State.MERGED},
        State.CLOSED: {State.OPEN},
        State.MERGED: set(),
    }

    repository = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="pull_requests")
    number = models.PositiveIntegerField()
    title = models.CharField(max_length=255)
    description = models.TextField(blank=True)
    author = models.ForeignKey(User, on_delete=models.PROTECT, related_name="pull_requests")
    base_branch = models.CharField(max_length=255)
    head_branch = models.CharField(max_length=255)
    # The head commit the pull request shows now; base_sha is the base branch when it was last compared.
    head_sha = models.CharField(max_length=64)
    base_sha = models.CharField(max_length=64)
    merge_base_sha = models.CharField(max_length=64, blank=True)
    state = models.CharField(max_length=8, choices=State.choices, default=State.OPEN, db_index=True)
    draft = models.BooleanField(default=False)
    created = models.DateTimeField(default=timezone.now)
    updated = models.DateTimeField(default=timezone.now)
    closed_at = models.DateTimeField(null=True, blank=True)
    merged_at = models.DateTimeField(null=True, blank=True)
    merged_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    merge_commit_sha = models.CharField(max_length=64, blank=True)
    merge_strategy = models.CharField(max_length=20, choices=MergeStrategy.choices, blank=True)
    # An admin may merge without the approval rules being met; who did it and why stays on the record.
    override_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    override_reason = models.CharField(max_length=500, blank=True)
    override_at = models.DateTimeField(null=True, blank=True)

    objects = PullRequestQuerySet.as_manager()

    class Meta:
        ordering = ["-number"]
        constraints = [models.UniqueConstraint(fields=["repository", "number"], name="pull_request_unique_number")]
        indexes = [models.Index(fields=["repository", "head_branch", "state"])]

    def __str__(self) -> str:
        return f"{self.repository.full_name}#{self.number}"

    def get_absolute_url(self) -> str:
        return f"/{self.repository.full_name}/pulls/{self.number}"

    @property
    def web_url(self) -> str:
        return f"{self.repository.web_url}/pulls/{self.number}"

    @property
    def is_open(self) -> bool:
        return self.state == self.State.OPEN

    @property
    def is_merged(self) -> bool:
        return self.state == self.State.MERGED


class Revision(models.Model):
    """One version of a pull request's head: the first is the one it was opened with, then one per push."""

    pull_request = models.ForeignKey(PullRequest, on_delete=models.CASCADE, related_name="revisions")
    number = models.PositiveIntegerField()
    head_sha = models.CharField(max_length=64)
    base_sha = models.CharField(max_length=64)
    merge_base_sha = models.CharField(max_length=64)
    # Equal patch ids mean the same change: a rebase or a reworded commit message, not new code.
    patch_id = models.CharField(max_length=64, blank=True)
    pusher = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    forced = models.BooleanField(default=False)
    commit_count = models.PositiveIntegerField(default=0)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["number"]
        constraints = [models.UniqueConstraint(fields=["pull_request", "number"], name="revision_unique_number")]


class ReviewRequest(models.Model):
    """A user or a team asked to review."""

    pull_request = models.ForeignKey(PullRequest, on_delete=models.CASCADE, related_name="review_requests")
    user = models.ForeignKey(User, null=True, blank=True, on_delete=models.CASCADE, related_name="review_requests")
    team = models.ForeignKey("portal.Team", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    requested_by = models.ForeignKey(User, null=True, on_delete=models.SET_NULL, related_name="+")
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["pull_request", "user"], name="review_request_unique_user"),
            models.UniqueConstraint(fields=["pull_request", "team"], name="review_request_unique_team"),
            models.CheckConstraint(
                condition=Q(user__isnull=False, team__isnull=True) | Q(user__isnull=True, team__isnull=False),
                name="review_request_user_or_team",
            ),
        ]


class Review(models.Model):
    class State(models.TextChoices):
        PENDING = "pending"
        APPROVED = "approved"
        CHANGES_REQUESTED = "changes_requested", "changes requested"
        COMMENTED = "commented"

    pull_request = models.ForeignKey(PullRequest, on_delete=models.CASCADE, related_name="reviews")
    author = models.ForeignKey(User, on_delete=models.CASCADE, related_name="reviews")
    state = models.CharField(max_length=20, choices=State.choices, default=State.PENDING)
    # The head commit the reviewer saw: an approval is of exactly this code.
    commit_sha = models.CharField(max_length=64)
    body = models.TextField(blank=True)
    created = models.DateTimeField(default=timezone.now)
    submitted_at = models.DateTimeField(null=True, blank=True)
    dismissed_at = models.DateTimeField(null=True, blank=True)
    dismissed_reason = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["created", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["pull_request", "author"], condition=Q(state="pending"), name="review_one_pending_per_author"
            )
        ]

    @property
    def is_dismissed(self) -> bool:
        return self.dismissed_at is not None


class Comment(models.Model):
    """A general comment, or an inline one on a line range of one side of a file at a revision."""

    class Side(models.TextChoices):
        LEFT = "LEFT", "old"
        RIGHT = "RIGHT", "new"

    pull_request = models.ForeignKey(PullRequest, on_delete=models.CASCADE, related_name="comments")
    author = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+")
    body = models.TextField()
    # Comments written as part of a review stay pending, seen only by their author, until it is submitted.
    review = models.ForeignKey(Review, null=True, blank=True, on_delete=models.CASCADE, related_name="comments")
    reply_to = models.ForeignKey("self", null=True, blank=True, on_delete=models.CASCADE, related_name="replies")
    path = models.CharField(max_length=4096, blank=True)
    side = models.CharField(max_length=5, choices=Side.choices, blank=True)
    # Where the thread is now (carried along while later revisions leave its lines alone)...
    line = models.PositiveIntegerField(null=True, blank=True)
    start_line = models.PositiveIntegerField(null=True, blank=True)
    commit_sha = models.CharField(max_length=64, blank=True)
    # ...and where it was written, so that an outdated thread can still be read on its revision.
    original_line = models.PositiveIntegerField(null=True, blank=True)
    original_start_line = models.PositiveIntegerField(null=True, blank=True)
    original_commit_sha = models.CharField(max_length=64, blank=True)
    original_base_sha = models.CharField(max_length=64, blank=True)
    outdated = models.BooleanField(default=False)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    suggestion_applied_sha = models.CharField(max_length=64, blank=True)
    created = models.DateTimeField(default=timezone.now)
    edited = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created", "id"]

    @property
    def is_inline(self) -> bool:
        return bool(self.path)

    @property
    def is_pending(self) -> bool:
        return self.review_id is not None and self.review.state == Review.State.PENDING


class Event(models.Model):
    """A state change on the conversation: opened, closed, reopened, merged, retargeted, dismissed, overridden…"""

    pull_request = models.ForeignKey(PullRequest, on_delete=models.CASCADE, related_name="events")
    actor = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    kind = models.CharField(max_length=40)
    data = models.JSONField(default=dict, blank=True)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created", "id"]


class BranchPatternQuerySet(models.QuerySet):
    def matching(self, branch: str) -> list:
        return [item for item in self if fnmatchcase(branch, item.branch_pattern)]


class ApprovalRule(models.Model):
    """N approvals from a pool of users and teams (empty pool: everyone with write access), on matching branches.

    A rule belongs to a repository, or to an organization as a template for its repositories."""

    class Dismissal(models.TextChoices):
        NEW_CODE = "new_code", "when new code is pushed (a rebase keeps approvals)"
        ALWAYS = "always", "on every push"
        # Gitea's dismiss_stale_approvals off: approvals of older code stay on the page, but count no more.
        NEVER = "never", "never (approvals of older code stay, but only approvals of the current change count)"

    repository = models.ForeignKey(
        Repository, null=True, blank=True, on_delete=models.CASCADE, related_name="approval_rules"
    )
    organization = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.CASCADE, related_name="approval_rule_templates"
    )
    name = models.CharField(max_length=100)
    branch_pattern = models.CharField(max_length=255, default="*")
    # Templates only: which of the organization's repositories the rule applies to.
    repository_pattern = models.CharField(max_length=100, default="*")
    required_approvals = models.PositiveSmallIntegerField(default=1)
    users = models.ManyToManyField(User, blank=True, related_name="+")
    teams = models.ManyToManyField("portal.Team", blank=True, related_name="+")
    exclude_committers = models.BooleanField(default=False)
    dismissal = models.CharField(max_length=10, choices=Dismissal.choices, default=Dismissal.NEW_CODE)
    # The rule of a branch protection's "require N approvals": saved, and removed, with that protection only.
    branch_protection = models.OneToOneField(
        "BranchProtection", null=True, blank=True, on_delete=models.CASCADE, related_name="approval_rule"
    )
    created = models.DateTimeField(default=timezone.now)

    objects = BranchPatternQuerySet.as_manager()

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(repository__isnull=False, organization__isnull=True)
                | Q(repository__isnull=True, organization__isnull=False),
                name="approval_rule_repository_or_organization",
            )
        ]

    def __str__(self) -> str:
        return self.name


class BranchProtection(models.Model):
    """What a branch pattern requires: pull requests, status checks, no force-push or deletion, who pushes and merges."""

    repository = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="branch_protections")
    branch_pattern = models.CharField(max_length=255)
    require_pull_request = models.BooleanField(default=True)
    required_checks = models.JSONField(default=list, blank=True)
    require_up_to_date = models.BooleanField(default=False)
    block_force_push = models.BooleanField(default=True)
    block_deletion = models.BooleanField(default=True)
    # Empty: everyone with write access may push (when no pull request is required) and merge.
    push_users = models.ManyToManyField(User, blank=True, related_name="+")
    push_teams = models.ManyToManyField("portal.Team", blank=True, related_name="+")
    merge_users = models.ManyToManyField(User, blank=True, related_name="+")
    merge_teams = models.ManyToManyField("portal.Team", blank=True, related_name="+")
    # A reviewer's change request blocks the merge until it is dismissed or replaced; off for matching branches only
    # when every protection of the branch turns it off (branches without protection always block).
    block_on_rejected_reviews = models.BooleanField(default=True)
    # Review requests nobody has answered yet block the merge.
    block_on_official_review_requests = models.BooleanField(default=False)
    # Admins cannot override the approval rules of pull requests into matching branches.
    block_admin_merge_override = models.BooleanField(default=False)
    # How the protection's approval rule (approval_rule, when it requires approvals) treats approvals of older code:
    # dismissed on new code, or kept on the page. They never count: with dismissal off, ignoring them must be on.
    dismiss_stale_approvals = models.BooleanField(default=True)
    ignore_stale_approvals = models.BooleanField(default=False)
    created = models.DateTimeField(default=timezone.now)
    updated = models.DateTimeField(default=timezone.now)

    objects = BranchPatternQuerySet.as_manager()

    class Meta:
        ordering = ["branch_pattern", "id"]
        constraints = [
            models.UniqueConstraint(fields=["repository", "branch_pattern"], name="branch_protection_unique_pattern")
        ]

    def __str__(self) -> str:
        return self.branch_pattern


class CommitStatus(models.Model):
    """What a CI (ours or an outside one such as Jenkins) says about a commit, one row per context."""

    class State(models.TextChoices):
        PENDING = "pending"
        SUCCESS = "success"
        FAILURE = "failure"
        ERROR = "error"
        # Gitea's: the check passed with something to look at. It is not a success, so a required check that
        # reports it blocks the merge, as in Gitea.
        WARNING = "warning"

    repository = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="commit_statuses")
    sha = models.CharField(max_length=64)
    context = models.CharField(max_length=255, default="default")
    state = models.CharField(max_length=8, choices=State.choices)
    target_url = models.URLField(max_length=2000, blank=True)
    description = models.CharField(max_length=1000, blank=True)
    creator = models.ForeignKey(User, null=True, on_delete=models.SET_NULL, related_name="+")
    created = models.DateTimeField(default=timezone.now)
    updated = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["context"]
        constraints = [
            models.UniqueConstraint(fields=["repository", "sha", "context"], name="commit_status_unique_context")
        ]

    @classmethod
    def combined(cls, states: Iterable[str]) -> str:
        """The combined state: failure if any check failed or errored, then warning if any warned (Gitea ranks a
        warning below a failure and above a pending check), pending while any is pending or none reported, else
        success."""
        states = set(states)
        if states & {cls.State.FAILURE, cls.State.ERROR}:
            return cls.State.FAILURE
        if cls.State.WARNING in states:
            return cls.State.WARNING
        if not states or cls.State.PENDING in states:
            return cls.State.PENDING
        return cls.State.SUCCESS


class Notification(models.Model):
    class Kind(models.TextChoices):
        REVIEW_REQUESTED = "review_requested", "Review requested"
        COMMENT = "comment", "Comments on my pull requests and threads"
        REVIEW = "review", "Reviews on my pull requests"
        APPROVED = "approved", "Approvals"
        CHANGES_REQUESTED = "changes_requested", "Changes requested"
        MERGED = "merged", "Merges"
        SSH_KEY_REMOVED = "ssh_key_removed", "SSH keys an administrator removed from my account"
        SSH_KEY_REVOKED = "ssh_key_revoked", "SSH keys an administrator revoked"
        WEBHOOK_DISABLED = "webhook_disabled", "Webhooks disabled after failing for a day"
        APPROVAL_REQUESTED = "approval_requested", "Releases waiting for my approval"

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="notifications")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    # None for a notice about the user's own account (an SSH key taken away), which concerns no repository.
    pull_request = models.ForeignKey(PullRequest, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    actor = models.ForeignKey(User, null=True, on_delete=models.SET_NULL, related_name="+")
    text = models.CharField(max_length=1000)
    url = models.CharField(max_length=500)
    # Where the email points when it differs from the portal's link: a signed link meant to be used once, which the
    # portal's own list must not use up.
    email_url = models.CharField(max_length=500, blank=True)
    created = models.DateTimeField(default=timezone.now)
    read_at = models.DateTimeField(null=True, blank=True)
    # False when the user turned this kind off in the portal but still wants it by email.
    in_portal = models.BooleanField(default=True)
    emailed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created", "-id"]
        indexes = [models.Index(fields=["user", "read_at"])]


class NotificationPreference(models.Model):
    """The kinds of notification a user turned off, in the portal and by email."""

    user = models.OneToOneField(User, on_delete=models.CASCADE, related_name="notification_preference")
    web_off = models.JSONField(default=list, blank=True)
    email_off = models.JSONField(default=list, blank=True)


@jobs.register
class NotificationEmail(jobs.JobRow):
    """The email of one notification, as a job: its id is the notification's."""

    job_function = "reviews.jobs.send_notification_emails"
    describe_related = ("notification",)
    notification = models.OneToOneField(
        Notification, primary_key=True, on_delete=models.CASCADE, related_name="email_job"
    )

    def rq_job_id(self) -> str:
        return f"notification-email-{self.pk}"

    def job_args(self) -> tuple:
        return ([self.pk],)

    def describe(self) -> str:
        return f"email of notification #{self.pk} ({self.notification.kind}) to user #{self.notification.user_id}"


class Webhook(models.Model):
    """Where to send events of one repository, or of every repository of an organization, and which ones.

    The secret and the Authorization header are write-only: they sign and authorize deliveries and are never shown
    again after saving."""

    class Type(models.TextChoices):
        GITEA = "gitea", "Gitea"
        SLACK = "slack", "Slack"

    class ContentType(models.TextChoices):
        JSON = "json", "application/json"
        FORM = "form", "application/x-www-form-urlencoded"

    # Exactly one of the two.
    repository = models.ForeignKey(Repository, null=True, blank=True, on_delete=models.CASCADE, related_name="webhooks")
    organization = models.ForeignKey(User, null=True, blank=True, on_delete=models.CASCADE, related_name="webhooks")
    type = models.CharField(max_length=10, choices=Type.choices, default=Type.GITEA)
    url = models.URLField(max_length=2000)
    content_type = models.CharField(max_length=4, choices=ContentType.choices, default=ContentType.JSON)
    secret = models.CharField(max_length=200, blank=True)
    authorization_header = models.CharField(max_length=500, blank=True)
    # Slack's channel, user name, icon and attachment colour.
    slack = models.JSONField(default=dict, blank=True)
    events = models.JSONField(default=list)
    branch_filter = models.CharField(max_length=500, blank=True)
    active = models.BooleanField(default=True)
    # When the first of the failures in a row happened; None after a success.
    failing_since = models.DateTimeField(null=True, blank=True)
    # Why the portal turned the hook off (after a day of failures); cleared when someone turns it on again.
    disabled_reason = models.CharField(max_length=500, blank=True)
    created_by = models.ForeignKey(User, null=True, on_delete=models.SET_NULL, related_name="+")
    created = models.DateTimeField(default=timezone.now)
    updated = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(repository__isnull=True) ^ Q(organization__isnull=True), name="webhook_one_owner"
            )
        ]

    def __str__(self) -> str:
        return self.url


@jobs.register
class WebhookDelivery(jobs.JobRow):
    """One event sent to one webhook, as a job: the body is fixed when the event happens, each try is an attempt.

    A redelivery by hand is a new delivery with the same guid, as GitHub's are."""

    job_function = "reviews.jobs.deliver_webhook"
    max_attempts = 5
    describe_related = ("webhook",)

    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    guid = models.UUIDField()
    # The portal's name of the event (one of Webhook events), and what Gitea calls it in its headers.
    event = models.CharField(max_length=40)
    gitea_event = models.CharField(max_length=40)
    gitea_event_type = models.CharField(max_length=40)
    action = models.CharField(max_length=40, blank=True)
    # The repository the event is about, kept as an id: the delivery outlives a deleted repository.
    repository_id_at_event = models.BigIntegerField(null=True, blank=True)
    body = models.TextField()
    redelivery_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    is_test = models.BooleanField(default=False)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created", "-id"]
        indexes = [models.Index(fields=["webhook", "-created"])]

    def describe(self) -> str:
        return f"{self.gitea_event} delivery {self.guid} to {self.webhook.url}"

    def retry_delay(self) -> float:
        delays = settings.PORTAL_WEBHOOK_RETRY_DELAYS
        return delays[min(self.attempts, len(delays)) - 1] if delays else 0.0

    @property
    def last_attempt(self) -> "WebhookAttempt | None":
        attempts = list(self.attempt_rows.all())
        return attempts[-1] if attempts else None


class WebhookAttempt(models.Model):
    """One try of a delivery: what was sent, what came back (the first 64 KiB), or why nothing was sent."""

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_rows")
    number = models.PositiveIntegerField()
    url = models.URLField(max_length=2000)
    request_headers = models.JSONField(default=dict)
    started = models.DateTimeField(default=timezone.now)
    finished = models.DateTimeField(null=True, blank=True)
    duration = models.FloatField(null=True, blank=True)
    status_code = models.PositiveIntegerField(null=True, blank=True)
    response_headers = models.JSONField(default=dict)
    response_body = models.TextField(blank=True)
    # Why the request was not sent (an address the site does not allow), or how it failed (a timeout).
    refused = models.CharField(max_length=1000, blank=True)
    error = models.CharField(max_length=1000, blank=True)

    class Meta:
        ordering = ["number", "id"]

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300
