"""Handing work to the rq workers, the way every service does it."""

import logging

import django_rq
from django.db import transaction

log = logging.getLogger(__name__)


def enqueue_after_commit(what: str, function: str, *args, queue: str = "default") -> None:
    """Enqueue function(*args) once the current transaction commits (at once outside one); what names it in the log.

    The job then sees the rows the transaction wrote; and a queue outage is logged, never raised: it must not
    undo an action that already happened (a push git accepted, a comment saved)."""

    def enqueue() -> None:
        try:
            django_rq.get_queue(queue).enqueue(function, *args)
        except Exception:
            log.exception("could not enqueue %s %s", what, ", ".join(map(repr, args)))

    transaction.on_commit(enqueue)
