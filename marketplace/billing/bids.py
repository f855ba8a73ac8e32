"""Placing, changing and withdrawing a group's sealed bid, with the card hold that backs it.

A bid is in only when its hold is: a declined card, an unreachable payment provider or a round that closed in the
meantime leaves no Bid change and no held Payment behind. The order of ``bid_place`` (hold mode):

1. In a transaction: lock the round (``round_lock_for_bidding``) and check the window; store a Payment
   (status ``creating``) with an idempotency key derived from round, group and attempt number. Commit, so the key
   exists before Stripe hears of it.
2. Outside any transaction (no row lock is held during a network call): create and confirm the manual-capture
   PaymentIntent off-session with that key. A decline marks the Payment ``failed`` and refuses the bid with the
   bank's reason and what to do.
3. In a transaction: lock the round again and re-check the window. Closed in the meantime: cancel the new hold and
   refuse. Otherwise upsert the Bid, move the Payment ``creating -> held`` and the group's previous hold
   ``held -> releasing``. After commit, cancel the previous hold at Stripe (``releasing -> released``); if Stripe is
   down then, the next billing run finishes it.

The close takes the same round lock, so a bid racing it is either fully in (step 3 committed first) or refused.
In deferred mode (the round is longer than a hold lasts) step 2 is skipped: the Payment is stored ``deferred`` with
the bid and the card is charged off-session at delivery.
"""

from __future__ import annotations

from django.db import transaction
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
from marketplace.core.errors import AppError, Conflict, PaymentRefused, Unavailable
from marketplace.core.transitions import compare_and_set
from marketplace.groups.models import PreferenceGroup
from marketplace.rounds.models import Bid, Round
from marketplace.rounds.services import round_lock_for_bidding

P = Payment.Status
# A sane ceiling against typos (an extra zero or two): one million in major units.
BID_MAX_CENTS = 100_000_000


def bid_place(*, user, group: PreferenceGroup, round: Round, amount_cents: int) -> Bid:
    """Place or change the group's active bid for `amount_cents`, backed by a hold on the group's card."""
    billing_require_admin(user=user, group=group)
    if isinstance(amount_cents, bool) or not isinstance(amount_cents, int):
        raise AppError("Enter the bid as a whole number of cents.", code="invalid_amount", field="amount")
    if amount_cents <= 0:
        raise AppError("A bid must be more than zero.", code="invalid_amount", field="amount")
    if amount_cents > BID_MAX_CENTS:
        raise AppError(
            f"A bid can be at most {BID_MAX_CENTS // 100:,} {round.currency.upper()}.", code="invalid_amount", field="amount"
        )
    customer = BillingCustomer.objects.filter(group=group).first()
    if customer is None or not customer.has_card:
        raise AppError("Add a card on the group's billing page before bidding.", code="no_card")
    deferred = billing_mode_for_round(round=round).mode == DEFERRED

    # (1) Record the attempt and its key before Stripe hears of it.
    with transaction.atomic():
        locked = round_lock_for_bidding(round_id=round.pk)
        current = Bid.objects.filter(round=locked, group=group, status=Bid.Status.ACTIVE).first()
        if current is not None and current.amount_cents == amount_cents and _is_backed(current):
            return current
        attempt = Payment.objects.filter(round=locked, group=group).count() + 1
        payment = Payment.objects.create(
            round=locked,
            group=group,
            attempt=attempt,
            currency=locked.currency,
            amount_held_cents=0 if deferred else amount_cents,
            idempotency_key=payment_hold_key(round_id=locked.pk, group_id=group.pk, attempt=attempt),
            status=P.CREATING,
        )

    # (2) The hold, outside any transaction.
    if not deferred:
        _hold(payment=payment, customer=customer, amount_cents=amount_cents)

    # (3) The bid goes in only if the window is still open.
    try:
        with transaction.atomic():
            locked = round_lock_for_bidding(round_id=round.pk)
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
    bid.refresh_from_db()
    return bid


def bid_withdraw(*, user, group: PreferenceGroup, round: Round) -> None:
    """Withdraw the group's active bid while bidding is open, and release its hold."""
    billing_require_admin(user=user, group=group)
    with transaction.atomic():
        locked = round_lock_for_bidding(round_id=round.pk)
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
    """Called with the round locked: make the group's one Bid row active at `amount_cents`."""
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
    else:
        Bid.objects.filter(pk=bid.pk).update(amount_cents=amount_cents, placed_by=user, updated_at=timezone.now())
    bid.refresh_from_db()
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
