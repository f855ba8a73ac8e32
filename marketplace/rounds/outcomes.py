from __future__ import annotations

from django.db import models

from marketplace.groups.models import PreferenceGroup
from marketplace.rounds.models import Round


class AuctionOutcome(models.Model):
    """The auction's result for a round, written once. `inputs_hash` is the SHA-256 of the canonical schema-v1 instance."""

    round = models.OneToOneField(Round, on_delete=models.PROTECT, related_name="outcome")
    inputs_hash = models.CharField(max_length=64)
    instance = models.JSONField()
    result = models.JSONField()
    welfare = models.FloatField()
    kl_to_base = models.FloatField()
    revenue_cents = models.PositiveBigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)


class GroupOutcome(models.Model):
    outcome = models.ForeignKey(AuctionOutcome, on_delete=models.PROTECT, related_name="groups")
    group = models.ForeignKey(PreferenceGroup, on_delete=models.PROTECT, related_name="outcomes")
    bid_cents = models.PositiveBigIntegerField()
    expected_reward = models.FloatField(help_text="Promised E_q*[r], normalised reward.")
    promised_value = models.FloatField(help_text="bid x expected reward, in currency units.")
    payment = models.FloatField(help_text="The exact price in currency units, before rounding.")
    payment_cents = models.PositiveBigIntegerField()
    utility = models.FloatField()
    delivered_reward = models.FloatField(null=True, blank=True)
    base_reward = models.FloatField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["outcome", "group"], name="one_outcome_per_group")]
