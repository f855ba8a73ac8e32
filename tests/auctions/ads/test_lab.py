from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from auctions.ads.lab import bid_grid, run_ads_lab
from auctions.ads.segment import segment_auction
from auctions.ads.summary import summary_auction
from auctions.ads.token import token_auction
from auctions.mechanism import MechanismError

PNG = b"\x89PNG\r\n\x1a\n"
AUCTIONS: dict[str, Any] = {
    "segment": segment_auction(ids=list("abcd"), bids=[3, 3, 2, 2], relevance=[0.36, 0.87, 0.31, 0.26]),
    "token": token_auction(ids=list("xyz"), bids=[1, 2, 2], distributions=[[0.8, 0.2], [1, 0], [0, 1]]),
    "summary": summary_auction(ids=list("abcd"), bids=[3, 2, 2.5, 1], ctrs=[0.1, 0.3, 0.2, 0.25], beta=0.5, slots=3),
}
SWEPT = {"segment": "b", "token": "x", "summary": "b"}


@pytest.fixture(scope="module")
def lab_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ads_lab")
    for kind, auction in AUCTIONS.items():
        run_ads_lab(auction, ad_id=SWEPT[kind], out_dir=out / kind, points=25)
    return out


def rows(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize("kind", list(AUCTIONS))
def test_it_writes_a_png_and_a_long_csv_of_the_sweep(lab_dir: Path, kind: str) -> None:
    assert (lab_dir / kind / f"{kind}_bid_sweep.png").read_bytes().startswith(PNG)
    table = rows(lab_dir / kind / f"{kind}_bid_sweep.csv")
    ids = AUCTIONS[kind].ids
    assert [r["ad"] for r in table[: len(ids)]] == list(ids)
    assert len(table) % len(ids) == 0
    assert {r["kind"] for r in table} == {kind}


@pytest.mark.parametrize("kind", list(AUCTIONS))
def test_the_swept_ads_utility_peaks_at_its_reported_bid(lab_dir: Path, kind: str) -> None:
    mine = [r for r in rows(lab_dir / kind / f"{kind}_bid_sweep.csv") if r["ad"] == SWEPT[kind]]
    utility = np.array([float(r["utility"]) for r in mine])
    truthful = [int(r["truthful"]) for r in mine].index(1)
    own = float(AUCTIONS[kind].bids[list(AUCTIONS[kind].ids).index(SWEPT[kind])])
    assert float(mine[truthful]["swept_bid"]) == own
    assert utility.max() <= utility[truthful] + 1e-9
    allocation = np.array([float(r["allocation"]) for r in mine])
    assert np.all(np.diff(allocation) >= -1e-12)  # monotone in the own bid


def test_the_summary_lab_compares_word_splits(lab_dir: Path) -> None:
    assert (lab_dir / "summary" / "summary_word_budget.png").read_bytes().startswith(PNG)
    table = rows(lab_dir / "summary" / "summary_word_budget.csv")
    assert [int(r["budget"]) for r in table] == list(range(1, 61))
    last = table[-1]
    assert float(last["gpa"]) >= max(float(last["greedy"]), float(last["equal_share"]))
    assert float(last["gpa"]) <= float(last["optimum"]) + 1e-12


def test_the_grid_contains_the_reported_bid_and_handles_a_zero_bid() -> None:
    grid, i = bid_grid(AUCTIONS["token"], 0, 5)
    assert grid[i] == 1.0 and grid[-1] == 3.0
    zero = token_auction(bids=[0, 2], distributions=[[1, 0], [0, 1]])
    grid, i = bid_grid(zero, 0, 5)
    assert grid[i] == 0.0 and grid[-1] == 4.0


def test_it_rejects_an_unknown_ad_and_too_few_points(tmp_path: Path) -> None:
    with pytest.raises(MechanismError, match="no entry with id 'nobody'"):
        run_ads_lab(AUCTIONS["segment"], ad_id="nobody", out_dir=tmp_path)
    with pytest.raises(MechanismError, match="--points must be at least 3"):
        run_ads_lab(AUCTIONS["segment"], ad_id="a", out_dir=tmp_path, points=2)
