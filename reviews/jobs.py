"""rq entry points for reviews: thin, they re-read rows by id and call services."""

from reviews.models import Notification
from reviews.notifications import send_notification_email


def send_notification_emails(notification_ids: list[int]) -> None:
    """Email the notifications that have not gone out yet, one message each."""
    notifications = Notification.objects.filter(pk__in=notification_ids, emailed_at__isnull=True).select_related(
        "user", "pull_request__repository__owner"
    )
    for notification in notifications.order_by("id"):
        send_notification_email(notification)
