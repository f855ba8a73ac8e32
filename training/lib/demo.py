"""A complete demo round on the tiny model, without Django: candidates, three groups with different tastes, q*.

Used by the tests, the benchmark and (if wanted) the demo seeding. The auction itself lives in
``auctions.mechanism``; here q* is the same closed form, q*(y_k|x) proportional to q0(y_k|x) exp(R(x, y_k)/lambda),
computed with ``training.lib.metrics.tilted_weights``.

Groups (name: taste, reward model, bid in currency per unit of normalised reward):
- ``cheerful``: enthusiastic answers, rubric, bid 3.0
- ``polite``: formal answers, Bradley-Terry fitted on 120 preference pairs, bid 1.5
- ``brief``: concise answers, direct scores on the candidates, bid 0.5
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from training.lib.corpus import (
    demo_prompts,
    direct_scores_for_style,
    heldout_prompts,
    preference_pairs_for_style,
    rubric_for_style,
)
from training.lib.evaluation import GroupScorer
from training.lib.metrics import normalise_log, tilted_weights
from training.lib.rewards import (
    AffineNormaliser,
    DirectScoresRewardModel,
    RewardModel,
    RubricRewardModel,
    candidate_key,
    fit_bradley_terry,
)
from training.lib.sampling import Candidate, base_logweights, sample_candidates

DEFAULT_BIDS = {"cheerful": 3.0, "polite": 1.5, "brief": 0.5}


@dataclass(frozen=True)
class DemoRound:
    prompts: list[str]
    heldout: list[str]
    candidates: list[list[Candidate]]
    texts: list[list[str]]
    groups: dict[str, GroupScorer]
    bids: dict[str, float]
    kl_weight: float
    base_logweights: list[list[float]]
    q0: list[np.ndarray]
    q_star: list[np.ndarray]
    scores: dict[str, list[np.ndarray]]  # normalised, per group, per prompt
    bt_accuracy: float | None


def build_demo_round(
    model: Any,
    tokenizer: Any,
    *,
    n: int = 16,
    seed: int = 0,
    kl_weight: float = 1.0,
    bids: dict[str, float] | None = None,
    prompts: list[str] | None = None,
    max_new_tokens: int = 64,
) -> DemoRound:
    bids = dict(DEFAULT_BIDS if bids is None else bids)
    prompts = demo_prompts() if prompts is None else prompts
    cands = sample_candidates(model, tokenizer, prompts, n, seed=seed, max_new_tokens=max_new_tokens, batch_size=64)
    texts = [[c.text for c in row] for row in cands]
    flat_p = [p for p, row in zip(prompts, texts, strict=True) for _ in row]
    flat_t = [t for row in texts for t in row]

    phrases, target = rubric_for_style("enthusiastic")
    bt = fit_bradley_terry(preference_pairs_for_style("formal", 120, seed=seed), seed=seed)
    direct = DirectScoresRewardModel(
        {
            candidate_key(p, t): s
            for p, t, s in zip(flat_p, flat_t, direct_scores_for_style("concise", flat_t), strict=True)
        }
    )
    models: dict[str, RewardModel] = {"cheerful": RubricRewardModel(phrases, target), "polite": bt, "brief": direct}
    groups: dict[str, GroupScorer] = {}
    scores: dict[str, list[np.ndarray]] = {}
    for name, rm in models.items():
        raw = rm.score(flat_p, flat_t)
        norm = AffineNormaliser.fit(raw)
        groups[name] = GroupScorer(rm, norm)
        scores[name] = list(norm.apply(raw).reshape(len(prompts), n))
    lw = base_logweights(cands, proposal_is_base=True)
    agg = [sum(bids[g] * scores[g][i] for g in groups) for i in range(len(prompts))]
    q_star = tilted_weights(lw, agg, kl_weight)
    q0 = [normalise_log(r) for r in lw]
    return DemoRound(
        prompts=list(prompts),
        heldout=heldout_prompts(),
        candidates=cands,
        texts=texts,
        groups=groups,
        bids=bids,
        kl_weight=kl_weight,
        base_logweights=lw,
        q0=q0,
        q_star=q_star,
        scores=scores,
        bt_accuracy=bt.accuracy,
    )
