from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from django.conf import settings
from django.db import models
from django.utils import timezone

from marketplace.groups.models import PreferenceGroup


class Round(models.Model):
    """One auction: a prompt set, a base model, a KL weight and a bidding window. Status moves only by compare-and-set."""

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        OPEN = "open", "Open for bids"
        CLOSED = "closed", "Closed"
        TRAINING = "training", "Training"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    title = models.CharField(max_length=160)
    slug = models.SlugField(max_length=180, unique=True)
    description = models.TextField(blank=True)
    base_model = models.CharField(max_length=300, default="tiny", help_text="A registered name, a local path or a model id.")
    prompts = models.JSONField(default=list, help_text="The round's prompts, in order.")
    prompt_weights = models.JSONField(null=True, blank=True, help_text="Optional weights, one per prompt; uniform if empty.")
    kl_weight = models.FloatField(help_text="lambda: currency units per nat of KL from the base model.")
    candidates_per_prompt = models.PositiveIntegerField(default=8)
    currency = models.CharField(max_length=3, default="usd", help_text="ISO 4217 code (marketplace.core.currency).")
    participation_fee_cents = models.PositiveBigIntegerField(
        default=0, help_text="A fixed fee per bidding group, in minor units: held with the bid, charged with the price."
    )
    min_bid_cents = models.PositiveBigIntegerField(default=1, help_text="The smallest bid accepted, in minor units.")
    candidate_set_sha256 = models.CharField(
        max_length=64, blank=True, help_text="SHA-256 of the candidate set, published once it is sampled."
    )
    opens_at = models.DateTimeField()
    closes_at = models.DateTimeField()
    seed = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.DRAFT, db_index=True)
    status_changed_at = models.DateTimeField(auto_now_add=True)
    status_detail = models.TextField(blank=True, help_text="Why the round failed or was cancelled; progress notes.")
    billing_pending = models.BooleanField(default=False)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-opens_at", "-pk"]

    def __str__(self) -> str:
        return self.title

    # The round's life cycle: which status may move to which. Every status write checks this one table.
    TRANSITIONS: ClassVar[dict[str, frozenset[str]]] = {
        Status.DRAFT: frozenset({Status.OPEN, Status.CANCELLED}),
        Status.OPEN: frozenset({Status.CLOSED, Status.CANCELLED}),
        Status.CLOSED: frozenset({Status.TRAINING, Status.FAILED, Status.CANCELLED}),
        Status.TRAINING: frozenset({Status.DELIVERED, Status.FAILED, Status.CANCELLED}),
        Status.DELIVERED: frozenset(),
        Status.FAILED: frozenset(),
        Status.CANCELLED: frozenset(),
    }
    # While bids can still change, amounts (and which groups hold an authorisation) are sealed from everyone but the
    # bidding group's own admins.
    SEALED_STATUSES: ClassVar[frozenset[str]] = frozenset({Status.DRAFT, Status.OPEN})
    # From the close on, how many groups took part is public. A round cancelled while open never reveals it.
    PARTICIPATION_PUBLIC_STATUSES: ClassVar[frozenset[str]] = frozenset(
        {Status.CLOSED, Status.TRAINING, Status.DELIVERED, Status.FAILED}
    )
    # Statuses that release every hold; nothing is charged.
    ENDED_WITHOUT_DELIVERY: ClassVar[frozenset[str]] = frozenset({Status.FAILED, Status.CANCELLED})

    def can_move_to(self, status: str) -> bool:
        return status in self.TRANSITIONS[self.status]

    @property
    def can_cancel(self) -> bool:
        return self.can_move_to(self.Status.CANCELLED)

    def window_state(self, now: datetime | None = None) -> str:
        """Where the round stands against its bidding window: 'not_open', 'before', 'open' or 'after'.

        The one rule for bids, preferences and labels: they are taken only while the status is open AND the clock is
        inside [opens_at, closes_at).
        """
        now = now or timezone.now()
        if self.status != self.Status.OPEN:
            return "not_open" if self.status == self.Status.DRAFT else "after"
        if now < self.opens_at:
            return "before"
        if now >= self.closes_at:
            return "after"
        return "open"

    def window_open(self, now: datetime | None = None) -> bool:
        return self.window_state(now) == "open"

    @property
    def accepting(self) -> bool:
        """For templates: `{% if round.accepting %}`."""
        return self.window_open()

    @property
    def bids_sealed(self) -> bool:
        return self.status in self.SEALED_STATUSES

    @property
    def participation_public(self) -> bool:
        return self.status in self.PARTICIPATION_PUBLIC_STATUSES

    def bid_amount_visible(self, *, is_staff: bool = False, is_group_admin: bool = False) -> bool:
        """Who may see a bid's amount: the bidding group's admins always; staff once bidding is over; nobody else.
        Other members of the group see only that it bid."""
        return is_group_admin or (is_staff and not self.bids_sealed)


class PreferenceSubmission(models.Model):
    """One version of a group's reward preferences for a round. Never edited; the last one before close counts."""

    class Kind(models.TextChoices):
        PAIRS = "pairs", "Preference pairs"
        RUBRIC = "rubric", "Rubric"
        SCORES = "scores", "Direct scores"
        LABELS = "labels", "Pairwise labels in the browser"

    round = models.ForeignKey(Round, on_delete=models.CASCADE, related_name="submissions")
    group = models.ForeignKey(PreferenceGroup, on_delete=models.CASCADE, related_name="submissions")
    version = models.PositiveIntegerField()
    kind = models.CharField(max_length=10, choices=Kind.choices)
    payload = models.JSONField()
    source_name = models.CharField(max_length=255, blank=True)
    row_count = models.PositiveIntegerField(default=0)
    submitted_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["round", "group", "version"], name="one_submission_per_version")]
        ordering = ["-version"]


class Bid(models.Model):
    """A group's sealed bid: the most one unit of normalised reward is worth to it, in minor units of the round's currency."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        WITHDRAWN = "withdrawn", "Withdrawn"

    # A withdrawn bid can be placed again while bidding is open (a new hold is taken).
    TRANSITIONS: ClassVar[dict[str, frozenset[str]]] = {
        Status.ACTIVE: frozenset({Status.WITHDRAWN}),
        Status.WITHDRAWN: frozenset({Status.ACTIVE}),
    }

    round = models.ForeignKey(Round, on_delete=models.CASCADE, related_name="bids")
    group = models.ForeignKey(PreferenceGroup, on_delete=models.CASCADE, related_name="bids")
    amount_cents = models.PositiveBigIntegerField()
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    placed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["round", "group"], name="one_bid_per_group_per_round")]

    def __str__(self) -> str:
        return f"Bid of {self.group} in {self.round}"
