"""Data-parallel training (training.lib.distributed): two gloo processes take the steps one process takes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from training.lib.config import TrainConfig
from training.lib.distributed import DataParallel, world_size
from training.lib.jobdir import TrainResult, list_checkpoints

# 16 candidates per prompt and a batch of 32: two prompts per step, one per rank.
CONFIG = TrainConfig(steps=6, checkpoint_every=3, seed=3)


def _adapter(result: TrainResult) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    assert result.adapter_dir is not None
    return load_file(str(Path(result.adapter_dir) / "adapter_model.safetensors"))


def _assert_same_training(a: TrainResult, b: TrainResult) -> None:
    assert a.status == b.status == "succeeded"
    assert a.steps_done == b.steps_done and a.tokens_seen == b.tokens_seen
    assert [c.step for c in a.checkpoints] == [c.step for c in b.checkpoints]
    np.testing.assert_allclose([c.loss for c in a.checkpoints], [c.loss for c in b.checkpoints], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose([c.tv_to_target for c in a.checkpoints], [c.tv_to_target for c in b.checkpoints],
                               rtol=1e-4, atol=1e-6)
    wa, wb = _adapter(a), _adapter(b)
    assert wa.keys() == wb.keys()
    for name in wa:
        np.testing.assert_allclose(wa[name], wb[name], rtol=1e-3, atol=1e-5, err_msg=name)


@pytest.fixture(scope="module")
def one_process(train_on_demo_module, tmp_path_factory) -> TrainResult:
    return train_on_demo_module(CONFIG, tmp_path_factory.mktemp("one") / "job")


@pytest.fixture(scope="module")
def train_on_demo_module(tiny_path, demo_round):
    from training.lib.trainer import train

    def run(config, out_dir, **kw):
        return train(base_path=tiny_path, prompts=demo_round.prompts, candidates=demo_round.texts,
                     target_weights=demo_round.q_star, base_logweights=demo_round.base_logweights, config=config,
                     out_dir=out_dir, **kw)

    return run


@pytest.mark.slow
def test_two_gloo_processes_train_the_same_adapter_as_one(train_on_demo_module, one_process, tmp_path):
    steps: list[int] = []
    two = train_on_demo_module(CONFIG, tmp_path / "job", processes=2, on_progress=lambda p: steps.append(p.step))
    _assert_same_training(two, one_process)
    assert steps == list(range(1, CONFIG.steps + 1))  # rank 0 alone reports, once per step
    # rank 0 alone wrote the job folder: the checkpoints one process writes, no more
    assert [c.step for c in list_checkpoints(tmp_path / "job")] == [3, 6]
    assert (tmp_path / "job" / "result.json").exists()


@pytest.mark.slow
def test_a_cancelled_data_parallel_job_stops_on_every_rank_and_resumes_to_the_same_result(
    train_on_demo_module, one_process, tmp_path
):
    seen: list[int] = []
    cancelled = train_on_demo_module(
        CONFIG, tmp_path / "job", processes=2, on_progress=lambda p: seen.append(p.step),
        should_cancel=lambda: bool(seen) and seen[-1] >= 4,
    )
    assert cancelled.status == "cancelled" and cancelled.steps_done == 4 and seen == [1, 2, 3, 4]
    assert [c.step for c in list_checkpoints(tmp_path / "job")] == [3]

    resumed = train_on_demo_module(CONFIG, tmp_path / "job", processes=2)
    assert resumed.resumed_from_step == 3
    _assert_same_training(resumed, one_process)


def test_each_rank_gets_its_share_of_the_batch():
    offsets = np.array([0, 2, 5, 6])
    chosen, idx = np.array([2, 0, 1]), np.array([5, 0, 1, 2, 3, 4])
    first = DataParallel(rank=0, world=2).shard(chosen, idx, offsets)
    second = DataParallel(rank=1, world=2).shard(chosen, idx, offsets)
    assert first[0].tolist() == [2, 1] and first[1].tolist() == [5, 2, 3, 4] and first[2] == pytest.approx(2 / 3)
    assert second[0].tolist() == [0] and second[1].tolist() == [0, 1] and second[2] == pytest.approx(1 / 3)
    # the plain loss: pairs, not prompts
    empty = np.zeros(0, dtype=np.int64)
    assert DataParallel(rank=1, world=2).shard(empty, idx, offsets)[1].tolist() == [0, 2, 4]
    assert DataParallel().shard(chosen, idx, offsets) == (chosen, idx, 1.0)


def test_jobs_that_cannot_be_split_run_in_fewer_processes():
    candidates = [["a"] * 16] * 8
    assert world_size(TrainConfig(batch_size=32), candidates, 4) == 2  # two prompts per step
    assert world_size(TrainConfig(batch_size=32, loss="plain"), candidates, 4) == 4
    assert world_size(TrainConfig(method="grpo", batch_size=32), candidates, 4) == 1
    assert world_size(TrainConfig(), candidates, 1) == 1
