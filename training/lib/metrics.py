"""Distributions over a round's candidates, per prompt: numpy only.

Training reports fidelity at every checkpoint and evaluation reports it for the delivered adapter; both use these
functions, so they live below both (evaluation used to import the trainer and the trainer evaluation).

- ``normalise_log``: probabilities from unnormalised log-weights.
- ``implied_weights``: the adapter's own reweighting of the candidates,
  q_theta(y_k|x) proportional to q0(y_k|x) pi_theta(y_k|x) / pi0(y_k|x) (equal to q0 before training).
- ``tilted_weights``: the auction's target q*(y_k|x) proportional to q0(y_k|x) exp(R(x, y_k) / lambda).
- ``total_variation``: sum_x mu(x) * 1/2 sum_k |p(y_k|x) - q(y_k|x)|.
- ``expected``: sum_x mu(x) sum_k w(y_k|x) v(x, y_k).

Rows are anything numpy reads as a 1-d array (lists or arrays); prompts may have different numbers of candidates.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

Rows = Sequence[ArrayLike]  # one row per prompt, one entry per candidate


def logsumexp(a: NDArray[np.float64]) -> float:
    """log sum exp(a), shifted by the maximum so large log-weights do not overflow."""
    m = float(np.max(a))
    if not np.isfinite(m):
        return m
    return m + float(np.log(np.sum(np.exp(a - m))))


def normalise_log(logw: ArrayLike) -> NDArray[np.float64]:
    """Probabilities from unnormalised log-weights (softmax, in log space)."""
    a = np.asarray(logw, dtype=np.float64)
    return np.exp(a - logsumexp(a))


def implied_weights(base_logweights: Rows, logp_theta: Rows, logp_base: Rows) -> list[NDArray[np.float64]]:
    """Per prompt, q_theta(y_k|x) proportional to q0(y_k|x) * pi_theta(y_k|x) / pi0(y_k|x)."""
    return [
        normalise_log(
            np.asarray(lw, dtype=np.float64) + np.asarray(lt, dtype=np.float64) - np.asarray(lb, dtype=np.float64)
        )
        for lw, lt, lb in zip(base_logweights, logp_theta, logp_base, strict=True)
    ]


def total_variation(p: Rows, q: Rows, prompt_weights: ArrayLike | None = None) -> float:
    """Prompt-weighted total-variation distance sum_x mu(x) * 1/2 * sum_k |p_k - q_k| (mu uniform if omitted)."""
    n = len(p)
    if len(q) != n:
        raise ValueError("p and q must cover the same prompts")
    mu = np.full(n, 1.0 / n) if prompt_weights is None else np.asarray(prompt_weights, dtype=np.float64)
    mu = mu / mu.sum()
    return float(
        sum(
            m * 0.5 * np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)).sum()
            for m, a, b in zip(mu, p, q, strict=True)
        )
    )


def tilted_weights(base_logweights: Rows, aggregate_reward: Rows, kl_weight: float) -> list[NDArray[np.float64]]:
    """q*(y_k|x) proportional to q0(y_k|x) exp(R(x, y_k) / lambda): the auction's training target on the candidates.

    The auction computes q* itself; this is the same closed form, for demos, tests and the benchmark."""
    return [
        normalise_log(np.asarray(lw, dtype=np.float64) + np.asarray(r, dtype=np.float64) / kl_weight)
        for lw, r in zip(base_logweights, aggregate_reward, strict=True)
    ]


def expected(weights: Rows, values: Rows, prompt_weights: ArrayLike | None = None) -> float:
    """sum_x mu(x) sum_k weights(y_k|x) values(x, y_k)."""
    n = len(weights)
    mu = (
        np.full(n, 1.0 / n)
        if prompt_weights is None
        else np.asarray(prompt_weights, dtype=np.float64) / np.sum(prompt_weights)
    )
    return float(
        sum(
            m * np.dot(np.asarray(w, dtype=np.float64), np.asarray(v, dtype=np.float64))
            for m, w, v in zip(mu, weights, values, strict=True)
        )
    )
