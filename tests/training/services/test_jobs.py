"""Job claiming: compare-and-set makes redelivered messages and racing workers harmless."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from tests.factories import make_round
from training.models import TrainingJob
from training.services import job_cancel, job_claim, job_run

J = TrainingJob.Status
pytestmark = pytest.mark.django_db


def _job(status: str, *, heartbeat_age_s: float | None = None, worker: str = "") -> TrainingJob:
    round = make_round(status="training")
    heartbeat = timezone.now() - timedelta(seconds=heartbeat_age_s) if heartbeat_age_s is not None else None
    return TrainingJob.objects.create(round=round, status=status, heartbeat_at=heartbeat, worker=worker, total_steps=10)


def test_a_redelivered_task_is_a_no_op_while_another_worker_runs_the_job():
    job = _job(J.RUNNING, heartbeat_age_s=1, worker="other:1")
    assert job_run(job_id=job.pk, worker="me:2") == "skipped"
    job.refresh_from_db()
    assert (job.status, job.worker, job.attempt) == (J.RUNNING, "other:1", 0)


@pytest.mark.parametrize("status", [J.SUCCEEDED, J.FAILED, J.CANCELLED, J.CANCELLING])
def test_a_finished_or_stopping_job_is_never_claimed_again(status):
    job = _job(status, heartbeat_age_s=10_000)
    assert job_run(job_id=job.pk, worker="me:2") == "skipped"
    job.refresh_from_db()
    assert job.status == status and job.attempt == 0


def test_a_running_job_whose_worker_stopped_beating_is_claimed_by_the_next_worker():
    job = _job(J.RUNNING, heartbeat_age_s=10_000, worker="dead:1")
    assert job_claim(job_id=job.pk, worker="me:2")
    job.refresh_from_db()
    assert (job.status, job.worker, job.attempt) == (J.RUNNING, "me:2", 1)


def test_cancel_stops_a_queued_job_at_once_and_asks_a_running_one_to_stop():
    queued, running = _job(J.QUEUED), _job(J.RUNNING, heartbeat_age_s=1)
    assert job_cancel(job=queued) == J.CANCELLED
    assert job_cancel(job=running) == J.CANCELLING
    assert job_cancel(job=TrainingJob.objects.get(pk=queued.pk)) == J.CANCELLED


@pytest.mark.django_db(transaction=True)
def test_two_workers_racing_for_a_queued_job_claim_it_exactly_once():
    for _ in range(5):
        job = _job(J.QUEUED)
        results: list[bool] = []
        barrier = threading.Barrier(2)

        def claim(name: str, job=job, results=results, barrier=barrier) -> None:
            barrier.wait()
            try:
                results.append(job_claim(job_id=job.pk, worker=name))
            finally:
                connection.close()

        threads = [threading.Thread(target=claim, args=(f"w{i}",)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(results) == [False, True]
        assert TrainingJob.objects.get(pk=job.pk).attempt == 1


def test_a_job_records_its_final_hyperparameters_when_it_is_created(tmp_path):
    """What the worker records at the end (the config resolved on the loaded model's architecture) is what the job
    row held from its creation, so the job page's hyperparameters do not change between running and finished."""
    from training.lib.config import TrainConfig
    from training.services.jobs import _config_for

    created = _config_for(round=make_round(base_model="tiny"), method="weighted_sft", overrides=None)
    assert created["model_type"] == "gpt2" and created["fan_in_fan_out"] is True
    assert TrainConfig.from_dict(created).resolved("gpt2") == created

    local = tmp_path / "base"
    local.mkdir()
    (local / "config.json").write_text('{"model_type": "llama"}')
    assert _config_for(round=make_round(base_model=str(local)), method="weighted_sft", overrides=None)["model_type"] == "llama"
    # A hub id is known only once the worker loads it: the row says so (None) instead of guessing.
    assert _config_for(round=make_round(base_model="some-org/some-model"), method="weighted_sft", overrides=None)["model_type"] is None


def test_a_round_with_reward_models_gets_the_on_policy_refinement_after_its_steps_on_the_candidates(settings):
    """The refinement (training.lib.sft, step 6) needs the groups' reward models: with them the job trains
    TRAINING_REFINE_STEPS more steps on its own weighted samples, recorded in the hyperparameters; without them, or
    when an override leaves no room for them, it trains on the candidates only."""
    from tests.factories import make_group
    from training.models import RewardModel
    from training.services.jobs import _config_for

    settings.TRAINING_DEFAULT_STEPS, settings.TRAINING_REFINE_STEPS, settings.TRAINING_REFINE_POOLS = 20, 6, 2
    bare = make_round(base_model="tiny")
    assert _config_for(round=bare, method="weighted_sft", overrides=None)["refine_steps"] == 0

    scored = make_round(base_model="tiny")
    RewardModel.objects.create(round=scored, group=make_group(), kind="rubric")
    config = _config_for(round=scored, method="weighted_sft", overrides=None)
    assert (config["steps"], config["refine_steps"], config["refine_pools"]) == (26, 6, 2)
    assert "on-policy refinement" in config["objective"]
    assert _config_for(round=scored, method="weighted_sft", overrides={"steps": 4})["refine_steps"] == 0
    assert _config_for(round=scored, method="grpo", overrides=None)["refine_steps"] == 0
