"""weighted_sft's on-policy refinement (``training.lib.sft``, step 6): pools of the adapter's own answers weighted
toward pi*, written to the job folder so a resumed job trains on the pool the interrupted one drew."""

from __future__ import annotations

import json

import numpy as np
import pytest

from auctions.resampling import importance_weights
from training.lib.config import TrainConfig, TrainingError
from training.lib.distributed import world_size
from training.lib.grpo import RLReward
from training.lib.jobdir import list_checkpoints
from training.lib.sft import refine_pool_starts


class WorkerDied(Exception):
    pass


def exclamations(prompts: list[str], responses: list[str]) -> np.ndarray:
    """A normalised reward in [0, 1] the tiny model's enthusiastic style earns."""
    return np.array([min(r.count("!"), 3) / 3 for r in responses], dtype=np.float64)


REWARDS = [RLReward(name="cheerful", bid=3.0, score=exclamations)]


def test_pools_start_evenly_over_the_last_steps_and_the_config_is_checked():
    assert refine_pool_starts(TrainConfig(steps=12)) == []
    assert refine_pool_starts(TrainConfig(steps=12, refine_steps=6, refine_pools=2)) == [6, 9]
    assert refine_pool_starts(TrainConfig(steps=90, refine_steps=30, refine_pools=3)) == [60, 70, 80]
    for bad in ({"refine_steps": 12}, {"refine_steps": -1}, {"refine_steps": 2, "refine_pools": 3},
                {"refine_steps": 2, "method": "grpo"}):
        with pytest.raises(ValueError):
            TrainConfig(steps=12, **bad)
    # the reward models run in the job's process, so a refining job is not split over processes
    assert world_size(TrainConfig(steps=12, refine_steps=6), [["a"] * 8] * 8, 4) == 1
    resolved = TrainConfig(steps=12, refine_steps=6).resolved("gpt2")
    assert resolved["refine_steps"] == 6 and "on-policy refinement" in resolved["objective"]


def test_refinement_without_rewards_is_refused(train_on_demo, tmp_path):
    with pytest.raises(TrainingError):
        train_on_demo(TrainConfig(steps=4, refine_steps=2), tmp_path / "job")


@pytest.mark.slow
def test_refinement_trains_on_weighted_adapter_samples_and_resumes_on_the_same_pool(train_on_demo, tmp_path):
    config = TrainConfig(steps=12, refine_steps=6, refine_samples=4, refine_pools=2, checkpoint_every=5, seed=4)

    def die_at_8(p):
        if p.step == 8:
            raise WorkerDied

    job = tmp_path / "job"
    with pytest.raises(WorkerDied):
        train_on_demo(config, job, on_progress=die_at_8, rewards_for_rl=REWARDS)
    assert [c.step for c in list_checkpoints(job)] == [5]
    first_pool = (job / "refine" / "pool-000006.json").read_text()
    assert not (job / "refine" / "pool-000009.json").exists()

    resumed = train_on_demo(config, job, rewards_for_rl=REWARDS)
    assert resumed.status == "succeeded" and resumed.resumed_from_step == 5
    assert (job / "refine" / "pool-000006.json").read_text() == first_pool  # read back, not drawn again
    # the refined adapter is delivered as trained: the last checkpoint, whatever its TV to q* on the candidates
    assert resumed.best_checkpoint is not None and resumed.best_checkpoint.step == 12
    assert resumed.resolved_config["refine_steps"] == 6

    straight = train_on_demo(config, tmp_path / "straight", rewards_for_rl=REWARDS)
    assert resumed.tokens_seen == straight.tokens_seen
    np.testing.assert_allclose(
        [c.weighted_nll for c in resumed.checkpoints], [c.weighted_nll for c in straight.checkpoints], rtol=1e-4
    )

    # each prompt's pool: the adapter's answers with the exact-delivery weights exp(R/lambda) pi0/pi_theta
    pool = json.loads(first_pool)
    assert len(pool["candidates"]) == len(pool["target_weights"]) == 8
    for texts, w, lw0, lb in zip(
        pool["candidates"], pool["target_weights"], pool["base_logweights"], pool["base_logprobs"], strict=True
    ):
        lb = np.asarray(lb)
        reward = 3.0 * exclamations([], texts)
        expect, _ = importance_weights(log_pi_theta=lb - np.asarray(lw0), log_pi0=lb, reward=reward, kl_weight=1.0)
        np.testing.assert_allclose(w, expect, rtol=1e-9)
        assert len(texts) == 4 and abs(sum(w) - 1) < 1e-9
