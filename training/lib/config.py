"""What a training job is asked to do: ``TrainConfig`` and its fully resolved hyperparameters.

``TrainConfig`` is what a job row stores (``from_dict`` ignores unknown keys, so a resolved dict round-trips);
``resolved`` spells out every hyperparameter, defaults included, for the record. ``TrainingError`` is the one error
for inputs that cannot make a job (bad weights, a job folder of another job, grpo without positive bids).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

METHODS = ("weighted_sft", "grpo")
SFT_LOSSES = ("candidate_normalised", "plain")


class TrainingError(ValueError):
    """Bad inputs or an ``out_dir`` that belongs to another job."""


@dataclass(frozen=True)
class TrainConfig:
    method: str = "weighted_sft"
    steps: int = 80
    learning_rate: float = 5e-3
    batch_size: int = 32
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    target_modules: tuple[str, ...] | None = None  # None: peft's default for the architecture (GPT-2: c_attn)
    seed: int = 0
    checkpoint_every: int = 20
    max_length: int = 256
    kl_weight: float = 1.0  # lambda, currency per nat (grpo: beta = lambda / sum of bids)
    device: str = "cpu"
    weight_decay: float = 0.0
    warmup_steps: int = 5
    max_grad_norm: float = 1.0
    threads: int | None = None  # torch CPU threads; None: 1 (tiny matrices, shared worker machines: see docs)
    loss: str = "candidate_normalised"  # weighted_sft only: or "plain" (see training.lib.sft)
    sft_weight: float = 0.0  # candidate_normalised only: weight of an added plain q*-weighted cross-entropy term
    num_generations: int = 4  # grpo only
    max_new_tokens: int = 64  # grpo, and the weighted_sft refinement's samples
    # weighted_sft only: the last ``refine_steps`` of ``steps`` train on the adapter's own samples, weighted toward pi*
    # (on-policy refinement, ``training.lib.sft``); it needs each group's reward model and bid (``rewards_for_rl``).
    refine_steps: int = 0
    refine_samples: int = 16  # samples per prompt in each refinement pool
    refine_pools: int = 1  # fresh pools drawn over the refinement steps (the first at its start)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown training method {self.method!r}; expected one of {METHODS}")
        for name in (
            "steps",
            "batch_size",
            "lora_r",
            "checkpoint_every",
            "max_length",
            "num_generations",
            "max_new_tokens",
            "refine_samples",
            "refine_pools",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if not self.learning_rate > 0 or not self.kl_weight > 0:
            raise ValueError("learning_rate and kl_weight must be positive")
        if not 0 <= self.lora_dropout < 1:
            raise ValueError("lora_dropout must be in [0, 1)")
        if self.loss not in SFT_LOSSES:
            raise ValueError(f"unknown weighted_sft loss {self.loss!r}; expected one of {SFT_LOSSES}")
        if not 0 <= self.refine_steps < self.steps:
            raise ValueError("refine_steps must be in [0, steps): at least one step trains on the candidates")
        if self.refine_steps and self.method != "weighted_sft":
            raise ValueError("refine_steps is a weighted_sft option")
        if self.refine_pools > max(1, self.refine_steps):
            raise ValueError("refine_pools must be at most refine_steps")
        if self.method == "grpo" and self.batch_size % self.num_generations:
            raise ValueError("grpo: batch_size must be a multiple of num_generations")
        if self.target_modules is not None and not isinstance(self.target_modules, tuple):
            object.__setattr__(self, "target_modules", tuple(self.target_modules))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = set(cls.__dataclass_fields__)
        kw = {k: v for k, v in d.items() if k in known}
        if kw.get("target_modules") is not None:
            kw["target_modules"] = tuple(kw["target_modules"])
        return cls(**kw)

    def resolved(self, model_type: str | None = None) -> dict[str, Any]:
        """Every hyperparameter explicit (what the job row records). ``model_type`` resolves default LoRA targets."""
        d = asdict(self)
        d["target_modules"] = list(resolve_target_modules(self.target_modules, model_type))
        d["fan_in_fan_out"] = model_type == "gpt2"
        d["threads"] = self.threads or 1
        d["lora_bias"] = "none"
        d["task_type"] = "CAUSAL_LM"
        d["optimizer"] = "adamw"
        d["adam_betas"] = [0.9, 0.999]
        d["adam_eps"] = 1e-8
        d["lr_schedule"] = "linear warm-up, then linear decay to 10% at the last step"
        d["model_type"] = model_type
        if self.method == "weighted_sft" and self.loss == "candidate_normalised":
            d["objective"] = (
                "sum_x mu(x) [KL(q*(.|x) || q_theta(.|x)) over the candidates, q_theta = softmax(log q0 + log pi_theta"
                f" - log pi0)] + {self.sft_weight:g} x the q*-weighted NLL per token; batches: prompts drawn by mu with"
                " all their candidates, seeded by (seed, step)"
            )
            if self.refine_steps:
                d["objective"] += (
                    f"; the last {self.refine_steps} steps: the same loss on {self.refine_samples} adapter samples per"
                    f" prompt ({self.refine_pools} pool(s), drawn at the pool's first step) with target weights"
                    " softmax(R/lambda + log pi0 - log pi_theta), R = sum_i bid_i r_i normalised (on-policy refinement)"
                )
        elif self.method == "weighted_sft":
            d["objective"] = "sum_x mu(x) sum_k q*(y_k|x) NLL(y_k|x), batches drawn by mu*q*, seeded by (seed, step)"
        else:
            d["objective"] = "GRPO (trl): reward sum_i (w_i/S) r_i, beta = lambda/S, S = sum_i w_i"
            d["scale_rewards"] = "none"
            d["loss_type"] = "dr_grpo"
        return d


def resolve_target_modules(target_modules: Sequence[str] | None, model_type: str | None) -> tuple[str, ...]:
    """The LoRA target modules: the configured ones, else peft's default for the architecture."""
    if target_modules:
        return tuple(target_modules)
    if model_type is None:
        return ()
    # peft imports torch: kept out of Django start-up
    from peft.utils import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING

    if model_type not in TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING:
        raise ValueError(f"no default LoRA target modules for model type {model_type!r}; set target_modules")
    return tuple(TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING[model_type])
