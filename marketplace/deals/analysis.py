"""The economics tools as the site's pages use them: validated numbers in, plain data (and curves to plot) out.

Every error of the pure package (``EconomicsError``) and every arithmetic failure on extreme input becomes an
``AppError`` with a message a person can act on, so no input reaches a page as a 500.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from economics import EconomicsError, bargaining, contracts, pricing
from marketplace.core.errors import AppError

MAX_PRICING_TASKS = 8
# Enough points for a smooth curve in a 640-pixel chart.
CURVE_POINTS = 121

SOLUTION_LABELS = {
    "joint_surplus": "Joint surplus",
    "nash": "Nash",
    "egalitarian": "Egalitarian",
    "kalai_smorodinsky": "Kalai–Smorodinsky",
    "max_performance": "Max performance",
}


def _app_error(exc: Exception) -> AppError:
    if isinstance(exc, EconomicsError):
        return AppError(str(exc), code="economics")
    return AppError("These numbers are too extreme to compute with; try values closer to 1.", code="economics")


# --------------------------------------------------------------------------------------------- launch pricing


@dataclass(frozen=True)
class PricingAnalysis:
    demand_slope: float
    tasks: list[dict]  # index, demand_scale, relative_performance, winner ("first mover" / "latecomer")
    region: str
    max_price: float | None
    price: float | None
    attained: bool
    revenue: float
    latecomer_price: float | None
    monopoly_price: float
    two_tasks: dict | None  # the two-task regions: region, bound, best price
    curve: list[tuple[float, float]] = field(default_factory=list)  # (first mover's price, its revenue)


def pricing_analyse(*, demand_slope: float, demand_scales: list[float], relative_performances: list[float]) -> PricingAnalysis:
    """The first mover's best price against a best-responding latecomer, what each wins there, and A's revenue
    as a function of its price (B best-responding at each point) for the plot."""
    if len(demand_scales) > MAX_PRICING_TASKS:
        raise AppError(f"At most {MAX_PRICING_TASKS} tasks.", code="economics")
    try:
        tasks = pricing.make_tasks(demand_scales, relative_performances)
        market = pricing.first_mover_market(tasks, demand_slope=demand_slope)
        two = None
        if len(tasks) == 2:
            m2 = pricing.two_task_market(tasks, demand_slope=demand_slope)
            two = {"region": m2.region, "max_price": m2.max_price, "price": m2.price, "attained": m2.attained}
        monopoly = 1.0 / demand_slope
        top = max(monopoly, market.max_price or 0.0) * 1.25
        curve = []
        for i in range(1, CURVE_POINTS + 1):
            p = top * i / CURVE_POINTS
            curve.append((p, pricing.first_mover_revenue(tasks, demand_slope=demand_slope, price=p)))
    except (EconomicsError, ArithmeticError, ValueError) as exc:
        raise _app_error(exc) from exc
    if not all(math.isfinite(v) for point in curve for v in point):
        raise _app_error(OverflowError())
    first = set(market.first_mover_tasks)
    rows = [
        {
            "index": t,
            "demand_scale": task.demand_scale,
            "relative_performance": task.relative_performance,
            "winner": "first mover" if t in first else "latecomer",
        }
        for t, task in enumerate(tasks)
    ]
    return PricingAnalysis(
        demand_slope=demand_slope,
        tasks=rows,
        region=market.region,
        max_price=market.max_price,
        price=market.price,
        attained=market.attained,
        revenue=market.revenue,
        latecomer_price=market.latecomer_price,
        monopoly_price=monopoly,
        two_tasks=two,
        curve=curve,
    )


# --------------------------------------------------------------------------------------------- contracts


@dataclass(frozen=True)
class ContractResult:
    payments: list[float]
    payments_cents: list[int]
    expected_payment: float
    max_payment: float
    binding: list[str]
    robustness_bound: float | None


def contract_design(
    *, names: list[str], costs: list[float], distributions: list[list[float]], objective: str, monotone: bool, robust: bool
) -> ContractResult:
    """The cheapest contract making the last generator the provider's best response (``economics.contracts``).
    Payments are in currency units; ``payments_cents`` rounds each down to minor units (money is integer cents)."""
    try:
        actions = contracts.make_actions(names, costs, distributions)
        contract = contracts.design_contract(actions, objective=objective, monotone=monotone, robust=robust)
        bound = None
        if len(actions) > 1 and all(a.cost < actions[-1].cost for a in actions[:-1]):
            bound = contracts.price_of_robustness_bound(actions)
    except (EconomicsError, ArithmeticError, ValueError) as exc:
        raise _app_error(exc) from exc
    payments = [float(x) for x in contract.payments]
    if not all(math.isfinite(x) and x < 1e12 for x in payments):
        raise _app_error(OverflowError())
    return ContractResult(
        payments=payments,
        payments_cents=[int(math.floor(x * 100 + 1e-9)) for x in payments],
        expected_payment=float(contract.expected_payment),
        max_payment=float(contract.max_payment),
        binding=list(contract.binding),
        robustness_bound=bound,
    )


def distribution_from_values(values: list[float], edges: list[float]) -> list[float]:
    """The share of ``values`` in each bin [edges[j], edges[j+1]) (the last bin closed)."""
    counts = [0] * (len(edges) - 1)
    for v in values:
        j = len(counts) - 1
        for k in range(len(counts)):
            if v < edges[k + 1]:
                j = k
                break
        counts[max(j, 0)] += 1
    total = sum(counts)
    return [c / total for c in counts] if total else []


# --------------------------------------------------------------------------------------------- bargaining


@dataclass(frozen=True)
class BargainAnalysis:
    c0: float
    c1: float
    r: float
    pareto: tuple[float, float]
    solutions: list[dict]  # key, label, delta, alpha0, alpha1, u_generalist, u_specialist
    curves: dict[str, list[tuple[float, float]]]  # alpha0, alpha1, u_generalist, u_specialist over delta
    proposed: dict | None  # the proposed share's equilibrium and whether it is Pareto-efficient


def bargain_analyse(*, c0: float, c1: float, r: float, proposed: float | None = None) -> BargainAnalysis:
    """Quadratic costs c0 α0² (platform), c1 (α1 − α0)² (group), revenue r α1: the Pareto interval, each bargaining
    solution, and the equilibrium over a grid of shares for the charts (``economics.bargaining`` closed forms)."""
    try:
        result = bargaining.quadratic_bargain(c0=c0, c1=c1, r=r)
        curves: dict[str, list[tuple[float, float]]] = {k: [] for k in ("alpha0", "alpha1", "u_generalist", "u_specialist")}
        for i in range(CURVE_POINTS):
            d = i / (CURVE_POINTS - 1)
            o = bargaining.quadratic_outcome(c0=c0, c1=c1, delta=d, r=r)
            for key in curves:
                curves[key].append((d, float(getattr(o, key))))
        offer = None
        if proposed is not None:
            o = bargaining.quadratic_outcome(c0=c0, c1=c1, delta=proposed, r=r)
            lo, hi = result.pareto
            offer = {
                "delta": proposed,
                "alpha0": o.alpha0,
                "alpha1": o.alpha1,
                "u_generalist": o.u_generalist,
                "u_specialist": o.u_specialist,
                "efficient": lo - 1e-12 <= proposed <= hi + 1e-12,
                "nearest": min(max(proposed, lo), hi),
            }
    except (EconomicsError, ArithmeticError, ValueError) as exc:
        raise _app_error(exc) from exc
    values = [v for series in curves.values() for _, v in series]
    if not all(math.isfinite(v) for v in values):
        raise _app_error(OverflowError())
    solutions = [
        {
            "key": key,
            "label": SOLUTION_LABELS.get(key, key),
            "delta": o.delta,
            "alpha0": o.alpha0,
            "alpha1": o.alpha1,
            "u_generalist": o.u_generalist,
            "u_specialist": o.u_specialist,
        }
        for key, o in result.solutions.items()
    ]
    return BargainAnalysis(c0=c0, c1=c1, r=r, pareto=result.pareto, solutions=solutions, curves=curves, proposed=offer)
