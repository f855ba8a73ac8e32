from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auctions.ads.mosaic import MosaicResult, mosaic_draw, mosaic_instance, mosaic_solve
from auctions.mechanism import MechanismError, solve, true_utility
from auctions.misreport import bid_scaled, exaggerated, mixed, with_report
from auctions.schema import instance_to_json

ROOT = Path(__file__).resolve().parents[3]
PROPS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def queries(draw: st.DrawFn) -> MosaicResult:
    n = draw(st.integers(1, 4))
    m = draw(st.integers(2, 6))
    return mosaic_solve(
        bids=draw(st.lists(st.floats(0.0, 10.0), min_size=n, max_size=n)),
        rewards=[draw(st.lists(st.floats(0.0, 1.0), min_size=m, max_size=m)) for _ in range(n)],
        log_ref=draw(st.lists(st.floats(-8.0, 0.0), min_size=m, max_size=m)),
        log_gen=draw(st.lists(st.floats(-8.0, 0.0), min_size=m, max_size=m)),
        tau=float(10.0 ** draw(st.floats(-1.0, 1.0))),
    )


def test_the_allocation_is_the_reweighted_softmax_of_the_aggregate_reward() -> None:
    rewards = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.2]])
    bids, tau = np.array([2.0, 1.0]), 0.7
    log_ref, log_gen = np.log([0.5, 0.3, 0.2]), np.log([0.2, 0.3, 0.5])
    got = mosaic_solve(bids=bids, rewards=rewards, log_ref=log_ref, log_gen=log_gen, tau=tau)
    weight = np.exp(log_ref - log_gen) * np.exp(bids @ rewards / tau)
    np.testing.assert_allclose(got.policy, weight / weight.sum(), rtol=1e-12)
    np.testing.assert_allclose(got.expected_reward, rewards @ got.policy, rtol=1e-12)


def test_payments_are_the_welfare_the_others_lose() -> None:
    rewards = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.2]])
    bids, tau = np.array([2.0, 1.0]), 0.7
    log_ref = np.log([0.5, 0.3, 0.2])
    got = mosaic_solve(bids=bids, rewards=rewards, log_ref=log_ref, tau=tau)
    q0 = np.full(3, 1 / 3)  # candidates from the reference model itself: uniform base weights

    def welfare_of_others(q: np.ndarray, i: int) -> float:
        others = np.delete(bids, i) @ np.delete(rewards, i, axis=0)
        return float(q @ others - tau * np.sum(q * np.log(q / q0)))

    for i in range(2):
        others = np.delete(bids, i) @ np.delete(rewards, i, axis=0)
        q_without = q0 * np.exp(others / tau)
        q_without /= q_without.sum()
        expected = welfare_of_others(q_without, i) - welfare_of_others(got.policy, i)
        assert got.payment[i] == pytest.approx(expected, rel=1e-10)


def test_python_m_auctions_solve_on_one_prompt_is_mosaic_for_one_query(tmp_path: Path) -> None:
    inst = mosaic_instance(
        ids=["shoes", "hotels"], bids=[2.0, 1.0], rewards=[[1, 0, 0.5], [0, 1, 0.2]], log_ref=[-1, -2, -3], tau=0.5
    )
    path = tmp_path / "query.json"
    path.write_text(json.dumps(instance_to_json(inst)))
    done = subprocess.run(
        [sys.executable, "-m", "auctions", "solve", str(path)], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    got = mosaic_solve(
        ids=["shoes", "hotels"], bids=[2.0, 1.0], rewards=[[1, 0, 0.5], [0, 1, 0.2]], log_ref=[-1, -2, -3], tau=0.5
    )
    np.testing.assert_allclose(printed["policy"][0], got.policy, rtol=1e-12)
    for i, ident in enumerate(["shoes", "hotels"]):
        assert printed["groups"][ident]["payment"] == pytest.approx(float(got.payment[i]), rel=1e-12)


@PROPS
@given(queries(), st.data())
def test_no_misreport_of_rewards_or_bid_raises_expected_utility(result: MosaicResult, data: st.DataObject) -> None:
    inst = result.instance
    i = data.draw(st.integers(0, inst.n_groups - 1))
    true_rewards = [np.array(inst.rewards[0][i])]
    true_bid = float(inst.bids[i])
    truthful = true_utility(inst, result.outcome, true_rewards, true_bid, i)
    m = inst.rewards[0].shape[1]
    lies = [
        bid_scaled(inst, i, data.draw(st.floats(0.0, 4.0))),
        exaggerated(inst, i, data.draw(st.floats(-1.0, 3.0))),
        with_report(inst, i, rewards=[np.array(data.draw(st.lists(st.floats(0.0, 1.0), min_size=m, max_size=m)))]),
        with_report(
            inst,
            i,
            bid=data.draw(st.floats(0.0, 20.0)),
            rewards=[np.array(data.draw(st.lists(st.floats(0.0, 1.0), min_size=m, max_size=m)))],
        ),
    ]
    if inst.n_groups > 1:
        lies.append(mixed(inst, i, (i + 1) % inst.n_groups, data.draw(st.floats(-1.0, 1.0))))
    tol = 1e-9 * (1.0 + true_bid + float(inst.bids.sum()))
    for lie in lies:
        assert true_utility(lie, solve(lie), true_rewards, true_bid, i) <= truthful + tol


@PROPS
@given(queries(), st.data())
def test_the_expected_reward_is_monotone_in_the_own_bid_and_payments_are_bounded(
    result: MosaicResult, data: st.DataObject
) -> None:
    inst = result.instance
    i = data.draw(st.integers(0, inst.n_groups - 1))
    low, high = sorted(data.draw(st.lists(st.floats(0.0, 20.0), min_size=2, max_size=2)))
    a, b = solve(with_report(inst, i, bid=low)), solve(with_report(inst, i, bid=high))
    assert b.expected_reward[i] >= a.expected_reward[i] - 1e-9
    out = result.outcome
    assert np.all(out.payment >= 0) and np.all(out.payment <= inst.bids * out.expected_reward + 1e-12)


def test_a_draw_samples_candidates_by_the_policy_and_bills_the_expected_payment() -> None:
    got = mosaic_solve(bids=[2.0, 1.0], rewards=[[1, 0, 0.5], [0, 1, 0.2]], log_ref=[-1, -2, -3], tau=0.5)
    rng = np.random.default_rng(5)
    draws = [mosaic_draw(got, rng=rng) for _ in range(20000)]
    freq = np.bincount([d.candidate for d in draws], minlength=3) / len(draws)
    assert np.all(np.abs(freq - got.policy) < 5 * np.sqrt(0.25 / len(draws)))
    np.testing.assert_array_equal(draws[0].payment, got.payment)


def test_the_default_generator_is_the_reference_model() -> None:
    inst = mosaic_instance(bids=[1.0], rewards=[[0.0, 1.0]], log_ref=[-0.1, -3.0], tau=1.0)
    np.testing.assert_array_equal(inst.base_logweights[0], [0.0, 0.0])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"log_gen": [0.0, 0.0]}, "log_gen: 2 log-probabilities for 3 candidates"),
        ({"log_ref": [0.0, float("inf"), 0.0]}, r"log_ref\[1\]: must be a finite number"),
        ({"rewards": [[0, 1, 2]]}, "reward 2.0 is not a number in"),
        ({"tau": 0.0}, "kl_weight"),
        ({"bids": [-1.0]}, "bid -1.0 must be a finite number >= 0"),
    ],
)
def test_it_rejects_invalid_queries(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {
        "bids": [1.0],
        "rewards": [[0, 1, 0.5]],
        "log_ref": [0.0, -1.0, -2.0],
        "tau": 1.0,
        **kwargs,
    }
    with pytest.raises(MechanismError, match=message):
        mosaic_solve(**args)  # type: ignore[arg-type]
