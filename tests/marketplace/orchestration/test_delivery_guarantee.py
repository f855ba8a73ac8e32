"""At delivery each group pays min(auction price, bid x max(0, D - C)), D measured on the round's fixed candidates."""

from __future__ import annotations

import math

import numpy as np
import pytest

from marketplace.models import GroupOutcome, Round
from marketplace.orchestration.auction import auction_delivery_settle, auction_run
from tests.factories import make_bid, make_group, make_round
from training.models import Candidate, RewardModel

pytestmark = pytest.mark.django_db

SCORES = {  # per group, per prompt, per candidate: normalised rewards with opposed tastes
    "a": [[1.0, 0.0, 0.5], [0.0, 1.0, 0.2]],
    "b": [[0.0, 1.0, 0.5], [1.0, 0.0, 0.9]],
}


def _closed_round(*, currency: str = "usd", bids=(300, 100), fee: int = 0) -> Round:
    round = make_round(status=Round.Status.CLOSED, prompts=["p0", "p1"], candidates_per_prompt=3, kl_weight=1.0,
                       currency=currency, participation_fee_cents=fee)
    for p in range(2):
        for k in range(3):
            Candidate.objects.create(round=round, prompt_index=p, index=k, text=f"answer {p}-{k}", base_logprob=-5.0)
    for (name, scores), bid in zip(SCORES.items(), bids, strict=True):
        group = make_group(name=f"Group {name} {round.pk}")
        make_bid(round=round, group=group, amount_cents=bid)
        RewardModel.objects.create(round=round, group=group, kind="rubric", normalised_scores=scores)
    return round


def test_reference_points_are_stored_and_frame_the_price():
    outcome = auction_run(round=_closed_round())
    for go in GroupOutcome.objects.filter(outcome=outcome):
        assert go.candidate_base_reward is not None and go.without_reward is not None
        # The auction's price never exceeds the value the group adds over the model trained without it.
        assert go.payment <= go.bid_cents / 100 * (go.expected_reward - go.without_reward) + 1e-9


def test_when_the_adapter_reproduces_q_star_each_group_pays_exactly_the_auction_price():
    round = _closed_round()
    outcome = auction_run(round=round)
    log_q_star = [np.log(np.maximum(row, 1e-300)).tolist() for row in outcome.result["policy"]]
    auction_delivery_settle(round=round, log_q_theta=log_q_star)
    for go in GroupOutcome.objects.filter(outcome=outcome):
        assert go.charge_cents == go.payment_cents
        assert go.charge_basis == "auction_price"
        assert math.isclose(go.delivered_reward_candidates, go.expected_reward, abs_tol=1e-9)


def test_when_training_fails_to_move_the_model_nobody_pays_more_than_it_measurably_gained():
    round = _closed_round()
    outcome = auction_run(round=round)
    uniform = [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]  # the adapter left the candidates' weights where the base had them
    auction_delivery_settle(round=round, log_q_theta=uniform)
    for go in GroupOutcome.objects.filter(outcome=outcome):
        gain = max(0.0, go.delivered_reward_candidates - go.without_reward)
        assert go.charge_cents <= go.payment_cents
        assert go.charge_cents <= math.floor(go.bid_cents * gain + 1e-9)
        assert go.amount_due_cents <= go.bid_cents + go.fee_cents
    assert any(go.charge_basis == "delivery_guarantee" for go in GroupOutcome.objects.filter(outcome=outcome))


def test_settling_twice_changes_nothing():
    round = _closed_round()
    outcome = auction_run(round=round)
    auction_delivery_settle(round=round, log_q_theta=[[0.0] * 3, [0.0] * 3])
    first = list(GroupOutcome.objects.filter(outcome=outcome).values_list("charge_cents", flat=True))
    auction_delivery_settle(round=round, log_q_theta=[[5.0, 0.0, 0.0], [0.0, 5.0, 0.0]])
    assert list(GroupOutcome.objects.filter(outcome=outcome).values_list("charge_cents", flat=True)) == first


@pytest.mark.parametrize(("code", "bids"), [("jpy", (3000, 1000)), ("kwd", (3000, 1000)), ("eur", (300, 100))])
def test_prices_are_in_the_rounds_minor_units_and_chargeable(code, bids):
    outcome = auction_run(round=_closed_round(currency=code, bids=bids))
    assert [g["bid"] for g in outcome.instance["groups"]] == [b / 10 ** {"jpy": 0, "kwd": 3, "eur": 2}[code] for b in bids]
    for go in GroupOutcome.objects.filter(outcome=outcome):
        assert go.payment_cents <= go.bid_cents
        if code == "kwd":
            assert go.payment_cents % 10 == 0


def test_the_fee_is_recorded_with_the_outcome_and_charged_with_the_price():
    outcome = auction_run(round=_closed_round(fee=50))
    for go in GroupOutcome.objects.filter(outcome=outcome):
        assert go.fee_cents == 50 and go.amount_due_cents == go.payment_cents + 50
