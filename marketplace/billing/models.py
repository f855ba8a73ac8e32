from __future__ import annotations

from typing import ClassVar

from django.db import models

from marketplace.groups.models import PreferenceGroup
from marketplace.rounds.models import Bid, Round


class BillingCustomer(models.Model):
    """A group's Stripe customer and the card on file (display details only; the card itself stays at Stripe)."""

    group = models.OneToOneField(PreferenceGroup, on_delete=models.CASCADE, related_name="billing")
    stripe_customer_id = models.CharField(max_length=255, unique=True)
    payment_method_id = models.CharField(max_length=255, blank=True)
    card_brand = models.CharField(max_length=32, blank=True)
    card_last4 = models.CharField(max_length=4, blank=True)
    card_exp_month = models.PositiveSmallIntegerField(null=True, blank=True)
    card_exp_year = models.PositiveSmallIntegerField(null=True, blank=True)
    card_fingerprint = models.CharField(max_length=64, blank=True, db_index=True, help_text="Stripe's card fingerprint.")
    updated_at = models.DateTimeField(auto_now=True)

    @property
    def has_card(self) -> bool:
        return bool(self.payment_method_id)


class Payment(models.Model):
    """One hold-and-capture for one group's bid in one round. Moves only from the expected previous status."""

    class Status(models.TextChoices):
        CREATING = "creating", "Creating hold"
        HELD = "held", "Held"
        CAPTURING = "capturing", "Capturing"
        CAPTURED = "captured", "Captured"
        RELEASING = "releasing", "Releasing"
        RELEASED = "released", "Released"
        DEFERRED = "deferred", "Card saved, charged at delivery"
        FAILED = "failed", "Failed"

    # A card authorisation's life cycle. Every status write goes through compare_and_set against this table.
    TRANSITIONS: ClassVar[dict[str, frozenset[str]]] = {
        Status.CREATING: frozenset({Status.HELD, Status.DEFERRED, Status.FAILED, Status.RELEASING}),
        Status.HELD: frozenset({Status.CAPTURING, Status.RELEASING, Status.DEFERRED}),
        Status.DEFERRED: frozenset({Status.CAPTURING, Status.RELEASED}),
        Status.CAPTURING: frozenset({Status.CAPTURED, Status.FAILED}),
        # Stripe can report a hold we were releasing as already captured (a capture that landed before a crash).
        Status.RELEASING: frozenset({Status.RELEASED, Status.CAPTURED}),
        Status.CAPTURED: frozenset(),
        Status.RELEASED: frozenset(),
        Status.FAILED: frozenset(),
    }

    round = models.ForeignKey(Round, on_delete=models.PROTECT, related_name="payments")
    group = models.ForeignKey(PreferenceGroup, on_delete=models.PROTECT, related_name="payments")
    bid = models.ForeignKey(Bid, on_delete=models.SET_NULL, null=True, blank=True, related_name="payments")
    attempt = models.PositiveIntegerField(default=1, help_text="Counts holds for this bid; part of the idempotency key.")
    currency = models.CharField(max_length=3)
    amount_held_cents = models.PositiveBigIntegerField(default=0)
    amount_captured_cents = models.PositiveBigIntegerField(default=0)
    stripe_payment_intent_id = models.CharField(max_length=255, blank=True, db_index=True)
    idempotency_key = models.CharField(max_length=255, unique=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.CREATING, db_index=True)
    failure_message = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)


class WebhookEvent(models.Model):
    """Stripe events already handled, by id, so a replay changes nothing."""

    event_id = models.CharField(max_length=255, unique=True)
    type = models.CharField(max_length=100)
    received_at = models.DateTimeField(auto_now_add=True)
