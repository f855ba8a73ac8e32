"""What a trained adapter delivered: fidelity to q*, delivered vs promised reward, KL from the base.

``evaluate`` reports fidelity before and after (TV to q* on the candidates, through the adapter's implied weights:
``training.lib.metrics``), each group's delivered expected reward on fresh samples of the adapter (scored by the
group's reward model, normalised with the *same* affine map fitted on the candidates) against the promise
E_{q*}[r_i] and the base's E_{q0}[r_i], and a Monte Carlo KL(adapter || base) on the fresh samples.

With ``bids`` and ``kl_weight`` (the auction's), it also measures exact delivery (``training.lib.delivery``): N fresh
adapter draws per prompt (``exact_draws``, default 64), once on the round's prompts and once on held-out prompts, give
each group's expected reward of the answer resampled toward pi* from K draws, for each K in ``exact_ks`` (K = 1 is the
adapter alone on the same draws), with the mean effective sample size. Scores are scored as in the auction: each
group's normalised reward, R = Σ_i bid_i r̂_i, weights exp(R/λ) · pi0/pi_theta on the sequence log-probabilities
(response + eos, the convention of ``training.lib.sampling``; a draw cut by ``max_new_tokens`` counts as ending there).

Numpy at import; torch/transformers/peft only inside ``evaluate`` (through ``adapters`` and ``sampling``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from training.lib.adapters import load_adapter
from training.lib.delivery import exact_delivery_at
from training.lib.metrics import expected, implied_weights, total_variation
from training.lib.rewards import AffineNormaliser, RewardModel
from training.lib.sampling import generate_texts, sequence_logprobs


@dataclass(frozen=True)
class GroupScorer:
    """A group's reward model with the normaliser fitted on the round's candidates."""

    reward_model: RewardModel
    normaliser: AffineNormaliser

    def normalised(self, prompts: Sequence[str], responses: Sequence[str]) -> np.ndarray:
        return self.normaliser.apply(self.reward_model.score(prompts, responses))


@dataclass
class Evaluation:
    """JSON-serialisable with ``dataclasses.asdict``. Rewards are on each group's normalised [0, 1] scale."""

    tv_before: float
    tv_after: float
    promised: dict[str, float]
    base_reward: dict[str, float]  # E_{q0}[r_i] on the candidates
    base_fresh_reward: dict[str, float]  # fresh base samples on the round prompts, same n as delivered
    delivered: dict[str, float]  # fresh adapter samples on the round prompts
    delivered_heldout: dict[str, float]  # fresh adapter samples on held-out prompts
    base_heldout_reward: dict[str, float]  # fresh base samples on held-out prompts
    kl_estimate: float  # nats per response, mean of log pi_theta - log pi0 on fresh adapter samples (round prompts)
    kl_estimate_heldout: float
    n_samples: int
    seed: int
    samples: list[dict[str, Any]] = field(default_factory=list)  # a few fresh samples for display
    # Per prompt, the adapter's implied unnormalised log-weights over the candidates, log q0 + log pi_theta - log pi0:
    # what billing's delivery guarantee measures D with (auctions.guarantee).
    log_q_theta: list[list[float]] = field(default_factory=list)
    # Exact delivery (empty without bids): one row per K, {"k", "reward": {group: normalised}, "ess", "subsets"}, on
    # ``exact_draws`` fresh adapter draws per prompt of the round's prompts / of the held-out prompts.
    exact_round: list[dict[str, Any]] = field(default_factory=list)
    exact_heldout: list[dict[str, Any]] = field(default_factory=list)
    exact_draws: int = 0
    exact_kl_weight: float | None = None
    exact_bids: dict[str, float] = field(default_factory=dict)


EXACT_KS = (1, 4, 16, 64)
EXACT_DRAWS = 64


def exact_row(evaluation_rows: Sequence[Mapping[str, Any]], k: int) -> dict[str, float] | None:
    """The per-group rewards at ``k`` from ``exact_round`` / ``exact_heldout`` (also as stored JSON), or None."""
    for row in evaluation_rows:
        if int(row.get("k", 0)) == k:
            return {str(g): float(v) for g, v in dict(row.get("reward") or {}).items()}
    return None


def evaluate(
    *,
    base_path: Path | str,
    adapter_dir: Path | str,
    prompts: Sequence[str],
    heldout_prompts: Sequence[str],
    candidates: Sequence[Sequence[str]],
    q0: Sequence[Sequence[float]],
    q_star: Sequence[Sequence[float]],
    groups: Mapping[str, GroupScorer],
    prompt_weights: Sequence[float] | None = None,
    n_samples: int = 16,
    seed: int = 0,
    max_new_tokens: int = 64,
    batch_size: int = 64,
    device: str = "cpu",
    keep_samples: int = 12,
    bids: Mapping[str, float] | None = None,
    kl_weight: float | None = None,
    exact_ks: Sequence[int] = EXACT_KS,
    exact_draws: int = EXACT_DRAWS,
) -> Evaluation:
    """Evaluate an adapter against the round it was trained for.

    ``q0`` and ``q_star`` are per-prompt probabilities over the candidates (rows are renormalised); ``groups`` maps a
    group name to its ``GroupScorer`` (reward model + normaliser fitted on these candidates). ``bids`` (per group, in
    the currency of ``kl_weight``) and ``kl_weight`` switch on the exact-delivery measurement (module docstring); a
    group without a bid counts with bid 0 in R.
    """
    q0p = [np.asarray(r, dtype=np.float64) / np.sum(r) for r in q0]
    qsp = [np.asarray(r, dtype=np.float64) / np.sum(r) for r in q_star]
    model, tokenizer = load_adapter(base_path, adapter_dir, device=device)
    flat_p = [p for p, row in zip(prompts, candidates, strict=True) for _ in row]
    flat_c = [c for row in candidates for c in row]
    sizes = [len(row) for row in candidates]

    def rows(flat: np.ndarray) -> list[np.ndarray]:
        out, i = [], 0
        for s in sizes:
            out.append(flat[i : i + s])
            i += s
        return out

    lt = sequence_logprobs(model, tokenizer, flat_p, flat_c, batch_size)
    with model.disable_adapter():
        lb = sequence_logprobs(model, tokenizer, flat_p, flat_c, batch_size)
    log_q0 = [np.log(np.maximum(r, 1e-300)) for r in q0p]
    q_theta = implied_weights(log_q0, rows(lt), rows(lb))
    log_q_theta = [(b + t - z).tolist() for b, t, z in zip(log_q0, rows(lt), rows(lb), strict=True)]
    tv_before = total_variation(q0p, qsp, prompt_weights)
    tv_after = total_variation(q_theta, qsp, prompt_weights)

    cand_scores = {g: rows(s.normalised(flat_p, flat_c)) for g, s in groups.items()}
    promised = {g: expected(qsp, v, prompt_weights) for g, v in cand_scores.items()}
    base_reward = {g: expected(q0p, v, prompt_weights) for g, v in cand_scores.items()}

    def fresh(ps: Sequence[str], adapter: bool, s: int) -> tuple[list[str], list[str]]:
        if adapter:
            texts, _ = generate_texts(
                model, tokenizer, list(ps), n_samples, seed=s, max_new_tokens=max_new_tokens, batch_size=batch_size
            )
        else:
            with model.disable_adapter():
                texts, _ = generate_texts(
                    model, tokenizer, list(ps), n_samples, seed=s, max_new_tokens=max_new_tokens, batch_size=batch_size
                )
        return [p for p in ps for _ in range(n_samples)], texts

    def mean_reward(
        ps: Sequence[str], fp: list[str], ft: list[str], weights: Sequence[float] | None
    ) -> dict[str, float]:
        out = {}
        for g, s in groups.items():
            v = s.normalised(fp, ft).reshape(len(ps), n_samples).mean(1)
            mu = np.full(len(ps), 1.0 / len(ps)) if weights is None else np.asarray(weights) / np.sum(weights)
            out[g] = float(mu @ v)
        return out

    def kl(ps: Sequence[str], fp: list[str], ft: list[str], weights: Sequence[float] | None) -> float:
        a = sequence_logprobs(model, tokenizer, fp, ft, batch_size)
        with model.disable_adapter():
            b = sequence_logprobs(model, tokenizer, fp, ft, batch_size)
        d = (a - b).reshape(len(ps), n_samples).mean(1)
        mu = np.full(len(ps), 1.0 / len(ps)) if weights is None else np.asarray(weights) / np.sum(weights)
        return float(mu @ d)

    def exact(ps: Sequence[str], s: int, weights: Sequence[float] | None) -> list[dict[str, Any]]:
        """Exact delivery at each K from ``exact_draws`` adapter draws per prompt (module docstring)."""
        assert bids is not None and kl_weight is not None
        names = list(groups)
        texts, _ = generate_texts(
            model, tokenizer, list(ps), exact_draws, seed=s, max_new_tokens=max_new_tokens, batch_size=batch_size
        )
        fp = [p for p in ps for _ in range(exact_draws)]
        lt = sequence_logprobs(model, tokenizer, fp, texts, batch_size).reshape(len(ps), exact_draws)
        with model.disable_adapter():
            lb = sequence_logprobs(model, tokenizer, fp, texts, batch_size).reshape(len(ps), exact_draws)
        sc = np.stack([groups[g].normalised(fp, texts).reshape(len(ps), exact_draws) for g in names], axis=1)
        b = [float(bids.get(g, 0.0)) for g in names]
        mu = np.full(len(ps), 1.0 / len(ps)) if weights is None else np.asarray(weights) / np.sum(weights)
        out = []
        for k in exact_ks:
            per = [
                exact_delivery_at(k=k, log_pi_theta=lt[i], log_pi0=lb[i], scores=sc[i], bids=b, kl_weight=kl_weight)
                for i in range(len(ps))
            ]
            rewards = mu @ np.stack([e.rewards for e in per])
            out.append(
                {
                    "k": int(k),
                    "reward": {g: float(r) for g, r in zip(names, rewards, strict=True)},
                    "ess": float(mu @ np.array([e.ess for e in per])),
                    "subsets": int(per[0].subsets) if per else 0,
                }
            )
        return out

    ap, at = fresh(prompts, True, seed)
    bp, bt = fresh(prompts, False, seed + 1)
    hp, ht = fresh(heldout_prompts, True, seed + 2)
    hbp, hbt = fresh(heldout_prompts, False, seed + 3)
    step = max(1, len(at) // max(1, keep_samples))
    measured = bids is not None and kl_weight is not None
    exact_round = exact(prompts, seed + 4, prompt_weights) if measured else []
    exact_heldout = exact(heldout_prompts, seed + 5, None) if measured and heldout_prompts else []
    return Evaluation(
        tv_before=tv_before,
        tv_after=tv_after,
        promised=promised,
        base_reward=base_reward,
        base_fresh_reward=mean_reward(prompts, bp, bt, prompt_weights),
        delivered=mean_reward(prompts, ap, at, prompt_weights),
        delivered_heldout=mean_reward(heldout_prompts, hp, ht, None),
        base_heldout_reward=mean_reward(heldout_prompts, hbp, hbt, None),
        kl_estimate=kl(prompts, ap, at, prompt_weights),
        kl_estimate_heldout=kl(heldout_prompts, hp, ht, None),
        log_q_theta=log_q_theta,
        n_samples=n_samples,
        seed=seed,
        samples=[{"prompt": ap[i], "response": at[i]} for i in range(0, len(at), step)][:keep_samples],
        exact_round=exact_round,
        exact_heldout=exact_heldout,
        exact_draws=exact_draws if measured else 0,
        exact_kl_weight=float(kl_weight) if measured and kl_weight is not None else None,
        exact_bids={g: float(bids.get(g, 0.0)) for g in groups} if measured and bids is not None else {},
    )
