"""The people side of a pipeline's manual approvals: who is asked, the signed links they are emailed, reminders,
and what a release changes compared with what its environment runs now (the approval page)."""

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core import signing
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from portal.models import User
from releases import access, pipelines
from releases.models import Deployment, PipelineApproval, PipelineApprovalLink, PipelineExecution
from repos import git
from repos.access import people_with_access, role_for
from repos.models import Role
from reviews.models import Notification, PullRequest, Review
from reviews.notifications import notify_account

# The signer's salt: a token signed for anything else never opens an approval.
LINK_SALT = "releases.approval-link"


def approvers(approval: PipelineApproval) -> list[User]:
    """Who may answer: the environment's reviewer users and teams' members, or the repository's writers when it
    names none; never the requester, whose own approval does not count."""
    repository = approval.execution.pipeline.repository
    _count, pool = pipelines.approval_rule(approval)
    if pool is None:
        people = [user for user in people_with_access(repository) if access.can_deploy(user, repository)]
    else:
        people = [user for user in User.objects.filter(pk__in=pool, is_active=True) if role_for(user, repository)]
    return [user for user in people if user.pk != approval.execution.requester_id]


def approval_path(execution: PipelineExecution) -> str:
    repository = execution.pipeline.repository
    return reverse(
        "builds:pipeline_approval",
        args=[repository.owner.username, repository.name, execution.pipeline.name, execution.number],
    )


def link_for(approval: PipelineApproval, user: User) -> str:
    """A new single-use link for one approver: the approval page's path with a signed token."""
    link = PipelineApprovalLink.objects.create(approval=approval, user=user)
    token = signing.TimestampSigner(salt=LINK_SALT).sign_object(
        {"link": link.pk, "approval": approval.pk, "user": user.pk, "attempt": approval.attempt}
    )
    return f"{approval_path(approval.execution)}/link/{token}"


def notify_approvers(approval: PipelineApproval, *, reminder: bool = False) -> list[Notification]:
    """Tell each approver who has not answered yet, in the portal and by email: the portal's notice opens the
    approval page (its viewer is signed in already), the email carries the approver's own single-use link."""
    execution = approval.execution
    repository = execution.pipeline.repository
    answered = set(approval.answers.values_list("user_id", flat=True))
    who = execution.requester.username if execution.requester else "A push"
    text = (
        f"{'Reminder: ' if reminder else ''}{who} asks to release {repository.full_name} "
        f"({execution.source_sha[:7]}, execution #{execution.number} of {execution.pipeline.name}) to "
        f"{approval.environment_name}. Review and answer before {approval.deadline:%Y-%m-%d %H:%M} UTC."
    )
    sent = []
    for user in approvers(approval):
        if user.pk in answered:
            continue
        sent += notify_account(
            Notification.Kind.APPROVAL_REQUESTED,
            user,
            actor=execution.requester,
            text=text,
            url=approval_path(execution),
            email_url=link_for(approval, user),
        )
    return sent


class LinkRefused(Exception):
    """A link that does not open the approval page, with the reason in words."""


def open_link(token: str, *, user: User, execution: PipelineExecution) -> PipelineApproval:
    """Use a link once: it must be signed, sent to this user, for this execution, before the deadline, unused."""
    try:
        payload = signing.TimestampSigner(salt=LINK_SALT).unsign_object(token)
        link = PipelineApprovalLink.objects.select_related("approval").get(
            pk=payload["link"], approval_id=payload["approval"], user_id=payload["user"]
        )
    except (signing.BadSignature, KeyError, TypeError, PipelineApprovalLink.DoesNotExist):
        raise LinkRefused("This approval link is not valid: open the approval from the execution's page.") from None
    approval = link.approval
    if approval.execution_id != execution.pk or payload["attempt"] != approval.attempt:
        raise LinkRefused("This approval link is for another execution: open the one it was sent for.")
    if link.user_id != user.pk:
        raise LinkRefused(
            f"This approval link was sent to someone else; you are signed in as {user.username}. "
            "Open the approval from the execution's page."
        )
    now = timezone.now()
    if approval.deadline <= now:
        raise LinkRefused(f"This approval link expired at {approval.deadline:%Y-%m-%d %H:%M} UTC.")
    with transaction.atomic():
        if not PipelineApprovalLink.objects.filter(pk=link.pk, used_at__isnull=True).update(used_at=now):
            link.refresh_from_db(fields=["used_at"])
            raise LinkRefused(
                f"This approval link was already used at {link.used_at:%Y-%m-%d %H:%M} UTC: each link opens the "
                "approval once. Open it from the execution's page."
            )
    return approval


def send_reminders(now=None) -> int:
    """Remind, once, the approvers of approvals pending longer than their remind_hours (pipeline.yml), else
    PORTAL_APPROVAL_REMIND_HOURS. How many approvals reminded."""
    now = now or timezone.now()
    pending = PipelineApproval.objects.filter(
        status=PipelineApproval.Status.PENDING, reminded_at__isnull=True, deadline__gt=now
    ).select_related("execution__pipeline__repository__owner", "execution__requester", "environment")
    count = 0
    for approval in pending:
        hours = approval.remind_hours or settings.PORTAL_APPROVAL_REMIND_HOURS
        if approval.created > now - timedelta(hours=hours):
            continue
        with transaction.atomic():
            # Two sweeps at once remind once: the first to mark it sends.
            if PipelineApproval.objects.filter(pk=approval.pk, reminded_at__isnull=True).update(reminded_at=now):
                notify_approvers(approval, reminder=True)
                count += 1
    return count


# What a release changes.


@dataclass
class MergedPullRequest:
    pull_request: PullRequest
    approvers: list[str]


def current_sha(approval: PipelineApproval) -> str | None:
    """What the guarded environment runs now: the commit of its last successful deployment."""
    if approval.environment is None:
        return None
    deployment = (
        Deployment.objects.filter(environment=approval.environment, deployment_status=Deployment.Status.SUCCEEDED)
        .order_by("-created", "-id")
        .first()
    )
    return deployment.sha if deployment else None


def merged_pull_requests(execution: PipelineExecution, shas: list[str]) -> list[MergedPullRequest]:
    """The pull requests merged by these commits, with who approved them."""
    found = (
        PullRequest.objects.filter(
            repository=execution.pipeline.repository, state=PullRequest.State.MERGED, merge_commit_sha__in=shas
        )
        .select_related("author")
        .order_by("number")
    )
    result = []
    for pull_request in found:
        reviews = pull_request.reviews.filter(state=Review.State.APPROVED, dismissed_at__isnull=True)
        names = sorted({review.author.username for review in reviews.select_related("author")})
        result.append(MergedPullRequest(pull_request, names))
    return result


def changed_commits(execution: PipelineExecution, base: str | None) -> list[git.Commit]:
    """The commits the release brings: from what the environment runs (excluded) to the execution's source."""
    path = execution.pipeline.repository.path
    if base is None:
        return git.log(path, execution.source_sha, limit=250)
    merge_base = git.merge_base(path, base, execution.source_sha)
    if merge_base is None:
        return git.log(path, execution.source_sha, limit=250)
    return git.commits_between(path, merge_base, execution.source_sha)


def may_view(user, execution: PipelineExecution) -> bool:
    return role_for(user, execution.pipeline.repository) >= Role.READ
