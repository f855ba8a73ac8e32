from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest

from training.lib.config import TrainConfig
from training.lib.evaluation import evaluate


@pytest.mark.slow
def test_weighted_sft_halves_tv_to_q_star_and_delivers_to_groups_it_promised(
    train_on_demo, tiny_path, demo_round, tmp_path
):
    progress = []
    result = train_on_demo(TrainConfig(seed=0), tmp_path / "job", on_progress=progress.append)
    assert result.status == "succeeded" and result.steps_done == 80
    assert [p.step for p in progress] == list(range(1, 81))
    assert progress[-1].eta_seconds == 0 and progress[0].tokens > 0 and progress[0].eta_seconds > 0
    assert [c.step for c in result.checkpoints] == [20, 40, 60, 80]
    assert result.best_checkpoint is not None and Path(result.adapter_dir, "adapter_config.json").exists()
    assert result.resolved_config["target_modules"] == ["c_attn"]
    json.dumps(result.to_dict())

    ev = evaluate(
        base_path=tiny_path,
        adapter_dir=result.adapter_dir,
        prompts=demo_round.prompts,
        heldout_prompts=demo_round.heldout,
        candidates=demo_round.texts,
        q0=demo_round.q0,
        q_star=demo_round.q_star,
        groups=demo_round.groups,
        n_samples=16,
        seed=5,
    )
    report = asdict(ev)
    report.pop("samples")
    print("evaluation", json.dumps(report))
    assert ev.tv_before == pytest.approx(result.tv_initial)
    assert ev.tv_after == pytest.approx(result.best_checkpoint.tv_to_target, abs=1e-4)
    assert ev.tv_after <= 0.5 * ev.tv_before
    gainers = [g for g in ev.promised if ev.promised[g] > ev.base_reward[g]]
    assert gainers == ["cheerful"]
    for g in gainers:
        assert ev.delivered[g] > ev.base_reward[g], (g, ev.delivered[g], ev.base_reward[g])
    assert ev.kl_estimate > 0
    json.dumps(asdict(ev))


@pytest.mark.slow
def test_plain_weighted_cross_entropy_is_available_for_comparison(train_on_demo, tmp_path):
    result = train_on_demo(TrainConfig(loss="plain", steps=10, checkpoint_every=5), tmp_path / "job")
    assert result.status == "succeeded" and all(c.tv_to_target is not None for c in result.checkpoints)


@pytest.mark.slow
def test_cancel_stops_within_a_step(train_on_demo, tmp_path):
    seen = []
    result = train_on_demo(
        TrainConfig(steps=40, checkpoint_every=2),
        tmp_path / "job",
        on_progress=lambda p: seen.append(p.step),
        should_cancel=lambda: bool(seen) and seen[-1] >= 3,
    )
    assert result.status == "cancelled"
    assert result.steps_done == 3 and seen == [1, 2, 3]
    assert [c.step for c in result.checkpoints] == [2]
    assert not (tmp_path / "job" / "result.json").exists()
