"""Exact delivery's estimator (training.lib.delivery) on toy answer spaces where pi* is known exactly."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from training.lib.delivery import GroupReward, aggregate, aggregate_reward, exact_delivery_at, group_scores
from training.lib.rewards import AffineNormaliser, RubricRewardModel


def _toy(seed: int, m: int, groups: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
    """A discrete answer space of m answers: pi0, an adapter pi_theta, (G, m) normalised scores, bids, lambda."""
    rng = np.random.default_rng(seed)
    pi0 = rng.dirichlet(np.ones(m))
    theta = rng.dirichlet(np.ones(m))
    scores = rng.random((groups, m))
    bids = rng.uniform(0.2, 3.0, groups)
    return pi0, theta, scores, bids, float(rng.uniform(0.5, 4.0))


def _pi_star(pi0: np.ndarray, scores: np.ndarray, bids: np.ndarray, lam: float) -> np.ndarray:
    p = pi0 * np.exp(aggregate(bids, scores) / lam)
    return p / p.sum()


def _exact_expectation_at_k(pi0, theta, scores, bids, lam, k: int) -> np.ndarray:
    """E over K i.i.d. adapter draws of Σ_j w_j r_j, by enumerating every K-tuple of answers."""
    reward = aggregate(bids, scores)
    out = np.zeros(scores.shape[0])
    for tup in itertools.product(range(len(pi0)), repeat=k):
        idx = np.array(tup)
        prob = float(np.prod(theta[idx]))
        w = np.exp(reward[idx] / lam) * pi0[idx] / theta[idx]
        out += prob * (scores[:, idx] @ (w / w.sum()))
    return out


def _draws(theta: np.ndarray, n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).choice(len(theta), size=n, p=theta)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), m=st.integers(2, 4))
def test_it_is_unbiased_for_exact_delivery_at_k(seed: int, m: int) -> None:
    pi0, theta, scores, bids, lam = _toy(seed, m)
    k, n = 3, 30_000
    idx = _draws(theta, n, seed + 1)
    est = exact_delivery_at(
        k=k, log_pi_theta=np.log(theta[idx]), log_pi0=np.log(pi0[idx]), scores=scores[:, idx], bids=bids, kl_weight=lam
    )
    truth = _exact_expectation_at_k(pi0, theta, scores, bids, lam, k)
    assert est.subsets == n // k
    # Each subset's value is in [0, 1], so the standard error over 10 000 subsets is below 0.005.
    np.testing.assert_allclose(est.rewards, truth, atol=0.03)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), m=st.integers(2, 6))
def test_it_converges_to_the_reward_under_pi_star_as_k_grows(seed: int, m: int) -> None:
    pi0, theta, scores, bids, lam = _toy(seed, m)
    theta = 0.5 * theta + 0.5 / m  # bounded weights, so K = 4096 is far into the asymptotic regime
    star = _pi_star(pi0, scores, bids, lam)
    n = 4096 * 4
    idx = _draws(theta, n, seed + 2)
    args = dict(log_pi_theta=np.log(theta[idx]), log_pi0=np.log(pi0[idx]), scores=scores[:, idx], bids=bids, kl_weight=lam)
    far = exact_delivery_at(k=4096, **args)
    np.testing.assert_allclose(far.rewards, scores @ star, atol=0.02)
    adapter = exact_delivery_at(k=1, **args)
    np.testing.assert_allclose(adapter.rewards, scores @ theta, atol=0.03)
    assert adapter.ess == 1.0
    assert 1.0 <= far.ess <= 4096


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), m=st.integers(2, 6), k=st.sampled_from([1, 2, 4, 16]))
def test_an_adapter_equal_to_pi_star_needs_no_reweighting(seed: int, m: int, k: int) -> None:
    pi0, _, scores, bids, lam = _toy(seed, m)
    star = _pi_star(pi0, scores, bids, lam)
    idx = _draws(star, 64, seed + 3)
    est = exact_delivery_at(
        k=k, log_pi_theta=np.log(star[idx]), log_pi0=np.log(pi0[idx]), scores=scores[:, idx], bids=bids, kl_weight=lam
    )
    # Every weight is the same, so the estimate is the plain mean of the draws and the ESS is K.
    np.testing.assert_allclose(est.rewards, scores[:, idx].mean(1), atol=1e-9)
    assert est.ess == pytest.approx(k)


def test_a_remainder_of_draws_is_left_out() -> None:
    est = exact_delivery_at(
        k=4, log_pi_theta=np.zeros(10), log_pi0=np.zeros(10), scores=np.arange(10.0)[None, :] / 10, bids=[1.0],
        kl_weight=1.0,
    )
    assert est.subsets == 2
    # the draws score 0.0 .. 0.9: subsets (0..3) and (4..7) with weights ∝ exp(r), draws 8 and 9 unused
    w = np.exp(np.arange(8.0) / 10)
    expected = (np.dot(w[:4], np.arange(4) / 10) / w[:4].sum() + np.dot(w[4:], np.arange(4, 8) / 10) / w[4:].sum()) / 2
    assert est.rewards[0] == pytest.approx(expected)


@pytest.mark.parametrize("k", [0, 11])
def test_it_refuses_k_outside_the_draws(k: int) -> None:
    with pytest.raises(ValueError, match="k must be"):
        exact_delivery_at(k=k, log_pi_theta=np.zeros(10), log_pi0=np.zeros(10), scores=np.zeros((1, 10)), bids=[1.0],
                          kl_weight=1.0)


def test_the_aggregate_reward_is_the_bid_weighted_sum_of_normalised_scores() -> None:
    good = RubricRewardModel({"good": 1.0})
    groups = [
        GroupReward(bid=2.0, model=good, normaliser=AffineNormaliser(lo=0.0, hi=2.0)),
        GroupReward(bid=1.0, model=good, normaliser=AffineNormaliser(lo=5.0, hi=5.0)),  # constant: always 0
    ]
    texts = [" good ", "bad"]
    scores = group_scores(groups, "p", texts)
    assert scores.shape == (2, 2) and np.all(scores[1] == 0)
    np.testing.assert_allclose(aggregate_reward(groups, "p", texts), 2.0 * scores[0])
