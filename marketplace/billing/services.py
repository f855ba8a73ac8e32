"""Billing: a group's card on file, capturing prices at delivery, releasing holds, and Stripe's webhooks.

Money moves only through ``marketplace.billing.stripe_gateway``. Each Payment row carries an idempotency key derived from our
own ids (round, group, attempt) and is written before the first Stripe call; the keys of later calls on the same
payment are derived from it (``<key>:capture``, ``<key>:charge``, ``<key>:cancel``). Every status change is a
compare-and-set from the expected previous status, and the intermediate statuses (capturing, releasing) are written
before the Stripe call, so a crash between the call and the database write is finished on the next run by looking at
the object at Stripe instead of calling again blindly.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.db import IntegrityError, transaction

from marketplace.billing import stripe_gateway as gateway
from marketplace.billing.models import BillingCustomer, Payment, WebhookEvent
from marketplace.core.errors import AppError, Conflict, NotAllowed, NotFound, Unavailable
from marketplace.core.transitions import compare_and_set
from marketplace.groups.models import Membership, PreferenceGroup
from marketplace.groups.selectors import membership_of
from marketplace.rounds.models import Round
from marketplace.rounds.outcomes import AuctionOutcome

log = logging.getLogger(__name__)
P = Payment.Status
# Payments that still tie up money at Stripe, or may: a run of capture or release is complete when none is left.
OPEN_STATUSES = (P.HELD, P.DEFERRED, P.CAPTURING, P.RELEASING)
# What a capture or release run goes through: also holds of bids that never went in (a crash inside bid_place); once
# bidding is over, no bid_place can still finish them.
SWEPT_STATUSES = (P.CREATING, *OPEN_STATUSES)


def billing_require_admin(*, user, group: PreferenceGroup) -> None:
    """Outsiders get NotFound (the group stays hidden); members who are not admins get NotAllowed."""
    membership = membership_of(user=user, group=group)
    if membership is None:
        raise NotFound("Group not found.")
    if membership.role != Membership.Role.ADMIN:
        raise NotAllowed("Only the group's admins can manage its card and bids.")


# Card on file


def billing_customer_ensure(*, group: PreferenceGroup) -> BillingCustomer:
    """The group's one Stripe customer, created on first use. The group row lock makes two admins create one."""
    existing = BillingCustomer.objects.filter(group=group).first()
    if existing:
        return existing
    with transaction.atomic():
        PreferenceGroup.objects.select_for_update().get(pk=group.pk)
        existing = BillingCustomer.objects.filter(group=group).first()
        if existing:
            return existing
        customer_id = _gateway_for_people(
            gateway.customer_create,
            name=group.name,
            metadata={"group_id": str(group.pk), "group_slug": group.slug},
            idempotency_key=f"group-{group.pk}-customer",
        )
        return BillingCustomer.objects.create(group=group, stripe_customer_id=customer_id)


def billing_setup_start(*, group: PreferenceGroup, by) -> gateway.SetupIntent:
    """A SetupIntent for the browser to confirm the card with Stripe.js (its client secret goes into the page)."""
    billing_require_admin(user=by, group=group)
    customer = billing_customer_ensure(group=group)
    return _gateway_for_people(
        gateway.setup_intent_create, customer_id=customer.stripe_customer_id, metadata={"group_id": str(group.pk)}
    )


def billing_card_attach_from_setup(*, group: PreferenceGroup, by, setup_intent_id: str) -> BillingCustomer:
    """After the browser confirmed the SetupIntent: check it belongs to this group's customer, then save its card."""
    billing_require_admin(user=by, group=group)
    customer = billing_customer_ensure(group=group)
    if not setup_intent_id.startswith("seti_"):
        raise AppError("The card form sent something unexpected; please try again.", code="bad_setup_intent")
    setup = _gateway_for_people(gateway.setup_intent_retrieve, setup_intent_id=setup_intent_id)
    if setup.customer_id != customer.stripe_customer_id:
        raise AppError("The card form sent something unexpected; please try again.", code="bad_setup_intent")
    if setup.status != "succeeded" or not setup.payment_method_id:
        raise AppError(
            "Your bank has not confirmed the card yet. Enter it again, or try another card.", code="setup_incomplete"
        )
    return billing_card_attach(group=group, by=by, payment_method_id=setup.payment_method_id)


def billing_card_attach(*, group: PreferenceGroup, by, payment_method_id: str) -> BillingCustomer:
    """Attach a payment method (from a confirmed SetupIntent, or a test id such as pm_card_visa) and make it the card
    on file. Holds already placed stay on the card they were placed on; new bids and deferred charges use this one."""
    billing_require_admin(user=by, group=group)
    payment_method_id = (payment_method_id or "").strip()
    if not payment_method_id.startswith("pm_"):
        raise AppError("That is not a card from the card form.", code="bad_payment_method", field="payment_method_id")
    customer = billing_customer_ensure(group=group)
    try:
        card = gateway.card_attach(payment_method_id=payment_method_id, customer_id=customer.stripe_customer_id)
    except gateway.CardDeclined as exc:
        raise AppError(
            f"Your bank declined this card ({_reason(exc)}). Try another card.", code="card_declined"
        ) from exc
    except gateway.GatewayUnavailable as exc:
        raise _unavailable() from exc
    except gateway.GatewayError as exc:
        raise AppError(f"Stripe refused this card: {exc.message}", code="card_refused") from exc
    BillingCustomer.objects.filter(pk=customer.pk).update(
        payment_method_id=card.payment_method_id,
        card_brand=card.brand,
        card_last4=card.last4,
        card_exp_month=card.exp_month or None,
        card_exp_year=card.exp_year or None,
        card_fingerprint=card.fingerprint,
    )
    customer.refresh_from_db()
    return customer


def _reason(exc: gateway.CardDeclined) -> str:
    reason = exc.decline_code.replace("_", " ") if exc.decline_code else exc.message.rstrip(".")
    return reason[:1].lower() + reason[1:]


def _unavailable() -> AppError:
    return Unavailable(
        "The payment provider cannot be reached right now; nothing was changed. Please try again in a minute.",
        code="payment_unavailable",
    )


def _gateway_for_people(fn, **kwargs):
    """Call the gateway from a person's request: its errors become AppErrors they can act on."""
    try:
        return fn(**kwargs)
    except gateway.GatewayUnavailable as exc:
        raise _unavailable() from exc
    except gateway.GatewayError as exc:
        raise AppError(f"The payment provider refused the request: {exc.message}", code="payment_error") from exc


# Payments: keys, holds and their release


def payment_hold_key(*, round_id: int, group_id: int, attempt: int) -> str:
    return f"round-{round_id}-group-{group_id}-hold-{attempt}"


def payment_metadata(payment: Payment) -> dict[str, str]:
    return {"payment_id": str(payment.pk), "round_id": str(payment.round_id), "group_id": str(payment.group_id)}


def payment_release_begin(*, payment_id: int) -> None:
    """The database half of letting go of a hold, safe inside a transaction: a held (or half-created) payment moves
    to releasing (the Stripe call comes after commit, in payment_release); a deferred one holds nothing and is
    released at once."""
    compare_and_set(Payment, pk=payment_id, from_status=P.DEFERRED, to_status=P.RELEASED)
    compare_and_set(Payment, pk=payment_id, from_status=[P.HELD, P.CREATING], to_status=P.RELEASING)


def payment_release(*, payment: Payment, fresh: bool = False) -> bool:
    """Let go of a payment's hold. Moves held -> releasing before the Stripe call and releasing -> released after it,
    so a crash or an outage in between is finished by the next run. Deferred payments hold nothing: -> released.
    ``fresh``: the caller read the row just now (payments_release), so one already releasing goes straight to the
    Stripe call; the runs over a whole round read theirs in a batch and re-read each one first."""
    if not (fresh and payment.status == P.RELEASING):
        payment_release_begin(payment_id=payment.pk)
        payment.refresh_from_db()
    if payment.status != P.RELEASING:
        return payment.status == P.RELEASED
    payment_intent_id = payment.stripe_payment_intent_id or _find_hold(payment)
    if payment_intent_id:
        pi = gateway.payment_intent_cancel(
            payment_intent_id=payment_intent_id, idempotency_key=f"{payment.idempotency_key}:cancel"
        )
        if pi.status == "succeeded":  # captured by someone else in the meantime: record what was taken
            return compare_and_set(
                Payment, pk=payment.pk, from_status=P.RELEASING, to_status=P.CAPTURED,
                amount_captured_cents=pi.amount_received,
            )
    return compare_and_set(Payment, pk=payment.pk, from_status=P.RELEASING, to_status=P.RELEASED)


def _find_hold(payment: Payment) -> str:
    """A hold made for this payment whose id we never stored (a crash right after the Stripe call), looked up by key."""
    if payment.amount_held_cents == 0:
        return ""
    customer = BillingCustomer.objects.filter(group_id=payment.group_id).first()
    if customer is None:
        return ""
    found = gateway.payment_intent_find(customer_id=customer.stripe_customer_id, idempotency_key=payment.idempotency_key)
    return found.id if found else ""


def payments_release(*, payment_ids: list[int]) -> None:
    """Best effort from a person's request: a hold that cannot be released now stays `releasing` for the next run."""
    for payment in Payment.objects.filter(pk__in=payment_ids):
        try:
            payment_release(payment=payment, fresh=True)
        except gateway.GatewayError as exc:
            log.warning("Releasing payment %s failed, left for the release sweep: %s", payment.pk, exc)


def payments_release_sweep(*, limit: int = 200) -> int:
    """Finish releases left `releasing` (Stripe was down when a bid was withdrawn or replaced); the beat runs this
    every settings.BILLING_RELEASE_SWEEP_S seconds, so a hold is let go soon after Stripe is back rather than at
    the round's final billing run. Idempotent (the cancel has its own key; statuses move by compare-and-set).
    Returns how many were released; the first outage stops the sweep until the next run."""
    released = 0
    for payment in Payment.objects.filter(status=P.RELEASING).order_by("pk")[:limit]:
        try:
            released += bool(payment_release(payment=payment))
        except gateway.GatewayUnavailable as exc:
            log.warning("Release sweep stopped at payment %s, Stripe is unavailable: %s", payment.pk, exc)
            break
        except gateway.GatewayError as exc:
            log.warning("Release sweep could not release payment %s: %s", payment.pk, exc)
    return released


# Capture at delivery, release on failure


@dataclass(frozen=True)
class BillingSummary:
    round_id: int
    captured_cents: int
    captured_count: int
    released_count: int
    failed_count: int
    pending_count: int

    @property
    def complete(self) -> bool:
        return self.pending_count == 0


def _summary(round: Round) -> BillingSummary:
    payments = list(Payment.objects.filter(round=round).exclude(status=P.CREATING))
    captured = [p for p in payments if p.status == P.CAPTURED]
    return BillingSummary(
        round_id=round.pk,
        captured_cents=sum(p.amount_captured_cents for p in captured),
        captured_count=len(captured),
        released_count=sum(1 for p in payments if p.status == P.RELEASED),
        failed_count=sum(1 for p in payments if p.status == P.FAILED),
        pending_count=sum(1 for p in payments if p.status in OPEN_STATUSES),
    )


def _current_payment_ids(round: Round) -> dict[int, int]:
    """Per group, the payment standing for its bid: the latest attempt tied to a bid that was not refused."""
    current: dict[int, int] = {}
    for payment in (
        Payment.objects.filter(round=round, bid__isnull=False)
        .exclude(status__in=[P.CREATING, P.FAILED])
        .order_by("attempt")
    ):
        current[payment.group_id] = payment.pk
    return current


def billing_capture_round(*, round: Round) -> BillingSummary:
    """Charge each group its auction price for a delivered round and release everything else. Idempotent.

    For each group's payment: a hold is captured for exactly ``GroupOutcome.amount_due_cents`` (the model's price,
    min(auction price, delivery guarantee), plus the participation fee; never above the hold, which is bid + fee: a
    larger amount is refused, not captured) or cancelled when the price is 0;
    a deferred payment is charged off-session for the price. Holds of groups without a price are cancelled.
    ``round.billing_pending`` stays True until every payment is settled; GatewayUnavailable is raised so the Celery
    task retries, and the next run picks up where this one stopped.
    """
    round.refresh_from_db()
    if round.status != Round.Status.DELIVERED:
        raise Conflict("Only a delivered round is charged.", code="not_delivered")
    outcome = AuctionOutcome.objects.filter(round=round).first()
    if outcome is None:
        raise Conflict("This round has no auction outcome to charge.", code="no_outcome")
    Round.objects.filter(pk=round.pk).update(billing_pending=True)
    # What each group pays: the charge fixed at delivery (min of the auction price and the delivery guarantee; the
    # auction price where no guarantee was measured) plus the round's participation fee. Both were held with the bid.
    prices = {go.group_id: go.amount_due_cents for go in outcome.groups.all()}
    current = _current_payment_ids(round)
    for payment in Payment.objects.filter(round=round, status__in=SWEPT_STATUSES).order_by("pk"):
        is_current = current.get(payment.group_id) == payment.pk
        price = prices.get(payment.group_id, 0) if is_current else 0
        if price > 0:
            _payment_charge(payment=payment, price_cents=price)
        else:
            payment_release(payment=payment)
    return _finish(round)


def billing_release_round(*, round: Round) -> BillingSummary:
    """Cancel every hold of a round that delivered nothing (failed or cancelled). Idempotent; retried like capture."""
    round.refresh_from_db()
    if round.status not in (Round.Status.FAILED, Round.Status.CANCELLED):
        raise Conflict("Holds are released only for a failed or cancelled round.", code="not_released")
    Round.objects.filter(pk=round.pk).update(billing_pending=True)
    for payment in Payment.objects.filter(round=round, status__in=SWEPT_STATUSES).order_by("pk"):
        if payment.status == P.CAPTURING:  # never for a round that was not delivered; kept for a human to look at
            log.error("Payment %s of undelivered round %s is capturing; not released automatically", payment.pk, round.pk)
            continue
        payment_release(payment=payment)
    return _finish(round)


def _finish(round: Round) -> BillingSummary:
    summary = _summary(round)
    if summary.complete:
        Round.objects.filter(pk=round.pk).update(billing_pending=False)
    round.refresh_from_db()
    return summary


def _payment_charge(*, payment: Payment, price_cents: int) -> None:
    """Take `price_cents` for one payment: capture its hold, or charge the saved card when there is no usable hold."""
    if payment.status == P.HELD and price_cents > payment.amount_held_cents:
        # Cannot happen with a correct mechanism (price <= bid = hold). Charge nothing rather than more than agreed.
        log.error("Payment %s: price %s above the hold %s; released instead", payment.pk, price_cents, payment.amount_held_cents)
        compare_and_set(
            Payment, pk=payment.pk, from_status=P.HELD, to_status=P.RELEASING,
            failure_message=f"The price ({price_cents}) was above the hold ({payment.amount_held_cents}); nothing was captured.",
        )
        payment_release(payment=payment)
        return
    compare_and_set(Payment, pk=payment.pk, from_status=[P.HELD, P.DEFERRED], to_status=P.CAPTURING)
    payment.refresh_from_db()
    if payment.status != P.CAPTURING:
        return
    pi = None
    if payment.stripe_payment_intent_id:
        pi = gateway.payment_intent_retrieve(payment_intent_id=payment.stripe_payment_intent_id)
    if pi is not None and pi.status == "requires_capture":
        pi = gateway.payment_intent_capture(
            payment_intent_id=pi.id, amount_cents=price_cents, idempotency_key=f"{payment.idempotency_key}:capture"
        )
    elif pi is None or pi.status in ("canceled", "requires_payment_method"):
        pi = _charge_saved_card(payment=payment, price_cents=price_cents)
        if pi is None:
            return
    _record_charge(payment=payment, pi=pi)


def _charge_saved_card(*, payment: Payment, price_cents: int) -> gateway.PaymentIntent | None:
    """Charge off-session (deferred billing, or a hold that lapsed). An earlier interrupted run's charge is found by its
    key in the customer's PaymentIntents and reused, so a retry never charges twice."""
    customer = BillingCustomer.objects.filter(group_id=payment.group_id).first()
    if customer is None or not customer.has_card:
        compare_and_set(
            Payment, pk=payment.pk, from_status=P.CAPTURING, to_status=P.FAILED,
            failure_message="No card on file at delivery.",
        )
        return None
    key = f"{payment.idempotency_key}:charge"
    existing = gateway.payment_intent_find(customer_id=customer.stripe_customer_id, idempotency_key=key)
    if existing is not None:
        return existing
    try:
        return gateway.charge_create(
            customer_id=customer.stripe_customer_id,
            payment_method_id=customer.payment_method_id,
            amount_cents=price_cents,
            currency=payment.currency,
            idempotency_key=key,
            metadata=payment_metadata(payment),
        )
    except gateway.CardDeclined as exc:
        compare_and_set(
            Payment, pk=payment.pk, from_status=P.CAPTURING, to_status=P.FAILED,
            failure_message=f"The card was declined at delivery: {_reason(exc)}.",
        )
        return None


def _record_charge(*, payment: Payment, pi: gateway.PaymentIntent) -> None:
    if pi.status == "succeeded":
        compare_and_set(
            Payment, pk=payment.pk, from_status=P.CAPTURING, to_status=P.CAPTURED,
            amount_captured_cents=pi.amount_received, stripe_payment_intent_id=pi.id,
        )
    elif pi.status == "requires_payment_method":
        compare_and_set(
            Payment, pk=payment.pk, from_status=P.CAPTURING, to_status=P.FAILED, stripe_payment_intent_id=pi.id,
            failure_message=pi.error_message or "The card was declined at delivery.",
        )
    else:  # processing: the webhook or the next run finishes it
        Payment.objects.filter(pk=payment.pk, status=P.CAPTURING).update(stripe_payment_intent_id=pi.id)


# Webhooks


def billing_webhook_receive(*, payload: bytes, signature: str) -> str:
    """Handle one Stripe webhook; returns what happened ("duplicate", "ignored", "unknown", "reconciled").

    The signature is checked on the raw body (WebhookSignatureInvalid otherwise). An event id already stored is
    ignored. The event's own copy of the object is not trusted (events arrive late, twice or out of order): the
    PaymentIntent is fetched again and our Payment moves only from the status that the fetched state follows from.
    The event is stored in the same transaction as its effect, so a failure leaves it unseen for Stripe's retry.
    """
    event = gateway.webhook_event_construct(payload=payload, signature=signature)
    with transaction.atomic():
        try:
            # Its own savepoint: only a clash on the event id means "seen before"; any other integrity error
            # further down is a real failure and must surface (Stripe then retries the event).
            with transaction.atomic():
                WebhookEvent.objects.create(event_id=event.id, type=event.type[:100])
        except IntegrityError:
            return "duplicate"
        if event.object_type != "payment_intent" or not event.object_id:
            return "ignored"
        return _reconcile_payment_intent(payment_intent_id=event.object_id)


def _reconcile_payment_intent(*, payment_intent_id: str) -> str:
    try:
        pi = gateway.payment_intent_retrieve(payment_intent_id=payment_intent_id)
    except gateway.GatewayUnavailable:
        raise
    except gateway.GatewayError as exc:
        # Stripe does not know it (a validly signed event about someone else's object, or made up): nothing of ours
        # to reconcile. Stored as seen, answered 200, so Stripe does not retry it for days.
        log.warning("Webhook for PaymentIntent %.60s that Stripe cannot give us: %s", payment_intent_id, exc)
        return "unknown"
    payment = Payment.objects.filter(stripe_payment_intent_id=pi.id).first()
    if payment is None and pi.metadata.get("payment_id", "").isdigit():
        payment = Payment.objects.filter(pk=int(pi.metadata["payment_id"])).first()
    if payment is None:
        return "unknown"
    is_current = payment.stripe_payment_intent_id in ("", pi.id)
    if pi.status == "requires_capture" and (not is_current or payment.status in (P.FAILED, P.RELEASED, P.RELEASING)):
        # A hold nobody stands behind (its bid was refused, replaced or withdrawn): let it go.
        gateway.payment_intent_cancel(payment_intent_id=pi.id, idempotency_key=f"{payment.idempotency_key}:cancel")
        compare_and_set(Payment, pk=payment.pk, from_status=P.RELEASING, to_status=P.RELEASED)
        return "reconciled"
    if not is_current:
        return "reconciled"
    if pi.status == "succeeded":
        compare_and_set(
            Payment, pk=payment.pk, from_status=P.CAPTURING, to_status=P.CAPTURED,
            amount_captured_cents=pi.amount_received, stripe_payment_intent_id=pi.id,
        )
    elif pi.status == "canceled":
        compare_and_set(Payment, pk=payment.pk, from_status=P.RELEASING, to_status=P.RELEASED)
        # A hold cancelled outside our flow (it lapsed, or was cancelled in the dashboard): charge at delivery instead.
        compare_and_set(
            Payment, pk=payment.pk, from_status=P.HELD, to_status=P.DEFERRED,
            failure_message="The card hold lapsed; the price will be charged to the saved card at delivery.",
        )
    elif pi.status == "requires_payment_method" and payment.status == P.CAPTURING:
        compare_and_set(
            Payment, pk=payment.pk, from_status=P.CAPTURING, to_status=P.FAILED, stripe_payment_intent_id=pi.id,
            failure_message=pi.error_message or "The card was declined at delivery.",
        )
    return "reconciled"
