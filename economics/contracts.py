"""Pay-for-performance contracts (Saig, Einav, Talgam-Cohen, "Incentivizing Quality Text Generation via
Statistical Contracts", NeurIPS 2024).

A provider privately picks an action (a generator) i = 1..n with cost c_i; action i yields outcome j (say a
judge's score) with probability F_i(j), j = 1..m. The buyer commits to a contract t ∈ R^m, paying t_j when it sees
outcome j, and wants the last action n (the target) to be a best response:

    Σ_j F_n(j) t_j - c_n  >=  Σ_j F_i(j) t_j - c_i        for every i < n               (IC_i)

Assumptions: limited liability (t >= 0: the provider is never charged) and no participation constraint (the
provider's expected utility E_Fn[t] - c_n is reported, not constrained). Adding a constant to every t_j changes
no IC, so among contracts with the same incentives the cheapest has min_j t_j = 0; every optimum of the LPs below
already has it (shifting down would lower either objective), and the returned payments are shifted so that the
smallest is exactly 0, which removes the solver's rounding.

The cost-robust variant (the buyer knows only Δ = c_n - c_1, an upper bound on every c_n - c_i when action 1 is
the cheapest) asks Σ_j (F_n(j) - F_i(j)) t_j >= Δ for every i < n.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import linprog

from economics.errors import EconomicsError

__all__ = [
    "OBJECTIVES",
    "Action",
    "Contract",
    "design_contract",
    "incentive_slack",
    "make_actions",
    "price_of_robustness_bound",
    "threshold_contract",
]

OBJECTIVES = ("min_pay", "min_budget")

# Distributions must sum to 1 within this (the inputs are often rounded frequencies).
_SUM_TOL = 1e-6
# The second, tie-breaking LP may lose this much (relative) of the first one's optimum: any more and it trades
# visible dust in the payments for a sliver of the other objective.
_LEXICOGRAPHIC_SLACK = 1e-12
# Payments this small relative to the largest are LP rounding.
_DUST = 1e-9
# An incentive constraint whose slack is below this (relative to the payment scale) binds.
_BINDING = 1e-7


@dataclass(frozen=True, eq=False)
class Action:
    """One generator the provider may use: its cost and its outcome distribution."""

    name: str
    cost: float
    distribution: np.ndarray  # (m,), non-negative, sums to 1


@dataclass(frozen=True, eq=False)
class Contract:
    """A contract that makes the target (last) action a best response."""

    payments: np.ndarray  # (m,), min 0
    expected_payment: float  # E_{F_n}[t]
    max_payment: float  # max_j t_j, the budget
    objective: str
    monotone: bool
    robust: bool
    cost_gap: float | None  # Δ when robust
    incentive_duals: np.ndarray | None  # (n-1,) shadow price of each IC_i in the objective's LP (None: closed form)
    binding: tuple[str, ...]  # names of the actions whose IC holds with equality
    threshold: int | None = None  # for threshold contracts: pay from this outcome index (0-based) up


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise EconomicsError(f"{name}: expected a number, got {value!r}")
    result = float(value)
    if not math.isfinite(result):
        raise EconomicsError(f"{name}: {value!r} is not a finite number")
    return result


def make_actions(
    names: Sequence[str], costs: Sequence[float], distributions: Sequence[Sequence[float]]
) -> tuple[Action, ...]:
    """Validate and build the actions (the last one is the target)."""
    if not len(names) == len(costs) == len(distributions):
        raise EconomicsError(f"actions: {len(names)} names, {len(costs)} costs and {len(distributions)} distributions")
    if not names:
        raise EconomicsError("actions: at least one action is required")
    seen: set[str] = set()
    actions = []
    m = None
    for i, (name, cost, dist) in enumerate(zip(names, costs, distributions, strict=True)):
        where = f"actions[{i}]"
        if not isinstance(name, str) or not name:
            raise EconomicsError(f"{where}.name: expected a non-empty string, got {name!r}")
        if name in seen:
            raise EconomicsError(f"action {name!r}: the name appears twice")
        seen.add(name)
        c = _number(cost, f"action {name!r}: cost")
        if not isinstance(dist, Sequence | np.ndarray) or isinstance(dist, str):
            raise EconomicsError(f"action {name!r}: distribution: expected a list of numbers")
        probs = np.array([_number(p, f"action {name!r}: distribution[{j}]") for j, p in enumerate(dist)])
        if probs.size == 0:
            raise EconomicsError(f"action {name!r}: distribution: at least one outcome is required")
        if m is None:
            m = probs.size
        elif probs.size != m:
            raise EconomicsError(f"action {name!r}: distribution has {probs.size} outcomes, the first action has {m}")
        negative = np.flatnonzero(probs < 0)
        if negative.size:
            j = int(negative[0])
            raise EconomicsError(f"action {name!r}: distribution[{j}] = {float(probs[j])!r} must be >= 0")
        total = float(probs.sum())
        if abs(total - 1.0) > _SUM_TOL:
            raise EconomicsError(f"action {name!r}: distribution sums to {total!r}, not 1")
        probs = probs / total
        probs.setflags(write=False)
        actions.append(Action(name=name, cost=c, distribution=probs))
    return tuple(actions)


def _robust_gap(actions: Sequence[Action], cost_gap: float | None) -> float:
    if cost_gap is not None:
        gap = _number(cost_gap, "cost_gap")
        if gap < 0:
            raise EconomicsError(f"cost_gap: {gap!r} must be >= 0")
        return gap
    cheapest = min(a.cost for a in actions)
    if actions[0].cost > cheapest:
        # Δ = c_n - c_1 bounds every c_n - c_i only when action 1 is the cheapest.
        raise EconomicsError(
            f"action {actions[0].name!r}: a robust contract takes Δ = c_n - c_1, so the first action must be "
            f"the cheapest (cost {actions[0].cost!r} > {cheapest!r})"
        )
    return max(actions[-1].cost - actions[0].cost, 0.0)


def _incentives(actions: Sequence[Action], robust: bool, gap: float) -> tuple[np.ndarray, np.ndarray]:
    """IC_i as rows D[i] · t >= g[i]: D[i] = F_n - F_i, g[i] = c_n - c_i (or Δ when robust)."""
    target = actions[-1]
    others = actions[:-1]
    m = target.distribution.size
    rows = np.array([target.distribution - a.distribution for a in others]).reshape(len(others), m)
    rhs = np.full(len(others), gap) if robust else np.array([target.cost - a.cost for a in others])
    return rows, rhs


def incentive_slack(actions: Sequence[Action], payments: Sequence[float] | np.ndarray) -> np.ndarray:
    """(F_n - F_i) · t - (c_n - c_i) for each i < n: how much more the target earns the provider than action i."""
    t = np.asarray(payments, dtype=np.float64)
    rows, rhs = _incentives(actions, robust=False, gap=0.0)
    return rows @ t - rhs


def _solve_lp(cost: np.ndarray, a_ub: np.ndarray, b_ub: np.ndarray) -> Any:
    return linprog(
        cost,
        A_ub=a_ub,
        b_ub=b_ub,
        bounds=[(0, None)] * cost.size,
        method="highs",
        # HiGHS's default 1e-7 feasibility tolerance leaves visible dust in the payments and the ICs.
        options={"primal_feasibility_tolerance": 1e-10, "dual_feasibility_tolerance": 1e-10},
    )


def _infeasible(actions: Sequence[Action], monotone: bool, robust: bool, gap: float | None) -> EconomicsError:
    target = actions[-1]
    kind = ("monotone " if monotone else "") + ("cost-robust " if robust else "")
    reason = ""
    for a in actions[:-1]:
        needed = gap if robust else target.cost - a.cost
        if needed is not None and needed > 0 and np.allclose(a.distribution, target.distribution, atol=1e-12):
            reason = f" (action {a.name!r} has the same outcome distribution at a lower cost)"
            break
    return EconomicsError(
        f"action {target.name!r}: no {kind}contract with payments >= 0 makes the target a best response{reason}"
    )


def design_contract(
    actions: Sequence[Action],
    *,
    objective: str = "min_pay",
    monotone: bool = False,
    robust: bool = False,
    cost_gap: float | None = None,
) -> Contract:
    """The optimal contract for the target (last) action, by linear programming (HiGHS).

    1. Incentive rows D t >= g (see :func:`_incentives`); with ``robust`` every right-hand side is Δ (``cost_gap``,
       default c_n - c_1). ``monotone`` adds t_j <= t_{j+1}. Limited liability is the bound t >= 0.
    2. ``min_pay`` minimises E_{F_n}[t]; ``min_budget`` adds a variable B with t_j <= B and minimises B.
    3. Both LPs can have many optima, so a second LP breaks ties: among contracts within 1e-12 of the optimum it
       minimises the other objective (budget for min_pay, expected pay for min_budget). The result is then a
       deterministic function of the instance.
    4. The IC shadow prices come from the first LP (complementary slackness holds for every optimum, so they
       certify the returned contract too); payments are shifted so that the smallest is 0.

    Raises :class:`EconomicsError` when no contract implements the target (the LP is infeasible).
    """
    actions = tuple(actions)
    if not actions:
        raise EconomicsError("actions: at least one action is required")
    if objective not in OBJECTIVES:
        raise EconomicsError(f"objective: {objective!r} must be one of {', '.join(OBJECTIVES)}")
    gap = _robust_gap(actions, cost_gap) if robust else None
    rows, rhs = _incentives(actions, robust, gap or 0.0)
    n_ic, m = rows.shape
    pay = actions[-1].distribution
    # Variables: t (m) and the budget B (1). Constraints, all as A x <= b:
    blocks = [np.hstack([-rows, np.zeros((n_ic, 1))])]  # -D t <= -g
    bounds = [-rhs]
    if monotone and m > 1:
        step = np.zeros((m - 1, m + 1))
        step[np.arange(m - 1), np.arange(m - 1)] = 1.0
        step[np.arange(m - 1), np.arange(1, m)] = -1.0  # t_j - t_{j+1} <= 0
        blocks.append(step)
        bounds.append(np.zeros(m - 1))
    cap = np.hstack([np.eye(m), -np.ones((m, 1))])  # t_j - B <= 0
    blocks.append(cap)
    bounds.append(np.zeros(m))
    a_ub, b_ub = np.vstack(blocks), np.concatenate(bounds)
    expected = np.append(pay, 0.0)
    budget = np.append(np.zeros(m), 1.0)
    primary, secondary = (expected, budget) if objective == "min_pay" else (budget, expected)

    first = _solve_lp(primary, a_ub, b_ub)
    if first.status == 2:
        raise _infeasible(actions, monotone, robust, gap)
    if first.status != 0:
        raise EconomicsError(f"action {actions[-1].name!r}: the contract LP failed ({first.message})")
    best = float(first.fun)
    limit = best + _LEXICOGRAPHIC_SLACK * max(abs(best), 1.0)
    second = _solve_lp(secondary, np.vstack([a_ub, primary]), np.append(b_ub, limit))
    x = second.x if second.status == 0 else first.x
    t = np.asarray(x[:m], dtype=np.float64)
    t = np.maximum(t - t.min(), 0.0)
    # Solver rounding: clear dust next to 0 and tiny dips in a monotone contract (both far below any payment).
    t[t <= _DUST * max(float(t.max()), 1.0)] = 0.0
    if monotone:
        t = np.maximum.accumulate(t)
    duals = -np.asarray(first.ineqlin.marginals[:n_ic], dtype=np.float64)  # HiGHS reports <= rows' duals <= 0
    return _contract(actions, t, objective, monotone, robust, gap, duals)


def _contract(
    actions: Sequence[Action],
    t: np.ndarray,
    objective: str,
    monotone: bool,
    robust: bool,
    gap: float | None,
    duals: np.ndarray | None,
    threshold: int | None = None,
) -> Contract:
    rows, rhs = _incentives(actions, robust, gap or 0.0)
    slack = rows @ t - rhs
    scale = max(1.0, float(t.max()) if t.size else 1.0)
    binding = tuple(a.name for a, s in zip(actions[:-1], slack, strict=True) if abs(s) <= _BINDING * scale)
    t.setflags(write=False)
    if duals is not None:
        duals.setflags(write=False)
    return Contract(
        payments=t,
        expected_payment=float(actions[-1].distribution @ t),
        max_payment=float(t.max()),
        objective=objective,
        monotone=monotone,
        robust=robust,
        cost_gap=gap,
        incentive_duals=duals,
        binding=binding,
        threshold=threshold,
    )


def threshold_contract(
    actions: Sequence[Action], *, objective: str = "min_pay", robust: bool = False, cost_gap: float | None = None
) -> Contract:
    """The best contract of the form "pay T for any outcome >= k" (closed form; monotone by construction).

    1. For a threshold k let S_i(k) = P_{F_i}(outcome >= k). IC_i reads T (S_n(k) - S_i(k)) >= g_i.
    2. Rows with S_n(k) > S_i(k) need T >= g_i / (S_n(k) - S_i(k)); rows with S_n(k) < S_i(k) need
       T <= g_i / (S_n(k) - S_i(k)), possible only when g_i <= 0; rows with equality need g_i <= 0.
    3. The smallest feasible T is T_k = max(0, the largest lower bound), if it is below every upper bound.
    4. Pick k minimising T_k S_n(k) (min_pay) or T_k (min_budget); ties go to the lower k.
    Raises :class:`EconomicsError` when no threshold works.
    """
    actions = tuple(actions)
    if objective not in OBJECTIVES:
        raise EconomicsError(f"objective: {objective!r} must be one of {', '.join(OBJECTIVES)}")
    gap = _robust_gap(actions, cost_gap) if robust else None
    _, rhs = _incentives(actions, robust, gap or 0.0)
    tails = np.array([np.cumsum(a.distribution[::-1])[::-1] for a in actions])  # S_i(k), k = 0..m-1
    m = tails.shape[1]
    best: tuple[float, int, float] | None = None
    for k in range(m):
        diff = tails[-1, k] - tails[:-1, k]
        lower, upper, ok = 0.0, math.inf, True
        for d, g in zip(diff, rhs, strict=True):
            if d > 1e-15:
                lower = max(lower, g / d)
            elif d < -1e-15:
                upper = min(upper, g / d) if g <= 0 else -math.inf
            elif g > 0:
                ok = False
        if not ok or lower > upper:
            continue
        value = lower * tails[-1, k] if objective == "min_pay" else lower
        if best is None or value < best[0] - 1e-15:
            best = (value, k, lower)
    if best is None:
        raise EconomicsError(
            f"action {actions[-1].name!r}: no threshold contract with payments >= 0 makes the target a best response"
        )
    _, k, level = best
    t = np.zeros(m)
    t[k:] = level
    return _contract(actions, t, objective, True, robust, gap, None, threshold=k)


def price_of_robustness_bound(actions: Sequence[Action]) -> float:
    """ρ = (c_n - c_1) / min_{i<n} (c_n - c_i): a robust contract costs at most ρ times the cost-aware one.

    Why: scaling a cost-aware optimum t by ρ meets every robust row, since
    (F_n - F_i)·(ρ t) >= ρ (c_n - c_i) >= c_n - c_1, and scaling keeps t >= 0 and monotonicity; both objectives
    scale with t. The converse, robust >= aware, holds because Δ >= c_n - c_i makes every robust row imply the
    aware one. Needs the target to be strictly the most expensive action (else ρ is infinite).
    """
    actions = tuple(actions)
    gaps = [actions[-1].cost - a.cost for a in actions[:-1]]
    if not gaps:
        return 1.0
    if min(gaps) <= 0:
        return math.inf
    return max(actions[-1].cost - actions[0].cost, 0.0) / min(gaps)
