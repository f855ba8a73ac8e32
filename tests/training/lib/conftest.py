"""Fixtures for the training-loop tests (the tiny model and the demo round come from ``tests/training/conftest.py``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from training.lib.config import TrainConfig
from training.lib.jobdir import TrainResult
from training.lib.trainer import train


@pytest.fixture
def train_on_demo(tiny_path: Path, demo_round: Any) -> Callable[..., TrainResult]:
    """``train_on_demo(config, out_dir, **kw)``: a job on the demo round's candidates, q* and base log-weights."""

    def run(config: TrainConfig, out_dir: Path, **kw: Any) -> TrainResult:
        return train(
            base_path=tiny_path,
            prompts=demo_round.prompts,
            candidates=demo_round.texts,
            target_weights=demo_round.q_star,
            base_logweights=demo_round.base_logweights,
            config=config,
            out_dir=out_dir,
            **kw,
        )

    return run
