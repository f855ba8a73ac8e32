from __future__ import annotations

import pytest

from training.lib.config import TrainConfig


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
