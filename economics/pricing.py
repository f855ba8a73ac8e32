"""Per-prompt pricing of a first mover against a latecomer (Mahmood, "Pricing and Competition for Generative AI",
NeurIPS 2024).

Two firms sell models for the same tasks. A user of task t pays the price per prompt times the expected number
of prompts until a satisfying answer, so with B's relative performance κ_t (A's expected prompts over B's) the
latecomer B is the cost-effective choice on t iff

    p_B <= κ_t p_A          (ties go to B)

and the firm that is cost-effective on t sells a_t e^{-b p} prompts there at its price p, earning
a_t g(p) with g(p) = p e^{-b p} (increasing up to the monopoly price 1/b, where g = 1 / (b e)).

A prices first. B then picks its price, which decides the set of tasks it wins: {t : κ_t >= p_B / p_A}, always a
prefix of the tasks sorted by κ descending. On the prefix of the k strongest κ-levels (demand A_k, weakest level
κ_k) B earns at most R_k(p_A) = A_k g(min(1/b, κ_k p_A)), at p_B = min(1/b, κ_k p_A); B takes the best prefix,
the larger on a tie. A earns g(p_A) times the demand of the tasks B leaves.

The derivations (regions, bounds, the "too similar" condition) are in ``docs/economics.md`` and in the docstrings
of :func:`_crossing` and :func:`first_mover_market`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from scipy.special import lambertw

from economics.errors import EconomicsError

__all__ = [
    "REGIONS",
    "Market",
    "Response",
    "Task",
    "first_mover_market",
    "first_mover_revenue",
    "first_mover_shut_out",
    "latecomer_response",
    "make_tasks",
    "two_task_market",
]

LATECOMER_TAKES_ALL = "latecomer_takes_all"
TIGHT_BOUND = "tight_bound"
LOOSE_BOUND = "loose_bound"
REGIONS = (LATECOMER_TAKES_ALL, TIGHT_BOUND, LOOSE_BOUND)

# B's revenues from two prefixes this close (relative) are a tie, which goes to the larger prefix: at an exact
# crossing the two are equal mathematically and differ only by rounding.
_TIE = 1e-12


@dataclass(frozen=True)
class Task:
    demand_scale: float  # a_t
    relative_performance: float  # κ_t: B is cost-effective on t iff p_B <= κ_t p_A


@dataclass(frozen=True)
class Response:
    """B's best response to a first-mover price."""

    price: float
    tasks: tuple[int, ...]  # indices of the tasks B wins (input order, from 0)
    revenue: float


@dataclass(frozen=True)
class Market:
    """A's best price and what each firm wins there.

    ``max_price`` is the supremum of the prices at which A keeps at least one task (A keeps one at every lower
    price; at the supremum itself the tie goes to B). ``price`` maximises A's revenue; when it equals
    ``max_price`` it is a supremum too (``attained`` is False) and the revenue and task sets are the limits
    from below. Both are None when B takes every task at every price.
    """

    region: str
    max_price: float | None
    price: float | None
    attained: bool
    revenue: float
    first_mover_tasks: tuple[int, ...]
    latecomer_tasks: tuple[int, ...]
    latecomer_price: float | None


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise EconomicsError(f"{name}: expected a number, got {value!r}")
    result = float(value)
    if not math.isfinite(result):
        raise EconomicsError(f"{name}: {value!r} is not a finite number")
    return result


def _positive(value: Any, name: str) -> float:
    result = _number(value, name)
    if result <= 0:
        raise EconomicsError(f"{name}: {result!r} must be > 0")
    return result


def make_tasks(demand_scales: Sequence[float], relative_performances: Sequence[float]) -> tuple[Task, ...]:
    """Validate and build the tasks (every demand scale and relative performance must be > 0)."""
    if len(demand_scales) != len(relative_performances):
        raise EconomicsError(
            f"tasks: {len(demand_scales)} demand scales for {len(relative_performances)} relative performances"
        )
    if not demand_scales:
        raise EconomicsError("tasks: at least one task is required")
    return tuple(
        Task(
            demand_scale=_positive(a, f"tasks[{t}].demand_scale"),
            relative_performance=_positive(k, f"tasks[{t}].relative_performance"),
        )
        for t, (a, k) in enumerate(zip(demand_scales, relative_performances, strict=True))
    )


def _g(p: float, b: float) -> float:
    return p * math.exp(-b * p)


@dataclass(frozen=True)
class _Level:
    kappa: float  # this level's κ (levels are sorted by κ descending)
    demand: float  # A_k: demand of this level and every stronger one
    members: tuple[int, ...]  # the tasks of this level


def _levels(tasks: Sequence[Task]) -> list[_Level]:
    """Distinct κ values, descending, with cumulative demand: B wins whole levels (equal κ, equal fate)."""
    order = sorted(range(len(tasks)), key=lambda t: -tasks[t].relative_performance)
    levels: list[_Level] = []
    total = 0.0
    for t in order:
        task = tasks[t]
        total += task.demand_scale
        if levels and levels[-1].kappa == task.relative_performance:
            last = levels[-1]
            levels[-1] = _Level(kappa=last.kappa, demand=total, members=(*last.members, t))
        else:
            levels.append(_Level(kappa=task.relative_performance, demand=total, members=(t,)))
    return levels


def _prefix_revenue(level: _Level, b: float, p_a: float) -> float:
    return level.demand * _g(min(1.0 / b, level.kappa * p_a), b)


def _check(tasks: Sequence[Task], demand_slope: float) -> tuple[tuple[Task, ...], float]:
    tasks = tuple(tasks)
    if not tasks:
        raise EconomicsError("tasks: at least one task is required")
    for t, task in enumerate(tasks):
        _positive(task.demand_scale, f"tasks[{t}].demand_scale")
        _positive(task.relative_performance, f"tasks[{t}].relative_performance")
    return tasks, _positive(demand_slope, "demand_slope")


def _respond(levels: list[_Level], b: float, p_a: float) -> tuple[int, float, float]:
    """(number of levels B wins, B's price, B's revenue) against p_a."""
    revenues = [_prefix_revenue(level, b, p_a) for level in levels]
    best = max(revenues)
    k = max(i for i, r in enumerate(revenues) if r >= best * (1.0 - _TIE))
    price = min(1.0 / b, levels[k].kappa * p_a)
    return k + 1, price, revenues[k]


def latecomer_response(tasks: Sequence[Task], *, demand_slope: float, first_mover_price: float) -> Response:
    """B's revenue-maximising price against ``first_mover_price`` and the tasks it wins there."""
    tasks, b = _check(tasks, demand_slope)
    p_a = _positive(first_mover_price, "first_mover_price")
    levels = _levels(tasks)
    k, price, revenue = _respond(levels, b, p_a)
    won = sorted(t for level in levels[:k] for t in level.members)
    return Response(price=price, tasks=tuple(won), revenue=revenue)


def first_mover_revenue(tasks: Sequence[Task], *, demand_slope: float, price: float) -> float:
    """A's revenue at ``price`` once B has best-responded."""
    tasks, b = _check(tasks, demand_slope)
    p_a = _positive(price, "price")
    levels = _levels(tasks)
    k, _, _ = _respond(levels, b, p_a)
    return (levels[-1].demand - levels[k - 1].demand) * _g(p_a, b)


def first_mover_shut_out(tasks: Sequence[Task]) -> bool:
    """True when the tasks are too similar: B takes every task at every price A can set.

    For levels j < k, R_j / R_k is non-increasing in p_A (both uncapped it is
    (A_j κ_j / A_k κ_k) e^{-b (κ_j - κ_k) p_A}; then R_j is capped first and stays flat while R_k still rises;
    both capped it is A_j / A_k < 1), so its supremum is the limit A_j κ_j / (A_k κ_k) as p_A -> 0. A keeps a
    task somewhere iff some smaller prefix beats the full one somewhere, i.e. iff κ_j A_j > κ_n A_n for some j:
    the first mover earns nothing iff κ_n Σ_t a_t >= κ_j A_j for every level j. With two tasks:
    κ_2 / κ_1 >= a_1 / (a_1 + a_2), B's weakest relative performance close enough to its strongest.
    """
    levels = _levels(_check(tasks, 1.0)[0])
    full = levels[-1]
    return all(level.kappa * level.demand <= full.kappa * full.demand for level in levels[:-1])


def _crossing(small: _Level, large: _Level, b: float) -> tuple[float, str] | None:
    """The supremum of the p_A at which B prefers the smaller prefix ``small`` to ``large``, and its kind.

    With ρ = A_s κ_s / (A_l κ_l) (κ_s > κ_l, A_s < A_l):

    1. ρ <= 1: never (see :func:`first_mover_shut_out`).
    2. While both are uncapped (κ_s p_A <= 1/b), B prefers ``small`` iff ρ > e^{b (κ_s - κ_l) p_A}, i.e. iff
       p_A < p* = ln ρ / (b (κ_s - κ_l)). If p* <= 1/(b κ_s) that is the bound: TIGHT_BOUND, because B, to win
       only the smaller set, must still price below its monopoly price (p_B = κ_s p_A < 1/b) and A's bound is at
       most 1/(b κ_s).
    3. Otherwise B reaches its monopoly price on ``small`` first and earns A_s / (b e) there, while R_l keeps
       rising; the bound is where A_l g(κ_l p_A) = A_s / (b e): with u = b κ_l p_A, u e^{-u} = (A_s / A_l) / e,
       so u = -W0(-(A_s / A_l) / e) in (0, 1) and the bound u / (b κ_l) lies in (1/(b κ_s), 1/(b κ_l)):
       LOOSE_BOUND, beyond the price at which B stops needing to undercut A.
    """
    rho = (small.demand * small.kappa) / (large.demand * large.kappa)
    if rho <= 1.0:
        return None
    p_star = math.log(rho) / (b * (small.kappa - large.kappa))
    if p_star <= 1.0 / (b * small.kappa):
        return p_star, TIGHT_BOUND
    u = -float(lambertw(-(small.demand / large.demand) / math.e, 0).real)
    return u / (b * large.kappa), LOOSE_BOUND


def _shut_out_market(tasks: Sequence[Task]) -> Market:
    return Market(
        region=LATECOMER_TAKES_ALL,
        max_price=None,
        price=None,
        attained=False,
        revenue=0.0,
        first_mover_tasks=(),
        latecomer_tasks=tuple(range(len(tasks))),
        latecomer_price=None,
    )


def two_task_market(tasks: Sequence[Task], *, demand_slope: float) -> Market:
    """The two-task game in closed form (task indices refer to the input order).

    Call s the task where B is relatively stronger (higher κ) and w the other, where A is. B wins s whenever
    it wins anything, so A can only keep w:

    1. latecomer_takes_all iff κ_w / κ_s >= a_s / (a_s + a_w) (equal κ included): A earns nothing.
    2. Otherwise A keeps w exactly for p_A below the bound p̄ of :func:`_crossing` (s against both tasks):
       tight_bound when p̄ = ln ρ / (b (κ_s - κ_w)) <= 1/(b κ_s), loose_bound otherwise.
    3. A's revenue a_w g(p_A) rises up to 1/b, so its best price is min(1/b, p̄); when that is p̄ it is a
       supremum (at p̄ itself B takes both).
    """
    tasks, b = _check(tasks, demand_slope)
    if len(tasks) != 2:
        raise EconomicsError(f"tasks: the two-task analysis needs exactly 2 tasks, got {len(tasks)}")
    levels = _levels(tasks)
    if len(levels) == 1:
        return _shut_out_market(tasks)
    found = _crossing(levels[0], levels[1], b)
    if found is None:
        return _shut_out_market(tasks)
    bound, region = found
    strong, weak = levels[0].members[0], levels[1].members[0]
    price = min(1.0 / b, bound)
    return Market(
        region=region,
        max_price=bound,
        price=price,
        attained=price < bound,
        revenue=tasks[weak].demand_scale * _g(price, b),
        first_mover_tasks=(weak,),
        latecomer_tasks=(strong,),
        latecomer_price=min(1.0 / b, levels[0].kappa * price),
    )


def first_mover_market(tasks: Sequence[Task], *, demand_slope: float) -> Market:
    """A's revenue-maximising price for any number of tasks, exactly.

    1. Group the tasks into κ-levels; B's choice among prefixes changes only where two prefix revenues cross,
       and each pair crosses at most once, at the bound of :func:`_crossing`. Those points split (0, ∞) into
       intervals on which B's choice, and so A's demand L, is constant.
    2. A keeps something only below p̄ = the largest bound of a smaller prefix against the full one
       (:func:`first_mover_shut_out` shows each ratio R_j / R_n falls in p_A, so the set is the interval (0, p̄));
       the region is the kind of that bound, latecomer_takes_all when there is none.
    3. On each interval below p̄, A's revenue L g(p) peaks at 1/b clipped to the interval; the best over the
       intervals wins (ties to the lower price). A clipped upper end is a supremum, not attained, when B's
       choice at that very point (ties to B) leaves A less.
    """
    tasks, b = _check(tasks, demand_slope)
    levels = _levels(tasks)
    if len(levels) == 1 or first_mover_shut_out(tasks):
        return _shut_out_market(tasks)
    bounds = [_crossing(level, levels[-1], b) for level in levels[:-1]]
    top, region = max((found for found in bounds if found is not None), key=lambda found: found[0])
    cuts = {top}
    for j in range(len(levels)):
        for k in range(j + 1, len(levels)):
            found = _crossing(levels[j], levels[k], b)
            if found is not None and found[0] < top:
                cuts.add(found[0])
    edges = [0.0, *sorted(cuts)]
    total = levels[-1].demand
    best: tuple[float, float, int, bool] | None = None  # (revenue, price, levels B wins, attained)
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        k, _, _ = _respond(levels, b, 0.5 * (lo + hi))
        left = total - levels[k - 1].demand
        if left <= 0:
            continue
        p = min(max(1.0 / b, lo), hi)
        if p <= 0:
            continue
        value = left * _g(p, b)
        attained = True
        if p in (lo, hi):
            k_at, _, _ = _respond(levels, b, p)
            attained = total - levels[k_at - 1].demand >= left
        if best is None or value > best[0] * (1.0 + _TIE):
            best = (value, p, k, attained)
    if best is None:  # unreachable when the shut-out test said A keeps something, kept as a guard
        return _shut_out_market(tasks)
    value, price, k, attained = best
    won = sorted(t for level in levels[:k] for t in level.members)
    kept = sorted(t for level in levels[k:] for t in level.members)
    return Market(
        region=region,
        max_price=top,
        price=price,
        attained=attained,
        revenue=value,
        first_mover_tasks=tuple(kept),
        latecomer_tasks=tuple(won),
        latecomer_price=min(1.0 / b, levels[k - 1].kappa * price),
    )
