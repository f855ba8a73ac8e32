from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from training.evaluation import evaluate
from training.trainer import RLReward, TrainConfig, TrainingError, grpo_mapping, list_checkpoints, train


def _job(demo_round, config: TrainConfig, out_dir: Path, **kw):
    return train(
        base_path=kw.pop("base_path"),
        prompts=demo_round.prompts,
        candidates=demo_round.texts,
        target_weights=demo_round.q_star,
        base_logweights=demo_round.base_logweights,
        config=config,
        out_dir=out_dir,
        **kw,
    )


def test_config_resolves_every_hyperparameter_and_rejects_nonsense():
    resolved = TrainConfig(seed=3).resolved("gpt2")
    assert resolved["target_modules"] == ["c_attn"] and resolved["fan_in_fan_out"] is True
    for key in (
        "method",
        "steps",
        "learning_rate",
        "batch_size",
        "lora_r",
        "lora_alpha",
        "lora_dropout",
        "seed",
        "kl_weight",
        "threads",
        "loss",
    ):
        assert resolved[key] is not None
    assert TrainConfig.from_dict(resolved) == TrainConfig(seed=3, target_modules=("c_attn",), threads=1)
    with pytest.raises(ValueError):
        TrainConfig(method="dpo")
    with pytest.raises(ValueError):
        TrainConfig(steps=0)
    with pytest.raises(ValueError):
        TrainConfig(method="grpo", batch_size=6, num_generations=4)


def test_grpo_beta_is_lambda_over_the_sum_of_bids():
    weights, beta, scale = grpo_mapping([3.0, 1.0], kl_weight=2.0)
    assert weights == [0.75, 0.25] and beta == 0.5 and scale == 4.0
    with pytest.raises(TrainingError):
        grpo_mapping([0.0], kl_weight=1.0)


@pytest.mark.slow
def test_weighted_sft_halves_tv_to_q_star_and_delivers_to_groups_it_promised(tiny_path, demo_round, tmp_path):
    progress = []
    result = _job(demo_round, TrainConfig(seed=0), tmp_path / "job", base_path=tiny_path, on_progress=progress.append)
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
def test_plain_weighted_cross_entropy_is_available_for_comparison(tiny_path, demo_round, tmp_path):
    result = _job(
        demo_round, TrainConfig(loss="plain", steps=10, checkpoint_every=5), tmp_path / "job", base_path=tiny_path
    )
    assert result.status == "succeeded" and all(c.tv_to_target is not None for c in result.checkpoints)


@pytest.mark.slow
def test_cancel_stops_within_a_step(tiny_path, demo_round, tmp_path):
    seen = []
    result = _job(
        demo_round,
        TrainConfig(steps=40, checkpoint_every=2),
        tmp_path / "job",
        base_path=tiny_path,
        on_progress=lambda p: seen.append(p.step),
        should_cancel=lambda: bool(seen) and seen[-1] >= 3,
    )
    assert result.status == "cancelled"
    assert result.steps_done == 3 and seen == [1, 2, 3]
    assert [c.step for c in result.checkpoints] == [2]
    assert not (tmp_path / "job" / "result.json").exists()


class WorkerDied(Exception):
    pass


@pytest.mark.slow
def test_a_job_whose_worker_died_resumes_from_its_last_checkpoint(tiny_path, demo_round, tmp_path):
    config = TrainConfig(steps=12, checkpoint_every=5, seed=4)

    def die_at_7(p):
        if p.step == 7:
            raise WorkerDied

    with pytest.raises(WorkerDied):
        _job(demo_round, config, tmp_path / "job", base_path=tiny_path, on_progress=die_at_7)
    assert [c.step for c in list_checkpoints(tmp_path / "job")] == [5]

    resumed = _job(demo_round, config, tmp_path / "job", base_path=tiny_path)
    assert resumed.status == "succeeded" and resumed.resumed_from_step == 5
    assert resumed.steps_done == 12 and [c.step for c in resumed.checkpoints] == [5, 10, 12]

    straight = _job(demo_round, config, tmp_path / "straight", base_path=tiny_path)
    assert resumed.tokens_seen == straight.tokens_seen  # the same batches, drawn from the same (seed, step) stream
    np.testing.assert_allclose(
        [c.weighted_nll for c in resumed.checkpoints], [c.weighted_nll for c in straight.checkpoints], rtol=1e-4
    )

    # a finished job folder returns its result; a different job may not reuse it
    assert _job(demo_round, config, tmp_path / "job", base_path=tiny_path) == resumed
    with pytest.raises(TrainingError):
        _job(demo_round, TrainConfig(steps=13, checkpoint_every=5, seed=4), tmp_path / "job", base_path=tiny_path)


@pytest.mark.slow
def test_grpo_smoke(tiny_path, demo_round, tmp_path):
    groups = demo_round.groups
    rewards = [RLReward(name=g, bid=demo_round.bids[g], score=s.normalised) for g, s in groups.items() if g != "polite"]
    progress = []
    result = _job(
        demo_round,
        TrainConfig(method="grpo", steps=2, batch_size=8, num_generations=4, checkpoint_every=2, max_new_tokens=48),
        tmp_path / "job",
        base_path=tiny_path,
        rewards_for_rl=rewards,
        on_progress=progress.append,
    )
    assert result.status == "succeeded" and result.steps_done == 2
    assert [p.step for p in progress] == [1, 2]
    assert Path(result.adapter_dir, "adapter_config.json").exists()
    assert result.resolved_config["beta"] == pytest.approx(1.0 / 3.5)
    assert result.best_checkpoint.tv_to_target is not None
