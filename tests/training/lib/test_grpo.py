from __future__ import annotations

from pathlib import Path

import pytest

from training.lib.config import TrainConfig, TrainingError
from training.lib.grpo import RLReward, grpo_mapping


def test_grpo_beta_is_lambda_over_the_sum_of_bids():
    weights, beta, scale = grpo_mapping([3.0, 1.0], kl_weight=2.0)
    assert weights == [0.75, 0.25] and beta == 0.5 and scale == 4.0
    with pytest.raises(TrainingError):
        grpo_mapping([0.0], kl_weight=1.0)


@pytest.mark.slow
def test_grpo_smoke(train_on_demo, demo_round, tmp_path):
    groups = demo_round.groups
    rewards = [RLReward(name=g, bid=demo_round.bids[g], score=s.normalised) for g, s in groups.items() if g != "polite"]
    progress = []
    result = train_on_demo(
        TrainConfig(method="grpo", steps=2, batch_size=8, num_generations=4, checkpoint_every=2, max_new_tokens=48),
        tmp_path / "job",
        rewards_for_rl=rewards,
        on_progress=progress.append,
    )
    assert result.status == "succeeded" and result.steps_done == 2
    assert [p.step for p in progress] == [1, 2]
    assert Path(result.adapter_dir, "adapter_config.json").exists()
    assert result.resolved_config["beta"] == pytest.approx(1.0 / 3.5)
    assert result.best_checkpoint.tv_to_target is not None
