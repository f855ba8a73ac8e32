"""Campaign and deployment forms: they parse input only (amounts exactly, never through a float); the rules live in
marketplace.sponsored.services."""

from __future__ import annotations

from django import forms

from marketplace.core.currency import format_amount, parse_amount
from marketplace.sponsored.models import AD_TEXT_MAX, LANDING_URL_MAX, Campaign, SponsoredSettings
from marketplace.sponsored.services import CampaignInput


def _minor(text: str, currency: str, what: str) -> int:
    try:
        minor = parse_amount(text, currency)
    except ValueError as exc:
        raise forms.ValidationError(str(exc)) from None
    if minor <= 0:
        raise forms.ValidationError(f"The {what} must be more than zero.")
    return minor


class CampaignForm(forms.Form):
    name = forms.CharField(max_length=80)
    ad_text = forms.CharField(max_length=AD_TEXT_MAX, widget=forms.Textarea(attrs={"rows": 3}),
                              help_text=f"Shown after answers as “Sponsored: …”, at most {AD_TEXT_MAX} characters.")
    landing_url = forms.CharField(max_length=LANDING_URL_MAX, label="Landing page (http:// or https://)")
    bid = forms.CharField(max_length=16, label="Bid per click", widget=forms.TextInput(attrs={"inputmode": "decimal"}))
    daily_budget = forms.CharField(max_length=16, widget=forms.TextInput(attrs={"inputmode": "decimal"}))
    reward_bid = forms.CharField(
        max_length=16, required=False, label="Bid per answer (MOSAIC deployments)",
        widget=forms.TextInput(attrs={"inputmode": "decimal"}),
        help_text="The most paid for one answer that matches the ad text fully; blank or 0: not in MOSAIC auctions.",
    )

    def __init__(self, *args, currency: str = "usd", **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.currency = currency

    @classmethod
    def for_campaign(cls, campaign: Campaign) -> CampaignForm:
        return cls(currency=campaign.currency, initial={
            "name": campaign.name, "ad_text": campaign.ad_text, "landing_url": campaign.landing_url,
            "bid": format_amount(campaign.bid_cents, campaign.currency),
            "daily_budget": format_amount(campaign.daily_budget_cents, campaign.currency),
            "reward_bid": format_amount(campaign.reward_bid_cents, campaign.currency) if campaign.reward_bid_cents else "",
        })

    def clean_bid(self) -> int:
        return _minor(self.cleaned_data["bid"], self.currency, "bid")

    def clean_daily_budget(self) -> int:
        return _minor(self.cleaned_data["daily_budget"], self.currency, "daily budget")

    def clean_reward_bid(self) -> int:
        text = (self.cleaned_data.get("reward_bid") or "").strip()
        if not text:
            return 0
        try:
            return parse_amount(text, self.currency)
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None

    def to_input(self) -> CampaignInput:
        d = self.cleaned_data
        return CampaignInput(name=d["name"], ad_text=d["ad_text"], landing_url=d["landing_url"], bid_cents=d["bid"],
                             daily_budget_cents=d["daily_budget"], reward_bid_cents=d["reward_bid"])


class DeploymentForm(forms.Form):
    mode = forms.ChoiceField(choices=SponsoredSettings.Mode.choices)
    users_may_opt_out = forms.BooleanField(required=False, label='Requests may turn ads off ("ads": false)')
    mosaic_candidates = forms.IntegerField(required=False, min_value=2, max_value=64, label="MOSAIC: answers per query (M)")
    mosaic_tau = forms.FloatField(required=False, min_value=0.001, max_value=1000.0, label="MOSAIC: τ")
    reserve_cents = forms.IntegerField(required=False, min_value=0, max_value=100_000,
                                       label="Segment: reserve price per click (minor units)")
