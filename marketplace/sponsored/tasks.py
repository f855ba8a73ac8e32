"""Billing click spend: thin tasks that take ids. The beat entry finds groups with unbilled clicks of finished days
and enqueues one task per (group, day) after commit; each is idempotent (the invoice key), so a redelivery or a
second beat never charges twice. Stripe outages are retried with backoff."""

from __future__ import annotations

from datetime import date

from celery import shared_task
from django.db import transaction

from marketplace.billing.stripe_gateway import GatewayUnavailable
from marketplace.core import tasknames
from marketplace.core.enqueue import enqueue_after_commit
from marketplace.groups.models import PreferenceGroup
from marketplace.sponsored import services

_RETRY = dict(autoretry_for=(GatewayUnavailable,), retry_backoff=2, retry_backoff_max=600, retry_jitter=True, max_retries=200)


@shared_task(name=tasknames.SPONSORED_BILLING_RUN, ignore_result=True)
def sponsored_billing_run_task() -> int:
    pairs = services.groups_to_bill(before=services.today())
    with transaction.atomic():
        for group_id, day in pairs:
            enqueue_after_commit(tasknames.SPONSORED_BILL_GROUP, group_id, day)
    return len(pairs)


@shared_task(name=tasknames.SPONSORED_BILL_GROUP, acks_late=True, **_RETRY)
def sponsored_bill_group_task(group_id: int, day: str) -> list[str]:
    group = PreferenceGroup.objects.get(pk=group_id)
    return [r.status for r in services.ads_bill_group(group=group, period=date.fromisoformat(day))]
