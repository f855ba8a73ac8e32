"""Exact delivery: choose one of K drafts from the adapter so that the answer follows the auction's target.

pi*(y|x) ∝ pi0(y|x) exp(R(x, y) / lambda), R = Σ_i bid_i · r̂_i(x, y), with r̂_i group i's stored reward model
normalised by its stored ``AffineNormaliser`` (the same map the auction used on the round's candidates). The server

1. draws K drafts from the adapter (K slots of the batcher, each with its own generator),
2. scores each draft's token path under the base model (peft's ``"__base__"`` rows) in one forward pass,
3. scores each draft's text with every group's reward model and aggregates R (``training.lib.delivery``, the same
   code the evaluation measures exact delivery with),
4. resamples one draft with ``auctions.resampling.resample``: weights ∝ exp(R/λ) · pi0 / q, where q is the law the
   drafts were actually drawn from (the adapter at the request's temperature and top-p; at temperature 1 and
   top-p 1, q = pi_theta), so the weights are correct importance weights whatever the sampling parameters.

Reward models run on a thread of their own (the Bradley-Terry ones embed with MiniLM), never on the model's
worker thread or the event loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from auctions.mechanism import MechanismError
from auctions.resampling import resample
from inference.protocol import ExactSpec, ProtocolError
from training.lib.delivery import GroupReward, aggregate_reward
from training.lib.rewards import AffineNormaliser, reward_model_from_dict

__all__ = ["Choice", "GroupReward", "aggregate_reward", "choose", "exact_body", "group_rewards"]


@dataclass(frozen=True)
class Choice:
    index: int
    weights: list[float]
    ess: float
    rewards: list[float]


def group_rewards(spec: ExactSpec) -> list[GroupReward]:
    """The request's groups as reward models; a reward model that cannot be built is a 400 naming it."""
    out = []
    for i, g in enumerate(spec.groups):
        try:
            model = reward_model_from_dict(g.reward_model)
        except (KeyError, TypeError, ValueError) as exc:
            raise ProtocolError(
                f"exact_delivery.groups[{i}].reward_model: {exc}",
                param=f"exact_delivery.groups[{i}].reward_model",
                code="invalid_value",
            ) from None
        out.append(GroupReward(bid=g.bid, model=model, normaliser=AffineNormaliser(lo=g.lo, hi=g.hi)))
    return out


def choose(
    *,
    log_q: Sequence[float],
    log_pi0: Sequence[float],
    reward: Sequence[float] | np.ndarray,
    kl_weight: float,
    rng: np.random.Generator,
) -> Choice:
    try:
        r = resample(log_pi_theta=log_q, log_pi0=log_pi0, reward=reward, kl_weight=kl_weight, rng=rng)
    except MechanismError as exc:
        raise ProtocolError(f"exact_delivery: {exc}", param="exact_delivery", code="invalid_value") from None
    return Choice(
        index=r.index,
        weights=[float(w) for w in r.weights],
        ess=float(r.ess),
        rewards=[float(x) for x in np.asarray(reward, dtype=np.float64)],
    )


def exact_body(choice: Choice, k: int) -> dict[str, Any]:
    return {"k": k, "ess": choice.ess, "weights": choice.weights, "index": choice.index, "rewards": choice.rewards}
