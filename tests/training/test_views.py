"""Training pages: the public progress JSON and card, the job page with its staff-only cancel, a group's reward model
page and pairwise labelling in the browser."""

from __future__ import annotations

import pytest
from django.urls import reverse

from marketplace.models import AuctionOutcome, GroupOutcome, PreferenceSubmission, Round
from tests.factories import make_bid, make_group, make_round, make_user
from training.models import Candidate, Checkpoint, Evaluation, JobEvent, RewardModel, TrainingJob

pytestmark = pytest.mark.django_db
S = Round.Status
J = TrainingJob.Status


def add_candidates(round: Round, per_prompt: int = 4) -> None:
    for p in range(len(round.prompts)):
        for k in range(per_prompt):
            Candidate.objects.create(round=round, prompt_index=p, index=k, text=f"answer {p}.{k}", base_logprob=-1.0)


def add_outcome(round: Round, group, **fields) -> GroupOutcome:
    outcome = AuctionOutcome.objects.get_or_create(
        round=round,
        defaults=dict(inputs_hash="0" * 64, instance={}, result={"policy": []}, welfare=1.0, kl_to_base=0.1, revenue_cents=1),
    )[0]
    values = dict(bid_cents=987654, expected_reward=0.61, promised_value=9876.54, payment=4321.0, payment_cents=432100,
                  utility=1.0)
    values.update(fields)
    return GroupOutcome.objects.create(outcome=outcome, group=group, **values)


def progress_url(round: Round) -> str:
    return reverse("round_progress", kwargs={"slug": round.slug})


# ---------- progress.json ----------


def test_progress_json_never_contains_bids_payments_or_per_group_numbers(client):
    admin = make_user()
    group = make_group(admin=admin, name="Secret Squirrels")
    round = make_round(status=S.DELIVERED)
    add_candidates(round)
    make_bid(round=round, group=group, amount_cents=987654)
    add_outcome(round, group, delivered_reward=0.5551234, base_reward=0.4441234)
    job = TrainingJob.objects.create(round=round, status=J.SUCCEEDED, steps_done=60, total_steps=60)
    Evaluation.objects.create(job=job, tv_before=0.5, tv_after=0.2, kl_estimate=0.03,
                              delivered={group.slug: 0.5551234}, base={group.slug: 0.4441234})

    for viewer in (None, admin, make_user(staff=True)):
        if viewer:
            client.force_login(viewer)
        body = client.get(progress_url(round)).content.decode()
        assert "987654" not in body
        assert "9876" not in body and "4321" not in body
        assert "555123" not in body and "444123" not in body
        assert group.slug not in body and "Secret Squirrels" not in body


def test_progress_json_is_404_for_a_draft_round_unless_staff(client):
    round = make_round(status=S.DRAFT)

    assert client.get(progress_url(round)).status_code == 404
    client.force_login(make_user())
    response = client.get(progress_url(round))
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    client.force_login(make_user(staff=True))
    assert client.get(progress_url(round)).status_code == 200


def test_progress_json_shows_the_job_progress_and_events(client):
    round = make_round(status=S.TRAINING, status_detail="Training toward the auction's target")
    add_candidates(round)
    job = TrainingJob.objects.create(round=round, status=J.RUNNING, steps_done=30, total_steps=60, tokens_seen=12345,
                                     loss=0.75, eta_seconds=42.0)
    JobEvent.objects.create(job=job, type=JobEvent.Type.CHECKPOINT, message="Checkpoint at step 30")

    response = client.get(progress_url(round))

    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    data = response.json()
    assert data["status"] == "training"
    assert data["status_detail"] == "Training toward the auction's target"
    assert data["candidates"] == 8
    assert data["job"]["status"] == "running"
    assert data["job"]["progress"] == 0.5
    assert data["job"]["steps_done"] == 30 and data["job"]["tokens_seen"] == 12345
    assert data["job"]["eta_seconds"] == 42.0
    assert data["events"][-1]["message"] == "Checkpoint at step 30"
    assert data["final"] is False


def test_progress_json_has_no_job_before_training(client):
    round = make_round(status=S.OPEN)

    data = client.get(progress_url(round)).json()

    assert data["job"] is None and data["events"] == [] and data["evaluation"] is None


# ---------- job page ----------


def job_url(round: Round) -> str:
    return reverse("round_job", kwargs={"slug": round.slug})


def cancel_url(round: Round) -> str:
    return reverse("round_job_cancel", kwargs={"slug": round.slug})


def test_job_page_shows_method_hyperparameters_checkpoints_and_evaluation(client):
    round = make_round(status=S.DELIVERED)
    job = TrainingJob.objects.create(round=round, status=J.SUCCEEDED, method="weighted_sft", steps_done=60, total_steps=60,
                                     hyperparameters={"learning_rate": 0.0005, "lora_r": 8, "seed": 7})
    Checkpoint.objects.create(job=job, step=20, path="/x/20", metrics={"loss": 1.5})
    Checkpoint.objects.create(job=job, step=40, path="/x/40", metrics={"loss": 0.9}, is_best=True)
    Evaluation.objects.create(job=job, tv_before=0.5123, tv_after=0.2345, kl_estimate=0.0456, delivered={}, base={})

    response = client.get(job_url(round))

    assert response.status_code == 200
    text = response.content.decode()
    assert "weighted_sft" in text and "learning_rate" in text and "lora_r" in text
    assert "Best" in text
    assert "0.5123" in text and "0.2345" in text and "0.0456" in text
    assert f'data-progress-url="{progress_url(round)}"' in text
    assert "js/progress.js" in text
    assert "Cancel job" not in text


def test_job_page_shows_an_empty_state_before_there_is_a_job(client):
    round = make_round(status=S.OPEN)

    response = client.get(job_url(round))

    assert response.status_code == 200
    assert "No training job yet" in response.content.decode()


def test_job_page_is_404_for_a_draft_round_unless_staff(client):
    round = make_round(status=S.DRAFT)

    assert client.get(job_url(round)).status_code == 404
    client.force_login(make_user(staff=True))
    assert client.get(job_url(round)).status_code == 200


def test_job_page_shows_the_platform_error_detail_only_to_staff(client):
    round = make_round(status=S.FAILED)
    TrainingJob.objects.create(round=round, status=J.FAILED, fault=TrainingJob.Fault.PLATFORM, error_code="training_error",
                               error_message="RuntimeError: disk /srv/gpu7 full")

    public = client.get(job_url(round)).content.decode()
    client.force_login(make_user(staff=True))
    staff = client.get(job_url(round)).content.decode()

    assert "training_error" in public and "Platform fault" in public
    assert "/srv/gpu7" not in public
    assert "/srv/gpu7" in staff


def test_staff_see_every_groups_delivered_vs_promised_and_others_do_not(client):
    member = make_user()
    group = make_group(members=[member], name="Terse Writers")
    round = make_round(status=S.DELIVERED)
    add_outcome(round, group, expected_reward=0.6123, delivered_reward=0.5871, base_reward=0.4012)
    TrainingJob.objects.create(round=round, status=J.SUCCEEDED)

    client.force_login(member)
    as_member = client.get(job_url(round)).content.decode()
    client.force_login(make_user(staff=True))
    as_staff = client.get(job_url(round)).content.decode()

    assert "Terse Writers" not in as_member and "0.5871" not in as_member
    assert "Terse Writers" in as_staff and "0.6123" in as_staff and "0.5871" in as_staff


def test_staff_see_the_cancel_button_for_a_live_job(client):
    round = make_round(status=S.TRAINING)
    TrainingJob.objects.create(round=round, status=J.RUNNING)
    client.force_login(make_user(staff=True))

    assert "Cancel job" in client.get(job_url(round)).content.decode()


def test_cancel_is_refused_to_non_staff_and_changes_nothing(client):
    round = make_round(status=S.TRAINING)
    job = TrainingJob.objects.create(round=round, status=J.RUNNING)

    anonymous = client.post(cancel_url(round))
    assert anonymous.status_code == 302 and "/accounts/login/" in anonymous["Location"]
    client.force_login(make_user())
    assert client.post(cancel_url(round)).status_code == 404
    job.refresh_from_db()
    assert job.status == J.RUNNING


def test_staff_cancel_moves_a_running_job_to_cancelling(client):
    round = make_round(status=S.TRAINING)
    job = TrainingJob.objects.create(round=round, status=J.RUNNING)
    client.force_login(make_user(staff=True))

    response = client.post(cancel_url(round), follow=True)

    job.refresh_from_db()
    assert job.status == J.CANCELLING
    assert "will stop at its next step" in response.content.decode()


def test_staff_cancel_moves_a_queued_job_to_cancelled(client):
    round = make_round(status=S.TRAINING)
    job = TrainingJob.objects.create(round=round, status=J.QUEUED)
    client.force_login(make_user(staff=True))

    client.post(cancel_url(round))

    job.refresh_from_db()
    assert job.status == J.CANCELLED
    assert job.events.filter(message__icontains="cancelled").exists()


def test_cancel_needs_a_post(client):
    round = make_round(status=S.TRAINING)
    job = TrainingJob.objects.create(round=round, status=J.QUEUED)
    client.force_login(make_user(staff=True))

    assert client.get(cancel_url(round)).status_code == 405
    job.refresh_from_db()
    assert job.status == J.QUEUED


# ---------- reward model page ----------


def rm_url(round: Round, group) -> str:
    return reverse("group_reward_model", kwargs={"slug": round.slug, "group_slug": group.slug})


@pytest.fixture
def fitted():
    member = make_user()
    group = make_group(members=[member])
    round = make_round(status=S.TRAINING)
    add_candidates(round, per_prompt=6)
    scores = [[0.0, 0.1, 0.2, 0.3, 0.4, 0.5], [1.0, 0.9, 0.8, 0.7, 0.6, 0.05]]
    RewardModel.objects.create(round=round, group=group, kind="pairs", accuracy=0.83, normalised_scores=scores)
    return member, group, round


def test_reward_model_page_sends_anonymous_visitors_to_log_in(client, fitted):
    _, group, round = fitted

    response = client.get(rm_url(round, group))

    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_reward_model_page_is_404_for_outsiders_and_for_unknown_groups(client, fitted):
    _, group, round = fitted
    client.force_login(make_user())

    assert client.get(rm_url(round, group)).status_code == 404
    missing = reverse("group_reward_model", kwargs={"slug": round.slug, "group_slug": "no-such-group"})
    assert client.get(missing).status_code == 404


def test_reward_model_page_shows_members_the_top_and_bottom_candidates(client, fitted):
    member, group, round = fitted
    client.force_login(member)

    response = client.get(rm_url(round, group))

    assert response.status_code == 200
    text = response.content.decode()
    assert "83%" in text
    assert "answer 1.0" in text and "answer 1.4" in text  # top five
    assert "answer 0.0" in text and "answer 1.5" in text  # bottom five
    assert "answer 0.4" not in text and "answer 0.5" not in text  # neither
    assert text.count('data-testid="scored-candidate"') == 10


def test_reward_model_page_lets_staff_look(client, fitted):
    _, group, round = fitted
    client.force_login(make_user(staff=True))

    assert client.get(rm_url(round, group)).status_code == 200


def test_reward_model_page_has_an_empty_state_before_the_close(client):
    member = make_user()
    group = make_group(members=[member])
    round = make_round(status=S.OPEN)
    client.force_login(member)

    response = client.get(rm_url(round, group))

    assert response.status_code == 200
    assert "Your reward model is fitted when bidding closes" in response.content.decode()


def test_reward_model_page_compares_promised_delivered_and_base_after_delivery_without_money(client, fitted):
    member, group, round = fitted
    Round.objects.filter(pk=round.pk).update(status=S.DELIVERED)
    add_outcome(round, group, expected_reward=0.6123, delivered_reward=0.5871, base_reward=0.4012)
    client.force_login(member)

    text = client.get(rm_url(round, group)).content.decode()

    assert "0.6123" in text and "0.5871" in text and "0.4012" in text
    assert "987654" not in text and "9,876.54" not in text and "4,321" not in text


# ---------- labelling ----------


def label_url(round: Round, group) -> str:
    return reverse("group_label", kwargs={"slug": round.slug, "group_slug": group.slug})


@pytest.fixture
def labelling():
    member = make_user()
    group = make_group(members=[member])
    round = make_round(status=S.OPEN)
    add_candidates(round)
    return member, group, round


def shown_pair(response) -> dict[str, int]:
    pair = response.context["pair"]
    return {"prompt_index": pair.prompt_index, "a_index": pair.a.index, "b_index": pair.b.index}


def test_label_page_shows_a_prompt_two_candidates_and_the_count(client, labelling):
    member, group, round = labelling
    client.force_login(member)

    response = client.get(label_url(round, group))

    assert response.status_code == 200
    text = response.content.decode()
    assert "A is better" in text and "B is better" in text and "Skip" in text
    pair = response.context["pair"]
    assert pair.a.text in text and pair.b.text in text
    assert 'data-testid="labelled-count">0<' in text
    assert "replace any file of pairs" in text


def test_a_label_creates_a_new_version_with_all_previous_labels_and_the_new_pair(client, labelling):
    member, group, round = labelling
    client.force_login(member)

    first = shown_pair(client.get(label_url(round, group)))
    client.post(label_url(round, group), {**first, "choice": "a", "counter": 0})
    second = shown_pair(client.get(label_url(round, group) + "?n=1"))
    response = client.post(label_url(round, group), {**second, "choice": "b", "counter": 1})

    assert response.status_code == 302 and response["Location"].endswith("?n=2")
    versions = list(PreferenceSubmission.objects.filter(round=round, group=group).order_by("version"))
    assert [v.version for v in versions] == [1, 2]
    assert all(v.kind == "labels" for v in versions)
    pairs = versions[-1].payload["pairs"]
    assert [(p["prompt_index"], p["chosen_index"], p["rejected_index"]) for p in pairs] == [
        (first["prompt_index"], first["a_index"], first["b_index"]),
        (second["prompt_index"], second["b_index"], second["a_index"]),
    ]
    assert pairs[1]["chosen"] == f"answer {second['prompt_index']}.{second['b_index']}"
    assert 'data-testid="labelled-count">2<' in client.get(label_url(round, group)).content.decode()


def test_skip_stores_nothing_and_moves_on(client, labelling):
    member, group, round = labelling
    client.force_login(member)
    pair = shown_pair(client.get(label_url(round, group)))

    response = client.post(label_url(round, group), {**pair, "choice": "skip", "counter": 4})

    assert response.status_code == 302 and response["Location"].endswith("?n=5")
    assert not PreferenceSubmission.objects.filter(round=round).exists()


def test_labels_are_refused_after_the_close(client, labelling):
    member, group, round = labelling
    client.force_login(member)
    pair = shown_pair(client.get(label_url(round, group)))
    Round.objects.filter(pk=round.pk).update(status=S.CLOSED)

    response = client.post(label_url(round, group), {**pair, "choice": "a", "counter": 0})

    assert response.status_code == 409
    assert not PreferenceSubmission.objects.filter(round=round).exists()
    assert "Labelling is closed" in response.content.decode()


@pytest.mark.parametrize(
    "data",
    [
        {"prompt_index": 9, "a_index": 0, "b_index": 1},
        {"prompt_index": 0, "a_index": 0, "b_index": 99},
        {"prompt_index": 0, "a_index": 2, "b_index": 2},
        {"prompt_index": -1, "a_index": 0, "b_index": 1},
        {"prompt_index": "x", "a_index": 0, "b_index": 1},
    ],
)
def test_bad_indices_are_refused(client, labelling, data):
    member, group, round = labelling
    client.force_login(member)

    response = client.post(label_url(round, group), {**data, "choice": "a", "counter": 0})

    assert response.status_code == 400
    assert not PreferenceSubmission.objects.filter(round=round).exists()


def test_label_page_is_404_for_outsiders_and_staff_who_are_not_members(client, labelling):
    _, group, round = labelling
    for outsider in (make_user(), make_user(staff=True)):
        client.force_login(outsider)
        assert client.get(label_url(round, group)).status_code == 404
        assert client.post(label_url(round, group), {"prompt_index": 0, "a_index": 0, "b_index": 1, "choice": "a"}).status_code == 404
    assert not PreferenceSubmission.objects.filter(round=round).exists()


def test_label_page_says_candidates_are_coming_when_there_are_none(client):
    member = make_user()
    group = make_group(members=[member])
    round = make_round(status=S.OPEN)
    client.force_login(member)

    response = client.get(label_url(round, group))

    assert response.status_code == 200
    assert "No candidate responses yet" in response.content.decode()


# ---------- admin ----------


def test_staff_can_browse_jobs_with_their_events_and_checkpoints_in_the_admin_but_not_edit_status(client):
    round = make_round(status=S.TRAINING)
    job = TrainingJob.objects.create(round=round, status=J.RUNNING, steps_done=3, total_steps=9)
    JobEvent.objects.create(job=job, type=JobEvent.Type.STATUS, message="Running on worker-zeta")
    Checkpoint.objects.create(job=job, step=3, path="/ckpt/step-3", metrics={"loss": 1.0})
    client.force_login(make_user(staff=True))

    listing = client.get(reverse("admin:training_trainingjob_changelist"))
    change = client.get(reverse("admin:training_trainingjob_change", args=[job.pk]))
    client.post(reverse("admin:training_trainingjob_change", args=[job.pk]), {"status": J.SUCCEEDED})

    assert listing.status_code == 200 and "3 / 9" in listing.content.decode()
    assert change.status_code == 200
    assert "Running on worker-zeta" in change.content.decode() and "/ckpt/step-3" in change.content.decode()
    job.refresh_from_db()
    assert job.status == J.RUNNING
    for name in ("candidate", "rewardmodel", "evaluation"):
        assert client.get(reverse(f"admin:training_{name}_changelist")).status_code == 200
