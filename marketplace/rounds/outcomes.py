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
    delivered_reward = models.FloatField(null=True, blank=True, help_text="Fresh samples of the adapter, round prompts.")
    base_reward = models.FloatField(null=True, blank=True, help_text="Fresh samples of the base model, round prompts.")
    # Reference points on the round's fixed candidates and the auction's normalised scores (auctions.reference_points).
    candidate_base_reward = models.FloatField(null=True, blank=True, help_text="E_q0[r]: the base model.")
    without_reward = models.FloatField(null=True, blank=True, help_text="C = E_q-i[r]: the model trained without it.")
    # The delivery guarantee (auctions.guarantee), set once at delivery.
    delivered_reward_candidates = models.FloatField(
        null=True, blank=True, help_text="D = E_q_theta[r] with the adapter's implied reweighting of the candidates."
    )
    guarantee_cents = models.PositiveBigIntegerField(null=True, blank=True, help_text="bid x max(0, D - C), rounded down.")
    charge_cents = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="What is charged for the model: min(auction price, guarantee); fee excluded."
    )
    charge_basis = models.CharField(max_length=20, blank=True, help_text="auction_price, delivery_guarantee or contract.")
    # A published pay-for-performance contract at delivery (marketplace.deals.settlement): the outcome bin the
    # delivered reward D fell in and the contract's payment for it; charge_basis is "contract" where that payment
    # was the lower one.
    contract_outcome = models.PositiveSmallIntegerField(null=True, blank=True, help_text="Index of the outcome reached.")
    contract_payment_cents = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="The contract's payment for the outcome reached, chargeable minor units."
    )
    fee_cents = models.PositiveBigIntegerField(default=0, help_text="The round's participation fee, charged with it.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["outcome", "group"], name="one_outcome_per_group")]

    @property
    def model_price_cents(self) -> int:
        """What the group pays for the model: the charge fixed at delivery, or the auction price before it."""
        return self.payment_cents if self.charge_cents is None else self.charge_cents

    @property
    def amount_due_cents(self) -> int:
        """Everything captured from the group's hold at delivery: the model's price plus the participation fee."""
        return self.model_price_cents + self.fee_cents
