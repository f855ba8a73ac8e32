from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from training.lib.config import TrainConfig, TrainingError
from training.lib.jobdir import (
    CheckpointInfo,
    TrainResult,
    best_checkpoint,
    checkpoint_path,
    claim_out_dir,
    finish_job,
    finished_result,
    job_fingerprint,
    list_checkpoints,
    publish_dir,
)

PROMPTS, CANDIDATES, WEIGHTS = ["Q: a\nA: "], [["x", "y"]], [[0.25, 0.75]]


def _checkpoint(out: Path, step: int, **metrics: float) -> CheckpointInfo:
    """A checkpoint folder as the loops publish it, with a stand-in adapter file."""
    info = CheckpointInfo(step=step, path=checkpoint_path(out, step), loss=1.0, tokens=10 * step, **metrics)

    def fill(tmp: Path) -> None:
        (tmp / "adapter").mkdir()
        (tmp / "adapter" / "adapter_config.json").write_text(json.dumps({"step": step}))
        (tmp / "info.json").write_text(json.dumps(asdict(info)))

    publish_dir(fill, Path(info.path))
    return info


def test_a_folder_is_claimed_once_and_refused_to_another_job(tmp_path):
    fingerprint = job_fingerprint(TrainConfig(seed=1), PROMPTS, CANDIDATES, WEIGHTS)
    claim_out_dir(tmp_path, fingerprint)
    claim_out_dir(
        tmp_path, job_fingerprint(TrainConfig(seed=1, device="cuda", threads=4), PROMPTS, CANDIDATES, WEIGHTS)
    )
    with pytest.raises(TrainingError):
        claim_out_dir(tmp_path, job_fingerprint(TrainConfig(seed=2), PROMPTS, CANDIDATES, WEIGHTS))
    with pytest.raises(TrainingError):
        claim_out_dir(tmp_path, job_fingerprint(TrainConfig(seed=1), PROMPTS, CANDIDATES, [[0.5, 0.5]]))
    assert json.loads((tmp_path / "job.json").read_text()) == json.loads(json.dumps(fingerprint))


def test_the_fingerprint_is_the_same_for_arrays_and_lists():
    as_lists = job_fingerprint(TrainConfig(), PROMPTS, CANDIDATES, WEIGHTS)
    assert job_fingerprint(TrainConfig(), PROMPTS, CANDIDATES, [np.array([0.25, 0.75])]) == as_lists


def test_checkpoints_are_listed_by_step_and_half_written_ones_are_skipped(tmp_path):
    _checkpoint(tmp_path, 10)
    _checkpoint(tmp_path, 5)
    (tmp_path / "checkpoints" / "step-000015").mkdir()  # a folder without info.json is not a checkpoint
    assert [c.step for c in list_checkpoints(tmp_path)] == [5, 10]
    assert list_checkpoints(tmp_path / "elsewhere") == []


def test_the_best_checkpoint_has_the_smallest_tv_then_nll_then_is_the_last():
    def c(step: int, tv: float | None = None, nll: float | None = None) -> CheckpointInfo:
        return CheckpointInfo(step=step, path=f"p{step}", loss=0.0, tokens=0, weighted_nll=nll, tv_to_target=tv)

    assert best_checkpoint([]) is None
    assert best_checkpoint([c(1, 0.3, 1.0), c(2, 0.1, 2.0), c(3, 0.2, 0.5)]).step == 2
    assert best_checkpoint([c(1, 0.1), c(2, 0.1)]).step == 2  # ties go to the later step
    assert best_checkpoint([c(1, None, 1.0), c(2, 0.1, 2.0)]).step == 1
    assert best_checkpoint([c(1), c(2, 0.1)]).step == 2


def test_a_finished_job_publishes_the_best_adapter_and_its_result(tmp_path):
    checkpoints = [_checkpoint(tmp_path, 5, tv_to_target=0.2), _checkpoint(tmp_path, 10, tv_to_target=0.3)]
    assert finished_result(tmp_path) is None
    cancelled = finish_job(
        tmp_path,
        status="cancelled",
        checkpoints=checkpoints,
        steps_done=10,
        tokens=100,
        resolved={},
        train_seconds=1.23456,
        tv_initial=0.5,
        resumed_from=0,
    )
    assert cancelled.adapter_dir == str(Path(checkpoints[0].path) / "adapter")
    assert finished_result(tmp_path) is None and not (tmp_path / "adapter").exists()

    result = finish_job(
        tmp_path,
        status="succeeded",
        checkpoints=checkpoints,
        steps_done=10,
        tokens=100,
        resolved={"a": 1},
        train_seconds=1.23456,
        tv_initial=0.5,
        resumed_from=0,
        step_seconds=1.0004,
    )
    assert result.best_checkpoint == checkpoints[0] and result.train_seconds == 1.235 and result.step_seconds == 1.0
    assert json.loads((tmp_path / "adapter" / "adapter_config.json").read_text()) == {"step": 5}
    assert finished_result(tmp_path) == result == TrainResult.from_dict(json.loads(json.dumps(result.to_dict())))


def test_publishing_replaces_a_folder_whole_and_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out"
    publish_dir(lambda tmp: (tmp / "a").write_text("1"), target)
    publish_dir(lambda tmp: (tmp / "b").write_text("2"), target)
    assert sorted(p.name for p in target.iterdir()) == ["b"]

    def broken(tmp: Path) -> None:
        (tmp / "c").write_text("3")
        raise OSError("disk full")

    with pytest.raises(OSError):
        publish_dir(broken, target)
    assert sorted(p.name for p in target.iterdir()) == ["b"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


class _RunsCodeWhenUnpickled:
    ran: list[str] = []

    def __reduce__(self):
        return (_RunsCodeWhenUnpickled.ran.append, ("unpickled",))


def test_a_checkpoint_state_is_loaded_safely_and_a_pickled_object_in_it_is_refused(tmp_path, monkeypatch):
    import pickle

    import torch

    from training.lib import jobdir

    monkeypatch.setattr(jobdir, "load_adapter_weights", lambda model, path: None)
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.ones(1, 3)).sum().backward()
    opt.step()
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    good = _checkpoint(tmp_path / "good", 1)
    torch.save({"optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "step": 1}, Path(good.path) / "state.pt")
    state = jobdir.load_checkpoint(good, model=None)
    assert state["step"] == 1 and state["optimizer"]["param_groups"][0]["lr"] == 1e-3

    bad = _checkpoint(tmp_path / "bad", 1)
    torch.save({"step": 1, "payload": _RunsCodeWhenUnpickled()}, Path(bad.path) / "state.pt")
    with pytest.raises(pickle.UnpicklingError):
        jobdir.load_checkpoint(bad, model=None)
    assert _RunsCodeWhenUnpickled.ran == []
