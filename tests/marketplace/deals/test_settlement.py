"""A published pay-for-performance contract applied at delivery: the group's outcome is the bin its delivered reward D
falls in, its model charge min(current charge, the contract's payment), captured at localstripe, never above the hold."""

from __future__ import annotations

import math

import numpy as np
import pytest
from django.utils import timezone
from hypothesis import given
from hypothesis import strategies as st

from marketplace.billing.bids import bid_place
from marketplace.billing.services import billing_capture_round, billing_card_attach
from marketplace.core.errors import AppError
from marketplace.deals.models import RoundContract
from marketplace.deals.settlement import ContractTerms, contract_charge, edges_check, equal_width_edges, outcome_of
from marketplace.models import GroupOutcome, Payment, Round
from marketplace.orchestration.auction import auction_delivery_settle, auction_run
from tests.factories import make_group, make_round, make_user
from tests.support.cards import another_card
from training.models import Candidate, RewardModel

SCORES = {  # per group, per prompt, per candidate: normalised rewards with opposed tastes
    "a": [[1.0, 0.0, 0.5], [0.0, 1.0, 0.2]],
    "b": [[0.0, 1.0, 0.5], [1.0, 0.0, 0.9]],
}


# --- the rule, pure ---------------------------------------------------------------------------------------------


@st.composite
def contracts(draw):
    k = draw(st.integers(min_value=1, max_value=8))
    cuts = draw(st.lists(st.floats(0.0, 1.0, allow_nan=False), min_size=k + 1, max_size=k + 1, unique=True))
    payments = draw(st.lists(st.integers(0, 10**7), min_size=k, max_size=k))
    return ContractTerms(edges=sorted(cuts), payments_cents=payments, labels=[str(j) for j in range(k)])


@given(
    terms=contracts(),
    current=st.integers(0, 10**7),
    delivered=st.floats(-0.5, 1.5, allow_nan=False),
    code=st.sampled_from(["usd", "jpy", "kwd"]),
)
def test_the_contract_only_ever_lowers_a_charge_and_binds_exactly_when_its_payment_is_lower(terms, current, delivered, code):
    settled = contract_charge(current_cents=current, delivered=delivered, terms=terms, currency_code=code)
    assert 0 <= settled.outcome < len(terms.payments_cents)
    assert settled.payment_cents <= terms.payments_cents[settled.outcome]
    assert settled.charge_cents == min(current, settled.payment_cents) <= current
    assert settled.binds == (settled.payment_cents < current)
    lo, hi = terms.edges[settled.outcome], terms.edges[settled.outcome + 1]
    if terms.edges[0] <= delivered < terms.edges[-1]:
        assert lo <= delivered < hi  # D lies in the bin it was given


@given(terms=contracts(), a=st.floats(-1, 2, allow_nan=False), b=st.floats(-1, 2, allow_nan=False))
def test_a_higher_delivered_reward_never_reaches_a_worse_outcome(terms, a, b):
    lo, hi = sorted((a, b))
    assert outcome_of(delivered=lo, edges=terms.edges) <= outcome_of(delivered=hi, edges=terms.edges)


def test_hand_entered_contracts_default_to_equal_width_bins_and_bad_edges_are_refused():
    assert equal_width_edges(4) == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert outcome_of(delivered=1.0, edges=equal_width_edges(4)) == 3
    assert outcome_of(delivered=0.25, edges=equal_width_edges(4)) == 1
    for bad in ([0, 0.5], [0, 0.5, 0.5], [0, 1, 0.5], [0, float("nan"), 1]):
        with pytest.raises(AppError):
            edges_check(bad, 2)


# --- applied at delivery and captured for real -------------------------------------------------------------------


def _delivered_round_with_contract(*, payments_cents, fee: int = 0, status=RoundContract.Status.PUBLISHED, target_bin=None):
    """Two groups bid through billing (real holds at localstripe), the auction runs, a contract is on the round, the
    model reproduces q* (so D = the promised reward), and the round is charged. The contract's bins are equal-width
    over [0, 1], or, with ``target_bin``, 0.01 wide and placed so that group a's D falls in that bin."""
    round = make_round(prompts=["p0", "p1"], candidates_per_prompt=3, kl_weight=1.0, participation_fee_cents=fee)
    for (name, scores), bid in zip(SCORES.items(), (300, 100), strict=True):
        admin = make_user()
        group = make_group(admin=admin, name=f"Group {name} {round.pk}")
        billing_card_attach(group=group, by=admin, payment_method_id=another_card())
        bid_place(user=admin, group=group, round=round, amount_cents=bid)
        RewardModel.objects.create(round=round, group=group, kind="rubric", normalised_scores=scores)
    for p in range(2):
        for k in range(3):
            Candidate.objects.create(round=round, prompt_index=p, index=k, text=f"answer {p}-{k}", base_logprob=-5.0)
    Round.objects.filter(pk=round.pk).update(status=Round.Status.CLOSED)
    outcome = auction_run(round=round)
    k = len(payments_cents)
    edges = [j / k for j in range(k + 1)]
    if target_bin is not None:
        d_a = GroupOutcome.objects.get(outcome=outcome, group__name__startswith="Group a").expected_reward
        lo = d_a - (target_bin + 0.5) * 0.01
        edges = [lo + 0.01 * j for j in range(k + 1)]
    # Written as staff would have published it before the close (the services refuse a closed round).
    RoundContract.objects.create(
        round=round, status=status, published_at=timezone.now(),
        inputs={"actions": [], "outcomes": [f"bin {j}" for j in range(k)], "outcome_edges": edges},
        payments=[c / 100 for c in payments_cents], payments_cents=payments_cents,
        expected_payment=0.0, max_payment=max(payments_cents) / 100,
    )
    log_q_star = [np.log(np.maximum(row, 1e-300)).tolist() for row in outcome.result["policy"]]
    auction_delivery_settle(round=round, log_q_theta=log_q_star)
    Round.objects.filter(pk=round.pk).update(status=Round.Status.DELIVERED)
    round.refresh_from_db()
    billing_capture_round(round=round)
    return round, GroupOutcome.objects.filter(outcome=outcome).select_related("group"), edges


def _bin(d: float, edges: list[float]) -> int:
    """Equal-width bins, independently of the code under test: floor((D - lo) / width), clamped."""
    width = edges[1] - edges[0]
    return min(max(math.floor((d - edges[0]) / width + 1e-9), 0), len(edges) - 2)


# Payments per outcome (four bins): every case mixes payments below, at and above the auction prices, including
# nothing at all; with target_bin the bins move so that group a reaches each outcome in turn.
CASES = [[0, 0, 0, 0], [1, 2, 3, 4], [0, 10, 50, 90], [500, 500, 500, 500], [7, 400, 33, 1], [90, 60, 30, 0]]


@pytest.mark.django_db
@pytest.mark.parametrize("payments", CASES)
@pytest.mark.parametrize(("fee", "target_bin"), [(0, None), (25, None), (0, 0), (25, 1), (0, 2), (25, 3)])
def test_a_published_contract_sets_the_captured_amount_where_it_binds_and_never_more_than_the_hold(
    localstripe, payments, fee, target_bin
):
    round, outcomes, edges = _delivered_round_with_contract(payments_cents=payments, fee=fee, target_bin=target_bin)
    for go in outcomes:
        assert math.isclose(go.delivered_reward_candidates, go.expected_reward, abs_tol=1e-9)
        reached = _bin(go.delivered_reward_candidates, edges)
        if target_bin is not None and go.group.name.startswith("Group a"):
            assert reached == target_bin
        assert go.contract_outcome == reached and go.contract_payment_cents == payments[reached]
        expected = min(go.payment_cents, payments[reached])  # q* reproduced: the current charge is the auction price
        assert go.charge_cents == expected
        assert go.charge_basis == ("contract" if payments[reached] < go.payment_cents else "auction_price")
        payment = Payment.objects.get(round=round, group=go.group, bid__isnull=False)
        due = expected + fee
        if due > 0:
            assert payment.status == Payment.Status.CAPTURED and payment.amount_captured_cents == due
        else:
            assert payment.status == Payment.Status.RELEASED and payment.amount_captured_cents == 0
        assert payment.amount_captured_cents <= payment.amount_held_cents == go.bid_cents + fee
    bases = {go.charge_basis for go in outcomes}
    if payments == [0, 0, 0, 0]:
        assert bases == {"contract"}  # both auction prices are above 0, so a contract paying nothing binds for both
    if payments == [500, 500, 500, 500]:
        assert bases == {"auction_price"}  # above every bid: the contract never raises a charge


@pytest.mark.django_db
def test_a_draft_contract_is_never_applied(localstripe):
    round, outcomes, _ = _delivered_round_with_contract(payments_cents=[0, 0, 0, 0], status=RoundContract.Status.DRAFT)
    for go in outcomes:
        assert go.contract_outcome is None and go.charge_basis == "auction_price"
        assert Payment.objects.get(round=round, group=go.group, bid__isnull=False).amount_captured_cents == go.payment_cents
