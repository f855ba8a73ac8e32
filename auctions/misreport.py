"""Misreport families for the truthfulness lab and the property tests.

Each returns a new :class:`Instance` in which one group reports something other than the truth; the others'
reports are unchanged. Rewards are clipped into [0, 1] so the report stays valid.

- bid scaled by alpha (truthful: alpha = 1);
- rewards exaggerated away from the group's mean by epsilon, r' = c + (1 + epsilon)(r - c) with c the group's
  mean reward on the prompt under the base weights (truthful: epsilon = 0; epsilon < 0 shrinks toward c);
- rewards mixed with another group's, r' = (1 - beta) r + beta r_j (truthful: beta = 0; beta < 0 pushes away
  from group j).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from auctions.mechanism import Instance

FAMILIES = ("bid_scale", "exaggeration", "mixing")
TRUTHFUL = {"bid_scale": 1.0, "exaggeration": 0.0, "mixing": 0.0}


def with_report(
    instance: Instance,
    group: int,
    *,
    bid: float | None = None,
    rewards: Sequence[np.ndarray] | None = None,
) -> Instance:
    """The instance with group ``group``'s bid and/or per-prompt rewards replaced."""
    bids = instance.bids.copy()
    if bid is not None:
        bids[group] = bid
    mats = instance.rewards
    if rewards is not None:
        mats = tuple(
            _replace_row(m, group, np.asarray(r, dtype=np.float64)) for m, r in zip(mats, rewards, strict=True)
        )
    return Instance(
        kl_weight=instance.kl_weight,
        group_ids=instance.group_ids,
        bids=bids,
        prompt_weights=instance.prompt_weights,
        base_logweights=instance.base_logweights,
        rewards=mats,
    )


def _replace_row(matrix: np.ndarray, row: int, values: np.ndarray) -> np.ndarray:
    out = np.array(matrix, dtype=np.float64)
    out[row] = values
    return out


def truthful_rewards(instance: Instance, group: int) -> list[np.ndarray]:
    return [np.array(m[group]) for m in instance.rewards]


def bid_scaled(instance: Instance, group: int, alpha: float) -> Instance:
    return with_report(instance, group, bid=float(alpha * instance.bids[group]))


def exaggerated(instance: Instance, group: int, epsilon: float) -> Instance:
    rows = []
    for base, m in zip(instance.base_logweights, instance.rewards, strict=True):
        q0 = np.exp(base - base.max())
        q0 /= q0.sum()
        r = m[group]
        centre = float(q0 @ r)
        rows.append(np.clip(centre + (1.0 + epsilon) * (r - centre), 0.0, 1.0))
    return with_report(instance, group, rewards=rows)


def mixed(instance: Instance, group: int, other: int, beta: float) -> Instance:
    rows = [np.clip((1.0 - beta) * m[group] + beta * m[other], 0.0, 1.0) for m in instance.rewards]
    return with_report(instance, group, rewards=rows)


def misreport(instance: Instance, group: int, family: str, parameter: float, *, other: int | None = None) -> Instance:
    """Dispatch on the family name (one of FAMILIES)."""
    if family == "bid_scale":
        return bid_scaled(instance, group, parameter)
    if family == "exaggeration":
        return exaggerated(instance, group, parameter)
    if family == "mixing":
        if other is None:
            raise ValueError("mixing needs another group")
        return mixed(instance, group, other, parameter)
    raise ValueError(f"unknown misreport family {family!r}")
