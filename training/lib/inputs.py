"""A training job's inputs, validated once: the candidates, q* per prompt, the prompt weights mu and log q0.

Both loops, the candidate metrics and the benchmark's batch schedule read the same derived quantities (the flat
list of (prompt, candidate) pairs, where each prompt's candidates start, the pair weights mu(x) q*(y|x)), so they
are computed here, in one way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from training.lib.config import TrainingError


@dataclass(frozen=True)
class TrainInputs:
    prompts: list[str]
    candidates: list[list[str]]
    q_star: list[NDArray[np.float64]]  # per prompt, sums to 1
    mu: NDArray[np.float64]  # prompt weights, sum to 1
    lw0: list[NDArray[np.float64]]  # log q0 per prompt, up to a per-prompt constant

    @property
    def flat_prompts(self) -> list[str]:
        """The prompt of every (prompt, candidate) pair, prompt-major."""
        return [p for p, row in zip(self.prompts, self.candidates, strict=True) for _ in row]

    @property
    def flat_candidates(self) -> list[str]:
        return [c for row in self.candidates for c in row]

    @property
    def sizes(self) -> list[int]:
        return [len(row) for row in self.candidates]

    @property
    def offsets(self) -> NDArray[np.int64]:
        return candidate_offsets(self.candidates)

    @property
    def pair_weights(self) -> NDArray[np.float64]:
        return pair_weights(self.mu, self.q_star)

    def rows(self, flat: NDArray[np.float64]) -> list[NDArray[np.float64]]:
        """A flat per-pair array cut back into one row per prompt."""
        out, i = [], 0
        for s in self.sizes:
            out.append(flat[i : i + s])
            i += s
        return out


def normalised_rows(rows: Sequence[ArrayLike]) -> list[NDArray[np.float64]]:
    """Each row divided by its sum; every row must be non-negative with a positive sum."""
    out = []
    for r in rows:
        a = np.asarray(r, dtype=np.float64)
        if a.size == 0 or np.any(a < 0) or not a.sum() > 0:
            raise TrainingError("target weights must be non-negative with a positive sum for every prompt")
        out.append(a / a.sum())
    return out


def candidate_offsets(candidates: Sequence[Sequence[str]]) -> NDArray[np.int64]:
    """Where each prompt's candidates start in the flat pair list (and, last, the number of pairs)."""
    return np.concatenate([[0], np.cumsum([len(c) for c in candidates])]).astype(np.int64)


def pair_weights(mu: NDArray[np.float64], q_star: Sequence[NDArray[np.float64]]) -> NDArray[np.float64]:
    """mu(x) q*(y|x) for every pair, flat and renormalised: the distribution the plain loss draws pairs from."""
    weights = np.concatenate([m * q for m, q in zip(mu, q_star, strict=True)])
    return weights / weights.sum()


def train_inputs(
    prompts: Sequence[str],
    candidates: Sequence[Sequence[str]],
    target_weights: Sequence[ArrayLike],
    prompt_weights: ArrayLike | None,
    base_logweights: Sequence[ArrayLike] | None,
) -> TrainInputs:
    """Check the shapes and weights and normalise them; raises ``TrainingError`` before any file is written."""
    if not prompts:
        raise TrainingError("no prompts to train on")
    if len(candidates) != len(prompts) or len(target_weights) != len(prompts):
        raise TrainingError("prompts, candidates and target_weights must have one entry per prompt")
    for c, w in zip(candidates, target_weights, strict=True):
        if len(c) != np.size(w) or not c:
            raise TrainingError("every prompt needs candidates and one target weight per candidate")
    if base_logweights is not None and [np.size(r) for r in base_logweights] != [len(c) for c in candidates]:
        raise TrainingError("base_logweights must match the candidates")
    mu = (
        np.full(len(prompts), 1.0 / len(prompts))
        if prompt_weights is None
        else np.asarray(prompt_weights, dtype=np.float64)
    )
    if mu.shape != (len(prompts),) or np.any(mu < 0) or not mu.sum() > 0:
        raise TrainingError("prompt_weights must be non-negative, one per prompt, with a positive sum")
    return TrainInputs(
        prompts=list(prompts),
        candidates=[list(c) for c in candidates],
        q_star=normalised_rows(target_weights),
        mu=mu / mu.sum(),
        lw0=(
            [np.zeros(len(c)) for c in candidates]
            if base_logweights is None
            else [np.asarray(r, dtype=np.float64) for r in base_logweights]
        ),
    )
