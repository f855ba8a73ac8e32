"""The issue's speed requirement: 1,000 groups x 100 prompts x 32 candidates in under 0.25 s, within 3x of the floor
(one numpy.exp over the reward tensor), measured in the same run. bench/auction.py prints the full table."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import numpy as np
import pytest

from auctions.mechanism import make_instance, solve


def best_of(fn: Callable[[], object], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


@pytest.fixture(scope="module")
def thousand_groups() -> tuple:
    rng = np.random.default_rng(0)
    n, prompts, k = 1000, 100, 32
    bids = rng.uniform(0.0, 1.0, n)
    dense = rng.random((n, prompts, k))
    inst = make_instance(
        kl_weight=float(0.3 * np.linalg.norm(bids)),
        group_ids=[f"g{i}" for i in range(n)],
        bids=bids,
        base_logweights=[np.zeros(k)] * prompts,
        rewards=[dense[:, p, :] for p in range(prompts)],
    )
    return inst, dense


def test_it_solves_a_thousand_groups_in_under_a_quarter_second(thousand_groups: tuple) -> None:
    inst, _ = thousand_groups
    assert best_of(lambda: solve(inst), 5) < 0.25


def test_it_solves_a_thousand_groups_within_3x_of_one_exponential_per_reward(thousand_groups: tuple) -> None:
    inst, dense = thousand_groups
    load = os.getloadavg()[0] / (os.cpu_count() or 1)
    if load > 1.5:
        pytest.skip(f"machine too busy to time against the floor (load {load:.1f} per core)")
    ratio = float("inf")
    for _ in range(3):  # a busy neighbour can spoil one attempt
        ours = best_of(lambda: solve(inst), 20)
        floor = best_of(lambda: np.exp(dense), 20)
        ratio = min(ratio, ours / floor)
        if ratio < 3:
            break
    assert ratio < 3
