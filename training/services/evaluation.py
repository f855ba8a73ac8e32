from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path

from django.conf import settings

from marketplace.rounds.outcomes import AuctionOutcome, GroupOutcome
from training.lib.corpus import heldout_prompts
from training.lib.evaluation import GroupScorer, evaluate
from training.lib.rewards import AffineNormaliser
from training.models import Evaluation, RewardModel, TrainingJob
from training.services.candidates import candidates_by_prompt
from training.services.common import base_path_for
from training.services.rewards import reward_model_restore


def job_evaluate(*, job: TrainingJob, n_samples: int = 8) -> Evaluation:
    """Measure what the adapter delivered: fidelity to q*, each group's delivered vs promised reward, KL to base, and
    exact delivery at K = 1, 4, 16, 64 on the round's and held-out prompts (``details["exact_round"]`` /
    ``details["exact_heldout"]``, see ``training.lib.evaluation``).

    Idempotent: the evaluation is stored once per job.
    """

    existing = Evaluation.objects.filter(job=job).first()
    if existing is not None:
        return existing
    round = job.round
    outcome = AuctionOutcome.objects.get(round=round)
    cands = candidates_by_prompt(round=round)
    q0 = []
    for row in cands:
        m = max(c.base_logweight for c in row)
        w = [math.exp(c.base_logweight - m) for c in row]
        s = sum(w)
        q0.append([x / s for x in w])
    scorers = {}
    for rm in RewardModel.objects.filter(round=round).select_related("group"):
        scorers[rm.group.slug] = GroupScorer(reward_model_restore(reward_model=rm), AffineNormaliser(lo=rm.norm_min, hi=rm.norm_max))
    weights = round.prompt_weights or [1.0] * len(round.prompts)
    # Exact delivery is measured with the auction's own bids (currency units, as in its instance) and lambda.
    bids = {str(g["id"]): float(g["bid"]) for g in (outcome.instance or {}).get("groups", [])}
    result = evaluate(
        base_path=base_path_for(round.base_model),
        adapter_dir=Path(job.adapter_dir),
        prompts=list(round.prompts),
        prompt_weights=[w / sum(weights) for w in weights],
        heldout_prompts=heldout_prompts(),
        candidates=[[c.text for c in row] for row in cands],
        q0=q0,
        q_star=outcome.result["policy"],
        groups=scorers,
        device=settings.TRAINING_DEVICE,
        n_samples=n_samples,
        seed=round.seed,
        bids=bids,
        kl_weight=float(round.kl_weight),
    )
    evaluation, _ = Evaluation.objects.get_or_create(
        job=job,
        defaults=dict(
            tv_before=result.tv_before,
            tv_after=result.tv_after,
            kl_estimate=result.kl_estimate,
            delivered=result.delivered,
            # Delivered and base rewards both come from fresh samples, so they compare like with like.
            base=result.base_fresh_reward,
            heldout=result.delivered_heldout,
            details=asdict(result),
        ),
    )
    for go in GroupOutcome.objects.filter(outcome=outcome).select_related("group"):
        slug = go.group.slug
        GroupOutcome.objects.filter(pk=go.pk).update(
            delivered_reward=evaluation.delivered.get(slug), base_reward=evaluation.base.get(slug)
        )
    return evaluation
