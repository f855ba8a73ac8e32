"""LoRA jobs on a real Celery worker process: a killed worker's job resumes from its checkpoint; cancel is prompt."""

from __future__ import annotations

import time

import pytest

from marketplace.devtools.worker import CeleryWorker
from marketplace.models import AuctionOutcome, Round
from marketplace.orchestration.lifecycle import rounds_tick
from tests.factories import make_round
from tests.support.workers import wait_for, worker_name
from training.lib.corpus import build_corpus
from training.models import Candidate, Checkpoint, JobEvent, TrainingJob
from training.services import job_cancel, job_create

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _round_ready_to_train(n_prompts: int = 3, n_candidates: int = 4) -> Round:
    corpus = build_corpus(seed=0)
    prompts = sorted({p for p, _, _ in corpus})[:n_prompts]
    round = make_round(status=Round.Status.TRAINING, prompts=prompts, candidates_per_prompt=n_candidates)
    policy = []
    for p_index, prompt in enumerate(prompts):
        responses = [r for p, r, _ in corpus if p == prompt][:n_candidates]
        for k, text in enumerate(responses):
            Candidate.objects.create(round=round, prompt_index=p_index, index=k, text=text, base_logprob=-10.0)
        weights = [2.0 ** -k for k in range(len(responses))]
        policy.append([w / sum(weights) for w in weights])
    AuctionOutcome.objects.create(round=round, inputs_hash="0" * 64, instance={}, result={"policy": policy},
                                  welfare=0.0, kl_to_base=0.0, revenue_cents=0)
    return round


def _enqueue(job_id: int) -> None:
    from marketplace.celery import app

    app.send_task("training.tasks.job_run_task", args=[job_id])


def test_a_killed_workers_job_resumes_from_its_last_checkpoint_and_finishes(worker_env, tmp_path, settings):
    worker_env["TRAINING_HEARTBEAT_STALE_S"] = "3"
    settings.TRAINING_HEARTBEAT_STALE_S = 3
    round = _round_ready_to_train()
    job = job_create(round=round, overrides={"steps": 40, "checkpoint_every": 5})
    assert job.status == TrainingJob.Status.QUEUED
    first = CeleryWorker(log_path=tmp_path / "first.log", env=worker_env, queues="training", name=worker_name())
    first.start()
    try:
        _enqueue(job.pk)
        wait_for(lambda: Checkpoint.objects.filter(job=job, step__gte=10).exists(), timeout=300, worker=first,
                 what="a checkpoint at step 10")
        first.kill()
    finally:
        first.stop()
    killed_at = TrainingJob.objects.get(pk=job.pk)
    assert killed_at.status == TrainingJob.Status.RUNNING and killed_at.steps_done < 40

    time.sleep(4)  # the heartbeat goes stale
    second = CeleryWorker(log_path=tmp_path / "second.log", env=worker_env, queues="training", name=worker_name())
    second.start()
    try:
        assert job.pk in rounds_tick()["requeued"]
        done = wait_for(lambda: TrainingJob.objects.filter(pk=job.pk, status__in=["succeeded", "failed"]).first(),
                        timeout=300, worker=second, what="the resumed job")
    finally:
        second.stop()
    assert done.status == TrainingJob.Status.SUCCEEDED, done.error_message
    assert done.attempt == 2 and done.steps_done == 40
    assert JobEvent.objects.filter(job=job, message__icontains="attempt 2").exists()
    # The second run started from the last checkpoint, not from step 0.
    resumed = JobEvent.objects.filter(job=job, message__startswith="Resumed from checkpoint").first()
    assert resumed is not None and resumed.data["step"] >= 10


def test_cancel_stops_a_running_job_within_a_step(celery_worker_process):
    round = _round_ready_to_train()
    job = job_create(round=round, overrides={"steps": 400, "checkpoint_every": 50})
    _enqueue(job.pk)
    wait_for(lambda: TrainingJob.objects.get(pk=job.pk).steps_done >= 3, timeout=300, worker=celery_worker_process,
             what="the job to make progress")
    assert job_cancel(job=TrainingJob.objects.get(pk=job.pk)) == TrainingJob.Status.CANCELLING
    # Read after the cancel is stored: at most the step in flight at that moment may still finish.
    asked_at = TrainingJob.objects.get(pk=job.pk).steps_done
    final = wait_for(lambda: TrainingJob.objects.filter(pk=job.pk, status="cancelled").first(), timeout=120,
                     worker=celery_worker_process, what="the job to stop")
    assert final.steps_done <= asked_at + 1
    assert final.steps_done < 400
