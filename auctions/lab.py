"""Truthfulness lab: sweep one group's misreports and plot what it gets, with and without payments.

For each family (bid scaled by alpha, rewards exaggerated by epsilon, rewards mixed with another group's by beta)
the lab solves the auction at every point of a grid that contains the truthful report, and records the group's
*true* value (its real bid times its real expected reward under the resulting q*), the payment, and its utility
with payments (value - payment) and without (the value itself: payments do not change q*). It writes
``<family>.png`` and ``<family>.csv`` per family. With payments the truthful point is the maximum; without them
some misreport is better.

matplotlib (Agg backend) is imported inside :func:`plot_family` only, so the rest of the package never needs it.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from auctions.mechanism import Instance, MechanismError, solve, true_value
from auctions.misreport import FAMILIES, TRUTHFUL, misreport, truthful_rewards

RANGES = {"bid_scale": (0.0, 3.0), "exaggeration": (-1.0, 2.0), "mixing": (-1.0, 1.0)}
LABELS = {
    "bid_scale": "bid scaled by alpha",
    "exaggeration": "rewards exaggerated away from the mean by epsilon",
    "mixing": "rewards mixed with {other}'s by beta",
}
SYMBOLS = {"bid_scale": "alpha", "exaggeration": "epsilon", "mixing": "beta"}
COLUMNS = (
    "family",
    "parameter",
    "truthful",
    "true_value",
    "payment",
    "utility_with_payments",
    "utility_without_payments",
)


@dataclass(frozen=True)
class Sweep:
    family: str
    parameters: np.ndarray
    truthful_index: int
    value: np.ndarray
    payment: np.ndarray

    @property
    def utility_with(self) -> np.ndarray:
        return self.value - self.payment

    @property
    def utility_without(self) -> np.ndarray:
        return self.value


def grid(family: str, points: int) -> tuple[np.ndarray, int]:
    lo, hi = RANGES[family]
    truth = TRUTHFUL[family]
    values = np.union1d(np.linspace(lo, hi, max(points, 3)), [truth])
    return values, int(np.flatnonzero(values == truth)[0])


def sweep(instance: Instance, group: int, family: str, *, other: int | None = None, points: int = 41) -> Sweep:
    params, truthful_index = grid(family, points)
    true_rewards = truthful_rewards(instance, group)
    true_bid = float(instance.bids[group])
    value = np.empty(len(params))
    payment = np.empty(len(params))
    for j, x in enumerate(params):
        reported = misreport(instance, group, family, float(x), other=other)
        outcome = solve(reported)
        value[j] = true_value(reported, outcome, true_rewards, true_bid)
        payment[j] = outcome.payment[group]
    return Sweep(family, params, truthful_index, value, payment)


def default_other(instance: Instance, group: int) -> int:
    """The highest bidder among the other groups (ties: the first)."""
    others = [i for i in range(instance.n_groups) if i != group]
    if not others:
        raise MechanismError("lab: the mixing family needs at least two groups")
    return max(others, key=lambda i: instance.bids[i])


def write_csv(path: Path, s: Sweep) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for j, x in enumerate(s.parameters):
            writer.writerow(
                [
                    s.family,
                    repr(float(x)),
                    int(j == s.truthful_index),
                    repr(float(s.value[j])),
                    repr(float(s.payment[j])),
                    repr(float(s.utility_with[j])),
                    repr(float(s.utility_without[j])),
                ]
            )


def plot_family(path: Path, s: Sweep, *, group_id: str, other_id: str | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = s.parameters
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    ax.plot(x, s.value, color="tab:blue", label="true value")
    ax.plot(x, s.payment, color="tab:orange", label="payment")
    ax.plot(x, s.utility_with, color="tab:green", linewidth=2.2, label="utility with payments")
    ax.plot(x, s.utility_without, color="tab:red", linestyle="--", label="utility without payments (= value)")
    truth = x[s.truthful_index]
    ax.axvline(truth, color="grey", linestyle=":", linewidth=1)
    best_with = int(np.argmax(s.utility_with))
    best_without = int(np.argmax(s.utility_without))
    ax.plot([x[best_with]], [s.utility_with[best_with]], "o", color="tab:green", label="best with payments")
    ax.plot([x[best_without]], [s.utility_without[best_without]], "s", color="tab:red", label="best without payments")
    ax.set_xlabel(f"{SYMBOLS[s.family]} (truthful = {truth:g})")
    ax.set_ylabel("money (bid currency)")
    ax.set_title(f"group {group_id}: {LABELS[s.family].format(other=other_id)}", fontsize=10)
    ax.legend(fontsize=7, loc="best")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def run_lab(
    instance: Instance, *, group_id: str, out_dir: Path, other_id: str | None = None, points: int = 41
) -> list[Path]:
    """Sweep every family for ``group_id``; write a PNG and a CSV per family into ``out_dir``; return the paths."""
    group = instance.group_index(group_id)
    if points < 3:
        raise MechanismError("lab: --points must be at least 3")
    other = instance.group_index(other_id) if other_id is not None else None
    if other == group:
        raise MechanismError("lab: the group to mix with must be another group")
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for family in FAMILIES:
        if family == "mixing" and instance.n_groups < 2:
            continue
        mix_with = (other if other is not None else default_other(instance, group)) if family == "mixing" else None
        s = sweep(instance, group, family, other=mix_with, points=points)
        csv_path, png_path = out_dir / f"{family}.csv", out_dir / f"{family}.png"
        write_csv(csv_path, s)
        plot_family(
            png_path, s, group_id=group_id, other_id=instance.group_ids[mix_with] if mix_with is not None else None
        )
        written += [png_path, csv_path]
    return written
