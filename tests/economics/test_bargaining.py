from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize_scalar

from economics.bargaining import (
    SOLUTIONS,
    Game,
    Outcome,
    Specialist,
    bargain,
    equilibrium,
    quadratic_bargain,
    quadratic_game,
    quadratic_outcome,
    quadratic_pareto,
    quadratic_shared_outcome,
    shared_equilibrium,
)
from economics.errors import EconomicsError

TABLE = [(1.0, 1.0), (1.0, 2.0), (2.0, 1.0), (1.0, 4.0), (1.0, 10.0)]
FIELDS = ("delta", "alpha0", "alpha1", "u_generalist", "u_specialist")
SYMMETRIC = ("joint_surplus", "nash", "egalitarian", "kalai_smorodinsky", "max_performance")

costs = st.floats(min_value=0.05, max_value=20.0, allow_nan=False, allow_infinity=False)
revenues = st.floats(min_value=0.1, max_value=10.0, allow_nan=False, allow_infinity=False)


def close(a: Outcome, b: Outcome, tol: float, fields: tuple[str, ...] = FIELDS) -> bool:
    return all(abs(getattr(a, f) - getattr(b, f)) <= tol for f in fields)


def test_the_closed_form_equilibrium_is_a_best_response_at_both_stages() -> None:
    c0, c1, r, delta = 1.5, 0.8, 2.0, 0.35
    o = quadratic_outcome(c0=c0, c1=c1, delta=delta, r=r)

    def u_d(a1: float, a0: float) -> float:
        return (1 - delta) * r * a1 - c1 * (a1 - a0) ** 2

    def u_g(a0: float) -> float:  # with D best-responding to a0
        return delta * r * (a0 + (1 - delta) * r / (2 * c1)) - c0 * a0**2

    assert o.alpha1 == pytest.approx(o.alpha0 + (1 - delta) * r / (2 * c1))
    assert o.alpha0 == pytest.approx(delta * r / (2 * c0))
    for eps in (1e-3, -1e-3):
        assert u_d(o.alpha1 + eps, o.alpha0) < u_d(o.alpha1, o.alpha0)
        assert u_g(o.alpha0 + eps) < u_g(o.alpha0)
    assert o.u_generalist == pytest.approx(u_g(o.alpha0))
    assert o.u_specialist == pytest.approx(u_d(o.alpha1, o.alpha0))


@pytest.mark.parametrize(("c0", "c1", "r"), [*[(c0, c1, 1.0) for c0, c1 in TABLE], (3.0, 0.7, 2.5)])
def test_the_closed_forms_match_the_numeric_solver(c0: float, c1: float, r: float) -> None:
    exact = quadratic_bargain(c0=c0, c1=c1, r=r)
    numeric = bargain(quadratic_game(c0=c0, c1=c1, r=r, grid=17), grid=21)
    assert numeric.pareto == pytest.approx(exact.pareto, abs=1e-6)
    for name in SOLUTIONS:
        # With c0 = c1 every δ gives the same α1, so max performance is only pinned down by its tie rule.
        fields = ("alpha1",) if name == "max_performance" and c0 == c1 else FIELDS
        assert close(exact.solutions[name], numeric.solutions[name], 1e-6, fields), name


def test_the_numeric_equilibrium_matches_the_closed_form_for_every_share() -> None:
    game = quadratic_game(c0=2.0, c1=0.5, r=1.5)
    for delta in np.linspace(0.0, 1.0, 11):
        numeric = equilibrium(game, float(delta))
        exact = quadratic_outcome(c0=2.0, c1=0.5, delta=float(delta), r=1.5)
        assert close(numeric, exact, 1e-9), delta
        assert numeric.strategy == exact.strategy


def test_the_numeric_solver_takes_float_only_callables() -> None:
    game = Game(
        generalist_cost=lambda a0: 1.0 * math.pow(a0, 2),  # math.pow rejects arrays: the solver loops
        specialists=(Specialist(cost=lambda a1, a0: 2.0 * math.pow(a1 - a0, 2), revenue=lambda a1: float(a1)),),
        alpha_max=1.0,
        grid=9,
    )
    assert close(equilibrium(game, 0.4), quadratic_outcome(c0=1.0, c1=2.0, delta=0.4), 1e-9)


def test_the_numeric_equilibrium_is_a_best_response_in_a_non_polynomial_game() -> None:
    delta = 0.6
    phi0 = lambda a0: np.exp(a0) - 1.0 - a0  # noqa: E731
    phi1 = lambda a1, a0: 0.5 * np.square(a1 - a0) + 0.1 * np.power(np.abs(a1 - a0), 3)  # noqa: E731
    rev = lambda a1: np.log1p(3.0 * a1)  # noqa: E731
    game = Game(generalist_cost=phi0, specialists=(Specialist(cost=phi1, revenue=rev),), alpha_max=3.0)
    o = equilibrium(game, delta)

    def u_d(a1: np.ndarray, a0: float) -> np.ndarray:
        return (1 - delta) * rev(a1) - phi1(a1, a0)

    def best_a1(a0: float) -> float:  # an independent reference: plain bounded Brent, no grid, no polish
        res = minimize_scalar(
            lambda a1: -u_d(np.float64(a1), a0), bounds=(a0, 3.0), method="bounded", options={"xatol": 1e-12}
        )
        return float(res.x)

    def u_g(a0: float) -> float:
        return float(delta * rev(best_a1(a0)) - phi0(a0))

    assert o.alpha1 == pytest.approx(best_a1(o.alpha0), abs=1e-7)
    reference = minimize_scalar(lambda a0: -u_g(a0), bounds=(0.0, 3.0), method="bounded", options={"xatol": 1e-12})
    assert o.alpha0 == pytest.approx(reference.x, abs=1e-4)
    assert o.u_generalist == pytest.approx(-reference.fun, abs=1e-7)
    assert o.u_generalist >= max(u_g(a) for a in np.linspace(0.0, 1.5, 31)) - 1e-8


def test_a_specialist_with_an_entry_cost_makes_the_generalist_invest_more_or_abstains() -> None:
    def game(entry: float) -> Game:
        return Game(
            generalist_cost=np.square,
            specialists=(Specialist(cost=lambda a1, a0: entry + np.square(a1 - a0), revenue=lambda a1: a1),),
            alpha_max=1.0,
        )

    # Without entry cost: α0 = 0.25 and U_D = 0.1875. With 0.1 the same plan still pays D.
    cheap = equilibrium(game(0.1), 0.5)
    assert cheap.alpha0 == pytest.approx(0.25, abs=1e-9)
    assert cheap.u_specialist == pytest.approx(0.0875, abs=1e-9)
    # With 0.2, D would abstain at α0 = 0.25; G raises α0 until D's utility 0.5 α0 + 1/16 - 0.2 reaches 0.
    pushed = equilibrium(game(0.2), 0.5)
    assert pushed.strategy == "contributes"
    assert pushed.alpha0 == pytest.approx(0.275, abs=1e-6)
    assert pushed.u_specialist == pytest.approx(0.0, abs=1e-6)
    assert pushed.u_generalist == pytest.approx(0.5 * 0.525 - 0.275**2, abs=1e-6)
    # With 0.5 keeping D would need α0 = 0.875, which costs G more than it earns: G does not invest, D abstains.
    out = equilibrium(game(0.5), 0.5)
    assert out.strategy == "abstains"
    assert (out.alpha0, out.alpha1, out.u_generalist, out.u_specialist) == (0.0, 0.0, 0.0, 0.0)


def test_at_a_full_share_for_the_generalist_the_specialist_free_rides() -> None:
    assert quadratic_outcome(c0=1, c1=1, delta=1.0).strategy == "free_rides"
    numeric = equilibrium(quadratic_game(c0=1.0, c1=1.0), 1.0)
    assert numeric.strategy == "free_rides"
    assert numeric.alpha1 == numeric.alpha0 == pytest.approx(0.5)


def test_several_specialists_fund_the_base_model_together() -> None:
    specs = [(1.0, 1.0), (3.0, 2.0)]
    deltas = [0.3, 0.0]
    exact = quadratic_shared_outcome(c0=2.0, specialists=specs, deltas=deltas)
    assert exact.alpha0 == pytest.approx((0.3 * 1.0 + 0.0 * 2.0) / (2 * 2.0))
    game = Game(
        generalist_cost=lambda a0: 2.0 * np.square(a0),
        specialists=tuple(
            Specialist(cost=lambda a1, a0, c=c: c * np.square(a1 - a0), revenue=lambda a1, r=r: r * a1)
            for c, r in specs
        ),
        alpha_max=2.0,
    )
    numeric = shared_equilibrium(game, deltas)
    assert numeric.alpha0 == pytest.approx(exact.alpha0, abs=1e-9)
    assert numeric.alpha1 == pytest.approx(exact.alpha1, abs=1e-9)
    assert numeric.u_generalist == pytest.approx(exact.u_generalist, abs=1e-9)
    assert numeric.u_specialists == pytest.approx(exact.u_specialists, abs=1e-9)
    # The second specialist pays G nothing, yet gains from the base the first one's share paid for.
    alone = quadratic_outcome(c0=2.0, c1=3.0, delta=0.0, r=2.0)
    assert exact.u_specialists[1] > alone.u_specialist


def test_one_shared_specialist_is_the_one_specialist_game() -> None:
    shared = quadratic_shared_outcome(c0=1.3, specialists=[(0.4, 2.0)], deltas=[0.7])
    single = quadratic_outcome(c0=1.3, c1=0.4, delta=0.7, r=2.0)
    assert (shared.alpha0, shared.alpha1[0], shared.u_generalist, shared.u_specialists[0]) == pytest.approx(
        (single.alpha0, single.alpha1, single.u_generalist, single.u_specialist)
    )


def test_the_table_instances_have_the_documented_solutions() -> None:
    # docs/economics.md, bargaining table; δ to 6 decimals.
    expected = {
        (1.0, 2.0): ((1 / 3, 1.0), {"joint_surplus": 2 / 3, "nash": 0.622839, "egalitarian": 0.577350}),
        (1.0, 10.0): ((9 / 19, 1.0), {"joint_surplus": 10 / 11, "kalai_smorodinsky": 0.785040}),
    }
    for (c0, c1), (pareto, deltas) in expected.items():
        result = quadratic_bargain(c0=c0, c1=c1)
        assert result.pareto == pytest.approx(pareto)
        for name, delta in deltas.items():
            assert result.solutions[name].delta == pytest.approx(delta, abs=1e-6)
    # Equal costs: everything is symmetric, every solution splits evenly, the Pareto set is all of [0, 1].
    even = quadratic_bargain(c0=1.0, c1=1.0)
    assert even.pareto == (0.0, 1.0)
    assert all(o.delta == pytest.approx(0.5) for o in even.solutions.values())


@settings(max_examples=150, deadline=None)
@given(c0=costs, c1=costs, r=revenues)
def test_swapping_the_costs_mirrors_the_shares_and_swaps_the_utilities(c0: float, c1: float, r: float) -> None:
    a, b = quadratic_bargain(c0=c0, c1=c1, r=r), quadratic_bargain(c0=c1, c1=c0, r=r)
    assert b.pareto == pytest.approx((1 - a.pareto[1], 1 - a.pareto[0]), abs=1e-9)
    for name in SYMMETRIC:
        x, y = a.solutions[name], b.solutions[name]
        scale = r * r / min(c0, c1)
        assert y.delta == pytest.approx(1 - x.delta, abs=1e-7), name
        assert y.u_generalist == pytest.approx(x.u_specialist, abs=1e-9 * scale), name
        assert y.u_specialist == pytest.approx(x.u_generalist, abs=1e-9 * scale), name
        assert y.alpha1 == pytest.approx(x.alpha1, rel=1e-7), name


@settings(max_examples=150, deadline=None)
@given(c0=costs, c1=costs, r=revenues)
def test_every_solution_is_pareto_optimal_and_optimal_for_its_criterion(c0: float, c1: float, r: float) -> None:
    result = quadratic_bargain(c0=c0, c1=c1, r=r)
    lo, hi = result.pareto
    assert 0.0 <= lo <= hi <= 1.0
    grid = [quadratic_outcome(c0=c0, c1=c1, delta=float(x), r=r) for x in np.linspace(0.0, 1.0, 401)]
    ug = np.array([o.u_generalist for o in grid])
    ud = np.array([o.u_specialist for o in grid])
    tol = 1e-9 * r * r / min(c0, c1)
    # The Pareto ends are the two players' favourite shares.
    assert quadratic_outcome(c0=c0, c1=c1, delta=hi, r=r).u_generalist >= ug.max() - tol
    assert quadratic_outcome(c0=c0, c1=c1, delta=lo, r=r).u_specialist >= ud.max() - tol
    sol = result.solutions
    for name, o in sol.items():
        assert lo - 1e-12 <= o.delta <= hi + 1e-12, name
        dominated = (ug >= o.u_generalist + tol) & (ud >= o.u_specialist + tol)
        assert not dominated.any(), name
    assert sol["joint_surplus"].u_generalist + sol["joint_surplus"].u_specialist >= (ug + ud).max() - tol
    assert sol["nash"].u_generalist * sol["nash"].u_specialist >= (ug * ud).max() - tol * (ug + ud).max()
    assert min(sol["egalitarian"].u_generalist, sol["egalitarian"].u_specialist) >= np.minimum(ug, ud).max() - tol
    assert sol["max_performance"].alpha1 >= max(o.alpha1 for o in grid) - 1e-9 * r / min(c0, c1)
    ks = sol["kalai_smorodinsky"]
    ideal_g = quadratic_outcome(c0=c0, c1=c1, delta=hi, r=r).u_generalist
    ideal_d = quadratic_outcome(c0=c0, c1=c1, delta=lo, r=r).u_specialist
    assert ks.u_generalist / ideal_g == pytest.approx(ks.u_specialist / ideal_d, abs=1e-7)


@settings(max_examples=60, deadline=None)
@given(c0=costs, c1=costs, r=revenues)
def test_shares_do_not_depend_on_the_revenue_scale(c0: float, c1: float, r: float) -> None:
    base, scaled = quadratic_bargain(c0=c0, c1=c1), quadratic_bargain(c0=c0, c1=c1, r=r)
    assert scaled.pareto == base.pareto
    for name in SOLUTIONS:
        x, y = base.solutions[name], scaled.solutions[name]
        assert y.delta == pytest.approx(x.delta, abs=1e-9)
        assert y.alpha1 == pytest.approx(r * x.alpha1, rel=1e-6)
        assert y.u_generalist == pytest.approx(r * r * x.u_generalist, rel=1e-6, abs=1e-12)


def test_the_pareto_interval_has_the_derived_ends() -> None:
    assert quadratic_pareto(c0=1.0, c1=4.0) == pytest.approx((3 / 7, 1.0))
    assert quadratic_pareto(c0=4.0, c1=1.0) == pytest.approx((0.0, 4 / 7))


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"c0": 0.0, "c1": 1.0}, "c0"),
        ({"c0": 1.0, "c1": -2.0}, "c1"),
        ({"c0": 1.0, "c1": 1.0, "r": math.inf}, "r"),
        ({"c0": 1.0, "c1": True}, "c1"),
    ],
)
def test_it_rejects_bad_parameters_naming_the_field(kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(EconomicsError, match=f"^{field}:"):
        quadratic_bargain(**kwargs)


def test_it_rejects_bad_shares_and_games() -> None:
    with pytest.raises(EconomicsError, match="^delta:"):
        quadratic_outcome(c0=1, c1=1, delta=1.5)
    with pytest.raises(EconomicsError, match="^deltas:"):
        quadratic_shared_outcome(c0=1, specialists=[(1, 1)], deltas=[0.1, 0.2])
    with pytest.raises(EconomicsError, match="^grid:"):
        quadratic_game(c0=1, c1=1, grid=2)
    with pytest.raises(EconomicsError, match="^specialists:"):
        Game(generalist_cost=np.square, specialists=(), alpha_max=1.0)
    two = Game(
        generalist_cost=np.square,
        specialists=(Specialist(cost=lambda a1, a0: a1 - a0, revenue=lambda a1: a1),) * 2,
        alpha_max=1.0,
    )
    with pytest.raises(EconomicsError, match="exactly one specialist"):
        bargain(two)


def test_it_names_a_callable_that_returns_nan() -> None:
    game = Game(
        generalist_cost=np.square,
        specialists=(Specialist(cost=lambda a1, a0: np.square(a1 - a0), revenue=lambda a1: np.log(a1 - 0.5)),),
        alpha_max=1.0,
    )
    with pytest.raises(EconomicsError, match="^revenue returned nan"), np.errstate(all="ignore"):
        equilibrium(game, 0.5)
