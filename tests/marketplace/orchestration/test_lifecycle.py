"""The round life cycle's decisions: who hands a round on, what a failure says in public, what the scheduler re-sends."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from marketplace.models import PreferenceSubmission, Round
from marketplace.orchestration import lifecycle
from tests.factories import make_bid, make_group, make_round
from training.models import Candidate, TrainingJob
from training.services import job_cancel, reward_models_fit

pytestmark = pytest.mark.django_db


def test_cancelling_a_queued_job_hands_the_round_on_and_the_round_fails_without_charging(
    sent, django_capture_on_commit_callbacks
):
    round = make_round(status=Round.Status.TRAINING)
    job = TrainingJob.objects.create(round=round, status=TrainingJob.Status.QUEUED)
    with django_capture_on_commit_callbacks(execute=True):
        assert job_cancel(job=job) == TrainingJob.Status.CANCELLED
    assert ("marketplace.tasks.round_after_job_task", [round.pk]) in sent
    with django_capture_on_commit_callbacks(execute=True):
        assert lifecycle.round_after_job(round=round) == Round.Status.FAILED
    assert "cancelled" in round.status_detail and "nobody is charged" in round.status_detail
    assert ("marketplace.tasks_billing.billing_release_round_task", [round.pk]) in sent


def test_a_platform_failure_says_so_in_public_without_the_internal_error(client, sent):
    round = make_round(status=Round.Status.TRAINING)
    TrainingJob.objects.create(
        round=round, status=TrainingJob.Status.FAILED, fault=TrainingJob.Fault.PLATFORM,
        error_message="RuntimeError: CUDA out of memory at /srv/secret/path",
    )
    lifecycle.round_after_job(round=round)
    round.refresh_from_db()
    assert round.status == Round.Status.FAILED and round.status_detail == lifecycle.PLATFORM_FAILURE
    body = client.get(f"/rounds/{round.slug}/progress.json").content.decode()
    assert "secret" not in body and "CUDA" not in body


def test_the_scheduler_resends_steps_whose_message_was_lost_and_leaves_fresh_ones(sent):
    long_ago = timezone.now() - timedelta(hours=1)
    stuck_closed = make_round(status=Round.Status.CLOSED)
    fresh_closed = make_round(status=Round.Status.CLOSED)
    stuck_billing = make_round(status=Round.Status.DELIVERED, billing_pending=True)
    Round.objects.filter(pk__in=[stuck_closed.pk, stuck_billing.pk]).update(status_changed_at=long_ago)
    stuck_job = TrainingJob.objects.create(round=make_round(status=Round.Status.TRAINING), status=TrainingJob.Status.QUEUED)
    TrainingJob.objects.filter(pk=stuck_job.pk).update(created_at=long_ago)

    resent = lifecycle.rounds_resend_stuck()
    assert resent["settle"] == [stuck_closed.pk]
    assert fresh_closed.pk not in resent["settle"]
    assert resent["jobs"] == [stuck_job.pk]
    assert resent["billing"] == [stuck_billing.pk]


def test_a_group_whose_preferences_cannot_be_used_is_left_out_instead_of_sinking_the_round():
    round = make_round(status=Round.Status.CLOSED, prompts=["Question: Hi?\nAnswer: "])
    for k, text in enumerate(["Hello!", "Good day.", "Hi there, great question!"]):
        Candidate.objects.create(round=round, prompt_index=0, index=k, text=text, base_logprob=-5.0)
    good, lonely = make_group(), make_group()
    for group in (good, lonely):
        make_bid(round=round, group=group)
    admin = good.memberships.get(role="admin").user
    PreferenceSubmission.objects.create(
        round=round, group=good, version=1, kind="rubric", submitted_by=admin,
        payload={"phrases": [{"phrase": "great", "weight": 1.0}], "target_length_words": None},
    )
    # One pair labelled in the browser: too little to fit a model, so only this group is left out.
    PreferenceSubmission.objects.create(
        round=round, group=lonely, version=1, kind="labels", submitted_by=lonely.memberships.get(role="admin").user,
        payload={"pairs": [{"prompt": "Question: Hi?\nAnswer: ", "chosen": "Hello!", "rejected": "Good day."}]},
    )
    fitted = reward_models_fit(round=round)
    assert [rm.group_id for rm in fitted] == [good.pk]
    assert fitted[0].normalised_scores == [[0.0, 0.0, 1.0]]


def test_staff_can_send_the_step_a_round_waits_on_again_from_the_staff_page(client, sent, django_capture_on_commit_callbacks):
    from tests.factories import make_user

    closed = make_round(status=Round.Status.CLOSED)
    delivered = make_round(status=Round.Status.DELIVERED, billing_pending=True)
    done = make_round(status=Round.Status.DELIVERED)
    client.force_login(make_user(staff=True))
    with django_capture_on_commit_callbacks(execute=True):
        for round in (closed, delivered, done):
            client.post(f"/staff/rounds/{round.slug}/resume/")
    assert sent == [
        ("marketplace.tasks.round_settle_task", [closed.pk]),
        ("marketplace.tasks_billing.billing_capture_round_task", [delivered.pk]),
    ]
