"""Reading sponsored answers' data for pages. Campaigns are read through the advertiser group's admin check only, so
no page shows one group's bids to another (or to the group's plain members)."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Sum

from marketplace.core.errors import NotFound
from marketplace.delivery.models import FineTunedModel
from marketplace.groups.models import PreferenceGroup
from marketplace.groups.selectors import group_for_member
from marketplace.sponsored.models import AdInvoice, Campaign, CampaignDaily, Impression, SponsoredSettings
from marketplace.sponsored.services import advertiser_require_admin


def advertiser_group(*, user, slug: str) -> PreferenceGroup:
    """The group, for its admins; NotFound for outsiders (staff included), NotAllowed for plain members."""
    group = group_for_member(user=user, slug=slug)
    advertiser_require_admin(user=user, group=group)
    return group


def group_campaigns(*, group: PreferenceGroup) -> list[Campaign]:
    return list(Campaign.objects.filter(group=group).annotate(
        total_clicks=Sum("days__clicks"), total_spend=Sum("days__spend_cents"), total_impressions=Sum("days__impressions"),
    ))


def campaign_of(*, group: PreferenceGroup, campaign_id: int) -> Campaign:
    campaign = Campaign.objects.filter(group=group, pk=campaign_id).first()
    if campaign is None:
        raise NotFound("Campaign not found.")
    return campaign


@dataclass(frozen=True)
class DayRow:
    day: object
    impressions: int
    clicks: int
    spend_cents: int
    click_spend_cents: int  # the part of the spend paid per click (the rest: MOSAIC answers)

    @property
    def price_per_click_cents(self) -> int | None:
        return self.click_spend_cents // self.clicks if self.clicks else None


@dataclass(frozen=True)
class CampaignReport:
    campaign: Campaign
    days: list[DayRow]
    impressions: int
    clicks: int
    spend_cents: int
    click_spend_cents: int

    @property
    def price_per_click_cents(self) -> int | None:
        return self.click_spend_cents // self.clicks if self.clicks else None


def campaign_report(*, campaign: Campaign) -> CampaignReport:
    """Per day from ``CampaignDaily``; the price per click counts click charges only (not MOSAIC answers)."""
    click_spend = dict(Impression.objects.filter(campaign=campaign, kind=Impression.Kind.CLICK, charged_cents__gt=0)
                       .values("charge_day").annotate(total=Sum("charged_cents")).values_list("charge_day", "total"))
    days = [DayRow(r.day, r.impressions, r.clicks, r.spend_cents, int(click_spend.get(r.day) or 0))
            for r in CampaignDaily.objects.filter(campaign=campaign)]
    return CampaignReport(campaign=campaign, days=days, impressions=sum(d.impressions for d in days),
                          clicks=sum(d.clicks for d in days), spend_cents=sum(d.spend_cents for d in days),
                          click_spend_cents=sum(d.click_spend_cents for d in days))


def group_ad_invoices(*, group: PreferenceGroup) -> list[AdInvoice]:
    return list(AdInvoice.objects.filter(group=group)[:60])


def deployments_for_staff(*, user) -> list[tuple[FineTunedModel, SponsoredSettings | None]]:
    if not (getattr(user, "is_authenticated", False) and user.is_staff):
        raise NotFound("Not found.")
    rows = {s.model_id: s for s in SponsoredSettings.objects.all()}
    return [(m, rows.get(m.pk)) for m in FineTunedModel.objects.all()]


def deployment_for_staff(*, user, model_id: str) -> FineTunedModel:
    if not (getattr(user, "is_authenticated", False) and user.is_staff):
        raise NotFound("Not found.")
    model = FineTunedModel.objects.filter(model_id=model_id).first()
    if model is None:
        raise NotFound("Model not found.")
    return model
