"""Celery tasks of the training side. LoRA jobs run on the `training` queue (one per GPU worker, prefetch 1)."""

from __future__ import annotations

from celery import shared_task

from marketplace.core import tasknames
from marketplace.core.enqueue import enqueue_after_commit
from training.models import TrainingJob
from training.services import job_run, jobs_reap


@shared_task(name=tasknames.JOB_RUN, acks_late=True, reject_on_worker_lost=True)
def job_run_task(job_id: int) -> str:
    """Claim and run the job; a redelivered message for a job someone else is running is a no-op ('skipped')."""
    status = job_run(job_id=job_id)
    if status != "skipped":
        round_id = TrainingJob.objects.values_list("round_id", flat=True).get(pk=job_id)
        enqueue_after_commit(tasknames.ROUND_AFTER_JOB, round_id)
    return status


@shared_task(name=tasknames.JOBS_REAP)
def jobs_reap_task() -> list[int]:
    ids = jobs_reap()
    for job_id in ids:
        job_run_task.delay(job_id)
    return ids
