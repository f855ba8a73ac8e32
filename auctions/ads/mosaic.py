"""MOSAIC per query: advertisers' reward functions steer which of M candidate answers the user sees.

After Soumalias, Curry, Seuken, "Truthful Aggregation of LLMs with an Application to Online Advertising"
(NeurIPS 2025). For one query, a generator that sees no report proposes M candidates y_1..y_M with
log-probabilities log π_gen(y_k); the reference model scores them log π_ref(y_k). Advertiser i reports a reward
r_i(y_k) in [0, 1] and a bid b_i (money per unit of reward). The allocation is the KL-regularised optimum on the
sample,

    π̂(y_k) ∝ (π_ref(y_k) / π_gen(y_k)) · exp(Σ_i b_i r_i(y_k) / τ),

and advertiser i pays the welfare its report costs the others, offset by the welfare they would get without it
(a Rochet / VCG payment for this affine maximiser): τ KL(π̂ || π̂_-i) on the sample.

That is exactly the fine-tuning auction of ``auctions.mechanism`` on ONE prompt: base log-weights
log π_ref - log π_gen, groups = advertisers, kl_weight = τ. This module only builds that instance and calls
:func:`auctions.mechanism.solve`, so every guarantee proven and tested there (truthful in rewards and bids,
individually rational, 0 <= payment <= b_i E_π̂[r_i], no payment for a constant reward) holds here as is, and
``python -m auctions solve`` on a one-prompt instance is MOSAIC for one query. Rewards must already be on the
[0, 1] scale: map raw scores with :func:`auctions.mechanism.normalise_scores`, a fixed function of each report,
which keeps truthfulness. Because the candidates are fixed before any report, payments do not depend on which
candidate is finally shown: :func:`mosaic_draw` samples the answer, the bill is the expected payment.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from auctions.ads.validation import default_ids, readonly
from auctions.mechanism import Instance, MechanismError, Outcome, make_instance, solve

__all__ = ["MosaicDraw", "MosaicResult", "mosaic_draw", "mosaic_instance", "mosaic_solve"]


def _log_probs(values: Any, name: str, m: int | None) -> np.ndarray:
    try:
        arr = np.array(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise MechanismError(f"{name}: expected one log-probability per candidate") from None
    if arr.ndim != 1 or arr.shape[0] == 0:
        raise MechanismError(f"{name}: expected a non-empty list of log-probabilities, one per candidate")
    if m is not None and arr.shape[0] != m:
        raise MechanismError(f"{name}: {arr.shape[0]} log-probabilities for {m} candidates")
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        raise MechanismError(f"{name}[{bad[0]}]: must be a finite number, got {float(arr[bad[0]])!r}")
    return arr


def mosaic_instance(
    *,
    bids: Sequence[float] | np.ndarray,
    rewards: Sequence[Sequence[float]] | np.ndarray,
    log_ref: Sequence[float] | np.ndarray,
    log_gen: Sequence[float] | np.ndarray | None = None,
    tau: float,
    ids: Sequence[str] | None = None,
) -> Instance:
    """The one-prompt :class:`~auctions.mechanism.Instance` of a MOSAIC query.

    ``rewards`` is (advertisers, candidates), in [0, 1]; ``log_gen`` defaults to ``log_ref`` (candidates sampled
    from the reference model itself, so the base weights are uniform: using log π_ref alone would count the
    reference model twice).
    """
    ref = _log_probs(log_ref, "log_ref", None)
    gen = ref if log_gen is None else _log_probs(log_gen, "log_gen", ref.shape[0])
    n = len(bids)
    return make_instance(
        kl_weight=tau,
        group_ids=tuple(ids) if ids is not None else default_ids("adv", n),
        bids=bids,
        base_logweights=[ref - gen],
        rewards=[rewards] if n else [np.zeros((0, ref.shape[0]))],
    )


@dataclass(frozen=True, eq=False)
class MosaicResult:
    """The solved query: the instance, the mechanism's outcome, and views on its one prompt."""

    instance: Instance
    outcome: Outcome

    @property
    def policy(self) -> np.ndarray:
        """π̂ over the M candidates."""
        return self.outcome.policy[0]

    @property
    def payment(self) -> np.ndarray:
        return self.outcome.payment

    @property
    def expected_reward(self) -> np.ndarray:
        return self.outcome.expected_reward


def mosaic_solve(
    *,
    bids: Sequence[float] | np.ndarray,
    rewards: Sequence[Sequence[float]] | np.ndarray,
    log_ref: Sequence[float] | np.ndarray,
    log_gen: Sequence[float] | np.ndarray | None = None,
    tau: float,
    ids: Sequence[str] | None = None,
) -> MosaicResult:
    """Build the one-prompt instance and solve it with :func:`auctions.mechanism.solve`."""
    instance = mosaic_instance(bids=bids, rewards=rewards, log_ref=log_ref, log_gen=log_gen, tau=tau, ids=ids)
    return MosaicResult(instance=instance, outcome=solve(instance))


@dataclass(frozen=True, eq=False)
class MosaicDraw:
    """The candidate shown to the user and the payments (the expected ones: they do not depend on the draw)."""

    candidate: int
    payment: np.ndarray


def mosaic_draw(result: MosaicResult, *, rng: np.random.Generator) -> MosaicDraw:
    """Sample the answer from π̂."""
    q = result.policy
    return MosaicDraw(candidate=int(rng.choice(q.shape[0], p=q / q.sum())), payment=readonly(result.payment.copy()))
