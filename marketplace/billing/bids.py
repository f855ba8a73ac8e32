"""Placing, changing and withdrawing a group's sealed bid, with the card hold that backs it.

A bid is in only when its hold is: a declined card, an unreachable payment provider or a round that closed in the
meantime leaves no Bid change and no held Payment behind. The order of ``bid_place`` (hold mode):

1. In a transaction: lock the round, shared (``round_lock_for_bidding``), and check the window; lock the group's
   card row and those of other groups with the same card (``_lock_cards``); store a Payment
   (status ``creating``) with an idempotency key derived from round, group and attempt number. Commit, so the key
   exists before Stripe hears of it.
2. Outside any transaction (no row lock is held during a network call): create and confirm the manual-capture
   PaymentIntent off-session with that key. A decline marks the Payment ``failed`` and refuses the bid with the
   bank's reason and what to do.
3. In a transaction: lock the round and the card rows again and re-check the window. Closed in the meantime: cancel the new hold and
   refuse. Otherwise upsert the Bid, move the Payment ``creating -> held`` and the group's previous hold
   ``held -> releasing``. After commit, cancel the previous hold at Stripe (``releasing -> released``); if Stripe is
   down then, the next billing run finishes it.

The close locks the round row exclusively, so a bid racing it is either fully in (step 3 committed first) or
refused; bids of groups with different cards do not wait for one another.
In deferred mode (the round is longer than a hold lasts) step 2 is skipped: the Payment is stored ``deferred`` with
the bid and the card is charged off-session at delivery.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from marketplace.billing import stripe_gateway as gateway
from marketplace.billing.models import BillingCustomer, Payment
from marketplace.billing.selectors import DEFERRED, billing_mode_for_round
from marketplace.billing.services import (
    billing_require_admin,
    payment_hold_key,
    payment_metadata,
    payment_release,
    payment_release_begin,
    payments_release,
)
from marketplace.core import currency
from marketplace.core.errors import AppError, Conflict, PaymentRefused, Unavailable
from marketplace.core.transitions import compare_and_set
from marketplace.groups.models import PreferenceGroup
from marketplace.rounds.models import Bid, Round
from marketplace.rounds.services import round_lock_for_bidding
from marketplace.verification.services import require_verified_email

P = Payment.Status
# A sane ceiling against typos (an extra zero or two): one million in major units.
BID_MAX_MAJOR = 1_000_000


def hold_amount(*, round: Round, bid_cents: int) -> int:
    """What is held for a bid: the bid plus the round's participation fee (both can be charged), rounded up to an
    amount Stripe accepts (three-decimal currencies take multiples of 10). Every charge is at most this."""
    amount = bid_cents + round.participation_fee_cents
    if currency.charge_floor(amount, round.currency) != amount:
        amount += 10 - amount % 10
    return amount


def bid_place(*, user, group: PreferenceGroup, round: Round, amount_cents: int) -> Bid:
    """Place or change the group's active bid for `amount_cents`, backed by a hold on the group's card."""
    billing_require_admin(user=user, group=group)
    require_verified_email(user=user)
    if isinstance(amount_cents, bool) or not isinstance(amount_cents, int):
        raise AppError("Enter the bid as a whole number of cents.", code="invalid_amount", field="amount")
    if amount_cents <= 0:
        raise AppError("A bid must be more than zero.", code="invalid_amount", field="amount")
    if amount_cents < round.min_bid_cents:
        raise AppError(
            f"The smallest bid in this round is {currency.format_money(round.min_bid_cents, round.currency)}.",
            code="invalid_amount", field="amount",
        )
    if amount_cents > BID_MAX_MAJOR * 10 ** currency.exponent(round.currency):
        raise AppError(
            f"A bid can be at most {BID_MAX_MAJOR:,} {round.currency.upper()}.", code="invalid_amount", field="amount"
        )
    customer = BillingCustomer.objects.filter(group=group).first()
    if customer is None or not customer.has_card:
        raise AppError("Add a card on the group's billing page before bidding.", code="no_card")
    deferred = billing_mode_for_round(round=round).mode == DEFERRED

    # (1) Record the attempt and its key before Stripe hears of it.
    with transaction.atomic():
        locked = round_lock_for_bidding(round_id=round.pk)
        _lock_cards(customer=customer)
        current = Bid.objects.filter(round=locked, group=group, status=Bid.Status.ACTIVE).first()
        if current is not None and current.amount_cents == amount_cents and _is_backed(current):
            return current
        _check_one_card_one_group(round=locked, group=group, customer=customer)
        attempt = Payment.objects.filter(round=locked, group=group).count() + 1
        payment = Payment.objects.create(
            round=locked,
            group=group,
            attempt=attempt,
            currency=locked.currency,
            amount_held_cents=0 if deferred else hold_amount(round=locked, bid_cents=amount_cents),
            idempotency_key=payment_hold_key(round_id=locked.pk, group_id=group.pk, attempt=attempt),
            status=P.CREATING,
        )

    # (2) The hold, outside any transaction.
    if not deferred:
        _hold(payment=payment, customer=customer, amount_cents=payment.amount_held_cents)

    # (3) The bid goes in only if the window is still open.
    try:
        with transaction.atomic():
            locked = round_lock_for_bidding(round_id=round.pk)
            _lock_cards(customer=customer)
            _check_one_card_one_group(round=locked, group=group, customer=customer)  # again: a twin may have bid meanwhile
            bid = _bid_upsert(round=locked, group=group, user=user, amount_cents=amount_cents)
            moved = compare_and_set(
                Payment, pk=payment.pk, from_status=P.CREATING, to_status=P.DEFERRED if deferred else P.HELD, bid=bid
            )
            if not moved:  # a webhook or a second worker decided otherwise; never keep a bid without its payment
                raise Conflict("Your bid could not be confirmed; please try again.", code="bid_conflict")
            replaced = list(
                Payment.objects.filter(round=locked, group=group, status__in=[P.HELD, P.DEFERRED])
                .exclude(pk=payment.pk)
                .values_list("pk", flat=True)
            )
            for pk in replaced:
                payment_release_begin(payment_id=pk)
    except AppError:
        _abandon(payment=payment)
        raise
    payments_release(payment_ids=replaced)
    return bid


def bid_withdraw(*, user, group: PreferenceGroup, round: Round) -> None:
    """Withdraw the group's active bid while bidding is open, and release its hold."""
    billing_require_admin(user=user, group=group)
    with transaction.atomic():
        locked = round_lock_for_bidding(round_id=round.pk)
        # The group's own card row only: it orders this with the group's own bids. A twin's bid with the same card is
        # fine either way (it sees this bid active and is refused, or withdrawn and goes in), and a card replaced
        # meanwhile must not refuse a withdrawal.
        list(BillingCustomer.objects.select_for_update().filter(group=group).values_list("pk", flat=True))
        bid = Bid.objects.filter(round=locked, group=group, status=Bid.Status.ACTIVE).first()
        if bid is None:
            raise Conflict("Your group has no active bid in this round.", code="no_bid")
        compare_and_set(Bid, pk=bid.pk, from_status=Bid.Status.ACTIVE, to_status=Bid.Status.WITHDRAWN)
        released = list(
            Payment.objects.filter(round=locked, group=group, status__in=[P.HELD, P.DEFERRED]).values_list("pk", flat=True)
        )
        for pk in released:
            payment_release_begin(payment_id=pk)
    payments_release(payment_ids=released)


def _lock_cards(*, customer: BillingCustomer) -> None:
    """Serialise this bid with the ones it could clash with, under the shared round lock: the group's own (one active
    bid, attempt numbers) through its card row, and another group's bid with the same card (one card, one group)
    through that group's card row. Locked in primary-key order, so two groups sharing a card never deadlock."""
    rows = Q(pk=customer.pk)
    if customer.card_fingerprint:
        rows |= Q(card_fingerprint=customer.card_fingerprint)
    locked = dict(BillingCustomer.objects.select_for_update().filter(rows).order_by("pk").values_list("pk", "card_fingerprint"))
    if locked.get(customer.pk) != customer.card_fingerprint:
        # The card changed since this request read it: the rows locked may not be the ones that clash now.
        raise Conflict("The group's card changed while you were bidding; please bid again.", code="card_changed")


def _check_one_card_one_group(*, round: Round, group: PreferenceGroup, customer: BillingCustomer) -> None:
    """One card, one group per round: a card already behind another group's active bid cannot back a second one.

    Splitting into fake groups that bid with the same card would cut the total VCG price about k-fold without
    changing the model; real identities need real cards. Runs under the card rows' lock (``_lock_cards``), so two
    racing bids with one card cannot both pass it.
    """
    if not customer.card_fingerprint:
        return
    clash = (
        Bid.objects.filter(round=round, status=Bid.Status.ACTIVE, group__billing__card_fingerprint=customer.card_fingerprint)
        .exclude(group=group)
        .exists()
    )
    if clash:
        raise Conflict(
            "This card already backs another group's bid in this round. Each group bids with its own card; "
            "use a different card on the group's billing page.",
            code="card_in_use",
            field="amount",
        )


def _is_backed(bid: Bid) -> bool:
    return Payment.objects.filter(bid=bid, status__in=[P.HELD, P.DEFERRED]).exists()


def _hold(*, payment: Payment, customer: BillingCustomer, amount_cents: int) -> None:
    try:
        pi = gateway.hold_create(
            customer_id=customer.stripe_customer_id,
            payment_method_id=customer.payment_method_id,
            amount_cents=amount_cents,
            currency=payment.currency,
            idempotency_key=payment.idempotency_key,
            metadata=payment_metadata(payment),
        )
    except gateway.CardDeclined as exc:
        compare_and_set(Payment, pk=payment.pk, from_status=P.CREATING, to_status=P.FAILED, failure_message=exc.message)
        reason = exc.decline_code.replace("_", " ") if exc.decline_code else exc.message.rstrip(".").lower()
        raise PaymentRefused(
            f"Your bid was not placed: the bank declined a hold of the bid amount on the group's card ({reason}). "
            "Use another card on the group's billing page, or ask your bank to allow the payment, then bid again.",
            code="card_declined",
            field="amount",
        ) from exc
    except gateway.GatewayError as exc:
        # Unreachable or refused: if a hold was made anyway, the webhook for it finds this payment failed and
        # cancels the hold.
        compare_and_set(Payment, pk=payment.pk, from_status=P.CREATING, to_status=P.FAILED, failure_message=exc.message)
        if isinstance(exc, gateway.GatewayUnavailable):
            raise Unavailable(
                "Your bid was not placed: the payment provider cannot be reached right now. Please try again in a minute.",
                code="payment_unavailable",
            ) from exc
        raise AppError(f"Your bid was not placed: {exc.message}", code="payment_error") from exc
    if pi.status != "requires_capture":
        compare_and_set(
            Payment, pk=payment.pk, from_status=P.CREATING, to_status=P.FAILED, stripe_payment_intent_id=pi.id,
            failure_message=f"The hold ended up {pi.status}.",
        )
        if pi.status not in ("canceled", "succeeded"):
            try:
                gateway.payment_intent_cancel(payment_intent_id=pi.id, idempotency_key=f"{payment.idempotency_key}:cancel")
            except gateway.GatewayError:
                pass  # the payment is failed; its webhook, or the round's billing run, cancels the hold
        raise PaymentRefused(
            "Your bid was not placed: the bank wants the card confirmed by its holder. Replace the card on the group's "
            "billing page (the form asks for that confirmation), then bid again.",
            code="card_needs_action",
        )
    Payment.objects.filter(pk=payment.pk, status=P.CREATING).update(stripe_payment_intent_id=pi.id)
    payment.stripe_payment_intent_id = pi.id


def _bid_upsert(*, round: Round, group: PreferenceGroup, user, amount_cents: int) -> Bid:
    """Called with the round locked (shared) and the group's card row locked: make the group's one Bid row active
    at `amount_cents`."""
    bid = Bid.objects.select_for_update().filter(round=round, group=group).first()
    if bid is None:
        return Bid.objects.create(
            round=round, group=group, amount_cents=amount_cents, currency=round.currency, placed_by=user
        )
    if bid.status == Bid.Status.WITHDRAWN:
        compare_and_set(
            Bid, pk=bid.pk, from_status=Bid.Status.WITHDRAWN, to_status=Bid.Status.ACTIVE,
            amount_cents=amount_cents, placed_by=user, updated_at=timezone.now(),
        )
        bid.refresh_from_db()
        return bid
    # Active already, and its row locked above: nothing else can change it before commit.
    bid.amount_cents, bid.placed_by, bid.updated_at = amount_cents, user, timezone.now()
    Bid.objects.filter(pk=bid.pk).update(amount_cents=amount_cents, placed_by=user, updated_at=bid.updated_at)
    return bid


def _abandon(*, payment: Payment) -> None:
    """The bid did not go in after the hold was made: give the hold back and leave the payment released."""
    made = payment.stripe_payment_intent_id  # what _hold got back, even if the row no longer says so
    compare_and_set(Payment, pk=payment.pk, from_status=P.CREATING, to_status=P.RELEASING)
    payment.refresh_from_db()
    try:
        payment_release(payment=payment)
        if made and made != payment.stripe_payment_intent_id:
            # A release run swept the row before our hold existed; the hold is ours to cancel.
            gateway.payment_intent_cancel(payment_intent_id=made, idempotency_key=f"{payment.idempotency_key}:cancel")
    except gateway.GatewayError:
        pass  # stays `releasing`; the round's billing run (or the webhook) finishes it


def bids_reauthorise(*, round: Round, now=None) -> list[int]:
    """Make sure every active bid of a closed round is backed by a live authorisation before the auction runs.

    A bid with a live hold (held, placed within settings.STRIPE_HOLD_DAYS) is fine. A deferred bid (no hold, billing
    at delivery) or one whose hold has lapsed gets a new hold of bid + fee now; when the bank declines it, or the card
    is gone, the bid is withdrawn, so the auction runs without that group (its bid cannot shape the model and
    everyone's price unless it can pay), and its admins are told why. Returns the ids of the groups dropped.
    Stripe being down raises Unavailable: settling is retried, nothing is dropped for an outage.
    """
    now = now or timezone.now()
    lapse = now - timedelta(days=settings.STRIPE_HOLD_DAYS)
    dropped: list[int] = []
    for bid in Bid.objects.filter(round=round, status=Bid.Status.ACTIVE).select_related("group").order_by("pk"):
        live = Payment.objects.filter(bid=bid, status=P.HELD, created_at__gt=lapse).exists()
        if live:
            continue
        stale = list(Payment.objects.filter(bid=bid, status__in=[P.HELD, P.DEFERRED]).values_list("pk", flat=True))
        customer = BillingCustomer.objects.filter(group=bid.group).first()
        reason = ""
        if customer is None or not customer.has_card:
            reason = "the group has no card on file"
        else:
            attempt = Payment.objects.filter(round=round, group=bid.group).count() + 1
            payment = Payment.objects.create(
                round=round, group=bid.group, attempt=attempt, currency=round.currency,
                amount_held_cents=hold_amount(round=round, bid_cents=bid.amount_cents),
                idempotency_key=payment_hold_key(round_id=round.pk, group_id=bid.group_id, attempt=attempt),
                status=P.CREATING,
            )
            try:
                _hold(payment=payment, customer=customer, amount_cents=payment.amount_held_cents)
            except Unavailable:
                raise
            except AppError as exc:
                reason = exc.message.removeprefix("Your bid was not placed: ")
            else:
                compare_and_set(Payment, pk=payment.pk, from_status=P.CREATING, to_status=P.HELD, bid=bid)
        for pk in stale:
            payment_release_begin(payment_id=pk)
        payments_release(payment_ids=stale)
        if reason:
            compare_and_set(Bid, pk=bid.pk, from_status=Bid.Status.ACTIVE, to_status=Bid.Status.WITHDRAWN)
            dropped.append(bid.group_id)
            _tell_admins_dropped(round=round, group=bid.group, reason=reason)
    return dropped


def _tell_admins_dropped(*, round: Round, group: PreferenceGroup, reason: str) -> None:
    emails = list(
        group.memberships.filter(role="admin").exclude(user__email="").values_list("user__email", flat=True)
    )
    if not emails:
        return
    send_mail(
        f"Your group's bid in {round.title} could not be confirmed",
        f"When bidding closed, the card of {group.name} could not be authorised for its bid ({reason}). "
        "The round goes ahead without your group's bid; nothing is charged.",
        settings.DEFAULT_FROM_EMAIL,
        emails,
        fail_silently=True,
    )
