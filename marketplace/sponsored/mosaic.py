"""MOSAIC per query on the platform: advertisers' rewards choose which of M answers the caller gets.

After Soumalias, Curry, Seuken (NeurIPS 2025), with ``auctions.ads.mosaic`` (the fine-tuning mechanism's ``solve`` on
one prompt):

1. The deployment's own model writes M candidate answers (``SponsoredSettings.mosaic_candidates``), before and
   without any report: the generator is the reference policy itself, so the importance weights are uniform.
2. Each live campaign with a bid per answer (``reward_bid_cents`` > 0, and that much left of its day's budget)
   reports the reward r_i(y) = max(0, cos(y, ad text)) of each candidate, from the engine's MiniLM encoder: its
   reward preference is its ad text.
3. π̂(y) ∝ exp(Σ_i b_i r_i(y) / τ) on the sample; the answer is drawn from π̂; advertiser i pays its Rochet / VCG
   payment τ KL(π̂ || π̂_-i) (in minor units rounded down, never above its bid), whichever answer is drawn, capped by
   its day's budget. Paying advertisers are labelled in the answer; the clicks on their links are free.

If the encoder is unavailable, or no campaign qualifies, the first candidate goes out without an ad. All M candidates'
tokens are metered, as exact delivery meters its K drafts: the engine wrote them all for this answer.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.db import transaction
from django.db.models import F
from django.urls import reverse

from marketplace.core import currency as money
from marketplace.core.errors import AppError
from marketplace.delivery import inference
from marketplace.delivery.models import FineTunedModel
from marketplace.sponsored.models import Campaign, CampaignDaily, Impression, SponsoredSettings
from marketplace.sponsored.services import click_token, spend_add, today
from marketplace.sponsored.serving import SponsoredAd, candidates, embed

log = logging.getLogger(__name__)
ENGINE_MAX_N = 8  # the engine's largest n per request


@dataclass(frozen=True)
class MosaicAnswer:
    body: dict[str, Any]  # engine-shaped: one choice (the drawn candidate) and the usage of all M
    ads: list[SponsoredAd]  # the paying advertisers, largest payment first


def mosaic_pool() -> list[Campaign]:
    """Campaigns in MOSAIC auctions: live (``serving.candidates``), a bid per answer, and that much budget left."""
    day = today()
    pool = [c for c in candidates() if c.reward_bid_cents > 0]
    spent = dict(CampaignDaily.objects.filter(campaign__in=pool, day=day).values_list("campaign_id", "spend_cents"))
    return [c for c in pool if c.daily_budget_cents - spent.get(c.pk, 0) >= c.reward_bid_cents]


def _generate(target: inference.Target, prompt: str, gen: inference.Generation, m: int) -> tuple[list[dict], dict]:
    choices: list[dict] = []
    usage = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    for j, start in enumerate(range(0, m, ENGINE_MAX_N)):
        seed = None if gen.seed is None else (gen.seed * 1_000_003 + j) % (2**63)
        part = inference.Generation(**{**gen.__dict__, "n": min(ENGINE_MAX_N, m - start), "seed": seed,
                                       "logprobs": None, "exact_k": None})
        body = inference.complete(target=target, prompt=prompt, gen=part)
        choices.extend(body.get("choices") or [])
        for key in usage:
            usage[key] += int((body.get("usage") or {}).get(key) or 0)
    return choices, usage


def rewards_of(*, texts: list[str], ads: list[str]) -> np.ndarray:
    """(advertisers, candidates) rewards max(0, cos(candidate, ad)) in [0, 1]."""
    vectors = embed([*texts, *ads])
    return np.clip(vectors[len(texts):] @ vectors[: len(texts)].T, 0.0, 1.0)


def mosaic_answer(*, target: inference.Target, prompt: str, gen: inference.Generation, row: SponsoredSettings,
                  rng: np.random.Generator | None = None) -> MosaicAnswer:
    """Write M candidates, run MOSAIC over them (``mosaic_choose``), and return the drawn one."""
    choices, usage = _generate(target, prompt, gen, int(row.mosaic_candidates))
    picked, ads = mosaic_choose(model=target.model, texts=[c.get("text") or "" for c in choices], row=row, rng=rng)
    return MosaicAnswer(body={"choices": [{**choices[picked], "index": 0}], "usage": usage}, ads=ads)


def mosaic_choose(*, model: FineTunedModel, texts: list[str], row: SponsoredSettings,
                  rng: np.random.Generator | None = None) -> tuple[int, list[SponsoredAd]]:
    """The candidate drawn from π̂ and the paying advertisers' impressions, logged and charged in one transaction."""
    from auctions.ads.mosaic import mosaic_draw, mosaic_solve

    pool = mosaic_pool()
    if not pool or not texts:
        return 0, []
    try:
        rewards = rewards_of(texts=texts, ads=[c.ad_text for c in pool])
    except AppError as exc:
        log.warning("sponsored: MOSAIC without ads for this answer, the encoder is unavailable (%s)", exc.message)
        return 0, []
    cur = pool[0].currency
    result = mosaic_solve(bids=[money.to_major(c.reward_bid_cents, cur) for c in pool], rewards=rewards,
                          log_ref=np.zeros(len(texts)), tau=float(row.mosaic_tau), ids=[str(c.pk) for c in pool])
    picked = mosaic_draw(result, rng=rng or np.random.default_rng()).candidate
    ads = []
    day = today()
    with transaction.atomic():
        for i, (campaign, pay) in enumerate(zip(pool, result.payment, strict=True)):
            cents = min(money.major_to_minor_floor(float(pay), cur), campaign.reward_bid_cents)
            if cents <= 0:
                continue  # its report changed nothing: it did not steer this answer and is not labelled
            impression = Impression.objects.create(
                campaign=campaign, model=model, kind=Impression.Kind.ANSWER, price_per_click_cents=0,
                relevance=float(rewards[i, picked]), currency=cur, landing_url=campaign.landing_url)
            charged = spend_add(campaign_id=campaign.pk, cents=cents, day=day)
            Impression.objects.filter(pk=impression.pk).update(charged_cents=charged, charge_day=day)
            CampaignDaily.objects.filter(campaign_id=campaign.pk, day=day).update(impressions=F("impressions") + 1)
            ads.append(SponsoredAd(
                impression_id=impression.pk, campaign_id=campaign.pk, text=campaign.ad_text,
                click_path=reverse("sponsored_click", kwargs={"token": click_token(impression=impression)}),
                price_cents=charged, currency=cur, relevance=float(rewards[i, picked]),
                mode=SponsoredSettings.Mode.MOSAIC))
    ads.sort(key=lambda a: -a.price_cents)
    return picked, ads
