from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from scipy import integrate

from auctions.ads.summary import (
    SummaryAuction,
    own_bid_curve,
    simulate_payments,
    summary_auction,
    summary_draw,
    summary_solve,
    welfare_by_word_budget,
    word_lengths,
)
from auctions.ads.validation import with_bid
from auctions.mechanism import MechanismError

PROPS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])

FOUR = summary_auction(ids=["a", "b", "c", "d"], bids=[3, 2, 2.5, 1], ctrs=[0.1, 0.3, 0.2, 0.25], beta=0.5, slots=3)


@st.composite
def auctions(draw: st.DrawFn, *, min_ads: int = 1) -> SummaryAuction:
    n = draw(st.integers(min_ads, 5))
    return summary_auction(
        bids=draw(st.lists(st.one_of(st.just(0.0), st.floats(0.01, 50.0)), min_size=n, max_size=n)),
        ctrs=draw(st.lists(st.one_of(st.just(0.0), st.floats(0.01, 1.0)), min_size=n, max_size=n)),
        beta=draw(st.one_of(st.just(0.0), st.floats(0.0, 0.9))),
        slots=draw(st.integers(1, 4)),
        decay=draw(st.floats(0.3, 1.0)),
    )


def utility(auction: SummaryAuction, i: int, value: float, bid: float) -> float:
    out = summary_solve(with_bid(auction, i, bid))
    return (value - float(out.cost_per_click[i])) * float(out.effective_ctr[i])


def test_it_ranks_shows_and_shares_by_the_gpa_formula() -> None:
    out = summary_solve(FOUR)
    e = np.array([0.3, 0.6, 0.5, 0.25])
    np.testing.assert_array_equal(out.rank, [3, 1, 2, 0])  # d is fourth: not shown with 3 slots
    np.testing.assert_allclose(out.position_weight, [0.81, 1.0, 0.9, 0.0])
    score = (e[:3] * np.array([0.81, 1.0, 0.9])) ** 2.0  # alpha = 1 / (1 - 0.5)
    np.testing.assert_allclose(out.prominence[:3], score / score.sum(), rtol=1e-14)
    assert out.prominence[3] == 0
    np.testing.assert_allclose(
        out.effective_ctr, np.array([0.1, 0.3, 0.2, 0.25]) * out.position_weight * out.prominence**0.5, rtol=1e-14
    )


def test_the_payment_is_myersons_integral_over_the_own_bid() -> None:
    out = summary_solve(FOUR)
    e = FOUR.bids * FOUR.ctrs
    for i in range(4):
        # Independent of the piecewise integrator: quadrature of the layout itself, told where the ranking changes.
        b = float(FOUR.bids[i])
        kinks = [float(x) for x in np.delete(e, i) / FOUR.ctrs[i] if 0 < x < b]
        area = integrate.quad(
            lambda z, i=i: float(own_bid_curve(FOUR, i, [z])[0]), 0.0, b, points=kinks or None, limit=200
        )[0]
        assert out.expected_payment[i] == pytest.approx(b * out.effective_ctr[i] - area, rel=1e-8, abs=1e-12)
    np.testing.assert_allclose(out.cost_per_click[:3], out.expected_payment[:3] / out.effective_ctr[:3])
    assert out.cost_per_click[3] == 0


def test_with_beta_zero_words_do_not_matter_and_prices_are_position_auction_prices() -> None:
    auction = summary_auction(bids=[4, 3, 2], ctrs=[0.5, 0.5, 0.5], beta=0.0, slots=2, decay=0.5)
    out = summary_solve(auction)
    np.testing.assert_allclose(out.effective_ctr, [0.5, 0.25, 0.0])
    # Myerson in a position auction: the top ad pays for the CTR it gains over each rank it beats.
    np.testing.assert_allclose(out.expected_payment, [3 * (0.5 - 0.25) + 2 * 0.25, 2 * 0.25, 0.0], rtol=1e-12)


@PROPS
@given(auctions(min_ads=2), st.data())
def test_the_effective_ctr_is_monotone_in_the_own_bid(auction: SummaryAuction, data: st.DataObject) -> None:
    i = data.draw(st.integers(0, auction.n_ads - 1))
    low, high = sorted(data.draw(st.lists(st.floats(0.0, 100.0), min_size=2, max_size=2)))
    a = summary_solve(with_bid(auction, i, low), payments=False).effective_ctr[i]
    b = summary_solve(with_bid(auction, i, high), payments=False).effective_ctr[i]
    assert b >= a * (1 - 1e-12)


@PROPS
@given(auctions())
def test_payments_lie_between_zero_and_bid_times_clicks(auction: SummaryAuction) -> None:
    out = summary_solve(auction)
    assert np.all(out.expected_payment >= 0)
    assert np.all(out.expected_payment <= auction.bids * out.effective_ctr * (1 + 1e-12))
    assert np.all(out.cost_per_click <= auction.bids)
    shown = out.rank > 0
    assert shown.sum() <= auction.slots
    if shown.any():
        assert out.prominence.sum() == pytest.approx(1.0)


@SLOW
@given(auctions(min_ads=2), st.data())
def test_no_bid_on_a_grid_beats_bidding_the_value(auction: SummaryAuction, data: st.DataObject) -> None:
    i = data.draw(st.integers(0, auction.n_ads - 1))
    value = data.draw(st.floats(0.01, 50.0))
    truthful = utility(auction, i, value, value)
    for bid in np.linspace(0.0, 3.0 * value, 21):
        assert utility(auction, i, value, float(bid)) <= truthful + 1e-8 * (1 + value)


@PROPS
@given(auctions(), st.floats(1e-3, 1e3), st.floats(0.01, 1.0))
def test_scaling_bids_or_ctrs_scales_clicks_and_payments_and_keeps_the_shares(
    auction: SummaryAuction, c: float, r: float
) -> None:
    # Two ads whose bid x CTR are equal (0.625 x 0.75 and 0.75 x 0.625) are tied: scaled, the two products round
    # differently and either order is GPA's ranking. The property is about rankings that are not ties.
    scores = np.sort((auction.bids * auction.ctrs)[auction.bids * auction.ctrs > 0])
    assume(np.all(np.diff(scores) > 1e-9 * scores[1:]))
    base = summary_solve(auction)
    bids = summary_solve(
        summary_auction(
            bids=auction.bids * c, ctrs=auction.ctrs, beta=auction.beta, slots=auction.slots, decay=auction.decay
        )
    )
    ctrs = summary_solve(
        summary_auction(
            bids=auction.bids, ctrs=auction.ctrs * r, beta=auction.beta, slots=auction.slots, decay=auction.decay
        )
    )
    for other, pay_factor, ctr_factor in ((bids, c, 1.0), (ctrs, r, r)):
        np.testing.assert_array_equal(other.rank, base.rank)
        np.testing.assert_allclose(other.prominence, base.prominence, rtol=1e-9, atol=1e-15)
        np.testing.assert_allclose(other.effective_ctr, ctr_factor * base.effective_ctr, rtol=1e-9, atol=1e-300)
        np.testing.assert_allclose(other.expected_payment, pay_factor * base.expected_payment, rtol=1e-7, atol=1e-12)


@PROPS
@given(auctions(min_ads=2), st.integers(0, 2**31))
def test_gpa_shares_maximise_reported_welfare_for_their_ranking(auction: SummaryAuction, seed: int) -> None:
    out = summary_solve(auction, payments=False)
    shown = out.rank > 0
    if not shown.any():
        return
    base = (auction.bids * auction.ctrs * out.position_weight)[shown]
    best = float(base @ out.prominence[shown] ** auction.beta)
    rng = np.random.default_rng(seed)
    for share in rng.dirichlet(np.ones(int(shown.sum())), size=50):
        assert float(base @ share**auction.beta) <= best * (1 + 1e-12)


@SLOW
@given(auctions(min_ads=2), st.integers(0, 2**31))
def test_realised_click_payments_average_to_the_expected_ones(auction: SummaryAuction, seed: int) -> None:
    runs = 20000
    clicks, pay = simulate_payments(auction, rng=np.random.default_rng(seed), runs=runs)
    out = summary_solve(auction)
    assert np.all(pay[~clicks] == 0) and np.all(pay <= auction.bids[None, :])
    # The standard error from the model, not the sample: an ad clicked almost surely may show no variation at all.
    x = out.effective_ctr
    se = out.cost_per_click * np.sqrt(x * (1 - x) / runs)
    assert np.all(np.abs(pay.mean(axis=0) - out.expected_payment) <= 5 * se + 1e-9 * out.expected_payment)


def test_a_draw_charges_the_cost_per_click_to_clicked_ads_only() -> None:
    out = summary_solve(FOUR)
    d = summary_draw(FOUR, uniforms=[0.0, 0.99, 0.05, 0.0])
    np.testing.assert_array_equal(d.clicks, [True, False, True, False])  # d is not shown: it cannot be clicked
    np.testing.assert_allclose(d.payment, [out.cost_per_click[0], 0, out.cost_per_click[2], 0])


@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=8), st.integers(0, 500))
@settings(max_examples=200, deadline=None)
def test_word_lengths_are_whole_numbers_summing_to_the_budget(prom: list[float], budget: int) -> None:
    words = word_lengths(prom, budget)
    p = np.array(prom)
    if p.sum() == 0:
        assert np.all(words == 0)
        return
    assert words.sum() == budget and np.all(words >= 0)
    assert np.all(np.abs(words - p / p.sum() * budget) < 1.0 + 1e-9)
    assert np.all(words[p == 0] == 0)


def test_word_lengths_follow_prominence() -> None:
    out = summary_solve(FOUR)
    np.testing.assert_array_equal(word_lengths(out.prominence, 50), [5, 29, 16, 0])
    np.testing.assert_array_equal(word_lengths([0.5, 0.5], 3), [2, 1])


def test_gpa_beats_greedy_and_equal_shares_once_the_budget_allows() -> None:
    cmp = welfare_by_word_budget(FOUR, [1, 2, 5, 20, 100, 1000])
    assert cmp.gpa[-1] == pytest.approx(cmp.optimum, rel=1e-4)
    assert np.all(cmp.gpa[3:] >= cmp.greedy[3:]) and np.all(cmp.gpa[3:] >= cmp.equal_share[3:])
    assert np.all(cmp.greedy == cmp.greedy[0])  # one ad with every word: the budget is irrelevant
    assert cmp.gpa[0] == cmp.greedy[0]  # one word goes to the top ad either way
    assert np.all(np.maximum(cmp.gpa, np.maximum(cmp.greedy, cmp.equal_share)) <= cmp.optimum * (1 + 1e-12))


def test_zero_bids_and_zero_ctrs_are_never_shown() -> None:
    out = summary_solve(summary_auction(bids=[0, 1, 2], ctrs=[0.5, 0, 0.1], beta=0.3, slots=3))
    np.testing.assert_array_equal(out.rank, [0, 0, 1])
    np.testing.assert_allclose(out.prominence, [0, 0, 1])
    assert out.expected_payment[2] == 0  # alone: no competition, no price


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"bids": [1, -1], "ctrs": [0.1, 0.1]}, r"ads\[1\]\.bid: must be a finite number >= 0, got -1\.0"),
        ({"bids": [1], "ctrs": [1.5]}, r"ads\[0\]\.ctr: must be a finite number in \[0, 1\], got 1\.5"),
        ({"bids": [1], "ctrs": [0.1], "beta": 1.0}, r"beta: must be a number in \[0, 1\)"),
        ({"bids": [1], "ctrs": [0.1], "slots": 0}, "slots: must be an integer >= 1"),
        ({"bids": [1], "ctrs": [0.1], "slots": 1.5}, "slots: must be an integer >= 1"),
        ({"bids": [1], "ctrs": [0.1], "decay": 0.0}, r"decay: must be a number in \(0, 1\]"),
        ({"bids": [1, 2], "ctrs": [0.1]}, r"ads\[\]\.ctr: expected 2 numbers"),
        ({"bids": [], "ctrs": []}, "at least one ad"),
    ],
)
def test_it_rejects_invalid_reports_naming_the_field(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"beta": 0.5, "slots": 2, **kwargs}
    with pytest.raises(MechanismError, match=message):
        summary_auction(**args)  # type: ignore[arg-type]
