"""Celery tasks of the site: thin, take ids, call one service."""

from __future__ import annotations

import logging

from celery import shared_task

from marketplace.core import tasknames
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
