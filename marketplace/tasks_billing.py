"""Celery tasks for billing: thin, take ids, call one service. Stripe outages are retried with backoff; every
service they call is idempotent, so a retry or a redelivered message never charges twice."""

from __future__ import annotations

from celery import shared_task

from marketplace.billing import services as billing
from marketplace.billing.stripe_gateway import GatewayUnavailable
from marketplace.core import tasknames
from marketplace.rounds.models import Round

# Backoff doubles from 2 s up to 10 minutes; 200 tries cover well over a day of outage.
_RETRY = dict(autoretry_for=(GatewayUnavailable,), retry_backoff=2, retry_backoff_max=600, retry_jitter=True, max_retries=200)


@shared_task(name=tasknames.BILLING_CAPTURE_ROUND, acks_late=True, **_RETRY)
def billing_capture_round_task(round_id: int) -> dict[str, int]:
    summary = billing.billing_capture_round(round=Round.objects.get(pk=round_id))
    return {"captured_cents": summary.captured_cents, "pending": summary.pending_count}


@shared_task(name=tasknames.BILLING_RELEASE_SWEEP, ignore_result=True)
def billing_release_sweep_task() -> int:
    return billing.payments_release_sweep()


@shared_task(name=tasknames.BILLING_RELEASE_ROUND, acks_late=True, **_RETRY)
def billing_release_round_task(round_id: int) -> dict[str, int]:
    summary = billing.billing_release_round(round=Round.objects.get(pk=round_id))
    return {"released": summary.released_count, "pending": summary.pending_count}
