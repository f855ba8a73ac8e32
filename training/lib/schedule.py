"""The weighted_sft batch schedule, written out: which (prompt, candidate) pairs each step trains on.

The benchmark feeds exactly these rows to TRL's SFTTrainer, so both trainers see the same data. The draws are the
ones ``training.lib.sft`` makes (both call ``draw_batch``), so the schedule cannot drift from the loop.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from training.lib.config import TrainConfig
from training.lib.inputs import candidate_offsets, normalised_rows, pair_weights


def prompts_per_step(config: TrainConfig, candidates: Sequence[Sequence[str]]) -> int:
    """How many prompts a candidate-normalised step draws (all of each drawn prompt's candidates are in the batch)."""
    return max(1, config.batch_size // max(len(c) for c in candidates))


def draw_batch(
    config: TrainConfig,
    step: int,
    mu: NDArray[np.float64],
    weights: NDArray[np.float64],
    offsets: NDArray[np.int64],
    per_step: int,
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """``(chosen prompts, pair indices)`` for ``step``, from a generator seeded with ``(seed, step)`` only, so a
    resumed job draws what it would have drawn. Candidate-normalised: ``per_step`` prompts by mu, each with all its
    candidates (``chosen`` are those prompts). Plain: ``batch_size`` pairs by mu(x) q*(y|x) (``chosen`` is empty)."""
    rng = np.random.default_rng([config.seed, step])
    if config.loss == "candidate_normalised":
        chosen = rng.choice(len(mu), size=per_step, replace=True, p=mu)
        idx = np.concatenate([np.arange(offsets[i], offsets[i + 1]) for i in chosen])
        return chosen, idx
    idx = rng.choice(len(weights), size=config.batch_size, replace=True, p=weights)
    return np.zeros(0, dtype=np.int64), idx


def batch_schedule(
    config: TrainConfig,
    candidates: Sequence[Sequence[str]],
    target_weights: Sequence[ArrayLike],
    prompt_weights: ArrayLike | None = None,
) -> list[list[tuple[int, int]]]:
    """The (prompt index, candidate index) rows each weighted_sft step trains on: the same (seed, step) streams as
    ``train``."""
    n = len(candidates)
    mu = np.full(n, 1.0 / n) if prompt_weights is None else np.asarray(prompt_weights, dtype=np.float64)
    mu = mu / mu.sum()
    flat = [(i, k) for i, row in enumerate(candidates) for k in range(len(row))]
    weights = pair_weights(mu, normalised_rows(target_weights))
    offsets = candidate_offsets(candidates)
    per_step = prompts_per_step(config, candidates)
    return [
        [flat[j] for j in draw_batch(config, step, mu, weights, offsets, per_step)[1]] for step in range(config.steps)
    ]
