"""What the two training loops (``sft``, ``grpo``) share, written once.

- ``training_session``: torch's CPU thread count set for the job and restored afterwards (worker processes run one
  job after another), the base model and tokenizer loaded, the hyperparameters resolved for its architecture.
- ``CandidateMetrics``: the checkpoint metrics on the round's candidates, the q*-weighted NLL and the fidelity
  TV(q_theta, q*), with the base model's log-probabilities computed once.
- ``Progress``: what a loop reports after every step.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from training.lib.adapters import adapter_disabled
from training.lib.basemodels import load_base
from training.lib.config import TrainConfig
from training.lib.inputs import TrainInputs
from training.lib.metrics import implied_weights, total_variation
from training.lib.sampling import sequence_logprobs

METRICS_BATCH_SIZE = 64


@dataclass(frozen=True)
class Progress:
    step: int
    total_steps: int
    tokens: int
    loss: float
    eta_seconds: float
    elapsed_seconds: float


@dataclass(frozen=True)
class Session:
    base: Any  # the transformers model, before any adapter
    tokenizer: Any
    resolved: dict[str, Any]  # TrainConfig.resolved for the base's architecture


@contextmanager
def training_session(base_path: Path | str, config: TrainConfig) -> Iterator[Session]:
    """Set the thread count (CPU: ``config.threads``, default 1), load the base, resolve the hyperparameters;
    restore the thread count on the way out, however the loop ends."""
    # torch: kept out of Django start-up
    import torch

    old_threads = torch.get_num_threads()
    if config.device == "cpu":
        torch.set_num_threads(config.threads or 1)
    try:
        base, tokenizer = load_base(base_path, device=config.device)
        yield Session(base=base, tokenizer=tokenizer, resolved=config.resolved(base.config.model_type))
    finally:
        torch.set_num_threads(old_threads)


class CandidateMetrics:
    """Weighted NLL and TV(q_theta, q*) on the candidates, the base log-probabilities computed once.

    ``mean_len`` (the q*-weighted mean response length) scales the NLL to nats per token; the adapter is switched
    off for the base log-probabilities, so this works on a peft model before or during training."""

    def __init__(self, model: Any, tokenizer: Any, inputs: TrainInputs, mean_len: float) -> None:
        self.model, self.tokenizer = model, tokenizer
        self.inputs, self.mean_len = inputs, mean_len
        self.flat_p, self.flat_c = inputs.flat_prompts, inputs.flat_candidates
        with adapter_disabled(model):
            self.logp_base = inputs.rows(self._logprobs())

    def _logprobs(self) -> np.ndarray:
        return sequence_logprobs(self.model, self.tokenizer, self.flat_p, self.flat_c, METRICS_BATCH_SIZE)

    def tv_initial(self) -> float:
        """TV(q0, q*): the fidelity before training."""
        inp = self.inputs
        return total_variation([np.exp(lw - np.logaddexp.reduce(lw)) for lw in inp.lw0], inp.q_star, inp.mu)

    def __call__(self) -> tuple[float, float]:
        """``(weighted NLL, TV(q_theta, q*))`` of the model as it is now."""
        inp = self.inputs
        lt = inp.rows(self._logprobs())
        nll = -sum(m * float(q @ t) for m, q, t in zip(inp.mu, inp.q_star, lt, strict=True)) / self.mean_len
        tv = total_variation(implied_weights(inp.lw0, lt, self.logp_base), inp.q_star, inp.mu)
        return float(nll), float(tv)
