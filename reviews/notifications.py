"""Notifications about pull requests, and about a user's own account (SSH keys an administrator took away): who
hears of what, in the portal and by email."""

from collections.abc import Iterable

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import BooleanField, ExpressionWrapper, Q, QuerySet
from django.http import Http404
from django.urls import reverse
from django.utils import timezone

from portal.models import User
from repos.access import role_for, visible_repositories
from repos.models import Role
from reviews.models import Notification, NotificationEmail, NotificationPreference, PullRequest

# How an email subject ends for each kind: "[alice/project] #3 Fix the parser: review requested".
SUBJECT_ENDINGS = {
    Notification.Kind.REVIEW_REQUESTED: "review requested",
    Notification.Kind.COMMENT: "new comment",
    Notification.Kind.REVIEW: "new review",
    Notification.Kind.APPROVED: "approved",
    Notification.Kind.CHANGES_REQUESTED: "changes requested",
    Notification.Kind.MERGED: "merged",
    Notification.Kind.SSH_KEY_REMOVED: "an SSH key was removed from your account",
    Notification.Kind.SSH_KEY_REVOKED: "an SSH key of yours was revoked",
    Notification.Kind.WEBHOOK_DISABLED: "a webhook was turned off",
    Notification.Kind.APPROVAL_REQUESTED: "a release waits for your approval",
}
# The longest text a notification keeps; a longer one is cut rather than failing the action.
TEXT_LENGTH = Notification._meta.get_field("text").max_length


def preferences_for(user: User) -> NotificationPreference:
    """The user's preferences; an unsaved default (everything on) when they never changed them."""
    preference = NotificationPreference.objects.filter(user=user).first()
    return preference or NotificationPreference(user=user, web_off=[], email_off=[])


def _may_hear_of(user: User, pull_request: PullRequest) -> bool:
    return user.is_active and not user.is_organization and role_for(user, pull_request.repository) >= Role.READ


@transaction.atomic
def notify(
    kind: str,
    pull_request: PullRequest,
    *,
    actor: User | None,
    recipients: Iterable[User],
    text: str,
    url: str = "",
) -> list[Notification]:
    """Notify each recipient who may still read the repository, as their preferences ask; email after commit."""
    if kind not in Notification.Kind.values:
        raise ValueError(f"unknown kind of notification {kind!r}")
    people: dict[int, User] = {}
    for user in recipients:
        if user.pk not in people and (actor is None or user.pk != actor.pk) and _may_hear_of(user, pull_request):
            people[user.pk] = user
    return _deliver(
        kind,
        people.values(),
        actor=actor,
        text=text,
        url=url or pull_request.get_absolute_url(),
        pull_request=pull_request,
    )


@transaction.atomic
def notify_account(
    kind: str, user: User, *, actor: User | None, text: str, url: str, email_url: str = ""
) -> list[Notification]:
    """Tell a user about a change to their own account made by someone else, as their preferences ask; email_url,
    when given, is the email's link instead of url."""
    if kind not in Notification.Kind.values:
        raise ValueError(f"unknown kind of notification {kind!r}")
    if (actor is not None and user.pk == actor.pk) or not user.is_active or user.is_organization:
        return []
    return _deliver(kind, [user], actor=actor, text=text, url=url, email_url=email_url)


def _deliver(
    kind: str,
    people: Iterable[User],
    *,
    actor: User | None,
    text: str,
    url: str,
    email_url: str = "",
    pull_request=None,
) -> list[Notification]:
    """Store the notifications the preferences allow and email them after commit."""
    people = list(people)
    preferences = {p.user_id: p for p in NotificationPreference.objects.filter(user__in=people)}
    rows, emailed = [], []
    for user in people:
        preference = preferences.get(user.pk)
        in_portal = preference is None or kind not in preference.web_off
        by_email = (preference is None or kind not in preference.email_off) and bool(user.email)
        if not in_portal and not by_email:
            continue
        row = Notification(
            user=user,
            kind=kind,
            pull_request=pull_request,
            actor=actor,
            text=text[:TEXT_LENGTH],
            url=url,
            email_url=email_url if by_email else "",
            in_portal=in_portal,
        )
        rows.append(row)
        if by_email:
            emailed.append(row)
    Notification.objects.bulk_create(rows)
    # One job row per email: the record the reconciler sends from if Redis loses the job.
    for email in NotificationEmail.objects.bulk_create([NotificationEmail(notification=row) for row in emailed]):
        email.enqueue()
    return rows


def on_ssh_key_removed(
    sender, *, key_owner: User, fingerprint: str, title: str, actor: User | None, revoked: bool, reason: str, **kwargs
) -> None:
    """portal.signals.ssh_key_removed: tell the key's owner, unless they removed it themselves."""
    who = f"An administrator ({actor.username})" if actor is not None else "An administrator"
    when = timezone.localtime().strftime("%Y-%m-%d %H:%M %Z")
    if revoked:
        text = (
            f"{who} revoked your SSH key {title} ({fingerprint}) on {when}. It no longer works, and it cannot be "
            "added again: make a new key pair and add its public key."
        )
    else:
        text = (
            f"{who} removed your SSH key {title} ({fingerprint}) on {when}. It no longer works; you may add it again."
        )
    if reason:
        text += f" Reason: {reason}"
    kind = Notification.Kind.SSH_KEY_REVOKED if revoked else Notification.Kind.SSH_KEY_REMOVED
    notify_account(kind, key_owner, actor=actor, text=text, url=reverse("portal:settings_keys"))


def notifications_for(user: User) -> QuerySet[Notification]:
    """The notifications a user sees in the portal: theirs, shown there, on repositories they can still read."""
    readable = visible_repositories(user).order_by().values("pk")
    return Notification.objects.filter(user=user, in_portal=True).filter(
        Q(pull_request__isnull=True) | Q(pull_request__repository__in=readable)
    )


def inbox_for(user: User, *, include_read: bool) -> QuerySet[Notification]:
    """The notifications list: unread first, newest first within each."""
    notifications = notifications_for(user).select_related("pull_request__repository__owner", "actor")
    if not include_read:
        notifications = notifications.filter(read_at__isnull=True)
    unread = ExpressionWrapper(Q(read_at__isnull=True), output_field=BooleanField())
    return notifications.order_by(unread.desc(), "-created", "-id")


def unread_count(user: User) -> int:
    """How many notifications the user has not read yet (one COUNT query)."""
    return notifications_for(user).filter(read_at__isnull=True).count()


def get_notification_for_user(user: User, notification_id: int) -> Notification:
    """One of the user's own notifications, on a repository they can still read; anything else is a 404."""
    notification = notifications_for(user).filter(pk=notification_id).first()
    if notification is None:
        raise Http404("No such notification")
    return notification


def mark_read(notification: Notification, *, actor: User) -> Notification:
    """Mark one of the actor's notifications read; reading it again keeps the first time."""
    if notification.user_id != actor.pk:
        raise PermissionDenied("This is someone else's notification.")
    now = timezone.now()
    if Notification.objects.filter(pk=notification.pk, read_at__isnull=True).update(read_at=now):
        notification.read_at = now
    else:
        notification.refresh_from_db(fields=["read_at"])
    return notification


def mark_all_read(*, actor: User) -> int:
    """Mark every unread notification of the actor read; returns how many changed."""
    return Notification.objects.filter(user=actor, read_at__isnull=True).update(read_at=timezone.now())


@transaction.atomic
def set_preferences(*, actor: User, web_off: Iterable[str], email_off: Iterable[str]) -> NotificationPreference:
    """Choose the kinds of notification the actor does not want in the portal and by email."""
    web_off, email_off = sorted(set(web_off)), sorted(set(email_off))
    unknown = sorted(set(web_off + email_off) - set(Notification.Kind.values))
    if unknown:
        raise ValidationError(f"Unknown kind of notification: {', '.join(unknown)}.")
    preference, _ = NotificationPreference.objects.update_or_create(
        user=actor, defaults={"web_off": web_off, "email_off": email_off}
    )
    return preference


def email_subject(notification: Notification) -> str:
    pull_request = notification.pull_request
    ending = SUBJECT_ENDINGS.get(notification.kind, notification.get_kind_display())
    if pull_request is None:
        return f"[portal] {ending[:1].upper()}{ending[1:]}"
    # A line break in a header is refused by the mail library, so the title is folded onto one line.
    title = " ".join(pull_request.title.split())
    return f"[{pull_request.repository.full_name}] #{pull_request.number} {title}: {ending}"


def email_body(notification: Notification) -> str:
    url = notification.email_url or notification.url
    link = url if url.startswith(("http://", "https://")) else f"{settings.PORTAL_BASE_URL}{url}"
    return f"{notification.text}\n\n{link}\n"


def send_notification_email(notification: Notification) -> bool:
    """Email one notification unless it went out already; False when there was nothing to send."""
    if notification.emailed_at is not None or not notification.user.email:
        return False
    # Access may have been taken away between the action and this job.
    if notification.pull_request is None:
        if not notification.user.is_active:
            return False
    elif not _may_hear_of(notification.user, notification.pull_request):
        return False
    # The job row's claim keeps a second delivery of the same job out (portal/jobs.py), so the message is recorded
    # only once it went: a worker killed while sending leaves nothing recorded, and the retry sends it.
    send_mail(email_subject(notification), email_body(notification), None, [notification.user.email])
    now = timezone.now()
    Notification.objects.filter(pk=notification.pk, emailed_at__isnull=True).update(emailed_at=now)
    notification.emailed_at = now
    return True
