"""Property-based tests of the mechanism (hypothesis), over lambda from 1e-6 to 1e6 and bids up to 1e9, and at
extreme ratios: total bid / lambda up to 1e15 with base log-weights spread over up to 1e3 nats.

Tolerances. Money is compared to 1e-9 relative to the group's value, plus a floor of a few ulps of the round's
total bid: R = Σ w_i r_i cannot be represented more finely than that, so no float64 solver can do better on the
cancellations such a floor covers. Policies are compared in total variation to 1e-9 plus the same resolution
expressed in nats of R / lambda. That floor says nothing at ratios near 1e15, so the extreme cases also run on
instances whose aggregate is exactly representable (dyadic bids and rewards): there the policy, the KL from the
base and the expected rewards must match the reference to 1e-9 outright.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from auctions.mechanism import Instance, Outcome, make_instance, reference_points, solve, true_utility, true_value
from auctions.misreport import bid_scaled, exaggerated, mixed, with_report
from tests.auctions.reference import reference

EPS = float(np.finfo(np.float64).eps)
FAST = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

rewards_st = st.one_of(st.sampled_from([0.0, 0.25, 0.5, 1.0]), st.floats(0.0, 1.0))
bids_st = st.one_of(st.just(0.0), st.floats(-3.0, 9.0).map(lambda e: float(10.0**e)))


@st.composite
def instances(
    draw: st.DrawFn,
    *,
    min_groups: int = 1,
    max_groups: int = 4,
    max_prompts: int = 3,
    max_candidates: int = 5,
    log_lambda: tuple[float, float] = (-6.0, 6.0),
    bids: st.SearchStrategy[float] = bids_st,
) -> Instance:
    n = draw(st.integers(min_groups, max_groups))
    sizes = draw(st.lists(st.integers(1, max_candidates), min_size=1, max_size=max_prompts))
    return make_instance(
        kl_weight=float(10.0 ** draw(st.floats(*log_lambda))),
        group_ids=[f"g{i}" for i in range(n)],
        bids=draw(st.lists(bids, min_size=n, max_size=n)),
        base_logweights=[draw(st.lists(st.floats(-5.0, 5.0), min_size=k, max_size=k)) for k in sizes],
        rewards=[[draw(st.lists(rewards_st, min_size=k, max_size=k)) for _ in range(n)] for k in sizes],
        prompt_weights=draw(st.lists(st.floats(0.1, 1.0), min_size=len(sizes), max_size=len(sizes))),
    )


@st.composite
def extreme_instances(
    draw: st.DrawFn,
    *,
    exact_aggregate: bool = False,
    max_groups: int = 3,
    max_prompts: int = 2,
    max_candidates: int = 4,
) -> Instance:
    """Total bid / lambda from 1 to 1e15, base log-weights spread over up to 1e3 nats (ties included).

    With ``exact_aggregate`` the bids are integers below 2^20 times a common power of two and the rewards are
    multiples of 1/4, so every w_i r_i and every sum of them is exact in float64.
    """
    n = draw(st.integers(1, max_groups))
    sizes = draw(st.lists(st.integers(1, max_candidates), min_size=1, max_size=max_prompts))
    if exact_aggregate:
        scale = 2.0 ** draw(st.integers(-30, 30))
        bids = [scale * draw(st.integers(0, 2**20 - 1)) for _ in range(n)]
        reward = st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0])
    else:
        bids = draw(st.lists(bids_st, min_size=n, max_size=n))
        reward = rewards_st
    total = float(np.sum(bids))
    assume(total > 0)
    spread = float(10.0 ** draw(st.floats(0.0, 3.0)))
    base = st.one_of(st.sampled_from([0.0, -spread]), st.floats(-spread, 0.0))
    return make_instance(
        kl_weight=total / float(10.0 ** draw(st.floats(0.0, 15.0))),
        group_ids=[f"g{i}" for i in range(n)],
        bids=bids,
        base_logweights=[draw(st.lists(base, min_size=k, max_size=k)) for k in sizes],
        rewards=[[draw(st.lists(reward, min_size=k, max_size=k)) for _ in range(n)] for k in sizes],
        prompt_weights=draw(st.lists(st.floats(0.1, 1.0), min_size=len(sizes), max_size=len(sizes))),
    )


def resolution(*insts: Instance) -> float:
    """A few ulps of the largest total bid among the instances: the floor of any money comparison."""
    return 16 * EPS * max(float(np.sum(i.bids)) for i in insts)


def policy_tolerance(*insts: Instance) -> float:
    return 1e-9 + 64 * EPS * max(float(np.sum(i.bids)) / i.kl_weight for i in insts)


def total_variation(a: Outcome, b: Outcome, inst: Instance) -> float:
    return float(
        sum(mu * 0.5 * np.abs(p - q).sum() for mu, p, q in zip(inst.prompt_weights, a.policy, b.policy, strict=True))
    )


def assert_same_payments(a: Outcome, b: Outcome, ia: Instance, ib: Instance, rows: list[int] | None = None) -> None:
    rows = list(range(len(a.payment))) if rows is None else rows
    for i in rows:
        scale = max(abs(a.value[i]), abs(b.value[i]))
        assert abs(a.payment[i] - b.payment[i]) <= 1e-9 * scale + resolution(ia, ib), (i, a.payment, b.payment)


@FAST
@given(inst=instances(), data=st.data())
def test_no_misreport_raises_a_groups_true_utility(inst: Instance, data: st.DataObject) -> None:
    i = data.draw(st.integers(0, inst.n_groups - 1))
    truth = solve(inst)
    true_rewards = [m[i] for m in inst.rewards]
    bid = float(inst.bids[i])
    lies = [
        bid_scaled(inst, i, data.draw(st.floats(0.0, 5.0))),
        exaggerated(inst, i, data.draw(st.floats(-1.0, 3.0))),
        with_report(
            inst,
            i,
            bid=data.draw(bids_st),
            rewards=[np.array(data.draw(st.lists(rewards_st, min_size=len(r), max_size=len(r)))) for r in true_rewards],
        ),
        with_report(
            inst,
            i,
            rewards=[np.array(data.draw(st.lists(rewards_st, min_size=len(r), max_size=len(r)))) for r in true_rewards],
        ),
    ]
    if inst.n_groups > 1:
        j = data.draw(st.integers(0, inst.n_groups - 1).filter(lambda j: j != i))
        lies.append(mixed(inst, i, j, data.draw(st.floats(-1.0, 1.0))))
    for lie in lies:
        out = solve(lie)
        gained = true_utility(lie, out, true_rewards, bid, i) - truth.utility[i]
        scale = max(truth.value[i], true_value(lie, out, true_rewards, bid))
        assert gained <= 1e-9 * scale + resolution(inst, lie), (gained, truth.utility[i])


@FAST
@given(inst=instances())
def test_payments_are_individually_rational_and_never_above_value_or_bid(inst: Instance) -> None:
    out = solve(inst)
    for arr in (out.payment, out.value, out.utility, out.expected_reward, out.log_partition):
        assert np.all(np.isfinite(arr))
    assert np.isfinite(out.welfare) and np.isfinite(out.kl_to_base) and out.kl_to_base >= 0
    for q in out.policy:
        assert np.all(np.isfinite(q)) and np.all(q >= 0) and abs(q.sum() - 1) < 1e-12
    assert np.all(out.utility >= 0)
    assert np.all(out.payment >= 0)
    assert np.all(out.payment <= out.value)
    assert np.all(out.value <= inst.bids)
    assert np.all((out.expected_reward >= 0) & (out.expected_reward <= 1))
    assert out.welfare >= -resolution(inst)


@FAST
@given(inst=instances(max_groups=3), constant=st.floats(0.0, 1.0), bid=bids_st, zero_bid=st.booleans(), data=st.data())
def test_a_constant_reward_or_a_zero_bid_pays_nothing_and_leaves_q_star_unchanged(
    inst: Instance, constant: float, bid: float, zero_bid: bool, data: st.DataObject
) -> None:
    if zero_bid:
        bid = 0.0
        extra = [
            np.array(data.draw(st.lists(rewards_st, min_size=len(b), max_size=len(b)))) for b in inst.base_logweights
        ]
    else:
        extra = [np.full(len(b), constant) for b in inst.base_logweights]
    bigger = make_instance(
        kl_weight=inst.kl_weight,
        group_ids=[*inst.group_ids, "null"],
        bids=[*inst.bids, bid],
        base_logweights=inst.base_logweights,
        rewards=[np.vstack([m, e]) for m, e in zip(inst.rewards, extra, strict=True)],
        prompt_weights=inst.prompt_weights,
    )
    a, b = solve(inst), solve(bigger)
    assert b.payment[-1] == 0.0
    assert total_variation(a, b, inst) <= policy_tolerance(inst, bigger)
    assert_same_payments(a, b, inst, bigger)


@FAST
@given(inst=instances(), data=st.data())
def test_adding_a_constant_to_a_groups_rewards_changes_nothing(inst: Instance, data: st.DataObject) -> None:
    i = data.draw(st.integers(0, inst.n_groups - 1))
    lo = min(float(m[i].min()) for m in inst.rewards)
    hi = max(float(m[i].max()) for m in inst.rewards)
    shift = data.draw(st.floats(-lo, 1.0 - hi))
    moved = with_report(inst, i, rewards=[np.clip(m[i] + shift, 0.0, 1.0) for m in inst.rewards])
    a, b = solve(inst), solve(moved)
    assert total_variation(a, b, inst) <= policy_tolerance(inst, moved)
    assert_same_payments(a, b, inst, moved)


@FAST
@given(inst=instances(), data=st.data())
def test_scaling_a_groups_rewards_by_c_equals_scaling_its_bid_by_c(inst: Instance, data: st.DataObject) -> None:
    i = data.draw(st.integers(0, inst.n_groups - 1))
    hi = max(float(m[i].max()) for m in inst.rewards)
    assume(hi > 0)
    c = data.draw(st.floats(1e-3, min(1.0 / hi, 1e3)))
    by_rewards = with_report(inst, i, rewards=[np.minimum(m[i] * c, 1.0) for m in inst.rewards])
    by_bid = with_report(inst, i, bid=float(inst.bids[i] * c))
    a, b = solve(by_rewards), solve(by_bid)
    assert total_variation(a, b, inst) <= policy_tolerance(by_rewards, by_bid)
    assert_same_payments(a, b, by_rewards, by_bid)
    assert abs(a.value[i] - b.value[i]) <= 1e-9 * abs(b.value[i]) + resolution(by_rewards, by_bid)


@SLOW
@given(inst=instances(max_groups=3, max_prompts=2, max_candidates=4))
def test_the_three_payment_formulas_agree(inst: Instance) -> None:
    out = solve(inst)
    ref = reference(inst)
    for i in range(inst.n_groups):
        for formula in (ref.payment_welfare, ref.payment_kl, ref.payment_logz):
            exact = float(formula[i])
            assert abs(out.payment[i] - exact) <= 1e-8 * abs(exact) + resolution(inst), (i, out.payment[i], exact)


@FAST
@given(
    inst=instances(min_groups=2, log_lambda=(-1.0, 1.0), bids=st.floats(0.1, 10.0)),
    epsilon=st.floats(0.1, 1.0),
    data=st.data(),
)
def test_without_payments_exaggerating_strictly_raises_a_groups_value(
    inst: Instance, epsilon: float, data: st.DataObject
) -> None:
    i = data.draw(st.integers(0, inst.n_groups - 1))
    # Interior rewards, so the exaggeration needs no clipping and is a pure stretch about the mean.
    interior = [
        np.array(data.draw(st.lists(st.floats(0.4, 0.6), min_size=len(b), max_size=len(b))))
        for b in inst.base_logweights
    ]
    inst = with_report(inst, i, rewards=interior)
    truth = solve(inst, payments=False)
    spread = sum(
        mu * float(q @ (r - q @ r) ** 2) for mu, q, r in zip(inst.prompt_weights, truth.policy, interior, strict=True)
    )
    assume(spread > 1e-4)
    lie = exaggerated(inst, i, epsilon)
    out = solve(lie, payments=False)
    gained = true_utility(lie, out, interior, float(inst.bids[i]), i) - truth.utility[i]
    assert gained > 1e-9 * truth.value[i]
    # ... and with payments the same lie does not pay.
    paid_truth, paid_lie = solve(inst), solve(lie)
    assert (
        true_utility(lie, paid_lie, interior, float(inst.bids[i]), i) <= paid_truth.utility[i] + 1e-9 * truth.value[i]
    )


def reference_total_variation(out: Outcome, ref_policy: list, inst: Instance) -> float:
    return float(
        sum(
            mu * 0.5 * sum(abs(float(x) - float(y)) for x, y in zip(q, r, strict=True))
            for mu, q, r in zip(inst.prompt_weights, out.policy, ref_policy, strict=True)
        )
    )


def assert_matches_reference_money(out: Outcome, ref, inst: Instance) -> None:  # noqa: ANN001
    for i in range(inst.n_groups):
        exact = float(ref.payment_kl[i])
        assert abs(out.payment[i] - exact) <= 1e-9 * abs(out.value[i]) + resolution(inst), (i, out.payment[i], exact)
    welfare = float(ref.welfare)
    assert abs(out.welfare - welfare) <= 1e-9 * abs(welfare) + resolution(inst), (out.welfare, welfare)


@SLOW
@given(inst=extreme_instances())
def test_extreme_ratios_match_the_reference_to_the_resolution_of_the_aggregate(inst: Instance) -> None:
    out = solve(inst)
    ref = reference(inst)
    assert_matches_reference_money(out, ref, inst)
    assert reference_total_variation(out, ref.policy, inst) <= policy_tolerance(inst)
    assert np.all(out.payment >= 0) and np.all(out.payment <= out.value) and np.all(out.value <= inst.bids)


@SLOW
@given(inst=extreme_instances(exact_aggregate=True))
def test_extreme_ratios_keep_the_base_weights_when_the_aggregate_is_exact(inst: Instance) -> None:
    out = solve(inst)
    ref = reference(inst)
    assert_matches_reference_money(out, ref, inst)
    assert reference_total_variation(out, ref.policy, inst) <= 1e-9
    kl = float(ref.kl_to_base)
    assert abs(out.kl_to_base - kl) <= 1e-9 * (1.0 + kl), (out.kl_to_base, kl)
    for i in range(inst.n_groups):
        assert abs(out.expected_reward[i] - float(ref.expected_reward[i])) <= 1e-9


@FAST
@given(inst=st.one_of(extreme_instances(max_groups=4), extreme_instances(exact_aggregate=True, max_groups=4)))
def test_extreme_ratios_stay_individually_rational_and_below_the_bid(inst: Instance) -> None:
    out = solve(inst)
    for arr in (out.payment, out.value, out.utility, out.expected_reward, out.log_partition):
        assert np.all(np.isfinite(arr))
    assert np.isfinite(out.welfare) and np.isfinite(out.kl_to_base) and out.kl_to_base >= 0
    for q in out.policy:
        assert np.all(q >= 0) and abs(q.sum() - 1) < 1e-12
    assert np.all(out.utility >= 0)
    assert np.all((out.payment >= 0) & (out.payment <= out.value) & (out.value <= inst.bids))


@FAST
@given(inst=st.one_of(instances(), extreme_instances()), data=st.data())
def test_no_misreport_raises_a_groups_true_utility_at_extreme_ratios_either(
    inst: Instance, data: st.DataObject
) -> None:
    i = data.draw(st.integers(0, inst.n_groups - 1))
    truth = solve(inst)
    true_rewards = [m[i] for m in inst.rewards]
    bid = float(inst.bids[i])
    lies = [
        bid_scaled(inst, i, data.draw(st.floats(0.0, 5.0))),
        exaggerated(inst, i, data.draw(st.floats(-1.0, 3.0))),
        with_report(
            inst,
            i,
            rewards=[np.array(data.draw(st.lists(rewards_st, min_size=len(r), max_size=len(r)))) for r in true_rewards],
        ),
    ]
    for lie in lies:
        out = solve(lie)
        gained = true_utility(lie, out, true_rewards, bid, i) - truth.utility[i]
        scale = max(truth.value[i], true_value(lie, out, true_rewards, bid))
        assert gained <= 1e-9 * scale + resolution(inst, lie), (gained, truth.utility[i])


@FAST
@given(inst=st.one_of(instances(), extreme_instances(max_groups=4)))
def test_the_price_is_at_most_the_value_added_over_the_model_without_the_group(inst: Instance) -> None:
    out = solve(inst)
    points = reference_points(inst)
    np.testing.assert_allclose(points.promised, out.expected_reward, rtol=0, atol=1e-12)
    for arr in (points.base, points.without):
        assert np.all((arr >= 0) & (arr <= 1))
    gain = inst.bids * (points.promised - points.without)
    assert np.all(out.payment <= gain + 1e-9 * out.value + resolution(inst)), (out.payment, gain)
