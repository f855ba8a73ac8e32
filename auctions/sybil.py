"""Splitting a group into fake identities: what it does to the policy and to what the group is charged.

Pure numpy (no Django). A group bidding w splits into k identities that each bid w / k with the group's rewards.
The aggregate R = Σ w_i r_i is unchanged, so q* is unchanged and the group's value is the same, but each identity
pays only for its own small share of the tilt:

    T(k) = k λ Σ_x μ(x) KL(q* || q* tilted by exp(-(w/k) s / λ)) <= w² / (8 λ k)

(Hoeffding's lemma bounds each prompt's KL by a² / 8 for rewards in [0, 1]). T is non-increasing in k and tends to
0: VCG alone lets a group that splits pay about 1/k. A participation fee f per bidding identity, known before
bidding and independent of every report, changes no incentive and makes the split cost T(k) + k f, which is at
least the unsplit T(1) + f as soon as (k - 1) f >= T(1). See docs/auction.md, "Sybil identities".
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from auctions.mechanism import Instance, MechanismError, solve

__all__ = ["SybilSplit", "split_group", "sybil_split", "sybil_table"]


@dataclass(frozen=True, eq=False)
class SybilSplit:
    """One split of one group into k identities; money in the bids' currency."""

    k: int
    fee: float
    unsplit_total: float  # p_i + fee: the group bidding as itself
    split_total: float  # Σ_j p_j + k fee over its k identities
    split_payments: np.ndarray  # (k,) each identity's auction price
    policy_difference: float  # Σ_x μ(x) TV(q*_split, q*): zero up to the rounding of R
    others_payment_difference: float  # max |Δ p| over the other groups: zero up to rounding

    @property
    def saving(self) -> float:
        """What the group saves by splitting (negative: splitting costs it more)."""
        return self.unsplit_total - self.split_total


def split_group(instance: Instance, group: int, k: int) -> Instance:
    """The instance with group ``group`` replaced, in place, by k identities bidding w / k with its rewards.

    Identity j (from 1) is named ``"<id>#<j>"``; with k = 1 the instance is returned as it is.
    """
    n = instance.n_groups
    if not 0 <= group < n:
        raise MechanismError(f"group {group}: no such group index (the instance has {n})")
    if int(k) != k or k < 1:
        raise MechanismError(f"k: {k!r} must be a whole number >= 1")
    k = int(k)
    if k == 1:
        return instance
    gid = instance.group_ids[group]
    ids = [*instance.group_ids[:group], *(f"{gid}#{j}" for j in range(1, k + 1)), *instance.group_ids[group + 1 :]]
    share = float(instance.bids[group]) / k
    bids = np.concatenate([instance.bids[:group], np.full(k, share), instance.bids[group + 1 :]])
    rewards = tuple(
        np.concatenate([m[:group], np.repeat(m[group : group + 1], k, axis=0), m[group + 1 :]])
        for m in instance.rewards
    )
    return Instance(
        kl_weight=instance.kl_weight,
        group_ids=tuple(ids),
        bids=bids,
        prompt_weights=instance.prompt_weights,
        base_logweights=instance.base_logweights,
        rewards=rewards,
    )


def sybil_split(instance: Instance, group: int, k: int, *, fee: float = 0.0) -> SybilSplit:
    """Solve the instance with ``group`` split into k identities and compare with the unsplit auction."""
    fee = float(fee)
    if not np.isfinite(fee) or fee < 0:
        raise MechanismError(f"fee: {fee!r} must be a finite number >= 0")
    split = split_group(instance, group, k)
    before, after = solve(instance), solve(split)
    identities = after.payment[group : group + int(k)]
    others_before = np.delete(before.payment, group)
    others_after = np.delete(after.payment, np.arange(group, group + int(k)))
    tv = sum(
        mu * 0.5 * float(np.abs(p - q).sum())
        for mu, p, q in zip(instance.prompt_weights, before.policy, after.policy, strict=True)
    )
    return SybilSplit(
        k=int(k),
        fee=fee,
        unsplit_total=float(before.payment[group]) + fee,
        split_total=float(identities.sum()) + int(k) * fee,
        split_payments=identities.copy(),
        policy_difference=float(tv),
        others_payment_difference=float(np.max(np.abs(others_after - others_before), initial=0.0)),
    )


def sybil_table(instance: Instance, group: int, ks: Sequence[int] = (1, 2, 10, 50), fee: float = 0.0) -> str:
    """A plain-text table of :func:`sybil_split` for each k, without a fee and with ``fee`` (when it is > 0)."""
    fees = [0.0] if fee == 0 else [0.0, float(fee)]
    lines = [
        f"group {instance.group_ids[group]!r}: bid {float(instance.bids[group]):g}, lambda {instance.kl_weight:g}",
        f"{'k':>4} {'fee':>8} {'paid unsplit':>13} {'paid split':>11} {'price each':>13} {'saving':>10} "
        f"{'policy TV':>10} {'others Δp':>10}",
    ]
    for f in fees:
        for k in ks:
            r = sybil_split(instance, group, k, fee=f)
            lines.append(
                f"{r.k:4d} {f:8.4f} {r.unsplit_total:13.6f} {r.split_total:11.6f} "
                f"{float(r.split_payments.mean()):13.6f} {r.saving:10.6f} {r.policy_difference:10.1e} "
                f"{r.others_payment_difference:10.1e}"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python -m auctions.sybil FILE --group ID [--fee F] [--k 1 2 10 50]``: print the table for a schema-v1 file."""
    from auctions.schema import instance_from_json

    parser = argparse.ArgumentParser(description="What splitting a group into k identities does to its charge.")
    parser.add_argument("file")
    parser.add_argument("--group", required=True)
    parser.add_argument("--fee", type=float, default=0.0)
    parser.add_argument("--k", type=int, nargs="+", default=[1, 2, 10, 50])
    args = parser.parse_args(argv)
    try:
        instance = instance_from_json(json.loads(Path(args.file).read_text(encoding="utf-8")))
        print(sybil_table(instance, instance.group_index(args.group), args.k, args.fee))
    except (MechanismError, OSError, json.JSONDecodeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
