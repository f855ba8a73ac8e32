"""Selectors for training pages: the public progress, the stepper, the reward model summary and the next pair to label."""

from __future__ import annotations

import pytest

from marketplace.models import Round
from tests.factories import make_group, make_round, make_user
from training import selectors
from training.models import Candidate, Evaluation, JobEvent, RewardModel, TrainingJob
from training.services.labels import labels_add

pytestmark = pytest.mark.django_db


def add_candidates(round: Round, per_prompt: int = 3) -> None:
    for p in range(len(round.prompts)):
        for k in range(per_prompt):
            Candidate.objects.create(round=round, prompt_index=p, index=k, text=f"answer {p}.{k}", base_logprob=-1.0)


def test_steps_mark_done_current_and_todo():
    round = make_round(status=Round.Status.TRAINING)

    states = {s["status"]: s["state"] for s in selectors.round_steps(round=round)}

    assert states == {"draft": "done", "open": "done", "closed": "done", "training": "current", "delivered": "todo"}


def test_steps_of_a_delivered_round_are_all_done():
    round = make_round(status=Round.Status.DELIVERED)

    assert {s["state"] for s in selectors.round_steps(round=round)} == {"done"}


def test_progress_reports_job_fraction_and_only_the_last_ten_events_oldest_first():
    round = make_round(status=Round.Status.TRAINING)
    add_candidates(round)
    job = TrainingJob.objects.create(round=round, status=TrainingJob.Status.RUNNING, steps_done=15, total_steps=60, loss=1.25)
    for i in range(12):
        JobEvent.objects.create(job=job, type=JobEvent.Type.PROGRESS, message=f"event {i}")

    data = selectors.round_progress(round=round)

    assert data["candidates"] == 6
    assert data["job"]["progress"] == 0.25
    assert data["job"]["loss"] == 1.25
    assert [e["message"] for e in data["events"]] == [f"event {i}" for i in range(2, 12)]
    assert data["evaluation"] is None


def test_progress_shows_the_newest_job_of_a_retried_round():
    round = make_round(status=Round.Status.TRAINING)
    TrainingJob.objects.create(round=round, status=TrainingJob.Status.FAILED, error_message="old")
    TrainingJob.objects.create(round=round, status=TrainingJob.Status.QUEUED)

    assert selectors.round_progress(round=round)["job"]["status"] == "queued"


def test_platform_faults_get_a_generic_message_and_user_faults_their_own():
    round = make_round(status=Round.Status.FAILED)
    job = TrainingJob.objects.create(
        round=round, status=TrainingJob.Status.FAILED, fault=TrainingJob.Fault.PLATFORM,
        error_code="training_error", error_message="RuntimeError: CUDA out of memory at /srv/secret/path",
    )
    JobEvent.objects.create(job=job, type=JobEvent.Type.ERROR, message="CUDA out of memory at /srv/secret/path")

    data = selectors.round_progress(round=round)
    assert "secret" not in str(data)
    assert data["job"]["error_message"] == selectors.PLATFORM_ERROR

    TrainingJob.objects.filter(pk=job.pk).update(fault=TrainingJob.Fault.USER, error_message="The auction's target does not match.")
    assert selectors.round_progress(round=round)["job"]["error_message"] == "The auction's target does not match."


def test_progress_hides_worker_names_in_event_messages():
    round = make_round(status=Round.Status.TRAINING)
    job = TrainingJob.objects.create(round=round, status=TrainingJob.Status.RUNNING, worker="gpu-node-17:4242")
    JobEvent.objects.create(job=job, type=JobEvent.Type.STATUS, message="Running on gpu-node-17:4242 (attempt 1)")

    data = selectors.round_progress(round=round)

    assert "gpu-node-17" not in str(data)
    assert data["events"][0]["message"] == "Running on a training worker (attempt 1)"


def test_progress_includes_the_evaluation_summary_only():
    round = make_round(status=Round.Status.DELIVERED)
    job = TrainingJob.objects.create(round=round, status=TrainingJob.Status.SUCCEEDED)
    Evaluation.objects.create(job=job, tv_before=0.5, tv_after=0.2, kl_estimate=0.03, delivered={"g": 0.7}, base={"g": 0.4})

    assert selectors.round_progress(round=round)["evaluation"] == {"tv_before": 0.5, "tv_after": 0.2, "kl_estimate": 0.03}


def test_reward_model_page_lists_the_highest_and_lowest_scored_candidates():
    round = make_round(status=Round.Status.CLOSED)
    add_candidates(round, per_prompt=6)
    group = make_group()
    scores = [[0.0, 0.1, 0.2, 0.3, 0.4, 0.5], [1.0, 0.9, 0.8, 0.7, 0.6, 0.05]]
    RewardModel.objects.create(round=round, group=group, kind="pairs", accuracy=0.8, normalised_scores=scores)

    page = selectors.reward_model_page(round=round, group=group)

    assert [(c.prompt_index, c.index) for c in page.top] == [(1, 0), (1, 1), (1, 2), (1, 3), (1, 4)]
    assert [(c.prompt_index, c.index) for c in page.bottom] == [(0, 0), (1, 5), (0, 1), (0, 2), (0, 3)]
    assert page.top[0].text == "answer 1.0"
    assert page.top[0].prompt == round.prompts[1]
    assert page.show_delivery is False


def test_reward_model_page_never_shows_a_candidate_in_both_lists_when_there_are_few():
    round = make_round(status=Round.Status.CLOSED, prompts=["only prompt"])
    add_candidates(round, per_prompt=3)
    group = make_group()
    RewardModel.objects.create(round=round, group=group, kind="pairs", normalised_scores=[[0.2, 1.0, 0.0]])

    page = selectors.reward_model_page(round=round, group=group)

    assert [c.index for c in page.top] == [1, 0, 2]
    assert page.bottom == []


def test_the_next_pair_is_deterministic_per_user_and_counter():
    member = make_user()
    group = make_group(members=[member])
    round = make_round()
    add_candidates(round, per_prompt=8)

    first = selectors.label_pair_next(user=member, group=group, round=round, counter=3)
    again = selectors.label_pair_next(user=member, group=group, round=round, counter=3)
    others = {
        (p.prompt_index, p.a.index, p.b.index)
        for p in (selectors.label_pair_next(user=member, group=group, round=round, counter=n) for n in range(10))
    }

    assert (first.prompt_index, first.a.index, first.b.index) == (again.prompt_index, again.a.index, again.b.index)
    assert first.a.index != first.b.index
    assert len(others) > 1


def test_the_next_pair_avoids_labelled_pairs_and_ends_when_all_are_labelled():
    member = make_user()
    group = make_group(members=[member])
    round = make_round(prompts=["one prompt"])
    add_candidates(round, per_prompt=3)  # three pairs in all
    seen = set()
    for n in range(3):
        pair = selectors.label_pair_next(user=member, group=group, round=round, counter=n)
        key = (min(pair.a.index, pair.b.index), max(pair.a.index, pair.b.index))
        assert key not in seen
        seen.add(key)
        labels_add(user=member, group=group, round=round, prompt_index=0, chosen_index=pair.a.index, rejected_index=pair.b.index)

    assert selectors.label_pair_next(user=member, group=group, round=round, counter=99) is None


def test_the_next_pair_is_none_without_candidates():
    member = make_user()
    group = make_group(members=[member])
    round = make_round()

    assert selectors.label_pair_next(user=member, group=group, round=round, counter=0) is None
