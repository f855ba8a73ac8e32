"""The evaluation's exact-delivery report (training.lib.evaluation with bids and lambda) on the tiny demo round."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest

from training.lib.config import TrainConfig
from training.lib.evaluation import evaluate, exact_row


@pytest.fixture(scope="module")
def short_job(tmp_path_factory, tiny_path, demo_round):
    from training.lib.trainer import train

    return train(
        base_path=tiny_path,
        prompts=demo_round.prompts,
        candidates=demo_round.texts,
        target_weights=demo_round.q_star,
        base_logweights=demo_round.base_logweights,
        config=TrainConfig(seed=0, steps=10, checkpoint_every=10, warmup_steps=2),
        out_dir=tmp_path_factory.mktemp("job"),
    )


def _evaluate(short_job, tiny_path, demo_round, **kw):
    return evaluate(
        base_path=tiny_path,
        adapter_dir=short_job.adapter_dir,
        prompts=demo_round.prompts[:4],
        heldout_prompts=demo_round.heldout[:3],
        candidates=demo_round.texts[:4],
        q0=demo_round.q0[:4],
        q_star=demo_round.q_star[:4],
        groups=demo_round.groups,
        n_samples=4,
        seed=3,
        max_new_tokens=24,
        **kw,
    )


@pytest.mark.slow
def test_it_reports_exact_delivery_at_each_k_on_round_and_heldout_prompts(short_job, tiny_path, demo_round):
    ev = _evaluate(
        short_job, tiny_path, demo_round, bids=demo_round.bids, kl_weight=demo_round.kl_weight, exact_ks=(1, 4, 16),
        exact_draws=16,
    )
    assert ev.exact_draws == 16 and ev.exact_kl_weight == demo_round.kl_weight
    assert ev.exact_bids == demo_round.bids
    for rows in (ev.exact_round, ev.exact_heldout):
        assert [r["k"] for r in rows] == [1, 4, 16]
        assert [r["subsets"] for r in rows] == [16, 4, 1]
        for r in rows:
            assert set(r["reward"]) == set(demo_round.groups)
            assert all(0.0 <= v <= 1.0 for v in r["reward"].values())
            assert 1.0 <= r["ess"] <= r["k"] + 1e-9
        assert rows[0]["ess"] == 1.0  # K = 1 is the adapter alone
    # Resampling toward pi* favours the aggregate reward, which the highest bidder dominates.
    top = max(demo_round.bids, key=demo_round.bids.get)
    assert exact_row(ev.exact_round, 16)[top] >= exact_row(ev.exact_round, 1)[top]
    # What job_evaluate stores: the whole dataclass as JSON, read back by exact_row.
    stored = json.loads(json.dumps(asdict(ev)))
    assert exact_row(stored["exact_heldout"], 4) == pytest.approx(exact_row(ev.exact_heldout, 4))
    assert exact_row(stored["exact_round"], 64) is None


@pytest.mark.slow
def test_without_bids_it_measures_no_exact_delivery(short_job, tiny_path, demo_round):
    ev = _evaluate(short_job, tiny_path, demo_round)
    assert ev.exact_round == [] and ev.exact_heldout == [] and ev.exact_draws == 0
    assert set(ev.delivered) == set(demo_round.groups)
