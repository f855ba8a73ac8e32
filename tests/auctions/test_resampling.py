from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import gammaln
from scipy.stats import chi2

from auctions.mechanism import MechanismError
from auctions.resampling import importance_weights, resample

# A toy prompt with four possible answers, where pi* ∝ pi0 exp(R / lambda) is known exactly.
PI0 = np.array([0.4, 0.3, 0.2, 0.1])
REWARD = np.array([0.0, 1.0, 0.5, 2.0])
LAM = 0.5
PI_STAR = PI0 * np.exp(REWARD / LAM) / (PI0 * np.exp(REWARD / LAM)).sum()
ADAPTER = np.array([0.25, 0.25, 0.25, 0.25])  # a proposal that moved from the base, but not all the way


def total_variation(p: np.ndarray, q: np.ndarray) -> float:
    return float(0.5 * np.abs(p - q).sum())


def exact_resampled_law(k: int) -> np.ndarray:
    """The law of the returned answer for K draws from ADAPTER, by enumerating every multinomial count vector."""
    grids = np.meshgrid(*[np.arange(k + 1)] * 3, indexing="ij")
    counts = np.stack([g.ravel() for g in grids], axis=1)
    counts = counts[counts.sum(axis=1) <= k]
    counts = np.column_stack([counts, k - counts.sum(axis=1)])
    log_pmf = gammaln(k + 1) - gammaln(counts + 1).sum(axis=1) + counts @ np.log(ADAPTER)
    weight = np.exp(REWARD / LAM) * PI0 / ADAPTER
    chosen = counts * weight / (counts @ weight)[:, None]
    return np.exp(log_pmf) @ chosen


def resampled_answers(rng: np.random.Generator, k: int, trials: int) -> np.ndarray:
    """Per trial: K answers drawn from the adapter, then the one the resampler returns."""
    draws = rng.choice(4, size=(trials, k), p=ADAPTER)
    log_theta, log_base, reward = np.log(ADAPTER)[draws], np.log(PI0)[draws], REWARD[draws]
    picked = [
        resample(log_pi_theta=log_theta[t], log_pi0=log_base[t], reward=reward[t], kl_weight=LAM, rng=rng).index
        for t in range(trials)
    ]
    return draws[np.arange(trials), picked]


def test_the_resampled_law_approaches_pi_star_as_k_grows() -> None:
    ks = [1, 2, 4, 8, 16, 32, 64]
    distances = [total_variation(exact_resampled_law(k), PI_STAR) for k in ks]
    assert distances[0] == pytest.approx(total_variation(ADAPTER, PI_STAR), rel=1e-12)
    assert all(b < a for a, b in zip(distances, distances[1:], strict=False)), distances
    # The bias of self-normalised resampling is O(1/K): halving from K=32 to K=64, and small at 64.
    assert distances[-1] < 0.6 * distances[-2]
    assert distances[-1] < 0.01


@pytest.mark.parametrize("k", [1, 4, 64])
def test_seeded_trials_follow_the_exact_resampled_law(k: int) -> None:
    rng = np.random.default_rng(2024 + k)
    trials = 20_000
    counts = np.bincount(resampled_answers(rng, k, trials), minlength=4)
    expected = trials * exact_resampled_law(k)
    statistic = float(((counts - expected) ** 2 / expected).sum())
    assert chi2.sf(statistic, df=3) > 1e-3, (counts, expected)
    # Within sampling noise (a few standard errors) of the exact law, and so of pi* at K=64.
    distance = total_variation(counts / trials, PI_STAR)
    assert distance <= total_variation(exact_resampled_law(k), PI_STAR) + 0.015


def test_the_frequencies_at_k_64_are_much_closer_to_pi_star_than_the_adapter() -> None:
    rng = np.random.default_rng(7)
    trials = 5_000
    freq = np.bincount(resampled_answers(rng, 64, trials), minlength=4) / trials
    assert total_variation(freq, PI_STAR) < 0.25 * total_variation(ADAPTER, PI_STAR)


@settings(max_examples=200, deadline=None)
@given(
    data=st.data(),
    k=st.integers(1, 40),
    log_lambda=st.floats(-6.0, 6.0),
)
def test_the_weights_are_a_distribution_and_the_ess_is_between_1_and_k(
    data: st.DataObject, k: int, log_lambda: float
) -> None:
    floats = st.floats(-30.0, 0.0)
    theta = np.array(data.draw(st.lists(floats, min_size=k, max_size=k)))
    base = np.array(data.draw(st.lists(floats, min_size=k, max_size=k)))
    reward = np.array(data.draw(st.lists(st.floats(0.0, 1e3), min_size=k, max_size=k)))
    weights, ess = importance_weights(log_pi_theta=theta, log_pi0=base, reward=reward, kl_weight=10.0**log_lambda)
    assert np.all(weights >= 0) and weights.sum() == pytest.approx(1.0, abs=1e-12)
    assert 1.0 <= ess <= k
    index = resample(
        log_pi_theta=theta, log_pi0=base, reward=reward, kl_weight=10.0**log_lambda, rng=np.random.default_rng(0)
    ).index
    assert 0 <= index < k and weights[index] > 0


def test_an_adapter_equal_to_pi_star_gives_equal_weights_and_an_ess_of_k() -> None:
    answers = np.array([0, 1, 1, 3, 2, 3])
    weights, ess = importance_weights(
        log_pi_theta=np.log(PI_STAR[answers]), log_pi0=np.log(PI0[answers]), reward=REWARD[answers], kl_weight=LAM
    )
    np.testing.assert_allclose(weights, np.full(6, 1 / 6), rtol=1e-12)
    assert ess == pytest.approx(6.0, rel=1e-12)


def test_one_dominant_draw_gives_an_ess_near_1_without_overflow() -> None:
    weights, ess = importance_weights(
        log_pi_theta=[-1.0, -1.0, -1.0], log_pi0=[-1.0, -1.0, -1.0], reward=[1.0, 0.0, 0.5], kl_weight=1e-15
    )
    np.testing.assert_array_equal(weights, [1.0, 0.0, 0.0])
    assert ess == 1.0
    rng = np.random.default_rng(3)
    assert {
        resample(log_pi_theta=[-1.0] * 3, log_pi0=[-1.0] * 3, reward=[1.0, 0.0, 0.5], kl_weight=1e-15, rng=rng).index
        for _ in range(50)
    } == {0}


def test_constants_in_the_reward_or_the_log_probabilities_change_nothing() -> None:
    rng = np.random.default_rng(11)
    theta, base, reward = rng.normal(size=8), rng.normal(size=8), rng.random(8)
    reference, _ = importance_weights(log_pi_theta=theta, log_pi0=base, reward=reward, kl_weight=0.3)
    for shifted in (
        importance_weights(log_pi_theta=theta - 4.0, log_pi0=base, reward=reward, kl_weight=0.3),
        importance_weights(log_pi_theta=theta, log_pi0=base + 2.5, reward=reward, kl_weight=0.3),
        importance_weights(log_pi_theta=theta, log_pi0=base, reward=reward + 7.0, kl_weight=0.3),
    ):
        np.testing.assert_allclose(shifted[0], reference, rtol=1e-12)


def test_the_same_seed_picks_the_same_draw() -> None:
    kwargs = {"log_pi_theta": np.log(ADAPTER), "log_pi0": np.log(PI0), "reward": REWARD, "kl_weight": LAM}
    first = [resample(**kwargs, rng=np.random.default_rng(5)).index for _ in range(3)]
    assert len(set(first)) == 1


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"kl_weight": 0.0}, "kl_weight"),
        ({"reward": [0.0, 1.0]}, "one value per draw"),
        ({"log_pi_theta": [0.0, float("nan"), 0.0]}, "draw 1: log pi_theta nan"),
        ({"log_pi0": [0.0, float("inf"), 0.0]}, "draw 1: log pi0 inf"),
        ({"log_pi0": [-np.inf] * 3}, "every draw has base probability 0"),
        ({"reward": []}, "non-empty"),
        ({"reward": [1e300, 0.0, 0.0], "kl_weight": 1e-300}, "overflows"),
    ],
)
def test_it_rejects_invalid_draws_naming_what_is_wrong(change: dict, fragment: str) -> None:
    kwargs: dict = {"log_pi_theta": [-1.0, -2.0, -1.5], "log_pi0": [-1.2, -1.0, -2.0], "reward": [0.1, 0.5, 0.9]}
    kwargs["kl_weight"] = 1.0
    kwargs.update(change)
    with pytest.raises(MechanismError) as info:
        importance_weights(**kwargs)
    assert fragment in str(info.value)
