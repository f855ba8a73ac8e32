from __future__ import annotations

import numpy as np
import pytest
from scipy.special import logsumexp

from auctions import mechanism
from auctions.mechanism import (
    MechanismError,
    make_instance,
    normalise_scores,
    payments_to_cents,
    reference_points,
    solve,
    true_utility,
)
from tests.auctions.conftest import random_instance
from tests.auctions.reference import reference

EPS = np.finfo(np.float64).eps


def payment_tolerance(exact: float, bids: np.ndarray) -> float:
    """The documented accuracy: 1e-9 relative, or 8 ulps of the round's total bid (the resolution of R itself)."""
    return 1e-9 * abs(exact) + 8 * EPS * float(np.sum(bids))


def test_it_matches_the_closed_form_on_a_two_candidate_instance() -> None:
    inst = make_instance(
        kl_weight=0.5,
        group_ids=["a", "b"],
        bids=[2.0, 1.0],
        base_logweights=[[0.0, np.log(3.0)]],
        rewards=[[[1.0, 0.0], [0.0, 1.0]]],
    )
    out = solve(inst)
    q0 = np.array([0.25, 0.75])
    agg = np.array([2.0, 1.0])
    log_z = logsumexp(np.log(q0) + agg / 0.5)
    q = q0 * np.exp(agg / 0.5 - log_z)
    np.testing.assert_allclose(out.policy[0], q, rtol=1e-14)
    assert out.welfare == pytest.approx(0.5 * log_z, rel=1e-14)
    for i, r in enumerate(([1.0, 0.0], [0.0, 1.0])):
        w = (2.0, 1.0)[i]
        log_z_minus = logsumexp(np.log(q0) + (agg - w * np.array(r)) / 0.5)
        expected = float(q @ r)
        assert out.expected_reward[i] == pytest.approx(expected, rel=1e-14)
        assert out.value[i] == pytest.approx(w * expected, rel=1e-14)
        assert out.payment[i] == pytest.approx(w * expected - 0.5 * (log_z - log_z_minus), rel=1e-12)
    assert out.kl_to_base == pytest.approx(float(q @ np.log(q / q0)), rel=1e-13)
    assert out.revenue == pytest.approx(out.payment.sum(), rel=1e-15)
    np.testing.assert_allclose(out.utility, out.value - out.payment, rtol=1e-15)
    assert out.log_partition[0] == pytest.approx(log_z, rel=1e-14)


# The first pass takes exp for groups above _SPLIT_RATE and expm1 below; which split runs depends on whether numpy's
# exp is vectorised on the machine, so both are tested wherever the tests run.
SPLIT_RATES = pytest.mark.parametrize(
    "split_rate", [1.0, mechanism._EXPM1_RATE], ids=["expm1_below_1", "exp_above_0.008"]
)


@SPLIT_RATES
def test_it_reproduces_a_high_precision_reference_from_1e_minus_6_to_1e6_lambda_and_1e9_bids(
    split_rate: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mechanism, "_SPLIT_RATE", split_rate)
    rng = np.random.default_rng(7)
    for _ in range(60):
        n = int(rng.integers(1, 4))
        lam = float(10 ** rng.uniform(-6, 6))
        bids = 10 ** rng.uniform(-3, 9, n) * (rng.random(n) > 0.15)
        sizes = rng.integers(1, 5, int(rng.integers(1, 3)))
        rewards = [np.round(rng.random((n, k)), int(rng.integers(1, 17))) for k in sizes]
        inst = make_instance(
            kl_weight=lam,
            group_ids=[f"g{i}" for i in range(n)],
            bids=bids,
            base_logweights=[rng.normal(size=k) * 3 for k in sizes],
            rewards=rewards,
            prompt_weights=rng.uniform(0.1, 1.0, len(sizes)),
        )
        out = solve(inst)
        ref = reference(inst)
        for i in range(n):
            for exact in (ref.payment_kl[i], ref.payment_logz[i], ref.payment_welfare[i]):
                assert abs(out.payment[i] - float(exact)) <= payment_tolerance(float(exact), bids), (lam, bids, i)
            assert out.value[i] <= bids[i] * (1 + 1e-15)
        assert out.welfare == pytest.approx(float(ref.welfare), rel=1e-9, abs=1e-50 * lam)
        assert np.all(np.isfinite(out.utility)) and np.all(out.payment >= 0) and np.all(out.payment <= out.value)


def test_the_three_payment_formulas_agree_in_high_precision() -> None:
    rng = np.random.default_rng(3)
    for _ in range(20):
        inst = random_instance(rng, n=3, prompts=2)
        ref = reference(inst)
        for i in range(3):
            kl, logz, welfare = (float(x[i]) for x in (ref.payment_kl, ref.payment_logz, ref.payment_welfare))
            assert logz == pytest.approx(kl, rel=1e-8)
            assert welfare == pytest.approx(kl, rel=1e-8)


def test_welfare_is_the_reported_value_minus_the_kl_price() -> None:
    inst = random_instance(np.random.default_rng(1), n=4, prompts=3)
    out = solve(inst)
    assert out.welfare == pytest.approx(out.value.sum() - inst.kl_weight * out.kl_to_base, rel=1e-12)


def test_it_handles_prompts_with_different_candidate_counts() -> None:
    inst = random_instance(np.random.default_rng(2), n=2, prompts=4, candidates=(1, 9))
    out = solve(inst)
    assert [len(q) for q in out.policy] == [len(b) for b in inst.base_logweights]
    for q in out.policy:
        assert q.sum() == pytest.approx(1.0, abs=1e-14)
        assert np.all(q >= 0)
    ref = reference(inst)
    for i in range(2):
        assert out.payment[i] == pytest.approx(float(ref.payment_kl[i]), rel=1e-9)


def test_a_single_candidate_prompt_pays_nothing_and_keeps_the_base() -> None:
    inst = make_instance(kl_weight=1.0, group_ids=["a"], bids=[5.0], base_logweights=[[0.3]], rewards=[[[0.7]]])
    out = solve(inst)
    assert out.policy[0].tolist() == [1.0]
    assert out.payment[0] == 0.0
    assert out.value[0] == pytest.approx(3.5)
    assert out.kl_to_base == 0.0


def test_a_constant_report_and_a_zero_bid_pay_exactly_zero() -> None:
    rng = np.random.default_rng(4)
    base = random_instance(rng, n=2, prompts=3, candidates=(3, 5))
    rewards = [np.vstack([r, np.full(r.shape[1], 0.4), rng.random(r.shape[1])]) for r in base.rewards]
    inst = make_instance(
        kl_weight=1e-6,
        group_ids=["x", "y", "const", "zero"],
        bids=[1e9, 3.0, 1e9, 0.0],
        base_logweights=base.base_logweights,
        rewards=rewards,
    )
    out = solve(inst)
    assert out.payment[2] == 0.0 and out.payment[3] == 0.0
    assert out.utility[2] == pytest.approx(1e9 * 0.4)


def test_it_stays_finite_when_exponentials_underflow() -> None:
    inst = make_instance(
        kl_weight=1e-6,
        group_ids=["a", "b", "c"],
        bids=[1e9, 1e9 * (1 - 1e-9), 7.0],
        base_logweights=[[0.0, 0.0, -50.0]],
        rewards=[[[1.0, 0.0, 0.5], [0.0, 1.0, 0.5], [0.2, 0.0, 1.0]]],
    )
    out = solve(inst)
    ref = reference(inst)
    assert np.all(np.isfinite(out.payment))
    for i in range(3):
        assert abs(out.payment[i] - float(ref.payment_kl[i])) <= payment_tolerance(float(ref.payment_kl[i]), inst.bids)


def test_solve_without_payments_charges_nothing_and_keeps_the_policy() -> None:
    inst = random_instance(np.random.default_rng(5))
    paid, free = solve(inst), solve(inst, payments=False)
    assert np.all(free.payment == 0) and free.revenue == 0
    np.testing.assert_array_equal(free.utility, free.value)
    for a, b in zip(paid.policy, free.policy, strict=True):
        np.testing.assert_array_equal(a, b)


def test_true_utility_under_the_truth_is_the_reported_utility() -> None:
    inst = random_instance(np.random.default_rng(6))
    out = solve(inst)
    for i in range(inst.n_groups):
        truth = [r[i] for r in inst.rewards]
        assert true_utility(inst, out, truth, float(inst.bids[i]), i) == pytest.approx(out.utility[i], rel=1e-12)


def test_it_accepts_an_auction_without_groups() -> None:
    inst = make_instance(kl_weight=1.0, group_ids=[], bids=[], base_logweights=[[0.0, 1.0]], rewards=[np.zeros((0, 2))])
    out = solve(inst)
    assert out.welfare == 0.0 and out.revenue == 0.0
    np.testing.assert_allclose(out.policy[0], np.exp([0.0, 1.0]) / np.exp([0.0, 1.0]).sum())


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"kl_weight": 0.0}, "kl_weight"),
        ({"kl_weight": float("nan")}, "kl_weight"),
        ({"bids": [1.0, -1.0]}, "group 'b': bid -1.0"),
        ({"bids": [1.0, float("inf")]}, "group 'b': bid inf"),
        ({"group_ids": ["a", "a"]}, "group 'a': the id appears twice"),
        ({"rewards": [[[0.0, 1.0], [0.5, 1.5]], [[0.0], [1.0]]]}, "group 'b', prompt 0, candidate 1: reward 1.5"),
        (
            {"rewards": [[[0.0, 1.0], [0.5, 0.5]], [[float("nan")], [1.0]]]},
            "group 'a', prompt 1, candidate 0: reward nan",
        ),
        ({"rewards": [[[0.0, 1.0], [0.5]], [[0.0], [1.0]]]}, "prompt 0"),
        (
            {"rewards": [[[0.0, 1.0, 0.3], [0.5, 0.1, 0.2]], [[0.0], [1.0]]]},
            "group 'a', prompt 0: 3 rewards for 2 candidates",
        ),
        ({"base_logweights": [[0.0, float("inf")], [0.0]]}, "prompt 0, candidate 1: base log-weight inf"),
        (
            {"base_logweights": [[], [0.0]], "rewards": [np.zeros((2, 0)), [[0.0], [1.0]]]},
            "prompt 0: at least one candidate",
        ),
        ({"prompt_weights": [1.0, -1.0]}, "prompt 1: weight -1.0"),
        ({"prompt_weights": [0.0, 0.0]}, "positive, finite sum"),
        ({"kl_weight": 1e-300, "bids": [1e300, 1e300]}, "overflows"),
    ],
)
def test_it_rejects_invalid_input_naming_what_is_wrong(change: dict, fragment: str) -> None:
    kwargs: dict = {
        "kl_weight": 1.0,
        "group_ids": ["a", "b"],
        "bids": [1.0, 2.0],
        "base_logweights": [[0.0, 0.0], [0.0]],
        "rewards": [[[0.0, 1.0], [0.5, 0.5]], [[0.0], [1.0]]],
    }
    kwargs.update(change)
    with pytest.raises(MechanismError, match=None) as info:
        make_instance(**kwargs)
    assert fragment in str(info.value)


def test_normalise_scores_maps_the_round_min_to_0_and_max_to_1() -> None:
    scores = np.array([[2.0, 4.0, 3.0], [6.0, 2.0, 5.0]])
    out = normalise_scores(scores)
    np.testing.assert_allclose(out, [[0.0, 0.5, 0.25], [1.0, 0.0, 0.75]])
    assert out.shape == scores.shape


def test_normalise_scores_maps_a_constant_to_zeros_and_rejects_nan() -> None:
    np.testing.assert_array_equal(normalise_scores([3.0, 3.0, 3.0]), [0.0, 0.0, 0.0])
    with pytest.raises(MechanismError):
        normalise_scores([1.0, float("nan")])


def test_normalised_reports_make_the_same_auction_whatever_the_raw_scale() -> None:
    rng = np.random.default_rng(8)
    raw = rng.normal(size=(2, 5))
    inst_a = make_instance(
        kl_weight=1.0,
        group_ids=["g"],
        bids=[1.0],
        base_logweights=[np.zeros(5)] * 2,
        rewards=[normalise_scores(raw)[p][None, :] for p in range(2)],
    )
    inst_b = make_instance(
        kl_weight=1.0,
        group_ids=["g"],
        bids=[1.0],
        base_logweights=[np.zeros(5)] * 2,
        rewards=[normalise_scores(7.0 * raw - 3.0)[p][None, :] for p in range(2)],
    )
    assert solve(inst_a).payment[0] == pytest.approx(solve(inst_b).payment[0], rel=1e-12)


def test_payments_to_cents_rounds_down_and_never_exceeds_the_bid() -> None:
    assert payments_to_cents([123.999, 0.2, 5000.7, -1e-12], [1000, 10, 5000, 10]) == [123, 0, 5000, 0]


def test_payments_to_cents_rejects_nan() -> None:
    with pytest.raises(MechanismError, match="payment 1"):
        payments_to_cents([1.0, float("nan")], [10, 10])


def test_make_instance_copies_its_input_and_freezes_the_arrays() -> None:
    rewards = [np.array([[0.2, 0.8]])]
    inst = make_instance(
        kl_weight=1.0, group_ids=["a"], bids=np.array([1.0]), base_logweights=[[0.0, 0.0]], rewards=rewards
    )
    before = solve(inst).payment[0]
    rewards[0][0, 0] = 1.0
    assert inst.rewards[0][0, 0] == 0.2
    assert solve(inst).payment[0] == before
    with pytest.raises(ValueError):
        inst.rewards[0][0, 0] = 0.5
    with pytest.raises(ValueError):
        inst.bids[0] = 2.0


def test_it_keeps_the_base_weights_when_the_bid_is_1e20_times_lambda() -> None:
    # Two candidates tie on the reward; only the base weights (0 and -1000 nats) can tell them apart.
    inst = make_instance(
        kl_weight=1e-8, group_ids=["g"], bids=[1e12], base_logweights=[[0.0, -1000.0, 0.0]], rewards=[[[1, 1, 0]]]
    )
    out = solve(inst)
    np.testing.assert_array_equal(out.policy[0], [1.0, 0.0, 0.0])
    assert out.kl_to_base == pytest.approx(np.log(2.0), rel=1e-14)
    assert out.payment[0] == pytest.approx(1e-8 * np.log(2.0), rel=1e-12)
    assert out.value[0] == 1e12
    ref = reference(inst)
    assert out.kl_to_base == pytest.approx(float(ref.kl_to_base), rel=1e-14)


@pytest.mark.parametrize("ratio", [1e10, 1e12, 1e15])
def test_it_reproduces_the_reference_at_extreme_ratios_with_spread_base_weights(ratio: float) -> None:
    rng = np.random.default_rng(int(np.log10(ratio)))
    for _ in range(10):
        n, k = 3, 5
        bids = rng.integers(1, 1000, n) * 2.0**-10  # dyadic, so the aggregate is exact
        rewards = rng.integers(0, 5, (n, k)) / 4.0
        rewards[:, 1] = rewards[:, 0]  # a tie the base weights must break
        inst = make_instance(
            kl_weight=float(bids.sum() / ratio),
            group_ids=["a", "b", "c"],
            bids=bids,
            base_logweights=[rng.uniform(-1000.0, 0.0, k)],
            rewards=[rewards],
        )
        out = solve(inst)
        ref = reference(inst)
        np.testing.assert_allclose(out.policy[0], [float(x) for x in ref.policy[0]], rtol=1e-12, atol=1e-300)
        assert out.kl_to_base == pytest.approx(float(ref.kl_to_base), rel=1e-12)
        for i in range(n):
            exact = float(ref.payment_kl[i])
            assert abs(out.payment[i] - exact) <= payment_tolerance(exact, bids)


def _without_group(inst, i):  # noqa: ANN001, ANN202
    keep = [j for j in range(inst.n_groups) if j != i]
    return make_instance(
        kl_weight=inst.kl_weight,
        group_ids=[inst.group_ids[j] for j in keep],
        bids=inst.bids[keep],
        base_logweights=inst.base_logweights,
        rewards=[r[keep] for r in inst.rewards],
        prompt_weights=inst.prompt_weights,
    )


def test_reference_points_match_a_naive_re_solve_without_each_group() -> None:
    rng = np.random.default_rng(9)
    for trial in range(40):
        # Rates from 1e-3 to 1e4 cover both the linear-space and the log-space leave-one-out paths.
        lam = float(10 ** rng.uniform(-3, 1))
        inst = random_instance(rng, n=int(rng.integers(1, 5)), prompts=3, kl_weight=lam, bid_range=(0.0, 10.0))
        points = reference_points(inst)
        out = solve(inst)
        np.testing.assert_allclose(points.promised, out.expected_reward, rtol=0, atol=1e-14)
        for i in range(inst.n_groups):
            without = solve(_without_group(inst, i))
            mu = inst.prompt_weights
            c = sum(m * float(q @ r[i]) for m, q, r in zip(mu, without.policy, inst.rewards, strict=True))
            base = sum(
                m * float(np.exp(b - logsumexp(b)) @ r[i])
                for m, b, r in zip(mu, inst.base_logweights, inst.rewards, strict=True)
            )
            assert points.without[i] == pytest.approx(c, abs=1e-12), (trial, i)
            assert points.base[i] == pytest.approx(base, abs=1e-14)
            assert out.payment[i] <= inst.bids[i] * (points.promised[i] - points.without[i]) + 1e-12


def test_reference_points_say_when_the_others_pull_the_model_away_from_a_group() -> None:
    # b likes what a dislikes and bids far more: the model trained with both is worse for a than the base model,
    # yet a pays less than its gain over the model without it.
    inst = make_instance(
        kl_weight=1.0,
        group_ids=["a", "b"],
        bids=[1.0, 5.0],
        base_logweights=[[0.0, 0.0, 0.0]],
        rewards=[[[1.0, 0.0, 0.5], [0.0, 1.0, 0.2]]],
    )
    out, points = solve(inst), reference_points(inst)
    assert points.promised[0] < points.base[0]
    assert points.without[0] < points.promised[0]
    assert 0 < out.payment[0] <= inst.bids[0] * (points.promised[0] - points.without[0])


def test_reference_points_of_a_group_that_dominates_at_a_huge_rate() -> None:
    inst = make_instance(
        kl_weight=1e-9,
        group_ids=["big", "small"],
        bids=[1e6, 1.0],
        base_logweights=[[0.0, 0.0, -3.0]],
        rewards=[[[1.0, 0.0, 0.0], [0.0, 0.5, 1.0]]],
    )
    points = reference_points(inst)
    # Without "big", "small" alone drives the model to its favourite candidate (worth 0 to "big"); with it, "big"
    # wins outright, and the model without "small" is the same as the model with it.
    assert points.without[0] == pytest.approx(0.0, abs=1e-12)
    assert points.promised[0] == pytest.approx(1.0, abs=1e-12)
    assert points.without[1] == pytest.approx(0.0, abs=1e-12)
    assert points.promised[1] == pytest.approx(0.0, abs=1e-12)
    assert points.base[1] == pytest.approx(float(np.exp([0, 0, -3]) @ [0, 0.5, 1] / np.exp([0, 0, -3]).sum()))


def test_reference_points_of_an_auction_without_groups_are_empty() -> None:
    inst = make_instance(kl_weight=1.0, group_ids=[], bids=[], base_logweights=[[0.0, 1.0]], rewards=[np.zeros((0, 2))])
    points = reference_points(inst)
    assert points.base.shape == points.without.shape == points.promised.shape == (0,)


@SPLIT_RATES
def test_both_first_pass_forms_give_relative_accurate_payments_over_a_range_of_rates(
    split_rate: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Rates from 1e-5 to 10 with many groups: the exp form's weak groups take the expm1 retry, the tiniest the series.
    monkeypatch.setattr(mechanism, "_SPLIT_RATE", split_rate)
    rng = np.random.default_rng(21)
    for _ in range(8):
        n = 12
        inst = make_instance(
            kl_weight=1.0,
            group_ids=[f"g{i}" for i in range(n)],
            bids=10 ** rng.uniform(-5, 1, n),
            base_logweights=[rng.normal(size=4) for _ in range(2)],
            rewards=[rng.random((n, 4)) for _ in range(2)],
        )
        out = solve(inst)
        ref = reference(inst)
        for i in range(n):
            exact = float(ref.payment_kl[i])
            assert out.payment[i] == pytest.approx(exact, rel=1e-9, abs=1e-300), (i, inst.bids[i])
