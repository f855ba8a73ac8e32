"""Choosing the sponsored line of one /v1/chat/completions answer: the RAG segment auction over the live campaigns.

Per answer, one segment (the line after the model's text), one ad (``auctions.ads.segment``, Hajiaghayi et al.):

1. The deployment must opt in (``SponsoredSettings.mode == "segment"``) and the request must not turn ads off (where
   the deployment lets it).
2. Candidates: the active campaigns in the platform's ad currency whose day has room for one more click at their
   bid (``budget_left >= bid``); campaigns stopped yesterday for budget are started again first.
3. Relevance q_i = max(0, cos(query, ad text)) from the MiniLM encoder, which runs in the inference engine
   (``engine_client.embeddings``): the web process never imports torch.
4. One Gumbel draw of the segment auction picks the winner with probability q_i b_i / Σ q_j b_j and sets its
   critical per-click price (the lowest bid that still wins this draw); stored in minor units, rounded down.
5. The impression is logged with that price, the landing URL it shows and the API user it is shown to, and the
   day's impression count goes up by one (F(), no lost update). The API caller gets the label, the link and the
   mode only (``SponsoredAd.as_json``), never the price.

If the encoder cannot be reached, the answer goes out without an ad (an ad is never worth failing an answer for).
With a reserve price r per click (``SponsoredSettings.reserve_cents``), only campaigns bidding at least r enter, and
the winner pays max(r, its critical bid): for each fixed draw, winning is still monotone in the bid with threshold
max(r, critical), so bidding one's value stays a best response. Without one (r = 0), a lone candidate wins at price 0:
with nobody to outbid, the critical bid of the segment auction is zero.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from django.conf import settings
from django.db.models import F
from django.urls import reverse

from marketplace.core import currency as money
from marketplace.core.errors import AppError
from marketplace.core.transitions import compare_and_set
from marketplace.delivery import engine_client
from marketplace.delivery.models import FineTunedModel
from marketplace.sponsored.models import Campaign, CampaignDaily, Impression, SponsoredSettings
from marketplace.sponsored.services import click_token, daily_row, today

log = logging.getLogger(__name__)
C = Campaign.Status
MAX_CANDIDATES = 200  # the largest bids first; an encoder call per answer stays bounded


@dataclass(frozen=True)
class SponsoredAd:
    impression_id: int
    campaign_id: int
    text: str
    click_path: str
    price_cents: int  # per click (segment) or for this answer (MOSAIC)
    currency: str
    relevance: float
    mode: str = SponsoredSettings.Mode.SEGMENT

    @property
    def price_per_click_cents(self) -> int:
        return self.price_cents if self.mode == SponsoredSettings.Mode.SEGMENT else 0

    def label(self, url: str) -> str:
        """The line appended to the answer: plainly marked as paid for."""
        if self.mode == SponsoredSettings.Mode.MOSAIC:
            return f"\n\nSponsored: advertisers' preferences helped choose this answer. {self.text} {url}"
        return f"\n\nSponsored: {self.text} {url}"

    def as_json(self, url: str) -> dict:
        """What the API caller sees: the label's text, the signed click link and the mode. Not the price, campaign or
        impression id: any caller (a rival advertiser among them) would learn clearing prices set by others' bids.
        The price stays on the Impression and on the advertiser's own pages; the link's token names the impression."""
        return {"text": self.text, "url": url, "mode": str(self.mode)}


def ads_mode(*, model: FineTunedModel, ads: object) -> SponsoredSettings | None:
    """The deployment's ad settings when this request's answer gets ads, else None. ``ads`` is the request's
    ``"ads"`` field (absent: None).

    AppError (field ``ads``) when it is not a boolean, or asks for no ads where the deployment does not allow it."""
    if ads is not None and not isinstance(ads, bool):
        raise AppError("ads must be true or false.", code="invalid_value", field="ads")
    row = SponsoredSettings.objects.filter(model=model).first()
    if row is None or row.mode == SponsoredSettings.Mode.OFF:
        return None
    if ads is False:
        if not row.users_may_opt_out:
            raise AppError("This deployment's answers carry sponsored lines; it does not let requests turn them off.",
                           code="ads_required", field="ads")
        return None
    return row


def ads_wanted(*, model: FineTunedModel, ads: object) -> bool:
    return ads_mode(model=model, ads=ads) is not None


def _restart_yesterdays_exhausted() -> None:
    day = today()
    for pk in Campaign.objects.filter(status=C.EXHAUSTED, exhausted_on__lt=day).values_list("pk", flat=True):
        compare_and_set(Campaign, pk=pk, from_status=C.EXHAUSTED, to_status=C.ACTIVE, status_message="")


def candidates(*, reserve_cents: int = 0) -> list[Campaign]:
    """Live campaigns bidding at least the reserve whose daily budget still covers one click at their bid (the budget
    stop)."""
    _restart_yesterdays_exhausted()
    day = today()
    cur = money.normalise(settings.SPONSORED_CURRENCY)
    live = list(Campaign.objects.filter(status=C.ACTIVE, currency=cur, bid_cents__gte=reserve_cents)
                .order_by("-bid_cents", "pk")[:MAX_CANDIDATES])
    spent = dict(CampaignDaily.objects.filter(campaign__in=live, day=day).values_list("campaign_id", "spend_cents"))
    return [c for c in live if c.daily_budget_cents - spent.get(c.pk, 0) >= c.bid_cents]


def embed(texts: list[str]) -> np.ndarray:
    """Unit-norm vectors (n, d) from the engine's encoder; AppError when the engine cannot answer."""
    vectors = np.asarray(engine_client.embeddings(model=settings.SPONSORED_EMBEDDING_MODEL, texts=texts),
                         dtype=np.float64)
    norms = np.linalg.norm(vectors, axis=1)
    norms[norms == 0] = 1.0
    return vectors / norms[:, None]


def relevance(*, query: str, texts: list[str]) -> np.ndarray:
    """max(0, cosine) between the query and each text."""
    unit = embed([query, *texts])
    return np.clip(unit[1:] @ unit[0], 0.0, 1.0)


def ad_serve(*, model: FineTunedModel, query: str, user=None,
             rng: np.random.Generator | None = None) -> SponsoredAd | None:
    """Run the auction for one answer and log the impression; None when no campaign qualifies or wins.

    The impression keeps the campaign's landing URL as shown (its click goes there) and ``user``, the API token's
    user the answer is for (billable clicks are capped per such user, campaign and day)."""
    from auctions.ads.segment import segment_auction, segment_draw

    reserve = SponsoredSettings.objects.filter(model=model).values_list("reserve_cents", flat=True).first() or 0
    pool = candidates(reserve_cents=reserve)
    if not pool:
        return None
    try:
        q = relevance(query=query, texts=[c.ad_text for c in pool])
    except AppError as exc:
        log.warning("sponsored: no ad for this answer, the encoder is unavailable (%s)", exc.message)
        return None
    cur = pool[0].currency
    auction = segment_auction(bids=[money.to_major(c.bid_cents, cur) for c in pool], relevance=q,
                              ids=[str(c.pk) for c in pool])
    draw = segment_draw(auction, rng=rng or np.random.default_rng())
    winners = draw.winners[0]
    if not winners:
        return None  # nothing relevant: every q_i b_i is 0
    i = winners[0]
    campaign = pool[i]
    price = min(max(reserve, money.major_to_minor_floor(float(draw.payment[i]), cur)), campaign.bid_cents)
    requester = user if getattr(user, "is_authenticated", False) else None
    impression = Impression.objects.create(campaign=campaign, model=model, relevance=float(q[i]),
                                           price_per_click_cents=price, currency=cur,
                                           landing_url=campaign.landing_url, requested_by=requester)
    daily_row(campaign_id=campaign.pk, day=today())
    CampaignDaily.objects.filter(campaign_id=campaign.pk, day=today()).update(impressions=F("impressions") + 1)
    token = click_token(impression=impression)
    return SponsoredAd(impression_id=impression.pk, campaign_id=campaign.pk, text=campaign.ad_text,
                       click_path=reverse("sponsored_click", kwargs={"token": token}), price_cents=price,
                       currency=cur, relevance=float(q[i]))
