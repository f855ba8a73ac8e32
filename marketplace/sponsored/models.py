"""Sponsored answers: which deployments show ads, advertisers' campaigns, the impressions and clicks they buy, and
the invoices that charge the clicks to the advertiser group's card.

An advertiser is a preference group: its admins run its campaigns and its card on file (``marketplace.billing``)
pays for their clicks. Money is integer minor units of the campaign's currency.
"""

from __future__ import annotations

from typing import ClassVar

from django.conf import settings
from django.core.validators import MaxLengthValidator, MaxValueValidator, MinValueValidator, URLValidator
from django.db import models

from marketplace.delivery.models import FineTunedModel
from marketplace.groups.models import PreferenceGroup

AD_TEXT_MAX = 200
LANDING_URL_MAX = 500
# Only web links: a landing URL is where the signed click redirect sends a person, so no javascript:, data: or ftp:.
landing_url_validator = URLValidator(schemes=["http", "https"], message="Enter an http:// or https:// address.")


class SponsoredSettings(models.Model):
    """Staff's switch for one deployment: whether its /v1/chat/completions answers carry ads, and how they are chosen."""

    class Mode(models.TextChoices):
        OFF = "off", "Off"
        SEGMENT = "segment", "Segment auction (bid × relevance)"
        MOSAIC = "mosaic", "MOSAIC (advertisers' rewards choose among M answers)"

    model = models.OneToOneField(FineTunedModel, on_delete=models.CASCADE, related_name="sponsored_settings")
    mode = models.CharField(max_length=10, choices=Mode.choices, default=Mode.OFF)
    users_may_opt_out = models.BooleanField(
        default=True, help_text='Whether a request may send "ads": false to get an answer without ads.'
    )
    mosaic_candidates = models.PositiveSmallIntegerField(
        default=8, validators=[MinValueValidator(2), MaxValueValidator(64)], help_text="MOSAIC: M, answers drawn per query."
    )
    mosaic_tau = models.FloatField(
        default=0.5, validators=[MinValueValidator(1e-3)],
        help_text="MOSAIC: the KL weight τ; larger keeps the chosen answer closer to the model's own.",
    )
    reserve_cents = models.PositiveIntegerField(
        default=0,
        help_text="Segment mode: the lowest price per click, in minor units of the ad currency. Campaigns bidding less "
        "are not entered, and a winner pays at least this (a lone campaign would otherwise click for free).",
    )
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.model} ads {self.mode}"


class Campaign(models.Model):
    """One ad of an advertiser group: its text, where a click goes, its per-click bid and its daily budget."""

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        ACTIVE = "active", "Active"
        PAUSED = "paused", "Paused"
        EXHAUSTED = "exhausted", "Daily budget reached"
        ENDED = "ended", "Ended"

    # Exhausted is "stopped for today": the next day's first auction moves it back to active (serving.py).
    TRANSITIONS: ClassVar[dict[str, frozenset[str]]] = {
        Status.DRAFT: frozenset({Status.ACTIVE, Status.ENDED}),
        Status.ACTIVE: frozenset({Status.PAUSED, Status.EXHAUSTED, Status.ENDED}),
        Status.PAUSED: frozenset({Status.ACTIVE, Status.ENDED}),
        Status.EXHAUSTED: frozenset({Status.ACTIVE, Status.PAUSED, Status.ENDED}),
        Status.ENDED: frozenset(),
    }

    group = models.ForeignKey(PreferenceGroup, on_delete=models.PROTECT, related_name="campaigns")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    name = models.CharField(max_length=80)
    ad_text = models.TextField(validators=[MaxLengthValidator(AD_TEXT_MAX)])
    landing_url = models.CharField(max_length=LANDING_URL_MAX, validators=[landing_url_validator])
    bid_cents = models.PositiveIntegerField(validators=[MinValueValidator(1)], help_text="Bid per click, minor units.")
    currency = models.CharField(max_length=3, default="usd")
    daily_budget_cents = models.PositiveBigIntegerField(validators=[MinValueValidator(1)])
    reward_bid_cents = models.PositiveIntegerField(
        default=0, help_text="MOSAIC: the most paid for one answer that matches the ad fully (reward 1); 0: not in MOSAIC."
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT, db_index=True)
    status_message = models.CharField(max_length=300, blank=True)
    exhausted_on = models.DateField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.CheckConstraint(condition=models.Q(bid_cents__gte=1), name="campaign_bid_positive"),
            models.CheckConstraint(condition=models.Q(daily_budget_cents__gte=1), name="campaign_budget_positive"),
        ]

    def __str__(self) -> str:
        return self.name


class CampaignDaily(models.Model):
    """A campaign's day: impressions, clicks and spend. Spend moves only under the row's lock (services.click_record)."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="days")
    day = models.DateField()
    impressions = models.PositiveBigIntegerField(default=0)
    clicks = models.PositiveBigIntegerField(default=0)
    spend_cents = models.PositiveBigIntegerField(default=0)

    class Meta:
        ordering = ["-day"]
        constraints = [models.UniqueConstraint(fields=["campaign", "day"], name="one_daily_row_per_campaign_day")]


class AdInvoice(models.Model):
    """One period's click spend of one advertiser group in one currency, charged off-session to its card."""

    class Status(models.TextChoices):
        CHARGING = "charging", "Charging"
        PAID = "paid", "Paid"
        FAILED = "failed", "Failed"

    # failed -> charging: the debt is retried (a new attempt, a new idempotency key) once the group's card changed.
    TRANSITIONS: ClassVar[dict[str, frozenset[str]]] = {
        Status.CHARGING: frozenset({Status.PAID, Status.FAILED}),
        Status.PAID: frozenset(),
        Status.FAILED: frozenset({Status.CHARGING}),
    }

    group = models.ForeignKey(PreferenceGroup, on_delete=models.PROTECT, related_name="ad_invoices")
    period = models.DateField(help_text="The day whose clicks this charges.")
    currency = models.CharField(max_length=3)
    amount_cents = models.PositiveBigIntegerField()
    idempotency_key = models.CharField(max_length=255, unique=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.CHARGING, db_index=True)
    stripe_payment_intent_id = models.CharField(max_length=255, blank=True)
    failure_message = models.CharField(max_length=500, blank=True)
    attempt = models.PositiveIntegerField(default=1, help_text="Charges tried; attempts after the first key by it.")
    failed_payment_method_id = models.CharField(
        max_length=255, blank=True, help_text="The card on file when the charge failed; a different card retries it."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-period", "-pk"]
        constraints = [
            models.UniqueConstraint(fields=["group", "period", "currency"], name="one_ad_invoice_per_group_period_currency")
        ]


class Impression(models.Model):
    """An ad shown in one answer, with the per-click price the auction's draw set for it, the landing URL it showed and
    the API user it was shown to; clicked at most once.

    A MOSAIC impression (kind ``answer``) is paid when the answer is served, not per click: its charge is the
    advertiser's MOSAIC payment for steering that answer, and its link's clicks are free."""

    class Kind(models.TextChoices):
        CLICK = "click", "Segment auction: paid per click"
        ANSWER = "answer", "MOSAIC: paid per answer"

    kind = models.CharField(max_length=6, choices=Kind.choices, default=Kind.CLICK)
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="impressions")
    model = models.ForeignKey(FineTunedModel, on_delete=models.SET_NULL, null=True, related_name="+")
    relevance = models.FloatField()
    price_per_click_cents = models.PositiveIntegerField()
    currency = models.CharField(max_length=3)
    shown_at = models.DateTimeField(auto_now_add=True)
    clicked_at = models.DateTimeField(null=True, blank=True)
    click_day = models.DateField(null=True, blank=True, db_index=True)
    charged_cents = models.PositiveIntegerField(default=0, help_text="What the click (or answer) cost, within the budget.")
    charge_day = models.DateField(null=True, blank=True, db_index=True, help_text="The day whose bill it goes on.")
    invoice = models.ForeignKey(AdInvoice, on_delete=models.SET_NULL, null=True, blank=True, related_name="impressions")
    # The landing URL as shown: the click redirects here, so editing the campaign never retargets issued links.
    landing_url = models.CharField(max_length=LANDING_URL_MAX)
    # The API token's user whose answer carried the ad: billable clicks are capped per such user, campaign and day.
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                     related_name="+")

    class Meta:
        ordering = ["-shown_at", "-pk"]
        indexes = [models.Index(fields=["campaign", "requested_by", "click_day"], name="impression_user_clicks")]
