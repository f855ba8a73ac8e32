from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from economics.contracts import (
    OBJECTIVES,
    Action,
    Contract,
    design_contract,
    incentive_slack,
    make_actions,
    price_of_robustness_bound,
    threshold_contract,
)
from economics.errors import EconomicsError

# Saig, Einav, Talgam-Cohen (NeurIPS 2024): Llama-2 chat 7B / 13B / 70B on MT-Bench, judge scores 1..10,
# costs in dollars per million tokens; the target is 70B.
MT_BENCH_COSTS = [0.18165, 0.2415, 0.6405]
MT_BENCH = [
    [0.15625, 0.16875, 0.0375, 0.00625, 0, 0.04375, 0.05, 0.1125, 0.1375, 0.2875],
    [0.16875, 0.1375, 0.0125, 0, 0.00625, 0.04375, 0.05625, 0.05, 0.16875, 0.35625],
    [0.09375, 0.1875, 0.01875, 0.00625, 0.00625, 0.0375, 0.0625, 0.075, 0.11875, 0.39375],
]
VARIANTS = list(itertools.product(OBJECTIVES, (False, True), (False, True)))  # objective, monotone, robust


@pytest.fixture(scope="module")
def mt_bench() -> tuple[Action, ...]:
    return make_actions(["7B", "13B", "70B"], MT_BENCH_COSTS, MT_BENCH)


def objective_value(c: Contract) -> float:
    return c.expected_payment if c.objective == "min_pay" else c.max_payment


def check_contract(actions: tuple[Action, ...], c: Contract) -> None:
    """Limited liability, the shift, monotonicity, the ICs, and an LP certificate of optimality."""
    t = c.payments
    scale = max(1.0, float(t.max()))
    assert t.min() == 0.0 and np.all(t >= 0)
    if c.monotone:
        assert np.all(np.diff(t) >= -1e-9 * scale)
    slack = incentive_slack(actions, t)
    target = actions[-1]
    if c.robust:
        assert c.cost_gap is not None
        robust_slack = np.array([(target.distribution - a.distribution) @ t - c.cost_gap for a in actions[:-1]])
        assert np.all(robust_slack >= -1e-7 * scale)
    assert np.all(slack >= -1e-7 * scale)  # the robust rows imply the aware ones
    if c.incentive_duals is not None:
        rhs = (
            np.full(len(actions) - 1, c.cost_gap)
            if c.robust
            else np.array([target.cost - a.cost for a in actions[:-1]])
        )
        active = robust_slack if c.robust else slack
        duals = c.incentive_duals
        assert np.all(duals >= -1e-9)
        # Complementary slackness: an IC with a positive shadow price holds with equality...
        assert np.all(np.abs(active[duals > 1e-7]) <= 1e-7 * scale)
        # ...and strong duality: the objective equals Σ_i y_i (right-hand side of IC_i).
        assert float(duals @ rhs) == pytest.approx(objective_value(c), rel=1e-7, abs=1e-9)
        assert set(c.binding) >= {a.name for a, y in zip(actions[:-1], duals, strict=True) if y > 1e-7}


def test_it_reproduces_the_papers_monotone_min_pay_contracts(mt_bench: tuple[Action, ...]) -> None:
    aware = design_contract(mt_bench, objective="min_pay", monotone=True)
    robust = design_contract(mt_bench, objective="min_pay", monotone=True, robust=True)
    # The paper: 10.64 at the top score, 12.236 when cost-robust; nothing for any other score.
    assert aware.payments[-1] == pytest.approx(10.64, abs=1e-2)
    assert robust.payments[-1] == pytest.approx(12.236, abs=1e-2)
    assert np.all(aware.payments[:-1] == 0) and np.all(robust.payments[:-1] == 0)


def test_it_reproduces_the_documented_mt_bench_table(mt_bench: tuple[Action, ...]) -> None:
    # docs/economics.md: expected payment and budget of each variant.
    expected = {
        ("min_pay", False, False): (0.8579, 73.416),
        ("min_pay", False, True): (0.9177, 73.416),
        ("min_pay", True, False): (4.1895, 10.64),
        ("min_pay", True, True): (4.8179, 12.236),
        ("min_budget", False, False): (2.4793, 3.5995),
        ("min_budget", False, True): (2.7677, 3.9051),
        ("min_budget", True, False): (4.7212, 6.1623),
        ("min_budget", True, True): (5.4839, 6.6278),
    }
    for (objective, monotone, robust), (pay, budget) in expected.items():
        c = design_contract(mt_bench, objective=objective, monotone=monotone, robust=robust)
        assert (c.expected_payment, c.max_payment) == pytest.approx((pay, budget), abs=1e-4)


@pytest.mark.parametrize(("objective", "monotone", "robust"), VARIANTS)
def test_every_mt_bench_contract_is_incentive_compatible_and_certified(
    mt_bench: tuple[Action, ...], objective: str, monotone: bool, robust: bool
) -> None:
    c = design_contract(mt_bench, objective=objective, monotone=monotone, robust=robust)
    check_contract(mt_bench, c)
    assert c.binding  # at an optimum some deviation is exactly as good as the target


def test_the_robust_contracts_cost_between_one_and_rho_times_the_aware_ones(mt_bench: tuple[Action, ...]) -> None:
    rho = price_of_robustness_bound(mt_bench)
    assert rho == pytest.approx((0.6405 - 0.18165) / (0.6405 - 0.2415))
    for objective, monotone in itertools.product(OBJECTIVES, (False, True)):
        aware = objective_value(design_contract(mt_bench, objective=objective, monotone=monotone))
        robust = objective_value(design_contract(mt_bench, objective=objective, monotone=monotone, robust=True))
        assert aware - 1e-9 <= robust <= rho * aware + 1e-9


def test_the_best_threshold_contract_is_the_monotone_min_pay_optimum_here(mt_bench: tuple[Action, ...]) -> None:
    for robust in (False, True):
        threshold = threshold_contract(mt_bench, objective="min_pay", robust=robust)
        lp = design_contract(mt_bench, objective="min_pay", monotone=True, robust=robust)
        assert threshold.threshold == 9
        assert threshold.payments == pytest.approx(lp.payments, abs=1e-9)
        check_contract(mt_bench, threshold)


def random_actions(seed: int, n: int, m: int) -> tuple[Action, ...]:
    rng = np.random.default_rng(seed)
    dists = rng.dirichlet(np.full(m, 0.7), size=n)
    # Make higher actions shift mass to higher outcomes now and then, so monotone contracts are often feasible.
    tilt = np.linspace(-1.0, 1.0, m)
    for i in range(n):
        dists[i] *= np.exp(rng.uniform(0.0, 2.0) * i / max(n - 1, 1) * tilt)
        dists[i] /= dists[i].sum()
    costs = np.sort(rng.uniform(0.0, 1.0, n))
    return make_actions([f"a{i}" for i in range(n)], list(costs), [list(d) for d in dists])


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(2, 4), m=st.integers(2, 6))
def test_random_contracts_keep_their_guarantees(seed: int, n: int, m: int) -> None:
    actions = random_actions(seed, n, m)
    rho = price_of_robustness_bound(actions)
    for objective, monotone in itertools.product(OBJECTIVES, (False, True)):
        try:
            aware = design_contract(actions, objective=objective, monotone=monotone)
        except EconomicsError:
            continue  # not implementable this way; the robust contract then cannot exist either
        check_contract(actions, aware)
        robust = design_contract(actions, objective=objective, monotone=monotone, robust=True)
        check_contract(actions, robust)
        a, r = objective_value(aware), objective_value(robust)
        assert a - 1e-7 * max(1.0, a) <= r <= rho * a + 1e-7 * max(1.0, rho * a)
        if monotone:
            free = objective_value(design_contract(actions, objective=objective))
            assert free <= a + 1e-7 * max(1.0, a)  # monotonicity is a restriction
            try:  # a monotone contract is a sum of thresholds; one threshold alone may not be enough
                threshold = threshold_contract(actions, objective=objective)
            except EconomicsError:
                continue
            check_contract(actions, threshold)
            assert objective_value(threshold) >= a - 1e-7 * max(1.0, a)  # thresholds are monotone contracts


def test_a_target_that_looks_like_a_cheaper_action_cannot_be_implemented() -> None:
    actions = make_actions(["cheap", "same"], [0.1, 0.5], [[0.2, 0.8], [0.2, 0.8]])
    with pytest.raises(EconomicsError, match="'same'.*'cheap' has the same outcome distribution"):
        design_contract(actions)
    with pytest.raises(EconomicsError, match="no threshold contract"):
        threshold_contract(actions)


def test_a_target_better_only_on_low_outcomes_has_no_monotone_contract() -> None:
    actions = make_actions(["low", "high"], [0.0, 1.0], [[0.0, 1.0], [1.0, 0.0]])
    c = design_contract(actions)
    assert c.payments == pytest.approx([1.0, 0.0])
    with pytest.raises(EconomicsError, match="no monotone contract"):
        design_contract(actions, monotone=True)


def test_a_free_target_needs_no_payment() -> None:
    actions = make_actions(["only"], [0.3], [[0.5, 0.5]])
    c = design_contract(actions)
    assert c.payments.tolist() == [0.0, 0.0] and c.expected_payment == 0.0


@pytest.mark.parametrize(
    ("names", "costs", "dists", "message"),
    [
        (["a", "b"], [0.0, 1.0], [[0.5, 0.6], [0.5, 0.5]], "action 'a': distribution sums to"),
        (["a", "b"], [0.0, 1.0], [[0.5, 0.5], [1.5, -0.5]], r"action 'b': distribution\[1\] = -0.5"),
        (["a", "b"], [0.0, 1.0], [[1.0], [0.5, 0.5]], "action 'b': distribution has 2 outcomes"),
        (["a", "a"], [0.0, 1.0], [[1.0], [1.0]], "action 'a': the name appears twice"),
        (["a", "b"], [0.0, float("nan")], [[1.0], [1.0]], "action 'b': cost"),
        (["a"], [0.0], [[]], "at least one outcome"),
    ],
)
def test_it_rejects_bad_actions_naming_the_action(
    names: list[str], costs: list[float], dists: list[list[float]], message: str
) -> None:
    with pytest.raises(EconomicsError, match=message):
        make_actions(names, costs, dists)


def test_a_robust_contract_needs_the_cheapest_action_first() -> None:
    actions = make_actions(["mid", "cheap", "top"], [0.5, 0.1, 1.0], [[0.5, 0.5], [0.6, 0.4], [0.2, 0.8]])
    design_contract(actions)  # cost-aware is fine in any order
    with pytest.raises(EconomicsError, match="action 'mid'.*must be the cheapest"):
        design_contract(actions, robust=True)
    assert design_contract(actions, robust=True, cost_gap=0.9).cost_gap == 0.9


def test_it_rejects_an_unknown_objective(mt_bench: tuple[Action, ...]) -> None:
    with pytest.raises(EconomicsError, match="^objective:"):
        design_contract(mt_bench, objective="min_regret")
