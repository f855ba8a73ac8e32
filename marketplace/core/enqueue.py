"""Hand a Celery task its ids once the current transaction commits, through the outbox so that no message is lost.

The outbox row is written in the caller's transaction, so a committed status always has its message; it is sent
right after commit and, if the broker refused it then, by the relay (``outbox_relay``: a beat task every
settings.OUTBOX_RELAY_INTERVAL_S seconds and once when a worker starts) as soon as the broker is back.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from marketplace.celery import app
from marketplace.core import tasknames
from marketplace.outbox.models import OutboxMessage

log = logging.getLogger(__name__)
RELAY_BATCH = 200
KEEP_SENT_FOR = timedelta(days=1)


def enqueue_after_commit(task_name: str, *args: object) -> None:
    """Record the task (by name; tasks take ids only) in the outbox in the current transaction; send it after commit.

    The name must be one of marketplace.core.tasknames: a misspelt name would otherwise sit in the broker forever.
    A broker that is down never fails the caller: the row stays and the relay sends it later.
    """
    if task_name not in tasknames.ALL:
        raise ValueError(f"unknown task name {task_name!r}; add it to marketplace.core.tasknames")
    message = OutboxMessage.objects.create(task_name=task_name, args=list(args))
    transaction.on_commit(lambda: outbox_send(ids=[message.pk]))


def outbox_send(*, ids: list[int] | None = None, limit: int = RELAY_BATCH) -> int:
    """Send pending outbox rows (those in ``ids``, or the oldest ``limit``); returns how many the broker took.

    1. Lock the pending rows, skipping any another sender holds (so two relays never send the same row at once).
    2. Send each in order; the first refusal stops the batch (the broker is down) and is recorded on its row.
    3. Mark the sent ones, in the same transaction as the lock.
    A crash between 2 and 3 sends a row twice; every task is idempotent, so that is harmless.
    """
    with transaction.atomic():
        pending = OutboxMessage.objects.select_for_update(skip_locked=True).filter(sent_at__isnull=True).order_by("pk")
        if ids is not None:
            pending = pending.filter(pk__in=ids)
        sent: list[int] = []
        for message in pending[:limit]:
            try:
                app.send_task(message.task_name, args=list(message.args), retry=False)
            except Exception as exc:  # the broker is unreachable or refused: keep the row for the relay
                log.warning("outbox: could not send %s (%s); the relay will retry", message, exc)
                OutboxMessage.objects.filter(pk=message.pk).update(
                    attempts=F("attempts") + 1, last_error=f"{type(exc).__name__}: {exc}"[:500]
                )
                break
            sent.append(message.pk)
        if sent:
            OutboxMessage.objects.filter(pk__in=sent).update(sent_at=timezone.now(), attempts=F("attempts") + 1)
    return len(sent)


def outbox_relay() -> int:
    """Send everything still pending, oldest first, and forget rows sent more than a day ago; returns how many sent."""
    total = 0
    while True:
        n = outbox_send()
        total += n
        if n < RELAY_BATCH:
            break
    OutboxMessage.objects.filter(sent_at__lt=timezone.now() - KEEP_SENT_FOR).delete()
    return total
