from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from training.lib.metrics import expected, implied_weights, normalise_log, tilted_weights, total_variation

rows = st.lists(st.floats(-20, 20, allow_nan=False), min_size=1, max_size=8)


@given(st.lists(rows, min_size=1, max_size=5))
@settings(max_examples=50, deadline=None)
def test_implied_weights_equal_q0_before_training(logw):
    logp = [list(np.arange(len(r)) * -1.5) for r in logw]
    q = implied_weights(logw, logp, logp)
    for a, lw in zip(q, logw, strict=True):
        np.testing.assert_allclose(a, normalise_log(lw), atol=1e-12)
        assert abs(a.sum() - 1) < 1e-9


@given(st.lists(rows, min_size=1, max_size=5), st.integers(0, 2**31))
@settings(max_examples=50, deadline=None)
def test_total_variation_is_a_prompt_weighted_distance_in_0_1(logw, seed):
    p = [normalise_log(r) for r in logw]
    rng = np.random.default_rng(seed)
    q = [normalise_log(rng.normal(size=len(r)) * 3) for r in logw]
    mu = rng.random(len(p)) + 0.01
    d = total_variation(p, q, mu)
    assert 0.0 <= d <= 1.0 + 1e-12
    assert abs(d - total_variation(q, p, mu)) < 1e-12
    assert total_variation(p, p, mu) == 0.0


def test_total_variation_of_disjoint_rows_is_one():
    assert total_variation([[1.0, 0.0]], [[0.0, 1.0]]) == 1.0
    assert total_variation([[1.0, 0.0], [0.5, 0.5]], [[0.0, 1.0], [0.5, 0.5]], [3, 1]) == 0.75


def test_tilt_with_zero_reward_is_q0_and_leans_toward_reward():
    lw = [[0.0, 0.0, 0.0]]
    np.testing.assert_allclose(tilted_weights(lw, [[0.0, 0.0, 0.0]], 1.0)[0], [1 / 3] * 3)
    q = tilted_weights(lw, [[0.0, 1.0, 2.0]], 0.5)[0]
    assert q[2] > q[1] > q[0]
    np.testing.assert_allclose(q, np.exp([0.0, 2.0, 4.0]) / np.exp([0.0, 2.0, 4.0]).sum())
    # huge R / lambda does not overflow
    assert np.isfinite(tilted_weights(lw, [[0.0, 1.0, 2.0]], 1e-6)[0]).all()


def test_expected_is_prompt_weighted():
    assert expected([[0.5, 0.5], [1.0, 0.0]], [[0.0, 1.0], [1.0, 0.0]], [1, 3]) == 0.25 * 0.5 + 0.75 * 1.0
