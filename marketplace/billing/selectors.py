"""Reading billing: how a round is paid for, a group's card (details for admins only), receipts and the staff overview."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import NamedTuple

from django.conf import settings
from django.db.models import Sum

from marketplace.billing.models import BillingCustomer, Payment
from marketplace.core.errors import NotFound
from marketplace.deals.models import RoundContract
from marketplace.groups.models import Membership, PreferenceGroup
from marketplace.groups.selectors import group_for_member, membership_of
from marketplace.rounds.models import Round
from marketplace.rounds.outcomes import AuctionOutcome, GroupOutcome

P = Payment.Status
HOLD = "hold"
DEFERRED = "deferred"


class BillingMode(NamedTuple):
    """`mode` is "hold" or "deferred"; `explanation` says in plain words what happens to the group's card."""

    mode: str
    explanation: str


def billing_mode_for_round(*, round: Round) -> BillingMode:
    """Hold at bid time when the hold outlives bidding plus training; otherwise save the card and charge at delivery.

    A card authorisation lapses after a few days (settings.STRIPE_HOLD_DAYS, kept below Stripe's seven), and a bid
    placed when the round opens must stay held until the model is delivered: the bidding window plus the training
    allowance (settings.BILLING_TRAINING_ALLOWANCE_HOURS).
    """
    hold = timedelta(days=settings.STRIPE_HOLD_DAYS)
    needed = (round.closes_at - round.opens_at) + timedelta(hours=settings.BILLING_TRAINING_ALLOWANCE_HOURS)
    if needed <= hold:
        return BillingMode(
            HOLD,
            "Placing a bid puts a hold of the bid amount on your group's card. When the model is delivered your group "
            "is charged its auction price, never more than the bid, and the rest of the hold is released. If the "
            "model is not delivered the whole hold is released and nothing is charged.",
        )
    days = needed.total_seconds() / 86400
    return BillingMode(
        DEFERRED,
        f"Bidding plus training in this round takes about {days:.0f} days, longer than a card hold lasts "
        f"({settings.STRIPE_HOLD_DAYS} days), so no hold is placed: your group's saved card is charged its auction "
        "price, never more than the bid, when the model is delivered. Nothing is charged if it is not delivered.",
    )


def billing_customer_of(*, group: PreferenceGroup) -> BillingCustomer | None:
    return BillingCustomer.objects.filter(group=group).first()


@dataclass(frozen=True)
class CardOnFile:
    has_card: bool
    # The details are filled for admins only; members learn whether a card is on file, nothing more.
    brand: str = ""
    last4: str = ""
    exp_month: int | None = None
    exp_year: int | None = None


@dataclass(frozen=True)
class GroupBillingPage:
    group: PreferenceGroup
    membership: Membership
    card: CardOnFile

    @property
    def is_admin(self) -> bool:
        return self.membership.role == Membership.Role.ADMIN


def group_billing_page(*, user, slug: str) -> GroupBillingPage:
    """The billing page of a group for one of its members; outsiders get NotFound (the group's existence stays hidden)."""
    group = group_for_member(user=user, slug=slug)
    membership = membership_of(user=user, group=group)
    if membership is None:
        raise NotFound("Group not found.")
    customer = billing_customer_of(group=group)
    has_card = bool(customer and customer.has_card)
    if customer is not None and customer.has_card and membership.role == Membership.Role.ADMIN:
        card = CardOnFile(True, customer.card_brand, customer.card_last4, customer.card_exp_month, customer.card_exp_year)
    else:
        card = CardOnFile(has_card)
    return GroupBillingPage(group=group, membership=membership, card=card)


@dataclass(frozen=True)
class Receipt:
    round: Round
    group: PreferenceGroup
    is_admin: bool
    outcome: GroupOutcome | None
    payment: Payment | None
    delivered: bool

    @property
    def currency(self) -> str:
        return self.round.currency

    @property
    def price_cents(self) -> int | None:
        return self.outcome.payment_cents if self.outcome else None

    @property
    def number(self) -> str:
        """A stable receipt number: round and group."""
        return f"TM-{self.round.pk:05d}-{self.group.pk:05d}"

    def _money(self, reward: float | None) -> int | None:
        if not self.outcome or reward is None:
            return None
        return int(reward * self.outcome.bid_cents)

    @property
    def reference_rows(self) -> list[tuple[str, str, float | None, int | None]]:
        """(key, label, reward on the 0-1 scale, value in minor units = reward x bid), from the base model to what
        was delivered: the points a price is read against."""
        o = self.outcome
        if o is None:
            return []
        rows = [
            ("base", "Base model (on the round's candidates)", o.candidate_base_reward),
            ("without", "The model trained without your group", o.without_reward),
            ("promised", "Promised: the auction's target with your group", o.expected_reward),
            ("delivered", "Delivered, measured on the round's candidates (billing uses this)", o.delivered_reward_candidates),
            ("delivered_fresh", "Delivered, on fresh answers of the adapter (shown, not billed)", o.delivered_reward),
        ]
        return [(key, label, reward, self._money(reward)) for key, label, reward in rows]

    @property
    def price_bound_cents(self) -> int | None:
        """The auction's price is at most bid x (promised - without you): the value your group adds to the model."""
        o = self.outcome
        if o is None or o.without_reward is None:
            return None
        return int(max(0.0, o.expected_reward - o.without_reward) * o.bid_cents)

    @property
    def contract_outcome_label(self) -> str | None:
        """The label of the pay-for-performance outcome the group reached at delivery (None without a contract)."""
        o = self.outcome
        if o is None or o.contract_outcome is None:
            return None
        contract = RoundContract.objects.filter(round=self.round).first()
        rows = contract.outcome_rows if contract is not None else []
        return rows[o.contract_outcome]["label"] if o.contract_outcome < len(rows) else str(o.contract_outcome + 1)

    @property
    def card(self) -> str:
        customer = BillingCustomer.objects.filter(group=self.group).first()
        if customer is None or not customer.has_card:
            return ""
        return f"{(customer.card_brand or 'card').title()} ending in {customer.card_last4}"

    @property
    def delivered_value_cents(self) -> int | None:
        """What the delivered model is worth to the group at its own bid: delivered normalised reward x bid."""
        if not self.outcome or self.outcome.delivered_reward is None:
            return None
        return int(self.outcome.delivered_reward * self.outcome.bid_cents)

    @property
    def promised_value_cents(self) -> int | None:
        if not self.outcome:
            return None
        return int(self.outcome.expected_reward * self.outcome.bid_cents)

    @property
    def charged_cents(self) -> int:
        return self.payment.amount_captured_cents if self.payment else 0

    @property
    def released_cents(self) -> int:
        """The part of the hold that was let go: all of it unless a price was captured."""
        if not self.payment or not self.payment.amount_held_cents:
            return 0
        if self.payment.status == P.CAPTURED:
            return self.payment.amount_held_cents - self.payment.amount_captured_cents
        if self.payment.status == P.RELEASED:
            return self.payment.amount_held_cents
        return 0


def _current_payment(*, round: Round, group: PreferenceGroup) -> Payment | None:
    """The payment standing for the group's bid: the latest one tied to a bid that was not refused or abandoned."""
    return (
        Payment.objects.filter(round=round, group=group, bid__isnull=False)
        .exclude(status__in=[P.CREATING, P.FAILED])
        .order_by("-attempt")
        .first()
        or Payment.objects.filter(round=round, group=group, bid__isnull=False).order_by("-attempt").first()
    )


def receipt_for(*, user, round_slug: str, group_slug: str) -> Receipt:
    """The group's receipt for a round, for its members only (admins see amounts; `is_admin` tells the template)."""
    group = group_for_member(user=user, slug=group_slug)
    membership = membership_of(user=user, group=group)
    round = Round.objects.filter(slug=round_slug).exclude(status=Round.Status.DRAFT).first()
    if membership is None or round is None:
        raise NotFound("Receipt not found.")
    outcome = GroupOutcome.objects.filter(outcome__round=round, group=group).first()
    return Receipt(
        round=round,
        group=group,
        is_admin=membership.role == Membership.Role.ADMIN,
        outcome=outcome,
        payment=_current_payment(round=round, group=group),
        delivered=round.status == Round.Status.DELIVERED,
    )


@dataclass(frozen=True)
class GroupBillingRow:
    group: PreferenceGroup
    outcome: GroupOutcome | None
    payment: Payment | None


@dataclass(frozen=True)
class RoundBillingOverview:
    round: Round
    held_cents: int
    captured_cents: int
    released_cents: int
    failed_count: int
    pending_count: int
    job_seconds: float
    job_cost_cents: int
    rows: list[GroupBillingRow]
    # Held amounts equal bids: while bidding is open they stay sealed, even from staff.
    sealed: bool = False

    @property
    def margin_cents(self) -> int:
        return self.captured_cents - self.job_cost_cents


def _sum(qs, field: str) -> int:
    return int(qs.aggregate(total=Sum(field))["total"] or 0)


def round_billing_overview(*, round: Round, job_seconds: float = 0.0) -> RoundBillingOverview:
    """Money for a round (staff only; the view checks): what is held, captured, released, failed, against the job's cost.

    The job's cost is the wall time of its training jobs (``job_seconds``, measured by training; the orchestration
    module's round_money_overview passes it) times settings.BILLING_GPU_COST_PER_HOUR_CENTS.
    """
    payments = Payment.objects.filter(round=round)
    released = payments.filter(status=P.RELEASED)
    captured = payments.filter(status=P.CAPTURED)
    job_cost = int(job_seconds * settings.BILLING_GPU_COST_PER_HOUR_CENTS / 3600)
    outcome = AuctionOutcome.objects.filter(round=round).first()
    outcomes = {go.group_id: go for go in outcome.groups.select_related("group")} if outcome else {}
    groups = {p.group_id: p.group for p in payments.select_related("group")}
    groups.update({gid: go.group for gid, go in outcomes.items()})
    rows = [
        GroupBillingRow(group=g, outcome=outcomes.get(gid), payment=_current_payment(round=round, group=g))
        for gid, g in sorted(groups.items(), key=lambda item: item[1].name)
    ]
    if round.bids_sealed:
        # Every sum and count over payments moves with the bids (a replaced or withdrawn hold is "released", a
        # refused card "failed"), so while bidding is open none of them leaves this function, not even for staff.
        return RoundBillingOverview(
            round=round, held_cents=0, captured_cents=0, released_cents=0, failed_count=0, pending_count=0,
            job_seconds=job_seconds, job_cost_cents=job_cost, rows=[], sealed=True,
        )
    return RoundBillingOverview(
        round=round,
        held_cents=_sum(payments.filter(status__in=[P.HELD, P.CAPTURING, P.RELEASING]), "amount_held_cents"),
        captured_cents=_sum(captured, "amount_captured_cents"),
        released_cents=_sum(released, "amount_held_cents")
        + _sum(captured, "amount_held_cents")
        - _sum(captured.filter(amount_held_cents__gt=0), "amount_captured_cents"),
        failed_count=payments.filter(status=P.FAILED).count(),
        pending_count=payments.filter(status__in=[P.CREATING, P.CAPTURING, P.RELEASING]).count(),
        job_seconds=job_seconds,
        job_cost_cents=job_cost,
        rows=rows,
    )
