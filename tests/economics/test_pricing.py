from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from economics.errors import EconomicsError
from economics.pricing import (
    Task,
    first_mover_market,
    first_mover_revenue,
    first_mover_shut_out,
    latecomer_response,
    make_tasks,
    two_task_market,
)

B = 0.5
KAPPAS = [0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0]


def g(p: float | np.ndarray, b: float = B) -> float | np.ndarray:
    return p * np.exp(-b * p)


def brute_force_response(tasks: tuple[Task, ...], b: float, p_a: float) -> tuple[float, frozenset[int]]:
    """B's best revenue over every subset of tasks it could win and a fine price grid."""
    kappa = np.array([t.relative_performance for t in tasks])
    demand = np.array([t.demand_scale for t in tasks])
    prices = np.linspace(1e-6, 3.0 / b, 6001)
    # Also try each subset's best price exactly: its monopoly price or its binding cap κ_min p_A.
    best, best_set = -1.0, frozenset()
    for size in range(1, len(tasks) + 1):
        for subset in itertools.combinations(range(len(tasks)), size):
            inside = list(subset)
            outside = [t for t in range(len(tasks)) if t not in subset]
            cap = kappa[inside].min() * p_a  # B must be at or below κ_t p_A on every task it wins...
            floor = kappa[outside].max() * p_a if outside else 0.0  # ...and above it on every other task
            candidates = np.append(prices, [min(cap, 1.0 / b)])
            feasible = candidates[(candidates <= cap) & (candidates > floor)]
            if feasible.size == 0:
                continue
            value = float(np.max(demand[inside].sum() * g(feasible, b)))
            if value > best:
                best, best_set = value, frozenset(subset)
    return best, best_set


def random_tasks(seed: int, n: int) -> tuple[Task, ...]:
    rng = np.random.default_rng(seed)
    return make_tasks(list(rng.uniform(0.2, 3.0, n)), list(rng.uniform(0.1, 3.0, n)))


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 4), p_a=st.floats(0.05, 8.0))
def test_the_latecomer_response_beats_every_subset_and_price(seed: int, n: int, p_a: float) -> None:
    tasks = random_tasks(seed, n)
    response = latecomer_response(tasks, demand_slope=B, first_mover_price=p_a)
    brute, brute_set = brute_force_response(tasks, B, p_a)
    assert response.revenue >= brute - 1e-12
    assert response.revenue == pytest.approx(brute, rel=1e-12)
    assert set(response.tasks) == brute_set
    # B wins a prefix of the tasks sorted by relative performance, descending, and earns what it claims.
    won = set(response.tasks)
    assert won
    weakest_won = min(tasks[t].relative_performance for t in won)
    assert all(tasks[t].relative_performance < weakest_won for t in range(n) if t not in won)
    assert all(response.price <= tasks[t].relative_performance * p_a for t in won)
    assert response.revenue == pytest.approx(sum(tasks[t].demand_scale for t in won) * g(response.price))


def test_ties_in_cost_effectiveness_go_to_the_latecomer() -> None:
    one = make_tasks([1.0], [0.7])
    assert latecomer_response(one, demand_slope=B, first_mover_price=1.0).tasks == (0,)
    same = make_tasks([1.0, 5.0], [1.2, 1.2])
    assert first_mover_market(same, demand_slope=B).region == "latecomer_takes_all"
    assert two_task_market(same, demand_slope=B).first_mover_tasks == ()


@pytest.mark.parametrize(("k1", "k2"), list(itertools.product(KAPPAS, KAPPAS)))
def test_the_two_task_regions_for_b_one_half(k1: float, k2: float) -> None:
    tasks = make_tasks([1.0, 1.0], [k1, k2])
    market = two_task_market(tasks, demand_slope=B)
    general = first_mover_market(tasks, demand_slope=B)
    assert (general.region, general.first_mover_tasks, general.attained) == (
        market.region,
        market.first_mover_tasks,
        market.attained,
    )
    strong, weak = max(k1, k2), min(k1, k2)
    if weak / strong >= 0.5:  # too similar: a_s / (a_s + a_w) = 1/2
        assert market.region == "latecomer_takes_all"
        assert market.max_price is None and market.price is None
        prices = np.linspace(0.01, 12.0, 200)
        assert all(first_mover_revenue(tasks, demand_slope=B, price=float(p)) == 0.0 for p in prices)
        return
    assert market.max_price is not None and market.price is not None
    assert general.max_price == pytest.approx(market.max_price, rel=1e-12)
    assert general.price == pytest.approx(market.price, rel=1e-12)
    bound = market.max_price
    if market.region == "tight_bound":
        assert bound == pytest.approx(math.log(0.5 * strong / weak) / (B * (strong - weak)), rel=1e-12)
        assert bound <= 1.0 / (B * strong) + 1e-12
    else:
        assert market.region == "loose_bound"
        assert 1.0 / (B * strong) < bound < 1.0 / (B * weak)
    # A keeps the task where it is relatively stronger just below the bound, and nothing at or above it.
    kept = (0,) if k1 < k2 else (1,)
    assert market.first_mover_tasks == kept
    below = latecomer_response(tasks, demand_slope=B, first_mover_price=bound * (1 - 1e-9)).tasks
    assert set(below) == {0, 1} - set(kept)
    for p in (bound, bound * (1 + 1e-9), bound * 2):
        assert first_mover_revenue(tasks, demand_slope=B, price=p) == 0.0
    # A's best price against a fine grid of prices.
    prices = np.linspace(1e-3, 3.0 / B, 1501)
    grid = max(first_mover_revenue(tasks, demand_slope=B, price=float(p)) for p in prices)
    assert grid <= market.revenue + 1e-12
    assert grid >= market.revenue - 4e-3
    assert market.price == pytest.approx(min(1.0 / B, bound))


def test_the_documented_region_table_entries() -> None:
    # docs/economics.md, two-task table for b = 0.5 and equal demand (κ1, κ2) -> (region, bound).
    expected = {
        (2.0, 0.5): ("tight_bound", 0.924196),
        (3.0, 0.5): ("loose_bound", 0.927844),
        (1.5, 0.25): ("loose_bound", 1.855688),
        (0.75, 0.25): ("tight_bound", 1.621860),
        (1.0, 0.75): ("latecomer_takes_all", None),
    }
    for (k1, k2), (region, bound) in expected.items():
        market = two_task_market(make_tasks([1.0, 1.0], [k1, k2]), demand_slope=B)
        assert market.region == region
        assert market.max_price == (None if bound is None else pytest.approx(bound, abs=1e-6))


@settings(max_examples=100, deadline=None)
@given(
    a=st.tuples(st.floats(0.1, 10.0), st.floats(0.1, 10.0)),
    k=st.tuples(st.floats(0.05, 5.0), st.floats(0.05, 5.0)),
    b=st.floats(0.1, 5.0),
)
def test_regions_depend_on_the_ratios_only_and_prices_scale_with_one_over_b(
    a: tuple[float, float], k: tuple[float, float], b: float
) -> None:
    tasks = make_tasks(list(a), list(k))
    base = two_task_market(tasks, demand_slope=1.0)
    other = two_task_market(tasks, demand_slope=b)
    scaled = two_task_market(make_tasks(list(a), [2.0 * k[0], 2.0 * k[1]]), demand_slope=1.0)
    assert other.region == base.region == scaled.region
    strong, weak = (0, 1) if k[0] > k[1] else (1, 0)
    shut_out = k[strong] == k[weak] or k[weak] / k[strong] >= a[strong] / (a[0] + a[1])
    assert (base.region == "latecomer_takes_all") == shut_out == first_mover_shut_out(tasks)
    if base.max_price is not None:
        assert other.max_price == pytest.approx(base.max_price / b, rel=1e-9)
        assert scaled.max_price == pytest.approx(base.max_price / 2.0, rel=1e-9)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(3, 5))
def test_the_first_mover_price_for_many_tasks_beats_a_price_grid(seed: int, n: int) -> None:
    tasks = random_tasks(seed, n)
    market = first_mover_market(tasks, demand_slope=B)
    top = market.max_price if market.max_price is not None else 1.0
    # A fine grid below the supremum, where A's revenue lives, and a coarse one over everything.
    prices = np.concatenate([np.linspace(1e-3 * top, top * (1 - 1e-9), 2001), np.linspace(1e-3, 30.0, 1001)])
    revenues = [first_mover_revenue(tasks, demand_slope=B, price=float(p)) for p in prices]
    assert max(revenues) <= market.revenue + 1e-12
    if market.price is None:
        assert market.region == "latecomer_takes_all" and max(revenues) == 0.0
        return
    assert market.max_price is not None
    assert market.price <= market.max_price
    assert max(revenues) >= market.revenue * (1 - 1e-2)
    # The reported sets are B's response at A's price, or just below it when the price is a supremum.
    p = market.price if market.attained else market.price * (1 - 1e-9)
    response = latecomer_response(tasks, demand_slope=B, first_mover_price=p)
    assert response.tasks == market.latecomer_tasks
    assert sorted(market.first_mover_tasks + market.latecomer_tasks) == list(range(n))
    revenue_there = first_mover_revenue(tasks, demand_slope=B, price=p)
    assert revenue_there == pytest.approx(market.revenue, rel=1e-6)
    # Above the supremum A keeps nothing.
    assert first_mover_revenue(tasks, demand_slope=B, price=market.max_price * (1 + 1e-9)) == 0.0


def test_the_first_mover_can_reach_its_monopoly_price_when_it_is_much_stronger_somewhere() -> None:
    market = two_task_market(make_tasks([1.0, 1.0], [2.0, 0.1]), demand_slope=B)
    assert market.region == "loose_bound"
    assert market.max_price is not None and market.max_price > 1.0 / B
    assert market.price == pytest.approx(1.0 / B) and market.attained
    assert market.revenue == pytest.approx(g(1.0 / B))


def test_the_shut_out_condition_for_many_tasks() -> None:
    # κ_n Σ a >= κ_j A_j for every level j: with these three tasks 0.9 * 3 >= 1.0 * 1 and 0.95 * 2.
    assert first_mover_shut_out(make_tasks([1.0, 1.0, 1.0], [1.0, 0.95, 0.9]))
    assert not first_mover_shut_out(make_tasks([1.0, 1.0, 1.0], [3.0, 0.95, 0.9]))


@pytest.mark.parametrize(
    ("scales", "kappas", "message"),
    [
        ([1.0], [0.0], r"^tasks\[0\]\.relative_performance: 0.0 must be > 0"),
        ([-1.0, 1.0], [1.0, 1.0], r"^tasks\[0\]\.demand_scale"),
        ([1.0, float("inf")], [1.0, 1.0], r"^tasks\[1\]\.demand_scale"),
        ([], [], "^tasks: at least one task"),
        ([1.0], [1.0, 2.0], "^tasks: 1 demand scales for 2"),
    ],
)
def test_it_rejects_bad_tasks_naming_the_field(scales: list[float], kappas: list[float], message: str) -> None:
    with pytest.raises(EconomicsError, match=message):
        make_tasks(scales, kappas)


def test_it_rejects_a_bad_slope_and_the_wrong_number_of_tasks() -> None:
    tasks = make_tasks([1.0, 1.0], [2.0, 0.5])
    with pytest.raises(EconomicsError, match="^demand_slope:"):
        two_task_market(tasks, demand_slope=0.0)
    with pytest.raises(EconomicsError, match="exactly 2 tasks"):
        two_task_market(make_tasks([1.0], [1.0]), demand_slope=B)
    with pytest.raises(EconomicsError, match="^first_mover_price:"):
        latecomer_response(tasks, demand_slope=B, first_mover_price=-1.0)
