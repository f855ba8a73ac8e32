"""A round from open to delivered: each step is one idempotent service, started by a thin Celery task after commit.

    draft --open--> open --close--> closed --settle--> training --finish--> delivered
                      \\               \\                  \\--fail--> failed
                       \\-------------- \\--------cancel----\\--> cancelled
Open samples the candidate set; settle fits the reward models, runs the auction and queues the LoRA job; finish
evaluates the adapter and captures the prices. Failed and cancelled rounds release every hold.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from marketplace.billing.bids import bids_reauthorise
from marketplace.core import tasknames
from marketplace.core.enqueue import enqueue_after_commit
from marketplace.core.errors import AppError, Conflict, NotAllowed
from marketplace.delivery.services import model_publish
from marketplace.orchestration.auction import auction_delivery_settle, auction_run
from marketplace.rounds.models import Round
from marketplace.rounds.services import round_lock_exclusive, round_transition
from training.models import Candidate, TrainingJob
from training.services import candidates_sample, job_cancel, job_create, job_evaluate, jobs_reap, reward_models_fit

log = logging.getLogger(__name__)
S = Round.Status
# What a failed round says in public when the fault was ours; the details stay in the job row and the logs.
PLATFORM_FAILURE = "The round stopped because of a problem on our side. Every hold was released; nobody is charged."
# Steps whose message may have been lost are sent again by the scheduler after this long.
STUCK_AFTER = timedelta(minutes=15)


def _check_staff(by) -> None:
    if by is not None and not by.is_staff:
        raise NotAllowed("Only staff can change a round's status.")


def round_open_request(*, round: Round, by=None) -> bool:
    _check_staff(by)
    with transaction.atomic():
        moved = round_transition(round=round, from_status=S.DRAFT, to_status=S.OPEN)
        if moved:
            enqueue_after_commit(tasknames.ROUND_SAMPLE, round.pk)
    return moved


def round_close_request(*, round: Round, by=None) -> bool:
    """Close bidding. Locks the round exclusively while bids hold it shared (rounds.services), so a racing bid is
    either in before this or refused after, and bids that arrive while it waits queue behind it."""
    _check_staff(by)
    with transaction.atomic():
        locked = round_lock_exclusive(round_id=round.pk)
        if locked.status != S.OPEN:
            return False
        moved = round_transition(round=locked, from_status=S.OPEN, to_status=S.CLOSED)
        if moved:
            if locked.closes_at > timezone.now():
                Round.objects.filter(pk=round.pk).update(closes_at=timezone.now())
            enqueue_after_commit(tasknames.ROUND_SETTLE, round.pk)
    round.refresh_from_db()
    return moved


def round_cancel_request(*, round: Round, by=None, reason: str = "Cancelled by staff.") -> bool:
    """Cancel a round and release every hold. Once bidding has closed, a person cancelling must give a public reason:
    the groups committed real bids to this round and the round page shows why it did not go ahead."""
    _check_staff(by)
    reason = (reason or "").strip()
    if by is not None and round.status in (S.CLOSED, S.TRAINING) and reason in ("", "Cancelled by staff."):
        raise AppError(
            "Give the reason for cancelling a round after bidding closed; it is shown on the round page.", field="reason"
        )
    reason = reason[:500] or "Cancelled by staff."
    with transaction.atomic():
        locked = round_lock_exclusive(round_id=round.pk)
        if not locked.can_cancel:
            raise Conflict(f"A {locked.status} round cannot be cancelled.", code="bad_transition")
        moved = round_transition(round=locked, from_status=locked.status, to_status=S.CANCELLED, detail=reason)
        if moved:
            for job in TrainingJob.objects.filter(round=round):
                job_cancel(job=job)
            enqueue_after_commit(tasknames.BILLING_RELEASE_ROUND, round.pk)
    round.refresh_from_db()
    return moved


def round_fail(*, round: Round, reason: str) -> bool:
    with transaction.atomic():
        locked = round_lock_exclusive(round_id=round.pk)
        if locked.status not in (S.CLOSED, S.TRAINING):
            return False
        moved = round_transition(round=locked, from_status=locked.status, to_status=S.FAILED, detail=reason)
        if moved:
            enqueue_after_commit(tasknames.BILLING_RELEASE_ROUND, round.pk)
    round.refresh_from_db()
    return moved


def round_sample(*, round: Round) -> int:
    """Sample the candidate set of an open (or later) round. Idempotent."""
    if round.status in (S.DRAFT, S.CANCELLED):
        return 0
    return candidates_sample(round=round)


def round_settle(*, round: Round) -> int | None:
    """Fit reward models, run the auction, queue the LoRA job. Returns the job id, or None when nothing to train.

    Idempotent: each sub-step finds its stored result on a second run.
    """
    round.refresh_from_db()
    if round.status == S.TRAINING:
        job = TrainingJob.objects.live_for(round)
        return job.pk if job else None
    if round.status != S.CLOSED:
        return None
    candidates_sample(round=round)
    # Only bids backed by a live authorisation enter the auction (deferred or lapsed ones are authorised again now).
    bids_reauthorise(round=round)
    if not reward_models_fit(round=round):
        round_cancel_request(round=round, reason="No group had both a bid and reward preferences: nothing to train.")
        return None
    try:
        auction_run(round=round)
    except AppError as exc:
        round_cancel_request(round=round, reason=exc.message)
        return None
    job = job_create(round=round)
    if job.status == TrainingJob.Status.FAILED:
        round_fail(round=round, reason=f"Training could not start: {job.error_message} Every hold was released.")
        return None
    with transaction.atomic():
        if round_transition(round=round, from_status=S.CLOSED, to_status=S.TRAINING):
            enqueue_after_commit(tasknames.JOB_RUN, job.pk)
    return job.pk


def round_after_job(*, round: Round) -> str:
    """Called when the round's job ends: evaluate and deliver on success, otherwise fail the round."""
    round.refresh_from_db()
    job = TrainingJob.objects.newest_for(round)
    if job is None or round.status != S.TRAINING:
        return round.status
    if job.status == TrainingJob.Status.SUCCEEDED:
        evaluation = job_evaluate(job=job)
        log_q_theta = (evaluation.details or {}).get("log_q_theta")
        if log_q_theta:  # evaluations stored before the guarantee existed charge the auction price
            auction_delivery_settle(round=round, log_q_theta=log_q_theta)
        # The model page, its downloads and /v1/ serve what this builds (in this worker, never the web process).
        model_publish(round=round)
        with transaction.atomic():
            if round_transition(round=round, from_status=S.TRAINING, to_status=S.DELIVERED):
                Round.objects.filter(pk=round.pk).update(billing_pending=True)
                enqueue_after_commit(tasknames.BILLING_CAPTURE_ROUND, round.pk)
    elif job.status == TrainingJob.Status.CANCELLED:
        round_fail(round=round, reason="The training job was cancelled; every hold was released and nobody is charged.")
    elif job.status == TrainingJob.Status.FAILED:
        if job.fault == TrainingJob.Fault.USER:
            round_fail(round=round, reason=f"Training could not run: {job.error_message} Every hold was released.")
        else:
            log.error("round %s: job %s failed: %s", round.pk, job.pk, job.error_message)
            round_fail(round=round, reason=PLATFORM_FAILURE)
    round.refresh_from_db()
    return round.status


def rounds_tick(*, now=None) -> dict[str, list[int]]:
    """The scheduler: open rounds whose window started, close rounds whose window ended, requeue dead jobs."""
    now = now or timezone.now()
    opened = [r.pk for r in Round.objects.filter(status=S.DRAFT, opens_at__lte=now, closes_at__gt=now) if round_open_request(round=r)]
    closed = [r.pk for r in Round.objects.filter(status=S.OPEN, closes_at__lte=now) if round_close_request(round=r)]
    requeued = jobs_reap()
    for job_id in requeued:
        enqueue_after_commit(tasknames.JOB_RUN, job_id)
    resent = rounds_resend_stuck(now=now)
    return {"opened": opened, "closed": closed, "requeued": requeued, **resent}


def round_resume_request(*, round: Round, by=None) -> bool:
    """Staff: send again the step this round is waiting on (sampling, settling, the job, delivery or billing).

    Safe to press at any time: every step is idempotent, so a step that was merely slow does its work once.
    Returns False when the round waits on nothing.
    """
    _check_staff(by)
    round.refresh_from_db()
    if round.status == S.OPEN and Candidate.objects.filter(round=round).count() < len(round.prompts) * round.candidates_per_prompt:
        enqueue_after_commit(tasknames.ROUND_SAMPLE, round.pk)
    elif round.status == S.CLOSED:
        enqueue_after_commit(tasknames.ROUND_SETTLE, round.pk)
    elif round.status == S.TRAINING:
        job = TrainingJob.objects.newest_for(round)
        if job is not None and job.status in (TrainingJob.Status.QUEUED, TrainingJob.Status.RUNNING):
            enqueue_after_commit(tasknames.JOB_RUN, job.pk)  # a live worker holding it makes this a no-op
        else:
            enqueue_after_commit(tasknames.ROUND_AFTER_JOB, round.pk)
    elif round.billing_pending and round.status in (S.DELIVERED, S.FAILED, S.CANCELLED):
        task = tasknames.BILLING_CAPTURE_ROUND if round.status == S.DELIVERED else tasknames.BILLING_RELEASE_ROUND
        enqueue_after_commit(task, round.pk)
    else:
        return False
    return True


def rounds_resend_stuck(*, now=None) -> dict[str, list[int]]:
    """Send again the steps whose Celery message may have been lost. Every step is idempotent, so a step that was
    merely slow and gets a second message does its work once."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.ROUND_STEP_RESEND_AFTER_S)
    settle = list(Round.objects.filter(status=S.CLOSED, status_changed_at__lt=cutoff).values_list("pk", flat=True))
    for round_id in settle:
        enqueue_after_commit(tasknames.ROUND_SETTLE, round_id)
    jobs = list(
        TrainingJob.objects.filter(status=TrainingJob.Status.QUEUED, created_at__lt=cutoff).values_list("pk", flat=True)
    )
    for job_id in jobs:
        enqueue_after_commit(tasknames.JOB_RUN, job_id)
    # A training round whose job already ended: the hand-over to delivery was lost.
    finish = list(
        Round.objects.filter(status=S.TRAINING, status_changed_at__lt=cutoff)
        .exclude(jobs__status__in=[TrainingJob.Status.QUEUED, TrainingJob.Status.RUNNING, TrainingJob.Status.CANCELLING,
                                   TrainingJob.Status.VALIDATING_FILES])
        .values_list("pk", flat=True)
    )
    for round_id in finish:
        enqueue_after_commit(tasknames.ROUND_AFTER_JOB, round_id)
    billing = list(Round.objects.filter(billing_pending=True, status_changed_at__lt=cutoff).values_list("pk", "status"))
    for round_id, status in billing:
        task = tasknames.BILLING_CAPTURE_ROUND if status == S.DELIVERED else tasknames.BILLING_RELEASE_ROUND
        if status in (S.DELIVERED, S.FAILED, S.CANCELLED):
            enqueue_after_commit(task, round_id)
    return {"settle": settle, "jobs": jobs, "finish": finish, "billing": [r for r, _ in billing]}
