"""Exact delivery's math, written once: the aggregate reward R and what resampling toward pi* delivers at K.

pi*(y|x) ∝ pi0(y|x) exp(R(x, y) / λ), R = Σ_i bid_i · r̂_i(x, y), with r̂_i group i's reward model normalised by the
affine map the auction used (``rewards.AffineNormaliser``). The engine (``inference.exact``) and the evaluation
(``training.lib.evaluation``) both build R here, and both weigh K draws of the adapter with
``auctions.resampling.importance_weights`` (w_k ∝ exp(R_k/λ) · pi0/pi_theta).

What exact delivery at K delivers to a group, measured without resampling noise (``exact_delivery_at``):

1. Draw N answers of the adapter for a prompt once, with their log-probabilities under the adapter and the base and
   every group's normalised reward.
2. Cut the N draws into N // K disjoint K-subsets (in draw order; the draws are i.i.d., so any fixed cut is fair).
3. On each subset the resampled answer is draw j with probability w_j, so its expected reward for group g given the
   draws is Σ_j w_j r_gj, exactly: no resampling is needed to measure it.
4. The mean over the subsets is an unbiased estimate of exact delivery's expected reward at K (each subset is an
   independent K-draw); the subsets' mean effective sample size (Σw)²/Σw² is reported beside it.

Numpy only (no torch, no Django).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from auctions.resampling import importance_weights
from training.lib.rewards import AffineNormaliser, RewardModel

__all__ = ["ExactAtK", "GroupReward", "aggregate", "aggregate_reward", "exact_delivery_at", "group_scores"]


@dataclass(frozen=True)
class GroupReward:
    """A bidding group as exact delivery sees it: its bid (currency, like λ), reward model and the auction's normaliser."""

    bid: float
    model: RewardModel
    normaliser: AffineNormaliser


def group_scores(groups: Sequence[GroupReward], prompt: str, texts: Sequence[str]) -> np.ndarray:
    """(G, n): each group's normalised reward of each text (whitespace-stripped, as the round's candidates were)."""
    responses = [t.strip() for t in texts]
    prompts = [prompt] * len(responses)
    out = np.zeros((len(groups), len(responses)), dtype=np.float64)
    for i, g in enumerate(groups):
        out[i] = g.normaliser.apply(g.model.score(prompts, responses))
    return out


def aggregate(bids: Sequence[float] | np.ndarray, scores: np.ndarray) -> np.ndarray:
    """R = Σ_i bid_i · r̂_i, from (G, n) normalised scores."""
    b = np.asarray(bids, dtype=np.float64)
    s = np.asarray(scores, dtype=np.float64).reshape(len(b), -1)
    return b @ s


def aggregate_reward(groups: Sequence[GroupReward], prompt: str, texts: Sequence[str]) -> np.ndarray:
    """R = Σ_i bid_i · normalised r_i for each text."""
    return aggregate([g.bid for g in groups], group_scores(groups, prompt, texts))


@dataclass(frozen=True)
class ExactAtK:
    k: int
    rewards: np.ndarray  # (G,) expected normalised reward of the resampled answer, per group
    ess: float  # mean over the K-subsets of (Σw)²/Σw², in [1, K]
    subsets: int  # how many disjoint K-subsets the N draws made


def exact_delivery_at(
    *,
    k: int,
    log_pi_theta: Sequence[float] | np.ndarray,
    log_pi0: Sequence[float] | np.ndarray,
    scores: np.ndarray,
    bids: Sequence[float] | np.ndarray,
    kl_weight: float,
) -> ExactAtK:
    """Steps 2-4 of the module docstring for one prompt's N draws; ``scores`` is (G, N) normalised rewards.

    K = 1 is the adapter alone (every weight is 1). N must be at least K; a remainder of N mod K draws is unused.
    """
    theta = np.asarray(log_pi_theta, dtype=np.float64)
    base = np.asarray(log_pi0, dtype=np.float64)
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 2 or s.shape[1] != theta.size or base.size != theta.size:
        raise ValueError(f"scores must be (groups, draws) with one column per draw; got {s.shape} for {theta.size} draws")
    if k < 1 or k > theta.size:
        raise ValueError(f"k must be in 1..{theta.size} (the number of draws), got {k}")
    reward = aggregate(bids, s)
    subsets = theta.size // k
    total = np.zeros(s.shape[0], dtype=np.float64)
    ess = 0.0
    for j in range(subsets):
        sl = slice(j * k, (j + 1) * k)
        w, e = importance_weights(log_pi_theta=theta[sl], log_pi0=base[sl], reward=reward[sl], kl_weight=kl_weight)
        total += s[:, sl] @ w
        ess += e
    return ExactAtK(k=k, rewards=total / subsets, ess=ess / subsets, subsets=subsets)
