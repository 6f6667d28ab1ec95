"""rq entry points for reviews: thin, they re-read rows by id and call services."""

import logging

from portal.jobs import run_claimed
from reviews import webhooks
from reviews.models import NotificationEmail, WebhookDelivery
from reviews.notifications import send_notification_email

log = logging.getLogger(__name__)


def send_notification_emails(notification_ids: list[int]) -> None:
    """Email the notifications whose email rows are still queued, one message each, each row claimed first."""
    rows = NotificationEmail.objects.filter(pk__in=notification_ids, state=NotificationEmail.State.QUEUED)
    rows = rows.select_related("notification__user", "notification__pull_request__repository__owner")
    for row in rows.order_by("pk"):
        # A second delivery of the same job loses the claim and sends nothing.
        run_claimed(row, lambda row: send_notification_email(row.notification))


def deliver_webhook(delivery_id: int) -> None:
    """Send one webhook delivery; a failure is tried again later while attempts are left (portal.jobs)."""
    row = WebhookDelivery.objects.filter(pk=delivery_id).select_related("webhook").first()
    try:
        run_claimed(row, webhooks.deliver)
    except webhooks.DeliveryFailed as exc:
        # A receiver that is down is not the portal's error: one line, and the row says when it is tried again.
        log.warning("webhook delivery %s to %s failed: %s", row.guid, row.webhook.url, exc)
