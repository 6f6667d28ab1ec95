"""Audit events: written by services in the same transaction as the change they record."""

from typing import Any

from django.db import models

from portal.models import AuditEvent, User


def record(
    actor: User | None,
    action: str,
    target: models.Model | None = None,
    *,
    target_repr: str = "",
    subject: User | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    ip_address: str | None = None,
) -> AuditEvent:
    """Write one audit event; actor None means the system."""
    actor = actor if actor is not None and getattr(actor, "is_authenticated", False) else None
    return AuditEvent.objects.create(
        actor=actor,
        actor_name=actor.username if actor else "",
        action=action,
        target_type=target._meta.label_lower if target is not None else "",
        target_id=str(target.pk) if target is not None else "",
        target_repr=(target_repr or (str(target) if target is not None else ""))[:255],
        subject=subject,
        subject_name=subject.username if subject else "",
        before=before,
        after=after,
        ip_address=ip_address,
    )
