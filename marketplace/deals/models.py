"""What staff and groups settled with the economics tools: a round's pay-for-performance contract, a revenue share."""

from __future__ import annotations

from typing import ClassVar

from django.conf import settings
from django.db import models

from marketplace.deals.settlement import contract_terms
from marketplace.groups.models import PreferenceGroup
from marketplace.rounds.models import Round


class RoundContract(models.Model):
    """A round's pay-for-performance contract (Saig, Einav, Talgam-Cohen; ``economics.contracts``).

    ``inputs`` holds what the contract was computed from: the generators (``actions``: name, cost, distribution over
    the outcomes, the last one the target), ``objective``, ``monotone``, ``robust``, the outcome labels and, when
    the distributions were derived from past evaluations, the reward bin edges (``outcome_edges``) and the source.
    ``payments`` is the payment per outcome, in the round's currency units (floats, smallest 0), and
    ``payments_cents`` the same rounded down to integer minor units: that is what billing reads.

    Only a published contract is shown to groups, and only a draft may be changed or published; publishing is
    allowed only before bidding closes, so groups see it before they bid.

    **The hold rule.** Applied at delivery (``deals.settlement``, called by ``auction_delivery_settle``), a group's
    charge for the model is ``min(its current charge, payments_cents[outcome])``, the outcome being the bin of
    ``outcome_edges`` its delivered reward falls in: the contract can lower a charge but never raise it, and so can
    never charge more than the hold: the amount captured (charge + fee) is at most bid + fee.
    """

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        PUBLISHED = "published", "Published"

    TRANSITIONS: ClassVar[dict[str, frozenset[str]]] = {
        Status.DRAFT: frozenset({Status.PUBLISHED}),
        Status.PUBLISHED: frozenset(),
    }

    round = models.OneToOneField(Round, on_delete=models.CASCADE, related_name="contract")
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.DRAFT)
    inputs = models.JSONField(help_text="actions (name, cost, distribution), objective, monotone, robust, outcomes.")
    payments = models.JSONField(help_text="Payment per outcome in currency units; the smallest is 0.")
    payments_cents = models.JSONField(help_text="Payment per outcome in minor units, rounded down (what billing reads).")
    expected_payment = models.FloatField(help_text="Expected payment under the target generator, in currency units.")
    max_payment = models.FloatField(help_text="The largest payment (the budget), in currency units.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    updated_at = models.DateTimeField(auto_now=True)
    published_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"contract for {self.round.slug} ({self.status})"

    @property
    def outcome_rows(self) -> list[dict]:
        """Per outcome: its label, payment, and the range of delivered reward that reaches it (``deals.settlement``)."""
        labels = self.inputs.get("outcomes") or [str(j + 1) for j in range(len(self.payments))]
        edges = contract_terms(self).edges
        bins = list(zip(edges, edges[1:], strict=False))
        return [
            {"label": label, "payment": pay, "cents": cents, "bin": f"[{lo:.4g}, {hi:.4g})"}
            for label, pay, cents, (lo, hi) in zip(labels, self.payments, self.payments_cents, bins, strict=False)
        ]


class RevenueShare(models.Model):
    """The share ``delta`` of a resold model's revenue that goes to the platform (the generalist); the group (the
    specialist) keeps ``1 - delta``. ``inputs`` holds the declared costs c0 (platform) and c1 (group) and the revenue
    estimate r the analysis used. A group's costs and share are seen only by its admins and staff.

    The share splits the resale revenue metered by ``delivery.ResaleUsageDaily`` (``deals.revenue``,
    ``deals.selectors.resale_statement``; docs/economics.md, "On the site")."""

    round = models.ForeignKey(Round, on_delete=models.CASCADE, related_name="revenue_shares")
    group = models.ForeignKey(PreferenceGroup, on_delete=models.CASCADE, related_name="revenue_shares")
    delta = models.FloatField(help_text="The platform's share of revenue, in [0, 1].")
    inputs = models.JSONField(help_text="c0, c1, r: the declared costs and the revenue estimate.")
    agreed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    agreed_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["round", "group"], name="deals_revenue_share_one_per_round_group"),
            models.CheckConstraint(
                condition=models.Q(delta__gte=0) & models.Q(delta__lte=1), name="deals_revenue_share_delta_in_0_1"
            ),
        ]

    def __str__(self) -> str:
        return f"revenue share {self.delta:.4f} for {self.group_id} in {self.round_id}"
