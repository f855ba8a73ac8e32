"""The ``grpo`` method: TRL's GRPOTrainer on the same objective written as KL-regularised RL (the only module that
imports trl).

The reward is R(x, y) = sum_i w_i r_i(x, y) (normalised group rewards, bids in currency per unit) and the KL weight
lambda (currency per nat). Rewards are divided by the scale S = sum_i w_i (so the aggregate lies in [0, 1]): the
objective E[R] - lambda KL becomes S (E[R/S] - (lambda / S) KL), i.e. ``reward_weights = w_i / S`` and
``beta = lambda / S``. ``scale_rewards="none"`` (no division by the group std, which would change the trade-off)
and ``loss_type="dr_grpo"`` (a constant normaliser) keep that mapping; TRL's KL is its per-token k3 estimator
against the adapter-disabled base.

1. Prompts are drawn by mu from a generator seeded with ``(seed, 0)``, enough for every step.
2. TRL trains, saving its own checkpoints under ``out/trl`` every ``checkpoint_every`` steps; a job started again
   resumes from TRL's last one. ``should_cancel`` is polled after every step (TRL finishes the step in flight).
3. At the end, one checkpoint folder in our format (adapter and ``info.json`` with the candidate metrics, no
   ``state.pt``), then the result as for weighted_sft.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from training.lib.adapters import lora_config
from training.lib.config import TrainConfig, TrainingError
from training.lib.inputs import TrainInputs
from training.lib.jobdir import CheckpointInfo, TrainResult, checkpoint_path, finish_job, save_checkpoint
from training.lib.loop import CandidateMetrics, Progress, training_session

RewardFunc = Callable[..., list[float | None]]  # what TRL calls: (prompts=, completions=, ...) -> one per completion


@dataclass(frozen=True)
class RLReward:
    """One group's reward for the RL method: ``score(prompts, responses)`` already normalised to [0, 1]."""

    name: str
    bid: float
    score: Callable[[list[str], list[str]], Any]


def grpo_mapping(bids: Sequence[float], kl_weight: float) -> tuple[list[float], float, float]:
    """``(reward_weights, beta, scale)`` for TRL: reward sum_i (w_i/S) r_i and beta = lambda/S, S = sum_i w_i."""
    scale = float(sum(bids))
    if not scale > 0:
        raise TrainingError("the grpo method needs at least one positive bid")
    return [float(w) / scale for w in bids], kl_weight / scale, scale


def reward_func(reward: RLReward) -> RewardFunc:
    """A group's reward in TRL's calling convention, named for TRL's logs; completions are stripped as candidates
    are."""

    def f(prompts: list[str], completions: list[str], **_: Any) -> list[float | None]:
        return [float(v) for v in reward.score(list(prompts), [c.strip() for c in completions])]

    f.__name__ = f"reward_{reward.name}"
    return f


def last_loss(log_history: Sequence[dict[str, Any]]) -> float:
    """The most recent training loss TRL logged (NaN before the first)."""
    return float(next((h["loss"] for h in reversed(log_history) if "loss" in h), float("nan")))


def train_grpo(
    base_path: Path | str,
    inputs: TrainInputs,
    config: TrainConfig,
    out: Path,
    on_progress: Callable[[Progress], None] | None,
    should_cancel: Callable[[], bool] | None,
    rewards: Sequence[RLReward],
) -> TrainResult:
    """Run (or resume) GRPO in the job folder ``out`` (see the module docstring)."""
    # datasets, transformers and trl import torch (or are only needed with it): kept out of Django start-up
    from datasets import Dataset
    from transformers import TrainerCallback
    from transformers.trainer_utils import get_last_checkpoint
    from trl import GRPOConfig, GRPOTrainer

    with training_session(base_path, config) as session:
        resolved = session.resolved
        reward_weights, beta, scale = grpo_mapping([r.bid for r in rewards], config.kl_weight)
        resolved.update({"reward_weights": reward_weights, "beta": beta, "reward_scale": scale})

        # 1. prompts drawn by mu, enough for every step (each prompt yields num_generations completions)
        prompts = inputs.prompts
        per_step = config.batch_size // config.num_generations
        rng = np.random.default_rng([config.seed, 0])
        draws = rng.choice(len(prompts), size=max(len(prompts), per_step * config.steps), p=inputs.mu)
        dataset = Dataset.from_dict({"prompt": [prompts[i] for i in draws]})

        trl_dir = out / "trl"
        args = GRPOConfig(
            output_dir=str(trl_dir),
            max_steps=config.steps,
            learning_rate=config.learning_rate,
            per_device_train_batch_size=config.batch_size,
            num_generations=config.num_generations,
            max_completion_length=config.max_new_tokens,
            temperature=1.0,
            top_k=0,
            top_p=1.0,
            beta=beta,
            reward_weights=reward_weights,
            scale_rewards="none",
            loss_type="dr_grpo",
            warmup_steps=config.warmup_steps,
            lr_scheduler_type="linear",
            max_grad_norm=config.max_grad_norm,
            weight_decay=config.weight_decay,
            seed=config.seed,
            save_strategy="steps",
            save_steps=config.checkpoint_every,
            logging_steps=1,
            report_to=[],
            disable_tqdm=True,
            use_cpu=config.device == "cpu",
            bf16=False,
        )
        outcome = {"status": "succeeded"}
        t0 = time.perf_counter()

        class ProgressAndCancel(TrainerCallback):
            """Reports progress after every step and stops training (without a save) once cancelled."""

            def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
                elapsed = time.perf_counter() - t0
                if on_progress is not None:
                    eta = elapsed / max(1, state.global_step) * (config.steps - state.global_step)
                    tokens = int(state.num_input_tokens_seen or 0)
                    loss = last_loss(state.log_history)
                    on_progress(Progress(state.global_step, config.steps, tokens, loss, eta, elapsed))
                if should_cancel is not None and should_cancel():
                    outcome["status"] = "cancelled"
                    control.should_training_stop = True
                    control.should_save = False
                return control

        trainer = GRPOTrainer(
            model=session.base,
            reward_funcs=[reward_func(r) for r in rewards],
            args=args,
            train_dataset=dataset,
            processing_class=session.tokenizer,
            peft_config=lora_config(resolved),
            callbacks=[ProgressAndCancel()],
        )
        # 2. TRL trains, resuming from its own last checkpoint
        last = get_last_checkpoint(str(trl_dir)) if trl_dir.exists() else None
        resumed_from = int(Path(last).name.split("-")[-1]) if last else 0
        trainer.train(resume_from_checkpoint=last)
        train_seconds = time.perf_counter() - t0

        # 3. one checkpoint in our format, then the result
        model: Any = trainer.model
        steps_done = int(trainer.state.global_step)
        metrics = CandidateMetrics(model, session.tokenizer, inputs, mean_len=1.0)
        nll_c, tv = metrics()
        info = CheckpointInfo(
            step=steps_done,
            path=checkpoint_path(out, steps_done),
            loss=last_loss(trainer.state.log_history),
            tokens=int(trainer.state.num_input_tokens_seen or 0),
            weighted_nll=nll_c,
            tv_to_target=tv,
        )
        save_checkpoint(info, model)
        return finish_job(
            out,
            status=outcome["status"],
            checkpoints=[info],
            steps_done=steps_done,
            tokens=info.tokens,
            resolved=resolved,
            train_seconds=train_seconds,
            tv_initial=metrics.tv_initial(),
            resumed_from=resumed_from,
        )
