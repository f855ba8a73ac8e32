from __future__ import annotations

import numpy as np
import pytest

from training.lib.config import TrainConfig, TrainingError
from training.lib.jobdir import list_checkpoints
from training.lib.trainer import train


class WorkerDied(Exception):
    pass


@pytest.mark.slow
def test_a_job_whose_worker_died_resumes_from_its_last_checkpoint(train_on_demo, tmp_path):
    config = TrainConfig(steps=12, checkpoint_every=5, seed=4)

    def die_at_7(p):
        if p.step == 7:
            raise WorkerDied

    with pytest.raises(WorkerDied):
        train_on_demo(config, tmp_path / "job", on_progress=die_at_7)
    assert [c.step for c in list_checkpoints(tmp_path / "job")] == [5]

    resumed = train_on_demo(config, tmp_path / "job")
    assert resumed.status == "succeeded" and resumed.resumed_from_step == 5
    assert resumed.steps_done == 12 and [c.step for c in resumed.checkpoints] == [5, 10, 12]

    straight = train_on_demo(config, tmp_path / "straight")
    assert resumed.tokens_seen == straight.tokens_seen  # the same batches, drawn from the same (seed, step) stream
    np.testing.assert_allclose(
        [c.weighted_nll for c in resumed.checkpoints], [c.weighted_nll for c in straight.checkpoints], rtol=1e-4
    )

    # a finished job folder returns its result; a different job may not reuse it
    assert train_on_demo(config, tmp_path / "job") == resumed
    with pytest.raises(TrainingError):
        train_on_demo(TrainConfig(steps=13, checkpoint_every=5, seed=4), tmp_path / "job")


@pytest.mark.parametrize(
    "bad",
    [
        {"prompts": []},
        {"target_weights": [[1.0, -1.0]]},
        {"target_weights": [[0.0, 0.0]]},
        {"target_weights": [[1.0]]},
        {"prompt_weights": [-1.0]},
        {"base_logweights": [[0.0]]},
    ],
)
def test_inputs_that_cannot_make_a_job_are_refused_before_the_folder_is_touched(bad, tmp_path):
    job = {"prompts": ["Q: a\nA: "], "candidates": [["x", "y"]], "target_weights": [[0.5, 0.5]]} | bad
    with pytest.raises(TrainingError):
        train(base_path=tmp_path / "no-model", out_dir=tmp_path / "job", config=TrainConfig(), **job)
    assert not (tmp_path / "job").exists()


def test_grpo_without_rewards_is_refused(tmp_path):
    with pytest.raises(TrainingError):
        train(
            base_path=tmp_path / "no-model",
            prompts=["Q: a\nA: "],
            candidates=[["x", "y"]],
            target_weights=[[0.5, 0.5]],
            config=TrainConfig(method="grpo"),
            out_dir=tmp_path / "job",
        )
