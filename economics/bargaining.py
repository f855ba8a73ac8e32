"""Bargaining over fine-tuning (Laufer, Kleinberg, Heidari, "Fine-Tuning Games", 2024).

A generalist G trains a model to performance α0 at cost φ0(α0); a specialist D fine-tunes it to α1 >= α0 at
cost φ1(α1; α0) and sells it for revenue r(α1). Before anyone invests they agree on a share δ ∈ [0, 1] of the
revenue for G (1 - δ for D). Then G picks α0, then D picks α1 (or abstains: no product, no revenue):

    U_G = δ r(α1) - φ0(α0),        U_D = (1 - δ) r(α1) - φ1(α1; α0)

Each δ has a subgame-perfect equilibrium (backward induction: D's best response α1(α0, δ), then G's α0), so each
δ gives one utility pair; the bargaining solutions pick a δ. Two solvers:

* closed forms for the quadratic family φ0 = c0 α0², φ1 = c1 (α1 - α0)², r(α1) = r α1
  (:func:`quadratic_outcome`, :func:`quadratic_bargain`, :func:`quadratic_shared_outcome`);
* a numeric solver for any cost and revenue callables (:class:`Game`, :func:`equilibrium`, :func:`bargain`,
  :func:`shared_equilibrium`), which the tests hold to the closed forms.

The derivations are in ``docs/economics.md``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.polynomial import Polynomial
from scipy.optimize import brentq, minimize_scalar

from economics.errors import EconomicsError

__all__ = [
    "SOLUTIONS",
    "Bargain",
    "Game",
    "Outcome",
    "SharedOutcome",
    "Specialist",
    "bargain",
    "equilibrium",
    "quadratic_bargain",
    "quadratic_game",
    "quadratic_outcome",
    "quadratic_pareto",
    "quadratic_shared_outcome",
    "shared_equilibrium",
]

SOLUTIONS = ("joint_surplus", "nash", "egalitarian", "kalai_smorodinsky", "max_performance")

# What a specialist does in equilibrium: fine-tunes (α1 > α0), sells the generalist's model as is (α1 = α0),
# or stays out of the market.
CONTRIBUTES = "contributes"
FREE_RIDES = "free_rides"
ABSTAINS = "abstains"

# Bounded Brent stops once the bracket is about sqrt(eps)|x| + xatol/3 wide; a tiny xatol makes the relative term
# the limit, which is the best a comparison of function values can do.
_XATOL = 1e-13
# Root finding on the bargaining curve (egalitarian, Kalai-Smorodinsky) is limited by float rounding only.
_XTOL = 1e-15
# The polishing parabolas' half-width, relative to the bracket (two grid spacings): small enough that the
# extrapolated vertex's O(h⁴) bias is negligible on smooth problems, large enough that rounding in the function
# values (which grows by a factor 1 / h at each level of nesting) stays far below 1e-6 at the outer level.
_POLISH_STEP = 0.05
# A polished vertex may look worse than Brent's point by this much (relative): nested evaluations carry
# ~1e-14 of noise, a vertex that is really worse loses far more.
_POLISH_TIE = 1e-12
# Relative differences below this between two candidate maxima are taken as rounding in nested evaluations.
_TIE = 1e-10


@dataclass(frozen=True)
class Outcome:
    """The equilibrium for one share δ: investments, performance and both utilities."""

    delta: float
    alpha0: float
    alpha1: float  # α0 when the specialist abstains (nothing is built on the base model)
    u_generalist: float
    u_specialist: float
    strategy: str = CONTRIBUTES  # CONTRIBUTES, FREE_RIDES or ABSTAINS


@dataclass(frozen=True)
class Bargain:
    """The Pareto interval of shares and the δ (with its equilibrium) each bargaining solution picks."""

    pareto: tuple[float, float]
    solutions: dict[str, Outcome]  # one per name in SOLUTIONS


@dataclass(frozen=True)
class SharedOutcome:
    """The equilibrium of one generalist and several specialists, specialist j keeping 1 - δ_j of its revenue."""

    deltas: tuple[float, ...]
    alpha0: float
    alpha1: tuple[float, ...]
    u_generalist: float
    u_specialists: tuple[float, ...]
    strategies: tuple[str, ...]


# --------------------------------------------------------------------------------------------- validation


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
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


def _share(value: Any, name: str) -> float:
    result = _number(value, name)
    if not 0.0 <= result <= 1.0:
        raise EconomicsError(f"{name}: {result!r} must be in [0, 1]")
    return result


# --------------------------------------------------------------------------------------------- closed forms
#
# With φ0 = c0 α0², φ1 = c1 (α1 - α0)², r(α1) = r α1:
#   D: max (1-δ) r α1 - c1 (α1-α0)²           ->  α1 = α0 + (1-δ) r / (2 c1)
#   G: max δ r α1(α0) - c0 α0²  (dα1/dα0 = 1)  ->  α0 = δ r / (2 c0)
# and, writing x = δ and k = r² / (4 c0 c1),
#   U_G = k g(x),  g(x) = 2 c0 x + (c1 - 2 c0) x²
#   U_D = k d(x),  d(x) = c0 + 2 (c1 - c0) x - (2 c1 - c0) x²
# Both are polynomials in δ, so every solution below is a root of a polynomial of degree <= 3.


def _g(c0: float, c1: float) -> Polynomial:
    return Polynomial([0.0, 2.0 * c0, c1 - 2.0 * c0])


def _d(c0: float, c1: float) -> Polynomial:
    return Polynomial([c0, 2.0 * (c1 - c0), -(2.0 * c1 - c0)])


def quadratic_outcome(*, c0: float, c1: float, delta: float, r: float = 1.0) -> Outcome:
    """The equilibrium for share ``delta`` under quadratic costs and linear revenue (closed form)."""
    c0, c1, r = _positive(c0, "c0"), _positive(c1, "c1"), _positive(r, "r")
    delta = _share(delta, "delta")
    alpha0 = delta * r / (2.0 * c0)
    step = (1.0 - delta) * r / (2.0 * c1)
    alpha1 = alpha0 + step
    # D's utility (1-δ) r α0 + (1-δ)² r² / (4 c1) is never negative, so D never abstains here.
    return Outcome(
        delta=delta,
        alpha0=alpha0,
        alpha1=alpha1,
        u_generalist=delta * r * alpha1 - c0 * alpha0**2,
        u_specialist=(1.0 - delta) * r * alpha1 - c1 * step**2,
        strategy=CONTRIBUTES if step > 0 else FREE_RIDES,
    )


def quadratic_pareto(*, c0: float, c1: float) -> tuple[float, float]:
    """The Pareto interval [δ_D, δ_G] of shares: δ_D maximises D's utility, δ_G maximises G's.

    U_G is increasing up to δ_G and U_D decreasing from δ_D, so every δ outside the interval is dominated by its
    nearer end and every δ inside trades one player's utility for the other's. Solving g'(δ) = 0 and d'(δ) = 0:
    δ_D = (c1 - c0) / (2 c1 - c0) when c1 > c0 (else 0), δ_G = c0 / (2 c0 - c1) when c1 < c0 (else 1).
    """
    c0, c1 = _positive(c0, "c0"), _positive(c1, "c1")
    lo = (c1 - c0) / (2.0 * c1 - c0) if c1 > c0 else 0.0
    hi = c0 / (2.0 * c0 - c1) if c1 < c0 else 1.0
    return lo, hi


def _root_in(poly: Polynomial, lo: float, hi: float) -> float:
    """The point of [lo, hi] where ``poly`` is nearest 0: its root there when it has one.

    Callers pass a polynomial that is monotone on [lo, hi], so the root is unique; when it lies outside, the
    nearer end is the answer (the solution is clipped to the Pareto set).
    """
    candidates = [lo, hi]
    for root in (complex(z) for z in poly.roots()):
        if abs(root.imag) <= 1e-9 * max(1.0, abs(root.real)) and lo - 1e-9 <= root.real <= hi + 1e-9:
            candidates.append(min(max(float(root.real), lo), hi))
    best = min(candidates, key=lambda x: abs(poly(x)))
    return _polish(poly, best, lo, hi)


def _polish(poly: Polynomial, x: float, lo: float, hi: float) -> float:
    # Eigenvalue-based roots are good to ~1e-15 relative on these low degrees; two Newton steps make sure.
    slope = poly.deriv()
    for _ in range(2):
        s = slope(x)
        if s == 0 or poly(x) == 0:
            break
        step = x - poly(x) / s
        if not lo <= step <= hi:
            break
        x = float(step)
    return x


def _argmax_poly(poly: Polynomial, lo: float, hi: float) -> float:
    """Exact maximiser of a polynomial on [lo, hi]: the best of the ends and the real critical points inside."""
    slope = poly.deriv()
    candidates = [lo, hi]
    for root in (complex(z) for z in slope.roots()):
        if abs(root.imag) <= 1e-9 * max(1.0, abs(root.real)) and lo <= root.real <= hi:
            candidates.append(_polish(slope, float(root.real), lo, hi))
    return max(candidates, key=lambda x: float(poly(x)))


def quadratic_bargain(*, c0: float, c1: float, r: float = 1.0) -> Bargain:
    """Every bargaining solution of the quadratic game, in closed form.

    1. Pareto interval [lo, hi] = [δ_D, δ_G] (:func:`quadratic_pareto`).
    2. Joint surplus: g + d has slope 2 c0 - 2 (c0 + c1) δ, so δ = c1 / (c0 + c1).
    3. Nash: the maximiser of the quartic g·d on [lo, hi], a root of its cubic derivative (or an end).
    4. Egalitarian: on [lo, hi] U_G rises and U_D falls, so max min(U_G, U_D) is where they cross,
       3 (c1 - c0) δ² + (4 c0 - 2 c1) δ - c0 = 0 (one root in (0, 1): the sides are -c0 and c1), clipped.
    5. Kalai-Smorodinsky: disagreement (0, 0), ideal point (U_G(hi), U_D(lo)); the δ in [lo, hi] with
       U_G / U_G(hi) = U_D / U_D(lo), the root of the quadratic g(δ) d(lo) - d(δ) g(hi).
    6. Max performance: α1 = r (δ / (2 c0) + (1 - δ) / (2 c1)) is linear in δ: δ = 1 when c0 < c1, 0 when
       c0 > c1; when c0 = c1 every δ gives the same α1 and the joint-surplus δ (1/2) is taken.

    δ does not depend on r; investments scale with r and utilities with r².
    """
    c0, c1, r = _positive(c0, "c0"), _positive(c1, "c1"), _positive(r, "r")
    lo, hi = quadratic_pareto(c0=c0, c1=c1)
    g, d = _g(c0, c1), _d(c0, c1)
    joint = c1 / (c0 + c1)
    if c0 < c1:
        fastest = 1.0
    elif c0 > c1:
        fastest = 0.0
    else:
        fastest = joint
    deltas = {
        "joint_surplus": joint,
        "nash": _argmax_poly(g * d, lo, hi),
        "egalitarian": _root_in(g - d, lo, hi),
        "kalai_smorodinsky": _root_in(g * float(d(lo)) - d * float(g(hi)), lo, hi),
        "max_performance": fastest,
    }
    solutions = {name: quadratic_outcome(c0=c0, c1=c1, delta=x, r=r) for name, x in deltas.items()}
    return Bargain(pareto=(lo, hi), solutions=solutions)


def quadratic_shared_outcome(
    *, c0: float, specialists: Sequence[tuple[float, float]], deltas: Sequence[float]
) -> SharedOutcome:
    """One generalist, several specialists ``(c1_j, r_j)`` with shares ``deltas`` (closed form).

    Each D_j best-responds as in the one-specialist game, α1_j = α0 + (1 - δ_j) r_j / (2 c1_j), and G's revenue
    Σ_j δ_j r_j α1_j has slope Σ_j δ_j r_j in α0, so α0 = Σ_j δ_j r_j / (2 c0): every share funds the common base.
    A specialist with δ_j = 0 pays nothing towards it and still gains from it.
    """
    c0 = _positive(c0, "c0")
    if len(specialists) == 0:
        raise EconomicsError("specialists: at least one specialist is required")
    if len(deltas) != len(specialists):
        raise EconomicsError(f"deltas: expected one share per specialist ({len(specialists)}), got {len(deltas)}")
    c1s = [_positive(c, f"specialists[{j}].c1") for j, (c, _) in enumerate(specialists)]
    rs = [_positive(r, f"specialists[{j}].r") for j, (_, r) in enumerate(specialists)]
    ds = [_share(x, f"deltas[{j}]") for j, x in enumerate(deltas)]
    alpha0 = sum(x * r for x, r in zip(ds, rs, strict=True)) / (2.0 * c0)
    steps = [(1.0 - x) * r / (2.0 * c) for x, r, c in zip(ds, rs, c1s, strict=True)]
    alpha1 = tuple(alpha0 + s for s in steps)
    u_g = sum(x * r * a for x, r, a in zip(ds, rs, alpha1, strict=True)) - c0 * alpha0**2
    u_d = tuple((1.0 - x) * r * a - c * s**2 for x, r, a, c, s in zip(ds, rs, alpha1, c1s, steps, strict=True))
    return SharedOutcome(
        deltas=tuple(ds),
        alpha0=alpha0,
        alpha1=alpha1,
        u_generalist=u_g,
        u_specialists=u_d,
        strategies=tuple(CONTRIBUTES if s > 0 else FREE_RIDES for s in steps),
    )


# --------------------------------------------------------------------------------------------- numeric solver

Cost0 = Callable[[Any], Any]  # φ0(α0)
Cost1 = Callable[[Any, Any], Any]  # φ1(α1, α0)
Revenue = Callable[[Any], Any]  # r(α1)


@dataclass(frozen=True)
class Specialist:
    """One specialist: its fine-tuning cost φ1(α1, α0) and its revenue r(α1).

    Callables may take numpy arrays elementwise (much faster: grids are evaluated in one call) or floats only.
    """

    cost: Cost1
    revenue: Revenue


@dataclass(frozen=True)
class Game:
    """A fine-tuning game with arbitrary costs and revenues; performance is searched on [0, alpha_max].

    ``grid`` points per dimension seed each bounded maximisation, so a local optimum is only taken when it is
    the best point of the grid's neighbourhood.
    """

    generalist_cost: Cost0
    specialists: tuple[Specialist, ...]
    alpha_max: float
    grid: int = 33
    _unit: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.specialists:
            raise EconomicsError("specialists: at least one specialist is required")
        _positive(self.alpha_max, "alpha_max")
        if isinstance(self.grid, bool) or not isinstance(self.grid, int) or self.grid < 3:
            raise EconomicsError(f"grid: {self.grid!r} must be an integer >= 3")
        object.__setattr__(self, "_unit", np.linspace(0.0, 1.0, self.grid))


def quadratic_game(*, c0: float, c1: float, r: float = 1.0, alpha_max: float | None = None, grid: int = 33) -> Game:
    """The quadratic family as callables, for the numeric solver (α1 never exceeds r / (2 min(c0, c1)))."""
    c0, c1, r = _positive(c0, "c0"), _positive(c1, "c1"), _positive(r, "r")
    top = r / min(c0, c1) if alpha_max is None else alpha_max
    return Game(
        generalist_cost=lambda a0: c0 * np.square(a0),
        specialists=(Specialist(cost=lambda a1, a0: c1 * np.square(a1 - a0), revenue=lambda a1: r * a1),),
        alpha_max=top,
        grid=grid,
    )


def _evaluate(f: Callable[..., Any], what: str, *args: Any) -> np.ndarray:
    """``f`` elementwise over broadcast arrays: one vectorised call, or a loop for float-only callables."""
    arrays = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64) for a in args))
    shape = arrays[0].shape
    try:
        out = np.asarray(f(*arrays), dtype=np.float64)
        if out.shape != shape:
            out = np.broadcast_to(out, shape)  # a constant, say; anything else raises ValueError
    except (TypeError, ValueError):
        flat = [a.ravel() for a in arrays]
        out = np.array([float(f(*(float(a[i]) for a in flat))) for i in range(flat[0].size)]).reshape(shape)
    if not np.all(np.isfinite(out)):
        i = int(np.flatnonzero(~np.isfinite(out))[0])
        at = ", ".join(f"{float(a.ravel()[i])!r}" for a in arrays)
        raise EconomicsError(f"{what} returned {float(out.ravel()[i])!r} at ({at}); it must be finite")
    return out


def _scalar(f: Callable[..., Any], what: str, *args: float) -> float:
    value = float(f(*args))
    if not math.isfinite(value):
        raise EconomicsError(f"{what} returned {value!r} at {args!r}; it must be finite")
    return value


def _vertex(f: Callable[[float], float], x: float, v: float, h: float) -> float:
    """Vertex of the parabola through (x - h, x, x + h); nan where f is not concave there."""
    left, right = f(x - h), f(x + h)
    curvature = left - 2.0 * v + right
    return x - 0.5 * h * (right - left) / curvature if curvature < 0 else math.nan


def _step(f: Callable[[float], float], x: float, v: float, h: float, lo: float, hi: float) -> float:
    """One Newton step for max f from x, by finite differences: the vertex of the parabola through x - h, x, x + h,
    Richardson-extrapolated from h and 2h (exact for a quadratic, O(h⁴) bias otherwise). Next to an end of the
    domain [lo, hi] the stencil is centred inward. nan when f is not concave there or the stencil does not fit.
    """
    c = min(max(x, lo + 2.0 * h), hi - 2.0 * h)
    if c < lo + 2.0 * h:
        return math.nan
    fc = v if c == x else f(c)
    near, far = _vertex(f, c, fc, h), _vertex(f, c, fc, 2.0 * h)
    return min(max((4.0 * near - far) / 3.0, lo), hi)


def _newton(
    f: Callable[[float], float], xs: np.ndarray, values: np.ndarray, i: int, h: float
) -> tuple[float, float] | None:
    """Start at the vertex of the parabola through the grid points i-1, i, i+1 and take Newton steps (:func:`_step`)
    until one moves less than 1e-10 of the bracket; None when a step fails or leaves the bracket, or after 4."""
    if not 0 < i < len(xs) - 1 or not np.all(np.isfinite(values[i - 1 : i + 2])):
        return None
    (x0, x1, x2), (f0, f1, f2) = (float(x) for x in xs[i - 1 : i + 2]), (float(y) for y in values[i - 1 : i + 2])
    denominator = (x1 - x0) * (f1 - f2) - (x1 - x2) * (f1 - f0)
    if denominator == 0:
        return None
    x = x1 - 0.5 * ((x1 - x0) ** 2 * (f1 - f2) - (x1 - x2) ** 2 * (f1 - f0)) / denominator
    lo, hi = float(xs[0]), float(xs[-1])
    for _ in range(4):
        if not x0 <= x <= x2:
            return None
        nxt = _step(f, x, f(x), h, lo, hi)
        if not x0 <= nxt <= x2:  # False for nan
            return None
        if abs(nxt - x) <= 1e-10 * (x2 - x0):
            return nxt, f(nxt)
        x = nxt
    return None


def _refine(f: Callable[[float], float], xs: np.ndarray, values: np.ndarray) -> tuple[float, float]:
    """Maximise ``f`` from its values on the sorted grid ``xs`` (-inf where not computed).

    1. Take the grid's best point and bracket it by its neighbours.
    2. Newton steps by finite differences from the grid parabola's vertex (:func:`_newton`): on a smooth
       maximum they converge in two or three steps, to far better than comparing values could, which matters
       because in a nested maximisation the inner error reaches the outer level as noise.
    3. When they fail (a kink, an end, no concavity): bounded Brent in the bracket, then one Newton step as a
       polish, kept when it stays within h of Brent's point and loses no value beyond rounding.
    4. Keep the grid point when neither beats it, so an optimum on a grid point (an end, a kink) is exact.
    """
    i = int(np.argmax(values))
    best_x, best_v = float(xs[i]), float(values[i])
    a, b = float(xs[max(i - 1, 0)]), float(xs[min(i + 1, len(xs) - 1)])
    if b <= a:
        return best_x, best_v
    h = _POLISH_STEP * (b - a)
    found = _newton(f, xs, values, i, h)
    if found is not None:
        x, v = found
    else:
        res = minimize_scalar(lambda x: -f(x), bounds=(a, b), method="bounded", options={"xatol": _XATOL * b})
        x = float(res.x)
        v = f(x)
        vertex = _step(f, x, v, h, float(xs[0]), float(xs[-1]))
        if abs(vertex - x) <= h:  # False for nan
            w = f(vertex)
            if w >= v - _POLISH_TIE * (1.0 + abs(v)):
                x, v = vertex, w
    # An interior refinement wins unless the grid point is better beyond rounding: near a maximum the values
    # differ by less than the noise of a nested evaluation. One that ran into the bracket's end must beat the
    # grid point outright (the maximum is then at that end or beyond it).
    interior = a + 1e-3 * (b - a) < x < b - 1e-3 * (b - a)
    if v > best_v or (interior and v >= best_v - _TIE * (1.0 + abs(best_v))):
        best_x, best_v = x, v
    return best_x, float(best_v)


class _Solver:
    """The nested maximisations of one game, with the equilibria computed so far remembered by δ."""

    def __init__(self, game: Game) -> None:
        self.game = game
        self.cache: dict[tuple[float, ...], SharedOutcome] = {}

    def respond(self, j: int, alpha0: float, delta: float) -> tuple[float, float]:
        """D_j's best (α1, utility) if it participates: max (1-δ) r(α1) - φ1(α1; α0) over [α0, alpha_max]."""
        sp, top = self.game.specialists[j], self.game.alpha_max
        share = 1.0 - delta
        xs = alpha0 + (top - alpha0) * self.game._unit
        values = share * _evaluate(sp.revenue, "revenue", xs) - _evaluate(sp.cost, "specialist cost", xs, alpha0)
        if top <= alpha0:
            return float(xs[0]), float(values[0])

        def utility(a1: float) -> float:
            return share * _scalar(sp.revenue, "revenue", a1) - _scalar(sp.cost, "specialist cost", a1, alpha0)

        return _refine(utility, xs, values)

    def _coarse(self, deltas: tuple[float, ...]) -> np.ndarray:
        """G's utility on the α0 grid, each D responding with the vertex of a parabola through its best grid
        points (exact for a quadratic utility, O(spacing³) otherwise): one vectorised pass that picks the basin.
        """
        top, unit = self.game.alpha_max, self.game._unit
        a0 = top * unit
        spacing = (top - a0)[:, None] * (unit[1] - unit[0])
        a1 = a0[:, None] + (top - a0)[:, None] * unit[None, :]
        rows = np.arange(len(a0))[:, None]
        total = -_evaluate(self.game.generalist_cost, "generalist cost", a0)
        for j, sp in enumerate(self.game.specialists):
            share = 1.0 - deltas[j]
            u_d = share * _evaluate(sp.revenue, "revenue", a1) - _evaluate(sp.cost, "specialist cost", a1, a0[:, None])
            k = np.clip(np.argmax(u_d, axis=1), 1, len(unit) - 2)[:, None]
            left, mid, right = u_d[rows, k - 1], u_d[rows, k], u_d[rows, k + 1]
            curvature = left - 2.0 * mid + right
            with np.errstate(divide="ignore", invalid="ignore"):
                offset = np.where(curvature < 0, -0.5 * (right - left) / curvature, 0.0)
            best = a1[rows, k] + np.clip(offset, -1.0, 1.0) * spacing
            u_best = share * _evaluate(sp.revenue, "revenue", best) - _evaluate(
                sp.cost, "specialist cost", best, a0[:, None]
            )
            # Keep whichever of the vertex and the grid's best is better (the grid's best may be an end).
            grid_best = np.max(u_d, axis=1, keepdims=True)
            use_grid = grid_best > u_best
            u_best = np.where(use_grid, grid_best, u_best)
            best = np.where(use_grid, a1[rows, np.argmax(u_d, axis=1)[:, None]], best)
            income = deltas[j] * _evaluate(sp.revenue, "revenue", best)
            total = total + np.where(u_best >= 0, income, 0.0)[:, 0]
        return total

    def outcome(self, deltas: tuple[float, ...]) -> SharedOutcome:
        """The subgame-perfect equilibrium for the shares ``deltas``.

        1. For a candidate α0 each D_j best-responds (:meth:`respond`); it abstains when even its best
           utility is negative (an indifferent specialist participates), and then brings G no revenue.
        2. G's utility at α0 is Σ_j δ_j r_j(α1_j) over participants, minus φ0(α0); α0 = 0 is G not investing.
        3. G maximises it: a coarse grid over α0 (each D on its grid only) picks the basin, bounded Brent with
           exact best responses refines it.
        """
        if deltas in self.cache:
            return self.cache[deltas]
        game = self.game
        n = len(game.specialists)

        def responses(alpha0: float) -> list[tuple[float, float]]:
            return [self.respond(j, alpha0, deltas[j]) for j in range(n)]

        def u_generalist(alpha0: float, resp: list[tuple[float, float]] | None = None) -> float:
            resp = responses(alpha0) if resp is None else resp
            income = sum(
                deltas[j] * _scalar(game.specialists[j].revenue, "revenue", a1)
                for j, (a1, u) in enumerate(resp)
                if u >= 0
            )
            return income - _scalar(game.generalist_cost, "generalist cost", alpha0)

        xs = game.alpha_max * game._unit
        coarse = self._coarse(deltas)
        i = int(np.argmax(coarse))
        # The coarse values carry first-order errors from D's unrefined responses, so the coarse best may sit
        # one point off: recompute its neighbourhood exactly and bracket the exact best.
        exact = np.full(len(xs), -np.inf)
        for k in range(max(i - 2, 0), min(i + 3, len(xs))):
            exact[k] = u_generalist(float(xs[k]))
        alpha0, _ = _refine(u_generalist, xs, exact)
        resp = responses(alpha0)
        tol = 1e-9 * game.alpha_max
        alpha1, u_d, strategies = [], [], []
        for a1, u in resp:
            if u < 0:
                alpha1.append(alpha0)
                u_d.append(0.0)
                strategies.append(ABSTAINS)
            else:
                alpha1.append(a1)
                u_d.append(u)
                strategies.append(CONTRIBUTES if a1 - alpha0 > tol else FREE_RIDES)
        result = SharedOutcome(
            deltas=deltas,
            alpha0=alpha0,
            alpha1=tuple(alpha1),
            u_generalist=u_generalist(alpha0, resp),
            u_specialists=tuple(u_d),
            strategies=tuple(strategies),
        )
        self.cache[deltas] = result
        return result

    def single(self, delta: float) -> Outcome:
        s = self.outcome((delta,))
        return Outcome(
            delta=delta,
            alpha0=s.alpha0,
            alpha1=s.alpha1[0],
            u_generalist=s.u_generalist,
            u_specialist=s.u_specialists[0],
            strategy=s.strategies[0],
        )


def shared_equilibrium(game: Game, deltas: Sequence[float]) -> SharedOutcome:
    """The equilibrium of ``game`` (any number of specialists) for the shares ``deltas`` (numeric)."""
    if len(deltas) != len(game.specialists):
        raise EconomicsError(f"deltas: expected one share per specialist ({len(game.specialists)}), got {len(deltas)}")
    ds = tuple(_share(x, f"deltas[{j}]") for j, x in enumerate(deltas))
    return _Solver(game).outcome(ds)


def equilibrium(game: Game, delta: float) -> Outcome:
    """The equilibrium of a one-specialist ``game`` for share ``delta`` (numeric)."""
    _one_specialist(game)
    return _Solver(game).single(_share(delta, "delta"))


def _one_specialist(game: Game) -> None:
    if len(game.specialists) != 1:
        raise EconomicsError(
            f"specialists: bargaining over one δ needs exactly one specialist, got {len(game.specialists)}"
        )


def bargain(game: Game, *, grid: int = 41) -> Bargain:
    """Every bargaining solution of a one-specialist ``game``, numerically.

    1. Equilibria on a grid of ``grid`` shares in [0, 1] (each one nested maximisation, remembered).
    2. Pareto interval: lo = argmax U_D(δ), hi = argmax U_G(δ), each from the grid then refined
       (:func:`_refine`). This is the Pareto set when each utility is single-peaked in δ (so that U_G rises and
       U_D falls between them), as in the quadratic family; for other games it is the interval spanned by the
       two ideal shares.
    3. Joint surplus, Nash and max performance: the same grid-then-refine maximisation restricted to [lo, hi].
    4. Egalitarian and Kalai-Smorodinsky: the root in [lo, hi] of U_G - U_D, respectively of
       U_G / U_G(hi) - U_D / U_D(lo) (Brent's root finder, to rounding), or the better end when there is none.
    """
    _one_specialist(game)
    if isinstance(grid, bool) or not isinstance(grid, int) or grid < 3:
        raise EconomicsError(f"grid: {grid!r} must be an integer >= 3")
    solver = _Solver(game)
    xs = np.linspace(0.0, 1.0, grid)

    def maximise(key: Callable[[Outcome], float], lo: float = 0.0, hi: float = 1.0) -> float:
        pts = sorted({lo, hi, *(float(x) for x in xs if lo < x < hi)})
        values = np.array([key(solver.single(x)) for x in pts])
        x, _ = _refine(lambda d: key(solver.single(d)), np.array(pts), values)
        return x

    def u_g(o: Outcome) -> float:
        return o.u_generalist

    def u_d(o: Outcome) -> float:
        return o.u_specialist

    lo = maximise(u_d)
    hi = maximise(u_g)
    if hi < lo:
        lo, hi = hi, lo
    ideal_g, ideal_d = solver.single(hi).u_generalist, solver.single(lo).u_specialist

    def crossing(diff: Callable[[Outcome], float], fallback: Callable[[Outcome], float]) -> float:
        f_lo, f_hi = diff(solver.single(lo)), diff(solver.single(hi))
        if f_lo <= 0 <= f_hi and f_lo < f_hi:
            return float(brentq(lambda x: diff(solver.single(x)), lo, hi, xtol=_XTOL, rtol=4 * np.finfo(float).eps))
        return max((lo, hi), key=lambda x: fallback(solver.single(x)))

    egalitarian = crossing(lambda o: o.u_generalist - o.u_specialist, lambda o: min(u_g(o), u_d(o)))
    if ideal_g > 0 and ideal_d > 0:
        kalai = crossing(
            lambda o: o.u_generalist / ideal_g - o.u_specialist / ideal_d,
            lambda o: min(u_g(o) / ideal_g, u_d(o) / ideal_d),
        )
    else:  # a player who can gain nothing at any share leaves no ratio to equalise: fall back to max-min
        kalai = egalitarian
    deltas = {
        "joint_surplus": maximise(lambda o: o.u_generalist + o.u_specialist, lo, hi),
        "nash": maximise(lambda o: max(o.u_generalist, 0.0) * max(o.u_specialist, 0.0), lo, hi),
        "egalitarian": egalitarian,
        "kalai_smorodinsky": kalai,
        "max_performance": maximise(lambda o: o.alpha1, lo, hi),
    }
    return Bargain(pareto=(lo, hi), solutions={name: solver.single(x) for name, x in deltas.items()})
