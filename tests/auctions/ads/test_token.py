from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import integrate

from auctions.ads.token import (
    TokenAuction,
    proportional_payment,
    realised_payments,
    simulate_payments,
    token_auction,
    token_draw,
    token_solve,
)
from auctions.ads.validation import with_bid
from auctions.mechanism import MechanismError

PROPS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

EXAMPLE: dict[str, Any] = {"bids": [1.0, 2.0, 2.0], "distributions": [[0.8, 0.2], [1.0, 0.0], [0.0, 1.0]]}


@st.composite
def auctions(draw: st.DrawFn, aggregation: str = "linear", min_agents: int = 1) -> TokenAuction:
    n = draw(st.integers(min_agents, 5))
    v = draw(st.integers(1, 5))
    bids = draw(st.lists(st.one_of(st.just(0.0), st.floats(0.01, 100.0)), min_size=n, max_size=n))
    rows = []
    for _ in range(n):
        raw = np.array(draw(st.lists(st.floats(0.01, 1.0), min_size=v, max_size=v)))
        rows.append(raw / raw.sum())
    return token_auction(bids=bids, distributions=rows, aggregation=aggregation)


def expected_utility(auction: TokenAuction, i: int, value: float, bid: float) -> float:
    out = token_solve(with_bid(auction, i, bid))
    return value * float(out.selection_probability[i]) - float(out.expected_payment[i])


def test_it_reproduces_the_linear_aggregate_of_the_example() -> None:
    out = token_solve(token_auction(**EXAMPLE))
    np.testing.assert_allclose(out.aggregate, [0.56, 0.44], atol=1e-15)
    np.testing.assert_allclose(out.selection_probability, [0.2, 0.4, 0.4])


def test_the_example_pays_the_closed_form() -> None:
    out = token_solve(token_auction(**EXAMPLE))
    # B_-i ln(1 + b_i / B_-i) - b_i B_-i / (b_i + B_-i)
    expected = [4 * np.log(1.25) - 4 / 5, 3 * np.log(1 + 2 / 3) - 6 / 5, 3 * np.log(1 + 2 / 3) - 6 / 5]
    np.testing.assert_allclose(out.expected_payment, expected, rtol=1e-14)
    assert out.revenue == pytest.approx(sum(expected))


def test_the_expected_payment_is_myersons_integral() -> None:
    auction = token_auction(**EXAMPLE)
    out = token_solve(auction)
    for i in range(3):
        b, others = auction.bids[i], auction.bids.sum() - auction.bids[i]
        area = integrate.quad(lambda z, o=others: z / (z + o), 0.0, b)[0]
        assert out.expected_payment[i] == pytest.approx(b * b / (b + others) - area, rel=1e-12)


@pytest.mark.parametrize("own", [1e-12, 1e-6, 1e-3, 0.009, 0.011, 0.5, 1.0, 3.0, 1e6, 1e200])
def test_the_proportional_payment_has_no_cancellation(own: float) -> None:
    others = 1.0
    t = own / others
    # Reference: f(t) = Σ_k (-1)^k (k-1)/k t^k for small t, exact log formula otherwise, in extended precision.
    tl = np.longdouble(t)
    reference = (
        float(np.log1p(tl) - tl / (1 + tl))
        if t > 1e-3
        else float(sum((-1) ** k * (k - 1) / k * t**k for k in range(2, 30)))
    )
    assert float(proportional_payment(own, others)[()]) == pytest.approx(reference, rel=1e-12)


@PROPS
@given(auctions(min_agents=2), st.data())
def test_the_selection_probability_and_the_aggregate_move_towards_a_raised_bid(
    auction: TokenAuction, data: st.DataObject
) -> None:
    i = data.draw(st.integers(0, auction.n_agents - 1))
    low, high = sorted(data.draw(st.lists(st.floats(0.0, 200.0), min_size=2, max_size=2)))
    a, b = token_solve(with_bid(auction, i, low)), token_solve(with_bid(auction, i, high))
    assert b.selection_probability[i] >= a.selection_probability[i] - 1e-15
    # Robust monotonicity: every coordinate of q gets (weakly) closer to p_i.
    p = auction.distributions[i]
    assert np.all(np.abs(b.aggregate - p) <= np.abs(a.aggregate - p) + 1e-12)


@PROPS
@given(auctions())
def test_expected_payments_lie_between_zero_and_bid_times_allocation(auction: TokenAuction) -> None:
    out = token_solve(auction)
    assert np.all(out.expected_payment >= 0)
    assert np.all(out.expected_payment <= auction.bids * out.selection_probability + 1e-12)
    np.testing.assert_allclose(out.aggregate.sum(), 1.0)


@SLOW
@given(auctions(min_agents=2), st.data())
def test_no_bid_on_a_grid_beats_bidding_the_value(auction: TokenAuction, data: st.DataObject) -> None:
    i = data.draw(st.integers(0, auction.n_agents - 1))
    value = data.draw(st.floats(0.01, 100.0))
    truthful = expected_utility(auction, i, value, value)
    for bid in np.linspace(0.0, 3.0 * value, 31):
        assert expected_utility(auction, i, value, float(bid)) <= truthful + 1e-9 * (1 + value)


@PROPS
@given(auctions(), st.floats(1e-3, 1e3))
def test_scaling_every_bid_scales_payments_and_keeps_the_allocation(auction: TokenAuction, c: float) -> None:
    a, b = token_solve(auction), token_solve(token_auction(bids=auction.bids * c, distributions=auction.distributions))
    np.testing.assert_allclose(b.aggregate, a.aggregate, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(b.selection_probability, a.selection_probability, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(b.expected_payment, c * a.expected_payment, rtol=1e-10, atol=1e-300)


@SLOW
@given(auctions(min_agents=2), st.integers(0, 2**31))
def test_realised_payments_average_to_the_expected_ones(auction: TokenAuction, seed: int) -> None:
    runs = 20000
    selected, pay = simulate_payments(auction, rng=np.random.default_rng(seed), runs=runs)
    out = token_solve(auction)
    assert np.all(pay >= 0) and np.all(pay <= auction.bids[None, :])
    # Only the selected agent pays.
    assert np.all((pay > 0).sum(axis=1) <= 1)
    assert np.all(pay[np.arange(runs), selected] == pay.sum(axis=1))
    # An agent selected in a handful of runs shows little sample variation: allow it one price per expected win.
    se = pay.std(axis=0) / np.sqrt(runs)
    slack = auction.bids * np.minimum(out.selection_probability, 5 / runs)
    assert np.all(np.abs(pay.mean(axis=0) - out.expected_payment) <= 5 * se + slack + 1e-12)
    freq = np.bincount(selected, minlength=auction.n_agents) / runs
    assert np.all(np.abs(freq - out.selection_probability) <= 5 * np.sqrt(0.25 / runs))


def test_the_selected_agent_pays_its_critical_bid() -> None:
    auction = token_auction(**EXAMPLE)
    e = np.array([0.3, 1.0, 0.9])  # ratios 0.3, 0.5, 0.45: agent 0 wins; the best other ratio is 0.45
    selected, pay = realised_payments(auction, e)
    assert int(selected) == 0
    np.testing.assert_allclose(pay, [0.3 / 0.45, 0.0, 0.0])
    # Just above the critical bid agent 0 still wins; just below it loses.
    for bid, wins in ((0.3 / 0.45 * 1.0001, True), (0.3 / 0.45 * 0.9999, False)):
        again, _ = realised_payments(with_bid(auction, 0, bid), e)
        assert (int(again) == 0) is wins


def test_a_draw_samples_the_token_from_the_selected_agent() -> None:
    auction = token_auction(**EXAMPLE)
    for seed in range(20):
        d = token_draw(auction, rng=np.random.default_rng(seed))
        assert d.selected is not None
        assert auction.distributions[d.selected][d.token] > 0
        assert np.count_nonzero(d.payment) <= 1 and d.payment[d.selected] <= auction.bids[d.selected]


def test_a_zero_bid_is_never_selected_and_pays_nothing() -> None:
    auction = token_auction(bids=[0.0, 1.0], distributions=[[1, 0], [0, 1]])
    out = token_solve(auction)
    np.testing.assert_array_equal(out.selection_probability, [0.0, 1.0])
    np.testing.assert_array_equal(out.expected_payment, [0.0, 0.0])  # the lone bidder faces no competition
    selected, pay = simulate_payments(auction, rng=np.random.default_rng(0), runs=100)
    assert np.all(selected == 1) and np.all(pay == 0)


def test_all_zero_bids_weigh_agents_equally_for_free() -> None:
    out = token_solve(token_auction(bids=[0.0, 0.0], distributions=[[1, 0], [0, 1]]))
    np.testing.assert_allclose(out.aggregate, [0.5, 0.5])
    np.testing.assert_array_equal(out.expected_payment, [0.0, 0.0])


def test_log_linear_aggregation_is_the_normalised_weighted_geometric_mean() -> None:
    dists = [[0.8, 0.2], [0.5, 0.5], [0.3, 0.7]]
    out = token_solve(token_auction(bids=[1, 2, 2], distributions=dists, aggregation="log_linear"))
    w = np.array([0.2, 0.4, 0.4])
    q = np.prod(np.array(dists) ** w[:, None], axis=0)
    np.testing.assert_allclose(out.aggregate, q / q.sum(), rtol=1e-14)
    np.testing.assert_allclose(out.selection_probability, w)


@PROPS
@given(auctions(aggregation="log_linear"), st.integers(0, 2**31))
def test_log_linear_aggregation_charges_nothing(auction: TokenAuction, seed: int) -> None:
    out = token_solve(auction)
    assert np.all(out.expected_payment == 0) and out.revenue == 0
    d = token_draw(auction, rng=np.random.default_rng(seed))
    assert d.selected is None and np.all(d.payment == 0)
    selected, pay = simulate_payments(auction, rng=np.random.default_rng(seed), runs=10)
    assert np.all(selected == -1) and np.all(pay == 0)


def test_log_linear_aggregation_is_not_monotone() -> None:
    # p_0 agrees with the other agent on token 0 (0.1 each); raising b_0 pushes q(token 0) above 0.1, away from p_0.
    p0, p1 = [0.1, 0.45, 0.45], [0.1, 0.8, 0.1]
    before = token_solve(token_auction(bids=[0.0, 1.0], distributions=[p0, p1], aggregation="log_linear"))
    after = token_solve(token_auction(bids=[1.0, 1.0], distributions=[p0, p1], aggregation="log_linear"))
    assert before.aggregate[0] == pytest.approx(0.1)
    assert abs(after.aggregate[0] - 0.1) > abs(before.aggregate[0] - 0.1) + 0.005
    linear = token_solve(token_auction(bids=[1.0, 1.0], distributions=[p0, p1]))
    assert linear.aggregate[0] == pytest.approx(0.1)


def test_log_linear_aggregation_rejects_disjoint_supports() -> None:
    with pytest.raises(MechanismError, match="log-linear aggregate is 0 on every token"):
        token_solve(token_auction(bids=[1, 1], distributions=[[1, 0], [0, 1]], aggregation="log_linear"))


def test_a_zero_bid_has_no_say_in_the_log_linear_aggregate() -> None:
    out = token_solve(token_auction(bids=[0, 1], distributions=[[1, 0], [0.3, 0.7]], aggregation="log_linear"))
    np.testing.assert_allclose(out.aggregate, [0.3, 0.7])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"bids": [1, -1], "distributions": [[1], [1]]}, r"agents\[1\]\.bid: must be a finite number >= 0, got -1\.0"),
        ({"bids": [1, float("nan")], "distributions": [[1], [1]]}, r"agents\[1\]\.bid"),
        ({"bids": [1], "distributions": [[0.5, 0.4]]}, r"agents\[0\]\.distribution: sums to 0\.9"),
        ({"bids": [1, 1], "distributions": [[1, 0], [1]]}, r"agents\[1\]\.distribution: 1 probabilities, expected 2"),
        (
            {"bids": [1], "distributions": [[1.5, -0.5]]},
            r"agents\[0\]\.distribution\[1\]: must be a finite number >= 0",
        ),
        ({"bids": [], "distributions": []}, "at least one agent"),
        ({"bids": [1], "distributions": [[1]], "aggregation": "max"}, "aggregation: expected 'linear' or 'log_linear'"),
        ({"bids": [1, 1], "distributions": [[1], [1]], "ids": ["a", "a"]}, r"agents\[1\]\.id: 'a' appears twice"),
        ({"bids": [1e308, 1e308], "distributions": [[1], [1]]}, "overflows"),
    ],
)
def test_it_rejects_invalid_reports_naming_the_field(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(MechanismError, match=message):
        token_auction(**kwargs)  # type: ignore[arg-type]


def test_it_rejects_bad_race_variables() -> None:
    auction = token_auction(**EXAMPLE)
    with pytest.raises(MechanismError, match=r"exponentials\[1\]: must be a finite number > 0"):
        realised_payments(auction, [1.0, 0.0, 1.0])
    with pytest.raises(MechanismError, match="expected 3 per draw"):
        realised_payments(auction, [1.0, 1.0])


def test_results_are_frozen() -> None:
    out = token_solve(token_auction(**EXAMPLE))
    with pytest.raises(ValueError):
        out.expected_payment[0] = 1.0
    with pytest.raises(AttributeError):
        out.revenue = 2.0  # type: ignore[misc]
