from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from auctions.mechanism import Instance, MechanismError, make_instance, solve
from auctions.sybil import split_group, sybil_split, sybil_table
from tests.auctions.test_properties import FAST, instances, policy_tolerance, resolution


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


def tolerance(inst: Instance, group: int) -> float:
    return 1e-9 * float(inst.bids[group]) + resolution(inst)


def test_splitting_builds_k_identities_with_a_kth_of_the_bid_each() -> None:
    inst = demo()
    split = split_group(inst, 1, 3)
    assert split.group_ids == ("a", "b#1", "b#2", "b#3", "c")
    np.testing.assert_array_equal(split.bids, [3.0, 2 / 3, 2 / 3, 2 / 3, 1.5])
    for before, after in zip(inst.rewards, split.rewards, strict=True):
        np.testing.assert_array_equal(after[1:4], np.repeat(before[1:2], 3, axis=0))
        np.testing.assert_array_equal(after[[0, 4]], before[[0, 2]])
    assert split_group(inst, 1, 1) is inst


def test_identities_pay_alike_and_share_the_groups_value() -> None:
    inst = demo()
    r = sybil_split(inst, 0, 4)
    np.testing.assert_allclose(r.split_payments, r.split_payments[0], rtol=1e-12)
    out = solve(split_group(inst, 0, 4))
    assert out.value[:4].sum() == pytest.approx(solve(inst).value[0], rel=1e-12)


@FAST
@given(inst=instances(), data=st.data())
def test_splitting_leaves_the_policy_and_the_others_payments_unchanged(inst: Instance, data: st.DataObject) -> None:
    group = data.draw(st.integers(0, inst.n_groups - 1))
    k = data.draw(st.integers(1, 60))
    r = sybil_split(inst, group, k)
    assert r.policy_difference <= policy_tolerance(inst)
    others = np.delete(solve(inst).value, group)
    assert r.others_payment_difference <= 1e-9 * float(np.max(others, initial=0.0)) + resolution(inst)


@FAST
@given(inst=instances(), data=st.data())
def test_without_a_fee_the_total_charged_falls_with_k_and_at_least_like_1_over_k(
    inst: Instance, data: st.DataObject
) -> None:
    group = data.draw(st.integers(0, inst.n_groups - 1))
    k1 = data.draw(st.integers(1, 30))
    k2 = data.draw(st.integers(k1, 60))
    t1, t2 = sybil_split(inst, group, k1).split_total, sybil_split(inst, group, k2).split_total
    assert t2 <= t1 + tolerance(inst, group)
    w = float(inst.bids[group])
    # Hoeffding: each identity's KL is at most (w / k / lambda)² / 8 per prompt.
    assert t2 <= w**2 / (8 * inst.kl_weight * k2) + tolerance(inst, group)


@FAST
@given(inst=instances(), data=st.data())
def test_with_a_fee_no_split_saves_money_once_the_fees_cover_the_unsplit_price(
    inst: Instance, data: st.DataObject
) -> None:
    group = data.draw(st.integers(0, inst.n_groups - 1))
    price = float(solve(inst).payment[group])
    fee = data.draw(st.floats(0.02, 10.0)) * max(price, 1e-9)
    k = max(2, int(np.ceil(1 + price / fee)) + 1)  # + 1: (k - 1) fee >= price despite the rounding of price / fee
    k = data.draw(st.integers(k, k + 20))
    r = sybil_split(inst, group, k, fee=fee)
    assert (k - 1) * fee >= price
    assert r.split_total >= r.unsplit_total - tolerance(inst, group)
    assert r.saving == pytest.approx(price - float(r.split_payments.sum()) - (k - 1) * fee, abs=1e-12 * (1 + k * fee))


@FAST
@given(inst=instances(), data=st.data())
def test_the_total_charged_is_convex_in_k(inst: Instance, data: st.DataObject) -> None:
    # k -> k f(w / k) is the perspective of the convex f(b) = λ Σ μ KL(q* || q* e^{-b s / λ}): the first identity
    # added saves the most, so a fee of T(1) - T(2) already makes every split unprofitable.
    group = data.draw(st.integers(0, inst.n_groups - 1))
    k = data.draw(st.integers(2, 40))
    t = [sybil_split(inst, group, j).split_total for j in (k - 1, k, k + 1)]
    assert t[0] + t[2] >= 2 * t[1] - 4 * tolerance(inst, group), t


def test_a_fee_of_t1_minus_t2_makes_every_split_cost_at_least_as_much_as_bidding_once() -> None:
    inst = demo()
    t1, t2 = sybil_split(inst, 0, 1).split_total, sybil_split(inst, 0, 2).split_total
    fee = t1 - t2
    assert 0 < fee < t1
    savings = [sybil_split(inst, 0, k, fee=fee).saving for k in (2, 3, 10, 50)]
    assert savings[0] == pytest.approx(0.0, abs=1e-12)
    assert all(x <= 1e-12 for x in savings), savings
    assert sybil_split(inst, 0, 2, fee=0.9 * fee).saving > 0  # a smaller fee leaves two identities better off
    assert sybil_split(inst, 0, 50).saving > 0.9 * t1  # without a fee, 50 identities pay under a tenth


def test_the_table_lists_every_k_with_and_without_the_fee() -> None:
    table = sybil_table(demo(), 0, (1, 2, 10, 50), fee=0.05)
    lines = table.splitlines()
    assert lines[0].startswith("group 'a'")
    assert len(lines) == 2 + 8
    assert [int(line.split()[0]) for line in lines[2:]] == [1, 2, 10, 50] * 2


def test_it_rejects_a_bad_group_k_or_fee() -> None:
    inst = demo()
    with pytest.raises(MechanismError, match="group 5"):
        split_group(inst, 5, 2)
    with pytest.raises(MechanismError, match="k: 0"):
        split_group(inst, 0, 0)
    with pytest.raises(MechanismError, match="fee"):
        sybil_split(inst, 0, 2, fee=-1.0)
