from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.special import logsumexp

from auctions.guarantee import AUCTION_PRICE, DELIVERY_GUARANTEE, delivery_guarantee, implied_logweights
from auctions.mechanism import Instance, MechanismError, Outcome, make_instance, reference_points, solve, true_value
from auctions.misreport import bid_scaled, exaggerated, mixed, with_report
from tests.auctions.conftest import random_instance
from tests.auctions.test_properties import FAST, extreme_instances, instances, resolution, rewards_st


def log_policy(policy: tuple[np.ndarray, ...]) -> list[np.ndarray]:
    with np.errstate(divide="ignore"):
        return [np.log(q) for q in policy]


def exact_delivery_charge(inst: Instance) -> tuple[Outcome, np.ndarray]:
    """The auction's outcome delivered exactly: the adapter's implied reweighting is q*."""
    out = solve(inst)
    return out, delivery_guarantee(inst, out, log_policy(out.policy)).charge


def demo() -> Instance:
    return make_instance(
        kl_weight=1.0,
        group_ids=["a", "b", "c"],
        bids=[3.0, 2.0, 1.5],
        base_logweights=[[0.0, 0.0, 0.0, 0.0], [0.5, 0.0, -0.5, 0.0]],
        rewards=[
            [[0.0, 0.6, 0.1, 1.0], [0.1, 0.9, 0.3, 0.0], [0.4, 0.2, 1.0, 0.5]],
            [[0.5, 0.2, 0.3, 0.7], [0.7, 0.0, 0.5, 1.0], [0.5, 1.0, 0.4, 0.8]],
        ],
    )


def test_exact_delivery_charges_exactly_the_auction_price() -> None:
    inst = demo()
    out = solve(inst)
    g = delivery_guarantee(inst, out, log_policy(out.policy))
    np.testing.assert_array_equal(g.charge, out.payment)
    assert g.binding == (AUCTION_PRICE,) * 3
    np.testing.assert_allclose(g.delivered, out.expected_reward, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(g.without, reference_points(inst).without)
    assert np.all(g.bound > out.payment)


def test_the_adapters_log_probabilities_give_the_same_reweighting() -> None:
    inst = demo()
    out = solve(inst)
    rng = np.random.default_rng(0)
    log_pi0 = [rng.normal(size=len(b)) - 3.0 for b in inst.base_logweights]
    # An adapter whose probabilities are pi0 * q*/q0 (up to a constant per prompt) implies exactly q*.
    log_pi_theta = [
        z + np.log(q) - (b - logsumexp(b)) + 1.7
        for z, q, b in zip(log_pi0, out.policy, inst.base_logweights, strict=True)
    ]
    implied = implied_logweights(inst, log_pi_theta, log_pi0)
    g = delivery_guarantee(inst, out, implied)
    np.testing.assert_allclose(g.delivered, out.expected_reward, rtol=0, atol=1e-14)
    np.testing.assert_array_equal(g.charge, out.payment)


def test_an_untrained_adapter_delivers_the_base_and_charges_only_the_gain_over_the_model_without_the_group() -> None:
    inst = demo()
    out = solve(inst)
    points = reference_points(inst)
    g = delivery_guarantee(inst, out, list(inst.base_logweights))
    np.testing.assert_allclose(g.delivered, points.base, rtol=0, atol=1e-15)
    expected = np.minimum(out.payment, inst.bids * np.maximum(0.0, points.base - points.without))
    np.testing.assert_array_equal(g.charge, expected)
    assert DELIVERY_GUARANTEE in g.binding


def test_an_adapter_that_ignores_a_group_charges_it_nothing() -> None:
    inst = demo()
    out = solve(inst)
    keep = [1, 2]
    without_a = solve(
        make_instance(
            kl_weight=inst.kl_weight,
            group_ids=["b", "c"],
            bids=inst.bids[keep],
            base_logweights=inst.base_logweights,
            rewards=[r[keep] for r in inst.rewards],
        )
    )
    g = delivery_guarantee(inst, out, log_policy(without_a.policy))
    assert g.charge[0] <= 1e-12 * inst.bids[0]
    assert g.binding[0] == DELIVERY_GUARANTEE
    assert g.delivered[0] == pytest.approx(g.without[0], abs=1e-12)


def test_it_rejects_weights_that_do_not_fit_the_candidates() -> None:
    inst = demo()
    out = solve(inst)
    with pytest.raises(MechanismError, match="prompt 1: log q_theta: 3 values for 4 candidates"):
        delivery_guarantee(inst, out, [np.zeros(4), np.zeros(3)])
    with pytest.raises(MechanismError, match="expected one vector per prompt"):
        delivery_guarantee(inst, out, [np.zeros(4)])
    with pytest.raises(MechanismError, match="prompt 0, candidate 2: log q_theta nan"):
        delivery_guarantee(inst, out, [[0.0, 0.0, float("nan"), 0.0], np.zeros(4)])
    with pytest.raises(MechanismError, match="prompt 0: log q_theta must be finite on at least one candidate"):
        delivery_guarantee(inst, out, [np.full(4, -np.inf), np.zeros(4)])
    with pytest.raises(MechanismError, match="prompt 0, candidate 0: log pi0 -inf must be finite"):
        implied_logweights(inst, [np.zeros(4)] * 2, [[-np.inf, 0.0, 0.0, 0.0], np.zeros(4)])
    with pytest.raises(MechanismError, match="does not belong"):
        delivery_guarantee(inst, solve(random_instance(np.random.default_rng(1), n=2, prompts=2)), [np.zeros(4)] * 2)


def test_the_gain_over_the_model_without_a_group_is_the_symmetrised_kl() -> None:
    # The identity behind p_i <= w_i (E_q*[r_i] - C_i): per prompt, a (E_q*[r] - E_q-[r]) = KL(q*||q-) + KL(q-||q*).
    rng = np.random.default_rng(5)
    for _ in range(20):
        inst = random_instance(rng, n=3, prompts=2)
        out, points = solve(inst), reference_points(inst)
        for i in range(3):
            lam, w = inst.kl_weight, inst.bids
            total = 0.0
            for p, (b, r) in enumerate(zip(inst.base_logweights, inst.rewards, strict=True)):
                log_q0 = b - logsumexp(b)
                expo = log_q0 + (w @ r) / lam
                expo_minus = expo - w[i] * r[i] / lam
                log_q, log_qm = expo - logsumexp(expo), expo_minus - logsumexp(expo_minus)
                q, qm = np.exp(log_q), np.exp(log_qm)
                total += inst.prompt_weights[p] * lam * (q @ (log_q - log_qm) + qm @ (log_qm - log_q))
            assert w[i] * (points.promised[i] - points.without[i]) == pytest.approx(total, rel=1e-9, abs=1e-14)
            assert out.payment[i] <= total


@FAST
@given(inst=st.one_of(instances(), extreme_instances(max_groups=4)))
def test_the_guarantee_equals_the_auction_price_when_delivery_is_exact(inst: Instance) -> None:
    out, charge = exact_delivery_charge(inst)
    assert np.all(np.abs(charge - out.payment) <= resolution(inst)), (charge, out.payment)
    assert np.all(charge <= out.payment)


@FAST
@given(inst=st.one_of(instances(), extreme_instances(max_groups=4)), data=st.data())
def test_the_charge_is_never_negative_nor_above_the_bid_the_price_or_the_measured_gain(
    inst: Instance, data: st.DataObject
) -> None:
    out = solve(inst)
    logits = st.one_of(st.just(-np.inf), st.floats(-50.0, 50.0))
    weights = []
    for b in inst.base_logweights:
        row = np.array(data.draw(st.lists(logits, min_size=len(b), max_size=len(b))))
        row[data.draw(st.integers(0, len(b) - 1))] = 0.0  # at least one candidate the adapter produces
        weights.append(row)
    g = delivery_guarantee(inst, out, weights)
    assert np.all(g.charge >= 0)
    assert np.all(g.charge <= inst.bids)
    assert np.all(g.charge <= out.payment)
    assert np.all(g.charge <= inst.bids * np.maximum(0.0, g.delivered - g.without))
    for i, binding in enumerate(g.binding):
        assert binding == (AUCTION_PRICE if out.payment[i] <= g.bound[i] else DELIVERY_GUARANTEE)
    assert np.all((g.delivered >= 0) & (g.delivered <= 1))


@FAST
@given(inst=instances(), data=st.data())
def test_with_exact_delivery_no_misreport_beats_the_truth_under_the_guarantee(
    inst: Instance, data: st.DataObject
) -> None:
    i = data.draw(st.integers(0, inst.n_groups - 1))
    true_rewards = [m[i] for m in inst.rewards]
    bid = float(inst.bids[i])
    truth, truth_charge = exact_delivery_charge(inst)
    truthful_utility = truth.value[i] - truth_charge[i]
    lies = [
        bid_scaled(inst, i, data.draw(st.floats(0.0, 5.0))),
        exaggerated(inst, i, data.draw(st.floats(-1.0, 3.0))),
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
        out, charge = exact_delivery_charge(lie)
        value = true_value(lie, out, true_rewards, bid)
        gained = value - charge[i] - truthful_utility
        assert gained <= 1e-9 * max(value, truth.value[i]) + resolution(inst, lie), gained
