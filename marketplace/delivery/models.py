"""The published model of a delivered round and its metered use."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from marketplace.groups.models import PreferenceGroup
from marketplace.rounds.models import Round
from marketplace.verification.services import email_is_verified

MODEL_ID_PREFIX = "ft:"
EXACT_SUFFIX = ":exact"


class FineTunedModelQuerySet(models.QuerySet["FineTunedModel"]):
    """The access rule, in two levels, here only.

    - ``owned_by``: staff and members of the groups that bid in the round (its auction outcome's groups), who paid
      for the model: they may also download its weights and use the playground (unmetered).
    - ``usable_by``: those, and any active user with a confirmed e-mail address when one of the bidding groups lists
      the model for resale (``ResaleListing.listed``): a resale buyer, who calls it through ``/v1/`` only, metered and
      priced by the listing. Giving a buyer the weights or the free playground would give away what every bidding
      group paid for.

    Everyone else sees nothing, so a model they may not use looks exactly like a missing one."""

    def owned_by(self, user) -> FineTunedModelQuerySet:
        if not getattr(user, "is_authenticated", False) or not user.is_active:
            return self.none()
        if user.is_staff:
            return self.all()
        return self.filter(round__outcome__groups__group__memberships__user=user).distinct()

    def usable_by(self, user) -> FineTunedModelQuerySet:
        if not getattr(user, "is_authenticated", False) or not user.is_active:
            return self.none()
        if user.is_staff:
            return self.all()
        allowed = models.Q(round__outcome__groups__group__memberships__user=user)
        if email_is_verified(user=user):
            allowed |= models.Q(listings__listed=True)
        return self.filter(allowed).distinct()


class FineTunedModel(models.Model):
    """A delivered round's model: the adapter on its base, the merged weights, both downloadable, and its card."""

    model_id = models.CharField(max_length=200, unique=True, help_text='"ft:<round-slug>"')
    round = models.OneToOneField(Round, on_delete=models.PROTECT, related_name="finetuned_model")
    base_model = models.CharField(max_length=300)
    kl_weight = models.FloatField()
    adapter_dir = models.CharField(max_length=500, help_text="The job's adapter folder (what the engine loads).")
    adapter_sha256 = models.CharField(max_length=64, blank=True, help_text="SHA-256 of adapter_model.safetensors.")
    merged_dir = models.CharField(max_length=500, blank=True)
    adapter_zip = models.CharField(max_length=500, blank=True, help_text="Path under ARTIFACT_DIR, named by content hash.")
    adapter_zip_size = models.PositiveBigIntegerField(default=0)
    adapter_zip_sha256 = models.CharField(max_length=64, blank=True)
    merged_zip = models.CharField(max_length=500, blank=True)
    merged_zip_size = models.PositiveBigIntegerField(default=0)
    merged_zip_sha256 = models.CharField(max_length=64, blank=True)
    card = models.TextField(blank=True, help_text="The model card (README.md), markdown.")
    created_at = models.DateTimeField(auto_now_add=True)

    objects = FineTunedModelQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return self.model_id

    @property
    def ready(self) -> bool:
        """Both downloads are built (publishing builds them in the worker after the row exists)."""
        return bool(self.adapter_zip and self.merged_zip)

    @staticmethod
    def id_for(round: Round) -> str:
        return f"{MODEL_ID_PREFIX}{round.slug}"


class UsageDaily(models.Model):
    """Tokens a group used on a model in a day, through the OpenAI-compatible API. Incremented with F() only."""

    group = models.ForeignKey(PreferenceGroup, on_delete=models.CASCADE, related_name="usage")
    model = models.ForeignKey(FineTunedModel, on_delete=models.CASCADE, related_name="usage")
    day = models.DateField()
    prompt_tokens = models.PositiveBigIntegerField(default=0)
    completion_tokens = models.PositiveBigIntegerField(default=0)
    requests = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["group", "model", "day"], name="one_usage_row_per_group_model_day")]
        ordering = ["-day", "model_id"]


class ResaleListing(models.Model):
    """A bidding group's offer of its delivered model to everyone else through the platform's API, at a price per
    million tokens (prompt and completion alike) in integer minor units of the round's currency. Set by the group's
    admins; ``listed`` off withdraws it (the row, and the usage billed at it, stay)."""

    model = models.ForeignKey(FineTunedModel, on_delete=models.CASCADE, related_name="listings")
    group = models.ForeignKey(PreferenceGroup, on_delete=models.CASCADE, related_name="resale_listings")
    listed = models.BooleanField(default=False)
    price_per_mtok_cents = models.PositiveBigIntegerField(default=0, help_text="Minor units per 1,000,000 tokens.")
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["model", "group"], name="one_resale_listing_per_model_group")]

    def __str__(self) -> str:
        return f"{self.model_id} resold by {self.group_id}"


class ResaleUsageDaily(models.Model):
    """Tokens an outside buyer (a user in none of the round's bidding groups) used on a listed model in a day, at the
    price the listing had then: a price change starts a new row, so revenue is always tokens x the price paid.
    Incremented with F() only."""

    listing = models.ForeignKey(ResaleListing, on_delete=models.PROTECT, related_name="usage")
    buyer = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    day = models.DateField()
    price_per_mtok_cents = models.PositiveBigIntegerField()
    prompt_tokens = models.PositiveBigIntegerField(default=0)
    completion_tokens = models.PositiveBigIntegerField(default=0)
    requests = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["listing", "buyer", "day", "price_per_mtok_cents"], name="one_resale_usage_row_per_buyer_day_price"
            )
        ]
        ordering = ["-day", "listing_id"]

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens
