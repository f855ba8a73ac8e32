"""The delivery guarantee: a group never pays more than it measurably gained over the model trained without it.

Pure numpy (no Django). For each group i (docs/auction.md, "Delivery guarantee", has the proofs):

    D_i      = Σ_x μ(x) E_{q_θ}[r_i]         delivered: the adapter's implied reweighting of the fixed candidates,
                                              q_θ(k|x) ∝ q0(k|x) π_θ(y_k|x) / π0(y_k|x), on the auction's scores
    C_i      = Σ_x μ(x) E_{q_-i}[r_i]        the model trained without the group (mechanism.reference_points)
    bound_i  = w_i max(0, D_i - C_i)
    charge_i = min(p_i, bound_i)

When the adapter reproduces q* on the candidates, D_i = E_q*[r_i] and p_i <= w_i (E_q*[r_i] - C_i), so the charge is
exactly the auction's price and truthfulness is untouched. D_i depends on nothing a group reports after the close.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from auctions.mechanism import Instance, MechanismError, Outcome, reference_points

__all__ = ["AUCTION_PRICE", "DELIVERY_GUARANTEE", "Guarantee", "delivery_guarantee", "implied_logweights"]

AUCTION_PRICE = "auction_price"
DELIVERY_GUARANTEE = "delivery_guarantee"


@dataclass(frozen=True, eq=False)
class Guarantee:
    """Per group, in the instance's group order; money in the bids' currency (see mechanism.payments_to_cents)."""

    delivered: np.ndarray  # (n,) D_i
    without: np.ndarray  # (n,) C_i
    auction_price: np.ndarray  # (n,) p_i
    bound: np.ndarray  # (n,) w_i max(0, D_i - C_i)
    charge: np.ndarray  # (n,) min(p_i, bound_i)
    binding: tuple[str, ...]  # AUCTION_PRICE where p_i <= bound_i, else DELIVERY_GUARANTEE


def _vectors(instance: Instance, arrays: Sequence[Sequence[float] | np.ndarray], what: str) -> list[np.ndarray]:
    if len(arrays) != instance.n_prompts:
        raise MechanismError(f"{what}: expected one vector per prompt ({instance.n_prompts}), got {len(arrays)}")
    out = []
    for p, (values, base) in enumerate(zip(arrays, instance.base_logweights, strict=True)):
        try:
            arr = np.array(values, dtype=np.float64)
        except (TypeError, ValueError):
            raise MechanismError(f"prompt {p}: {what}: expected numbers") from None
        if arr.shape != base.shape:
            raise MechanismError(f"prompt {p}: {what}: {arr.size} values for {base.shape[0]} candidates")
        bad = np.flatnonzero(np.isnan(arr) | (arr == np.inf))
        if bad.size:
            raise MechanismError(f"prompt {p}, candidate {bad[0]}: {what} {float(arr[bad[0]])!r} is not allowed")
        out.append(arr)
    return out


def implied_logweights(
    instance: Instance,
    log_pi_theta: Sequence[Sequence[float] | np.ndarray],
    log_pi0: Sequence[Sequence[float] | np.ndarray],
) -> list[np.ndarray]:
    """Per prompt, the unnormalised log q_θ = log q0 + log π_θ - log π0 over the round's candidates.

    ``log_pi_theta[p][k]`` and ``log_pi0[p][k]`` are the log-probabilities of candidate k of prompt p under the
    trained adapter and under the base model. -inf under the adapter (a candidate it never produces) is allowed.
    """
    theta = _vectors(instance, log_pi_theta, "log pi_theta")
    base = _vectors(instance, log_pi0, "log pi0")
    out = []
    for p, (b, t, z) in enumerate(zip(instance.base_logweights, theta, base, strict=True)):
        if not np.all(np.isfinite(z)):
            k = int(np.flatnonzero(~np.isfinite(z))[0])
            raise MechanismError(f"prompt {p}, candidate {k}: log pi0 {float(z[k])!r} must be finite")
        out.append(b + t - z)
    return out


def delivery_guarantee(
    instance: Instance,
    outcome: Outcome,
    log_q_theta: Sequence[Sequence[float] | np.ndarray],
) -> Guarantee:
    """D_i, C_i, the guarantee's bound, the charge and which of the two binds, for every group.

    ``log_q_theta[p]`` holds the adapter's implied log-weights over prompt p's candidates, unnormalised (see
    :func:`implied_logweights`); -inf marks a candidate the adapter never produces, and each prompt needs at least
    one finite weight. ``outcome`` must be ``solve(instance)``: its payments are the auction prices.
    """
    n = instance.n_groups
    if outcome.payment.shape != (n,) or len(outcome.policy) != instance.n_prompts:
        raise MechanismError("outcome: it does not belong to this instance (solve the instance first)")
    weights = _vectors(instance, log_q_theta, "log q_theta")
    delivered_rows = np.empty((instance.n_prompts, n))
    for p, (log_w, rewards) in enumerate(zip(weights, instance.rewards, strict=True)):
        top = float(log_w.max())
        if not np.isfinite(top):
            raise MechanismError(f"prompt {p}: log q_theta must be finite on at least one candidate")
        q_theta = np.exp(log_w - top)
        q_theta /= q_theta.sum()
        delivered_rows[p] = rewards @ q_theta
    delivered = np.clip(instance.prompt_weights @ delivered_rows, 0.0, 1.0)
    without = reference_points(instance).without
    price = np.asarray(outcome.payment, dtype=np.float64)
    bound = instance.bids * np.maximum(0.0, delivered - without)
    charge = np.minimum(price, bound)
    binding = tuple(AUCTION_PRICE if p <= b else DELIVERY_GUARANTEE for p, b in zip(price, bound, strict=True))
    for arr in (delivered, without, bound, charge):
        arr.setflags(write=False)
    return Guarantee(
        delivered=delivered,
        without=without,
        auction_price=price,
        bound=bound,
        charge=charge,
        binding=binding,
    )
