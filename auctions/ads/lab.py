"""Advertising lab: sweep one ad's bid and plot what it (and everybody else) gets, pays and keeps.

For a segment, token or summary auction, the lab re-solves the auction at every bid of a grid from 0 to three
times the ad's reported bid (the reported bid is on the grid) and records every ad's allocation (win probability,
selection probability or effective CTR), expected payment, and utility ``value · allocation - payment`` with each
ad's *reported* bid taken as its true value per unit of allocation. With truthful payments the swept ad's utility
peaks at its reported bid. For the summary auction it also compares the welfare of GPA's word split with
winner-takes-all and equal shares as the word budget grows.

Files: ``<kind>_bid_sweep.png`` and ``.csv`` (long format: one row per grid bid and ad), and for summary
``summary_word_budget.png`` and ``.csv``. matplotlib (Agg backend) is imported inside the plotting functions only.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from auctions.ads.segment import SegmentAuction, segment_solve
from auctions.ads.summary import SummaryAuction, summary_solve, welfare_by_word_budget
from auctions.ads.token import TokenAuction, token_solve
from auctions.ads.validation import index_of, with_bid
from auctions.mechanism import MechanismError

SWEEP_COLUMNS = ("kind", "swept_bid", "truthful", "ad", "allocation", "payment", "utility")
BUDGET_COLUMNS = ("budget", "gpa", "greedy", "equal_share", "optimum")
ALLOCATION_LABEL = {"segment": "win probability", "token": "selection probability", "summary": "effective CTR"}
WORD_BUDGETS = tuple(range(1, 61))


@dataclass(frozen=True, eq=False)
class BidSweep:
    kind: str
    ids: tuple[str, ...]
    swept: int  # index of the ad whose bid varies
    bids: np.ndarray  # (P,) the swept ad's bid at each grid point
    truthful_index: int
    allocation: np.ndarray  # (P, n)
    payment: np.ndarray  # (P, n)
    utility: np.ndarray  # (P, n) value_j · allocation_j - payment_j, value_j = ad j's reported bid


def kind_of(auction: Any) -> str:
    if isinstance(auction, SegmentAuction):
        return "segment"
    if isinstance(auction, TokenAuction):
        return "token"
    if isinstance(auction, SummaryAuction):
        return "summary"
    raise MechanismError(f"ads-lab: not an advertising auction: {type(auction).__name__}")


def allocation_and_payment(auction: Any) -> tuple[np.ndarray, np.ndarray]:
    """Every ad's allocation (win probability, selection probability or effective CTR) and expected payment."""
    kind = kind_of(auction)
    if kind == "segment":
        seg = segment_solve(auction)
        return seg.allocation, seg.expected_payment
    if kind == "token":
        tok = token_solve(auction)
        return tok.selection_probability, tok.expected_payment
    summ = summary_solve(auction)
    return summ.effective_ctr, summ.expected_payment


def bid_grid(auction: Any, index: int, points: int) -> tuple[np.ndarray, int]:
    """0 to 3x the ad's bid (or to twice the largest other bid, or 1, when it bids 0), with its bid included."""
    bids = np.asarray(auction.bids, dtype=np.float64)
    own = float(bids[index])
    others = np.delete(bids, index)
    top = 3.0 * own if own > 0 else (2.0 * float(others.max()) if others.size and others.max() > 0 else 1.0)
    grid = np.union1d(np.linspace(0.0, top, max(points, 3)), [own])
    return grid, int(np.flatnonzero(grid == own)[0])


def bid_sweep(auction: Any, index: int, *, points: int = 41) -> BidSweep:
    kind = kind_of(auction)
    grid, truthful = bid_grid(auction, index, points)
    values = np.asarray(auction.bids, dtype=np.float64)
    alloc = np.empty((grid.size, values.size))
    pay = np.empty((grid.size, values.size))
    for j, z in enumerate(grid):
        alloc[j], pay[j] = allocation_and_payment(with_bid(auction, index, float(z)))
    return BidSweep(
        kind=kind,
        ids=tuple(auction.ids),
        swept=index,
        bids=grid,
        truthful_index=truthful,
        allocation=alloc,
        payment=pay,
        utility=values[None, :] * alloc - pay,
    )


def write_sweep_csv(path: Path, s: BidSweep) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(SWEEP_COLUMNS)
        for j, z in enumerate(s.bids):
            for a, ident in enumerate(s.ids):
                writer.writerow(
                    [
                        s.kind,
                        repr(float(z)),
                        int(j == s.truthful_index),
                        ident,
                        repr(float(s.allocation[j, a])),
                        repr(float(s.payment[j, a])),
                        repr(float(s.utility[j, a])),
                    ]
                )


def plot_sweep(path: Path, s: BidSweep) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 4), dpi=100)
    panels = (
        (s.allocation, ALLOCATION_LABEL[s.kind]),
        (s.payment, "expected payment"),
        (s.utility, "utility (reported bid as value)"),
    )
    truth = s.bids[s.truthful_index]
    for ax, (data, label) in zip(axes, panels, strict=True):
        for a, ident in enumerate(s.ids):
            if a == s.swept:
                continue
            ax.plot(s.bids, data[:, a], linewidth=0.9, alpha=0.7, label=ident)
        ax.plot(s.bids, data[:, s.swept], color="black", linewidth=2.2, label=f"{s.ids[s.swept]} (swept)")
        ax.axvline(truth, color="grey", linestyle=":", linewidth=1)
        ax.set_xlabel(f"bid of {s.ids[s.swept]} (reported = {truth:g})")
        ax.set_title(label, fontsize=10)
        ax.grid(alpha=0.3)
    best = int(np.argmax(s.utility[:, s.swept]))
    axes[2].plot([s.bids[best]], [s.utility[best, s.swept]], "o", color="tab:green", label="best bid on the grid")
    axes[2].legend(fontsize=7, loc="best")
    fig.suptitle(f"{s.kind} auction: {s.ids[s.swept]}'s bid varies, the others' stay", fontsize=11)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_budget_files(csv_path: Path, png_path: Path, auction: SummaryAuction) -> None:
    cmp = welfare_by_word_budget(auction, WORD_BUDGETS)
    with csv_path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(BUDGET_COLUMNS)
        for j, budget in enumerate(cmp.budgets):
            writer.writerow(
                [
                    int(budget),
                    repr(float(cmp.gpa[j])),
                    repr(float(cmp.greedy[j])),
                    repr(float(cmp.equal_share[j])),
                    repr(cmp.optimum),
                ]
            )
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=100)
    ax.plot(cmp.budgets, cmp.gpa, color="tab:green", linewidth=2, label="GPA (words ∝ prominence)")
    ax.plot(cmp.budgets, cmp.greedy, color="tab:red", label="greedy (top ad takes all words)")
    ax.plot(cmp.budgets, cmp.equal_share, color="tab:blue", label="equal share")
    ax.axhline(cmp.optimum, color="grey", linestyle=":", label="GPA with real-valued shares")
    ax.set_xlabel("word budget L")
    ax.set_ylabel("welfare Σ bid · effective CTR")
    ax.set_title(f"summary auction, beta = {auction.beta:g}, {auction.slots} slots", fontsize=10)
    ax.legend(fontsize=7, loc="best")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(png_path)
    plt.close(fig)


def run_ads_lab(auction: Any, *, ad_id: str, out_dir: Path, points: int = 41) -> list[Path]:
    """Sweep ``ad_id``'s bid; write the PNG and CSV files into ``out_dir``; return their paths."""
    kind = kind_of(auction)
    owner = "agents" if kind == "token" else "ads"
    index = index_of(auction.ids, ad_id, owner=f"ads-lab --ad: {owner}")
    if points < 3:
        raise MechanismError("ads-lab: --points must be at least 3")
    out_dir.mkdir(parents=True, exist_ok=True)
    s = bid_sweep(auction, index, points=points)
    csv_path, png_path = out_dir / f"{kind}_bid_sweep.csv", out_dir / f"{kind}_bid_sweep.png"
    write_sweep_csv(csv_path, s)
    plot_sweep(png_path, s)
    written = [png_path, csv_path]
    if kind == "summary":
        budget_csv, budget_png = out_dir / "summary_word_budget.csv", out_dir / "summary_word_budget.png"
        write_budget_files(budget_csv, budget_png, auction)
        written += [budget_png, budget_csv]
    return written
