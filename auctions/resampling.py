"""Exact delivery at serving time: self-normalised importance resampling from the adapter toward pi*.

Pure numpy (no Django). Given K answers drawn from the adapter pi_θ for one prompt, with their log-probabilities
under the adapter and under the base model and their aggregate reward R(x, y) = Σ_i w_i r_i(x, y) (money, like
lambda), return one answer with probability proportional to

    w_k ∝ exp(R(x, y_k) / λ) · π0(y_k|x) / π_θ(y_k|x)

(the allocation of Soumalias et al.'s MOSAIC, with the adapter as the proposal). pi*(y|x) ∝ π0(y|x) exp(R/λ), so
the returned answer's law converges to pi* as K grows, whatever the adapter, provided it gives every answer pi*
can produce a positive probability. The effective sample size (Σw)² / Σw² in [1, K] says how many of the K draws
the resampling effectively used; a small one means the adapter is far from pi* on this prompt.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from auctions.mechanism import MechanismError

__all__ = ["Resample", "importance_weights", "resample"]


@dataclass(frozen=True, eq=False)
class Resample:
    index: int  # the chosen draw, in 0..K-1
    weights: np.ndarray  # (K,) normalised importance weights, summing to 1
    ess: float  # (Σw)² / Σw², in [1, K]


def _vector(values: Sequence[float] | np.ndarray, what: str) -> np.ndarray:
    try:
        arr = np.array(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise MechanismError(f"{what}: expected numbers") from None
    if arr.ndim != 1 or arr.size == 0:
        raise MechanismError(f"{what}: expected a non-empty vector, got shape {arr.shape}")
    return arr


def importance_weights(
    *,
    log_pi_theta: Sequence[float] | np.ndarray,
    log_pi0: Sequence[float] | np.ndarray,
    reward: Sequence[float] | np.ndarray,
    kl_weight: float,
) -> tuple[np.ndarray, float]:
    """Normalised weights w_k ∝ exp(R_k / λ) π0/π_θ, formed in log space, and their effective sample size.

    ``log_pi0`` may be -inf (an answer the base model never gives gets weight 0); every other input must be
    finite, and at least one weight positive.
    """
    lam = float(kl_weight)
    if not np.isfinite(lam) or lam <= 0:
        raise MechanismError(f"kl_weight: {kl_weight!r} must be a finite number > 0")
    theta = _vector(log_pi_theta, "log pi_theta")
    base = _vector(log_pi0, "log pi0")
    rew = _vector(reward, "reward")
    if not theta.shape == base.shape == rew.shape:
        raise MechanismError(
            f"draws: log pi_theta, log pi0 and reward must have one value per draw, got {theta.size}, {base.size}, "
            f"{rew.size}"
        )
    for arr, what in ((theta, "log pi_theta"), (rew, "reward")):
        bad = np.flatnonzero(~np.isfinite(arr))
        if bad.size:
            raise MechanismError(f"draw {bad[0]}: {what} {float(arr[bad[0]])!r} must be finite")
    bad = np.flatnonzero(np.isnan(base) | (base == np.inf))
    if bad.size:
        raise MechanismError(f"draw {bad[0]}: log pi0 {float(base[bad[0]])!r} must be finite or -inf")
    with np.errstate(over="ignore"):
        log_w = rew / lam + (base - theta)
    if np.any(np.isnan(log_w)) or np.any(log_w == np.inf):
        raise MechanismError("draws: reward / kl_weight overflows; use a larger kl_weight")
    top = float(log_w.max())
    if not np.isfinite(top):
        raise MechanismError("draws: every draw has base probability 0, so none can be returned")
    weights = np.exp(log_w - top)
    weights /= weights.sum()
    # The largest weight is >= 1/K, so Σw² >= 1/K² and the ratio is bounded; clip the last-ulp excursions.
    ess = float(np.clip(1.0 / float(weights @ weights), 1.0, float(weights.size)))
    return weights, ess


def resample(
    *,
    log_pi_theta: Sequence[float] | np.ndarray,
    log_pi0: Sequence[float] | np.ndarray,
    reward: Sequence[float] | np.ndarray,
    kl_weight: float,
    rng: np.random.Generator,
) -> Resample:
    """Choose one of K draws from the adapter with probability w_k (see :func:`importance_weights`)."""
    weights, ess = importance_weights(log_pi_theta=log_pi_theta, log_pi0=log_pi0, reward=reward, kl_weight=kl_weight)
    # Inverse CDF on one uniform: draw k is chosen for u in [cdf[k-1], cdf[k]), so a zero weight never is (the
    # clamp covers u * cdf[-1] rounding up to cdf[-1]).
    cdf = np.cumsum(weights)
    index = int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"))
    index = min(index, int(np.flatnonzero(weights)[-1]))
    weights.setflags(write=False)
    return Resample(index=index, weights=weights, ess=ess)
