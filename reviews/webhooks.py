"""Webhooks: the hooks of a repository or an organization, the events they are sent, and the delivery log.

Every change goes through here and is audited. An event becomes one delivery row per hook that wants it, in the
transaction of the change, and each delivery is a job (portal/jobs.py): sent after the commit, retried with backoff
while attempts are left, its every attempt kept. A hook that has failed for PORTAL_WEBHOOK_DISABLE_AFTER seconds in
a row is turned off, and the repository's (or organization's) administrators are told."""

# payloads is imported as a module and its names read when called: it imports the API, whose hooks import this.
from __future__ import annotations

import hashlib
import hmac
import http.client
import re
import uuid
from collections.abc import Callable, Iterable
from datetime import timedelta
from fnmatch import fnmatchcase
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Q, QuerySet
from django.urls import reverse
from django.utils import timezone

from portal import audit, outbound
from portal.access import org_owners
from portal.models import User
from portal.validators import field_error
from repos.access import administrators
from repos.models import Repository
from reviews import webhook_payloads as payloads
from reviews.access import can_manage_webhooks
from reviews.models import Notification, Webhook, WebhookAttempt, WebhookDelivery
from reviews.notifications import notify_account

SLACK_OPTIONS = ("channel", "username", "icon_url", "color")


class DeliveryFailed(Exception):
    """The receiver could not be reached or did not answer 2xx: the delivery is tried again while it may be."""


def _require(actor: User, hook: Webhook) -> None:
    if not can_manage_webhooks(actor, hook):
        what = "repository's administrators" if hook.repository_id is not None else "organization's owners"
        raise PermissionDenied(f"Only the {what} manage its webhooks.")


def hooks_of(*, repository: Repository | None = None, organization: User | None = None) -> QuerySet[Webhook]:
    if repository is not None:
        return Webhook.objects.filter(repository=repository)
    return Webhook.objects.filter(organization=organization)


# Saving hooks.


def normalize_events(events: Iterable[str]) -> list[str]:
    """The events asked for, Gitea's finer names folded in; ValidationError naming one the portal does not send."""
    chosen = []
    for name in events:
        name = payloads.EVENT_ALIASES.get(name, name)
        if name not in payloads.EVENTS:
            raise field_error(
                f"The event {name!r} is not sent by the portal; it sends {', '.join(payloads.EVENTS)}.", "events"
            )
        if name not in chosen:
            chosen.append(name)
    # As Gitea: a hook that names no event gets pushes.
    return chosen or ["push"]


def _check_url(url: str) -> str:
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise field_error("The URL must be an http:// or https:// address.", "url")
    if parts.username or parts.password:
        raise field_error(
            "Credentials in the URL would be shown to every administrator; use the secret or the Authorization header.",
            "url",
        )
    return url


def _snapshot(hook: Webhook) -> dict:
    # The secret and Authorization header are recorded only as set or not.
    return {
        "type": hook.type,
        "url": hook.url,
        "content_type": hook.content_type,
        "events": hook.events,
        "branch_filter": hook.branch_filter,
        "active": hook.active,
        "secret": bool(hook.secret),
        "authorization_header": bool(hook.authorization_header),
    }


@transaction.atomic
def save_webhook(
    hook: Webhook | None,
    *,
    actor: User,
    repository: Repository | None = None,
    organization: User | None = None,
    url: str | None = None,
    type: str | None = None,
    content_type: str | None = None,
    secret: str | None = None,
    authorization_header: str | None = None,
    events: Iterable[str] | None = None,
    branch_filter: str | None = None,
    active: bool | None = None,
    slack: dict | None = None,
) -> Webhook:
    """Create a hook (hook None, with its repository or organization) or change the fields given.

    A secret or Authorization header of None keeps the one saved; an empty one removes it."""
    creating = hook is None
    if creating:
        if (repository is None) == (organization is None):
            raise ValueError("a webhook belongs to a repository or to an organization")
        hook = Webhook(repository=repository, organization=organization, created_by=actor)
        if url is None:
            raise field_error("A webhook needs a URL.", "url")
    _require(actor, hook)
    before = None if creating else _snapshot(hook)
    if url is not None:
        hook.url = _check_url(url)
    if type is not None:
        if type not in Webhook.Type.values:
            raise field_error(
                f"Webhooks of type {type!r} are not supported; the portal sends {', '.join(Webhook.Type.values)}.",
                "type",
            )
        hook.type = type
    if content_type is not None:
        if content_type not in Webhook.ContentType.values:
            raise field_error(
                f"The content type must be one of {', '.join(Webhook.ContentType.values)}.", "content_type"
            )
        hook.content_type = content_type
    if secret is not None:
        hook.secret = secret
    if authorization_header is not None:
        if "\n" in authorization_header or "\r" in authorization_header:
            raise field_error("The Authorization header must be one line.", "authorization_header")
        hook.authorization_header = authorization_header.strip()
    if events is not None or creating:
        hook.events = normalize_events(events or [])
    if branch_filter is not None:
        hook.branch_filter = branch_filter.strip()
    if slack is not None:
        unknown = sorted(set(slack) - set(SLACK_OPTIONS))
        if unknown:
            raise field_error(
                f"Unknown Slack option {unknown[0]!r}; the options are {', '.join(SLACK_OPTIONS)}.", "config"
            )
        hook.slack = {key: str(value) for key, value in slack.items() if value}
    if hook.type == Webhook.Type.SLACK and not hook.slack.get("channel"):
        raise field_error("A Slack webhook needs a channel.", "config")
    if active is not None:
        if active and not hook.active:
            # Turned on again by hand: the failures so far are forgiven.
            hook.failing_since = None
            hook.disabled_reason = ""
        hook.active = active
    hook.updated = timezone.now()
    hook.save()
    audit.record(
        actor,
        "webhook.create" if creating else "webhook.update",
        hook,
        target_repr=_where(hook),
        before=before,
        after=_snapshot(hook),
    )
    return hook


@transaction.atomic
def delete_webhook(hook: Webhook, *, actor: User) -> None:
    _require(actor, hook)
    audit.record(actor, "webhook.delete", hook, target_repr=_where(hook), before=_snapshot(hook))
    hook.delete()


def _where(hook: Webhook) -> str:
    owner = hook.repository.full_name if hook.repository_id else hook.organization.username
    return f"{owner}: {hook.url}"[:255]


# From events to deliveries.


def branch_matches(branch_filter: str, branch: str) -> bool:
    """Gitea's branch filter: a glob (`*`, `?`, `[…]`) with {a,b} alternatives; empty or "*" matches every branch."""
    pattern = branch_filter.strip()
    if pattern in ("", "*"):
        return True
    return any(fnmatchcase(branch, alternative) for alternative in _expand_braces(pattern))


def _expand_braces(pattern: str) -> list[str]:
    match = re.search(r"\{([^{}]*)\}", pattern)
    if match is None:
        return [pattern]
    head, tail = pattern[: match.start()], pattern[match.end() :]
    return [expanded for option in match.group(1).split(",") for expanded in _expand_braces(head + option + tail)]


def hooks_for(repository: Repository) -> list[Webhook]:
    """The active hooks of a repository and of the organization that owns it."""
    return list(
        Webhook.objects.filter(active=True).filter(Q(repository=repository) | Q(organization_id=repository.owner_id))
    )


def announce(
    repository: Repository,
    name: str,
    build: Callable[[], payloads.Event],
    *,
    branch: str | None = None,
    hooks: list[Webhook] | None = None,
) -> list[WebhookDelivery]:
    """One delivery of event name for each active hook that wants it, enqueued after the commit. The event is
    built only when a hook wants it; branch, when the event is about one, is checked against branch filters."""
    hooks = hooks_for(repository) if hooks is None else hooks
    wanted = [
        hook for hook in hooks if name in hook.events and (branch is None or branch_matches(hook.branch_filter, branch))
    ]
    if not wanted:
        return []
    event = build()
    return [_queue(hook, event) for hook in wanted]


def _body(hook: Webhook, event: payloads.Event) -> str:
    if hook.type == Webhook.Type.SLACK:
        return payloads.slack_body(event, hook.slack)
    return event.json()


def _queue(hook: Webhook, event: payloads.Event, *, is_test: bool = False) -> WebhookDelivery:
    delivery = WebhookDelivery.objects.create(
        webhook=hook,
        guid=uuid.uuid4(),
        event=event.name,
        gitea_event=event.gitea_event,
        gitea_event_type=event.gitea_event_type,
        action=event.action,
        repository_id_at_event=event.repository.pk,
        body=_body(hook, event),
        is_test=is_test,
    )
    delivery.enqueue()
    return delivery


@transaction.atomic
def test_webhook(hook: Webhook, *, actor: User, repository: Repository | None = None) -> WebhookDelivery:
    """Send the hook a push of its repository's default branch now, as Gitea's test button does; an organization's
    hook is tested with one of the organization's repositories."""
    _require(actor, hook)
    repository = hook.repository or repository
    if repository is None:
        repository = Repository.objects.filter(owner=hook.organization).order_by("name").first()
    if repository is None:
        raise ValidationError("The organization has no repository to send a test push from.")
    delivery = _queue(hook, payloads.test_event(repository, actor), is_test=True)
    audit.record(actor, "webhook.test", hook, target_repr=_where(hook), after={"delivery": str(delivery.guid)})
    return delivery


@transaction.atomic
def redeliver(delivery: WebhookDelivery, *, actor: User) -> WebhookDelivery:
    """Send a delivery again, by hand: a new delivery with the same guid and body, to the hook as it is now."""
    hook = delivery.webhook
    _require(actor, hook)
    # What was sent, as it was: the event, its names and its body, under the same guid.
    sent = ("guid", "event", "gitea_event", "gitea_event_type", "action", "repository_id_at_event", "body", "is_test")
    again = WebhookDelivery.objects.create(
        webhook=hook, redelivery_of=delivery, **{name: getattr(delivery, name) for name in sent}
    )
    again.enqueue()
    audit.record(actor, "webhook.redeliver", hook, target_repr=_where(hook), after={"delivery": again.pk})
    return again


# Sending.


def signature(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def request_for(delivery: WebhookDelivery) -> tuple[bytes, dict[str, str]]:
    """The body and headers of a delivery, as Gitea sends them: signed with the hook's secret when it has one."""
    hook = delivery.webhook
    if hook.type == Webhook.Type.GITEA and hook.content_type == Webhook.ContentType.FORM:
        body = urlencode({"payload": delivery.body}).encode()
        content_type = "application/x-www-form-urlencoded"
    else:
        body = delivery.body.encode()
        content_type = "application/json"
    guid = str(delivery.guid)
    headers = {
        "Content-Type": content_type,
        "User-Agent": "portal-hookshot",
        "X-Gitea-Delivery": guid,
        "X-Gitea-Event": delivery.gitea_event,
        "X-Gitea-Event-Type": delivery.gitea_event_type,
        "X-GitHub-Delivery": guid,
        "X-GitHub-Event": delivery.gitea_event,
        "X-GitHub-Event-Type": delivery.gitea_event_type,
    }
    if hook.secret:
        digest = signature(hook.secret, body)
        headers |= {"X-Gitea-Signature": digest, "X-Hub-Signature-256": f"sha256={digest}"}
    if hook.authorization_header:
        headers["Authorization"] = hook.authorization_header
    return body, headers


def logged_request_headers(delivery: WebhookDelivery) -> dict[str, str]:
    """The request headers of a delivery as its log shows them: those its last attempt sent, or, before any, those
    it would send now."""
    attempt = delivery.last_attempt
    if attempt is not None:
        return attempt.request_headers
    return shown_headers(request_for(delivery)[1])


def shown_headers(headers: dict[str, str]) -> dict[str, str]:
    """Request headers as the delivery log keeps them: the Authorization header's value is not kept."""
    return {name: ("********" if name == "Authorization" else value) for name, value in headers.items()}


def deliver(delivery: WebhookDelivery) -> None:
    """Send a claimed delivery once, keep the attempt, and raise DeliveryFailed when it should be tried again."""
    hook = delivery.webhook
    # An attempt a killed worker left open is closed first, so the log says what became of it.
    delivery.attempt_rows.filter(finished=None).update(
        finished=timezone.now(), error="the worker stopped during this attempt; it was tried again"
    )
    body, headers = request_for(delivery)
    attempt = WebhookAttempt.objects.create(
        delivery=delivery, number=delivery.attempts, url=hook.url, request_headers=shown_headers(headers)
    )
    if not hook.active and not delivery.is_test:
        _close(attempt, refused="the webhook was turned off before this delivery was sent")
        return
    try:
        response = outbound.post(hook.url, body, headers, timeout=settings.PORTAL_WEBHOOK_TIMEOUT)
    except outbound.UnresolvedHost as exc:
        _close(attempt, error=str(exc))
        _failed(hook)
        raise DeliveryFailed(str(exc)) from exc
    except outbound.OutboundRefused as exc:
        # Sending again would be refused again: the log says why, and it counts as a failure of the hook.
        _close(attempt, refused=str(exc))
        _failed(hook)
        return
    except (OSError, http.client.HTTPException) as exc:
        timeout = settings.PORTAL_WEBHOOK_TIMEOUT
        error = f"the receiver did not answer within {timeout:g} s" if isinstance(exc, TimeoutError) else f"{exc}"
        _close(attempt, error=error or type(exc).__name__)
        _failed(hook)
        raise DeliveryFailed(attempt.error) from exc
    attempt.status_code = response.status
    attempt.response_headers = response.headers
    attempt.response_body = response.body.decode("utf-8", "replace")
    attempt.duration = response.duration
    _close(attempt)
    if attempt.succeeded:
        Webhook.objects.filter(pk=hook.pk).exclude(failing_since=None).update(failing_since=None)
        return
    _failed(hook)
    raise DeliveryFailed(f"the receiver answered {response.status}")


def _close(attempt: WebhookAttempt, **fields) -> None:
    attempt.finished = timezone.now()
    if attempt.duration is None:
        attempt.duration = (attempt.finished - attempt.started).total_seconds()
    for name, value in fields.items():
        setattr(attempt, name, value[:1000])
    attempt.save()


def _failed(hook: Webhook) -> None:
    """Count a failed attempt against the hook; after a day of failures in a row, turn it off and tell its admins."""
    now = timezone.now()
    Webhook.objects.filter(pk=hook.pk, failing_since=None).update(failing_since=now)
    hook.refresh_from_db()
    if not hook.active or hook.failing_since > now - timedelta(seconds=settings.PORTAL_WEBHOOK_DISABLE_AFTER):
        return
    since = timezone.localtime(hook.failing_since).strftime("%Y-%m-%d %H:%M %Z")
    reason = f"Every delivery since {since} failed."
    with transaction.atomic():
        if not Webhook.objects.filter(pk=hook.pk, active=True).update(active=False, disabled_reason=reason):
            return
        audit.record(None, "webhook.disable", hook, target_repr=_where(hook), after={"reason": reason})
        text = (
            f"The webhook to {hook.url} of {_where(hook).partition(':')[0]} was turned off: {reason} "
            "Turn it on again in its settings once the receiver works."
        )
        for admin in _administrators(hook):
            notify_account(Notification.Kind.WEBHOOK_DISABLED, admin, actor=None, text=text, url=settings_url(hook))


def _administrators(hook: Webhook) -> list[User]:
    if hook.organization_id is not None:
        return list(org_owners(hook.organization))
    return administrators(hook.repository)


def settings_url(hook: Webhook) -> str:
    if hook.repository_id is not None:
        return reverse("webhooks:hook", args=[hook.repository.owner.username, hook.repository.name, hook.pk])
    return reverse("webhooks:org_hook", args=[hook.organization.username, hook.pk])


def deliveries_of(hook: Webhook) -> QuerySet[WebhookDelivery]:
    return hook.deliveries.prefetch_related("attempt_rows")


def delivery_status(delivery: WebhookDelivery) -> tuple[str, int]:
    """GitHub's status words and code of a delivery's last attempt: ("OK", 200), ("pending", 0)…"""
    attempt = delivery.last_attempt
    if attempt is None or attempt.finished is None:
        return "pending", 0
    if attempt.refused:
        return f"Refused: {attempt.refused}", 0
    if attempt.error:
        return f"Failed: {attempt.error}", 0
    if attempt.succeeded:
        return "OK", attempt.status_code
    return f"Invalid HTTP Response: {attempt.status_code}", attempt.status_code
