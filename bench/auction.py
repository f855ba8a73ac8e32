"""Benchmark the auction solver against a naive leave-one-out re-solve and the one-exponential-per-element floor.

Run: ``.venv/bin/python bench/auction.py`` (options: --sizes, --prompts, --candidates, --repeats, --seed).

Instances are random and seeded: bids uniform in [0, 1], rewards uniform in [0, 1], uniform base weights, and
lambda = 0.3 * ||w||_2, about the standard deviation of the aggregate reward across candidates, so q* moves a
moderate distance from the base (KL of a fraction of a nat) at every size. Times are the best of several repeats
(time.perf_counter). The naive baseline is skipped, and reported as null, where its estimate exceeds a minute. The
header line ends with the load average (1, 5, 15 minutes) at the end of the run: on a shared machine, compare only
runs made under similar load.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy.special import logsumexp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from auctions.mechanism import Instance, make_instance, solve  # noqa: E402

NAIVE_LIMIT_S = 60.0


def best_of(fn: Callable[[], object], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def random_instance(rng: np.random.Generator, n: int, prompts: int, candidates: int) -> tuple[Instance, np.ndarray]:
    bids = rng.uniform(0.0, 1.0, n)
    dense = rng.random((n, prompts, candidates))  # the reward tensor, (groups, prompts, candidates)
    inst = make_instance(
        kl_weight=float(0.3 * np.linalg.norm(bids)),
        group_ids=[f"g{i}" for i in range(n)],
        bids=bids,
        base_logweights=[np.zeros(candidates) for _ in range(prompts)],
        rewards=[dense[:, p, :] for p in range(prompts)],
    )
    return inst, dense


def naive_payments(inst: Instance, dense: np.ndarray, groups: range) -> np.ndarray:
    """Re-solve without each group in a Python loop: p_i = Σ μ (w_i E_q*[r_i] - λ (log Z - log Z_-i))."""
    lam, w, mu = inst.kl_weight, inst.bids, inst.prompt_weights
    n, prompts, k = dense.shape
    flat = dense.reshape(n, prompts * k)
    log_q0 = np.stack([b - logsumexp(b) for b in inst.base_logweights])
    expo = log_q0 + (w @ flat).reshape(prompts, k) / lam
    log_z = logsumexp(expo, axis=1)
    q = np.exp(expo - log_z[:, None])
    out = np.empty(len(groups))
    for j, i in enumerate(groups):
        w_minus = w.copy()
        w_minus[i] = 0.0
        log_z_minus = logsumexp(log_q0 + (w_minus @ flat).reshape(prompts, k) / lam, axis=1)
        expected = np.einsum("pk,pk->p", q, dense[i])
        out[j] = mu @ (w[i] * expected - lam * (log_z - log_z_minus))
    return out


def run(sizes: list[int], prompts: int, candidates: int, repeats: int, seed: int) -> dict[str, list]:
    rng = np.random.default_rng(seed)
    rows = []
    result: dict[str, list] = {"sizes": [], "ours_s": [], "naive_s": [], "floor_s": []}
    for n in sizes:
        inst, dense = random_instance(rng, n, prompts, candidates)
        reps = max(3, repeats)
        start = time.perf_counter()
        make_instance(
            kl_weight=inst.kl_weight,
            group_ids=inst.group_ids,
            bids=inst.bids,
            base_logweights=inst.base_logweights,
            rewards=inst.rewards,
        )
        build_s = time.perf_counter() - start
        outcome = solve(inst)
        ours_s = best_of(lambda inst=inst: solve(inst), reps)
        floor_s = best_of(lambda dense=dense: np.exp(dense), reps)
        probe = range(min(n, 3))
        per_group = best_of(lambda inst=inst, dense=dense, probe=probe: naive_payments(inst, dense, probe), 2) / len(
            probe
        )
        naive_s: float | None = None
        agreement = float("nan")
        if per_group * n <= NAIVE_LIMIT_S:
            start = time.perf_counter()
            naive = naive_payments(inst, dense, range(n))
            naive_s = time.perf_counter() - start
            # Relative to the total bid: the naive formula loses digits to cancellation on small payments.
            agreement = float(np.max(np.abs(outcome.payment - naive)) / inst.bids.sum())
        rows.append((n, dense.size, build_s, ours_s, naive_s, floor_s, agreement, per_group * n))
        result["sizes"].append(n)
        result["ours_s"].append(ours_s)
        result["naive_s"].append(naive_s)
        result["floor_s"].append(floor_s)

    load = " ".join(f"{x:.2f}" for x in os.getloadavg())  # the machine may be shared: say how busy it was
    print(f"prompts={prompts} candidates={candidates} seed={seed} repeats={repeats} (best of) load average {load}")
    header = (
        f"{'groups':>7} {'elements':>11} {'build s':>8} {'ours ms':>9} {'floor ms':>9} {'ours/floor':>10} "
        f"{'naive s':>9} {'naive/ours':>10} {'|diff|/Σw':>12}"
    )
    print(header)
    for n, size, build_s, ours_s, naive_s, floor_s, agreement, estimate in rows:
        naive_txt = f"{naive_s:9.3f}" if naive_s is not None else f"{'skipped':>9}"
        ratio_txt = (
            f"{naive_s / ours_s:10.0f}" if naive_s is not None else f"{'~' + format(estimate / ours_s, '.0f'):>10}"
        )
        agree_txt = f"{agreement:12.1e}" if naive_s is not None else f"{'-':>12}"
        print(
            f"{n:7d} {size:11d} {build_s:8.3f} {ours_s * 1e3:9.2f} {floor_s * 1e3:9.2f} {ours_s / floor_s:10.2f} "
            f"{naive_txt} {ratio_txt} {agree_txt}"
        )
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000, 10000])
    parser.add_argument("--prompts", type=int, default=100)
    parser.add_argument("--candidates", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    result = run(args.sizes, args.prompts, args.candidates, args.repeats, args.seed)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
