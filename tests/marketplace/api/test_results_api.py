"""The API's results: the job with every event, the round's results, a group's receipt and its reward model, each
under the same rule as its page (who may see what is the permission matrix's; here: what each one shows)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from marketplace.models import AuctionOutcome, GroupOutcome, Round
from tests.factories import make_bid, make_round
from tests.marketplace.api.test_api import Api, gpath
from training.models import Checkpoint, JobEvent, RewardModel, TrainingJob

pytestmark = pytest.mark.django_db

BID = 4_321
PRICE = 1_234


@pytest.fixture
def delivered(cast):
    round = make_round(status=Round.Status.DELIVERED, closes_at=timezone.now() - timedelta(hours=1))
    make_bid(round=round, group=cast.group, amount_cents=BID)
    outcome = AuctionOutcome.objects.create(
        round=round, inputs_hash="0" * 64, instance={"kl_weight": 1.0, "groups": [], "prompts": []}, result={},
        welfare=1.0, kl_to_base=0.5, revenue_cents=PRICE,
    )
    GroupOutcome.objects.create(
        outcome=outcome, group=cast.group, bid_cents=BID, expected_reward=0.8, promised_value=34.6, payment=12.34,
        payment_cents=PRICE, utility=22.0, delivered_reward=0.7, base_reward=0.4,
    )
    job = TrainingJob.objects.create(round=round, status=TrainingJob.Status.SUCCEEDED, steps_done=20, total_steps=20,
                                     worker="host-a:123")
    Checkpoint.objects.create(job=job, step=20, path="x", metrics={"loss": 0.5, "tv_to_target": 0.1}, is_best=True)
    JobEvent.objects.create(job=job, type=JobEvent.Type.STATUS, message="Claimed by host-a:123")
    JobEvent.objects.create(job=job, type=JobEvent.Type.STATUS, message="Succeeded after 20 steps")
    return round


def test_the_job_lists_every_event_and_checkpoint_without_worker_names_for_people(cast, delivered):
    body = Api(cast.bob).get(f"/rounds/{delivered.slug}/job").json()
    assert body["job"]["status"] == "succeeded"
    assert body["job"]["checkpoints"] == [{"step": 20, "metrics": {"loss": 0.5, "tv_to_target": 0.1}, "is_best": True}]
    assert [e["message"] for e in body["events"]] == ["Claimed by a training worker", "Succeeded after 20 steps"]


def test_a_round_without_a_job_says_so(cast):
    body = Api(cast.bob).get(f"/rounds/{make_round().slug}/job").json()
    assert body["job"] is None and body["events"] == []


def test_results_show_rewards_to_members_and_the_price_to_admins_only(cast, delivered):
    member = Api(cast.bob).get(f"/rounds/{delivered.slug}/results").json()
    assert member["target_kl_to_base"] == 0.5
    (mine,) = member["my_groups"]
    assert (mine["promised_reward"], mine["delivered_reward"], mine["base_reward"]) == (0.8, 0.7, 0.4)
    assert "price_cents" not in mine
    (admin,) = Api(cast.alice).get(f"/rounds/{delivered.slug}/results").json()["my_groups"]
    assert admin["price_cents"] == PRICE
    assert Api(cast.dave).get(f"/rounds/{delivered.slug}/results").json()["my_groups"] == []


def test_the_receipt_shows_the_bid_to_admins_only(cast, delivered):
    member = Api(cast.bob).get(gpath(delivered, cast.group, "receipt")).json()
    assert member["price_cents"] == PRICE and "bid_cents" not in member
    admin = Api(cast.alice).get(gpath(delivered, cast.group, "receipt")).json()
    assert admin["bid_cents"] == BID
    assert admin["number"].startswith("TM-")


def test_the_reward_model_summary(cast, delivered):
    RewardModel.objects.create(round=delivered, group=cast.group, kind="rubric", normalised_scores=[[1.0, 0.0]],
                               raw_scores=[[2.0, 1.0]])
    body = Api(cast.bob).get(gpath(delivered, cast.group, "reward-model")).json()
    assert body["fitted"] and body["kind"] == "rubric"
    assert [c["score"] for c in body["top"]] == [1.0, 0.0]
    assert (body["promised_reward"], body["delivered_reward"]) == (0.8, 0.7)
