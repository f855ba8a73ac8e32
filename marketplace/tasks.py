"""Celery tasks of the site: thin, take ids, call one service."""

from __future__ import annotations

import logging
import smtplib

from celery import shared_task
from celery.signals import worker_ready

from marketplace.core import tasknames
from marketplace.core.enqueue import outbox_relay
from marketplace.groups.invitations import invitation_send
from marketplace.orchestration import lifecycle
from marketplace.rounds.models import Round

logger = logging.getLogger(__name__)


@shared_task(name=tasknames.ROUND_SAMPLE, acks_late=True, autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def round_sample_task(round_id: int) -> int:
    return lifecycle.round_sample(round=Round.objects.get(pk=round_id))


@shared_task(name=tasknames.ROUND_SETTLE, acks_late=True)
def round_settle_task(round_id: int) -> int | None:
    round = Round.objects.get(pk=round_id)
    try:
        return lifecycle.round_settle(round=round)
    except Exception:
        logger.exception("settling round %s failed", round_id)
        lifecycle.round_fail(round=round, reason=lifecycle.PLATFORM_FAILURE)
        raise


@shared_task(name=tasknames.ROUND_AFTER_JOB, acks_late=True)
def round_after_job_task(round_id: int) -> str:
    round = Round.objects.get(pk=round_id)
    try:
        return lifecycle.round_after_job(round=round)
    except Exception:
        # Evaluation or delivery broke: no model is delivered, so nobody pays.
        logger.exception("finishing round %s failed", round_id)
        lifecycle.round_fail(round=round, reason=lifecycle.PLATFORM_FAILURE)
        raise


@shared_task(name=tasknames.ROUNDS_TICK)
def rounds_tick_task() -> dict[str, list[int]]:
    return lifecycle.rounds_tick()


@shared_task(
    name=tasknames.INVITATION_SEND, acks_late=True, autoretry_for=(OSError, smtplib.SMTPException),
    retry_backoff=5, retry_backoff_max=900, retry_jitter=True, max_retries=12,
)
def invitation_send_task(invitation_id: int) -> bool:
    return invitation_send(invitation_id=invitation_id)


@shared_task(name=tasknames.OUTBOX_RELAY, ignore_result=True)
def outbox_relay_task() -> int:
    return outbox_relay()


@worker_ready.connect
def _relay_on_worker_start(**_: object) -> None:
    """A worker that comes up (after an outage, say) sends what the outbox still holds at once."""
    try:
        outbox_relay()
    except Exception:  # the broker or the database is not there yet; the beat relay tries again in seconds
        logger.exception("outbox relay on worker start failed")
