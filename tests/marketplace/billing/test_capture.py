"""Capture at delivery and release on failure: each group pays exactly its auction price, once, and only for a model
that was delivered; an outage or a crash between Stripe and our database never charges twice or loses a charge."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from marketplace.billing import services as billing_services
from marketplace.billing import stripe_gateway as gateway
from marketplace.billing.bids import bid_place
from marketplace.billing.services import billing_capture_round, billing_card_attach
from marketplace.core.errors import AppError
from marketplace.models import AuctionOutcome, BillingCustomer, GroupOutcome, Payment, Round
from marketplace.tasks_billing import billing_capture_round_task, billing_release_round_task
from tests.factories import make_group, make_round, make_user
from tests.support.cards import another_card
from tests.support.crash import SimulatedCrash, crash_after_call, crash_before_status_write

pytestmark = pytest.mark.django_db
P = Payment.Status


def group_bidding(round: Round, amount_cents: int):
    admin = make_user()
    group = make_group(admin=admin)
    billing_card_attach(group=group, by=admin, payment_method_id=another_card())
    bid_place(user=admin, group=group, round=round, amount_cents=amount_cents)
    return group


def deliver(round: Round, prices: dict, *, status: str = Round.Status.DELIVERED) -> AuctionOutcome:
    """The auction's result, written directly: {group: payment_cents}. Then the round moves on as the lifecycle would."""
    outcome = AuctionOutcome.objects.create(
        round=round, inputs_hash="0" * 64, instance={}, result={}, welfare=1.0, kl_to_base=0.1,
        revenue_cents=sum(prices.values()),
    )
    for group, cents in prices.items():
        bid = group.bids.get(round=round)
        GroupOutcome.objects.create(
            outcome=outcome, group=group, bid_cents=bid.amount_cents, expected_reward=0.8,
            promised_value=0.8 * bid.amount_cents / 100, payment=cents / 100, payment_cents=cents, utility=0.0,
            delivered_reward=0.75, base_reward=0.5,
        )
    Round.objects.filter(pk=round.pk).update(status=status)
    round.refresh_from_db()
    return outcome


def intents_of(group) -> list[gateway.PaymentIntent]:
    customer = BillingCustomer.objects.get(group=group)
    return gateway.payment_intents_for_customer(customer_id=customer.stripe_customer_id)


def payment_of(round, group) -> Payment:
    return Payment.objects.filter(round=round, group=group).exclude(status=P.FAILED).order_by("-attempt").first()


@pytest.fixture
def round_with_three_bids(localstripe):
    round = make_round()
    a, b, c = group_bidding(round, 5_000), group_bidding(round, 3_000), group_bidding(round, 2_000)
    return round, a, b, c


def test_capture_charges_each_group_its_auction_price_and_releases_the_remainder(round_with_three_bids):
    round, a, b, c = round_with_three_bids
    deliver(round, {a: 1_234, b: 3_000, c: 0})

    summary = billing_capture_round(round=round)

    assert summary.complete and summary.captured_cents == 4_234 and summary.captured_count == 2
    round.refresh_from_db()
    assert round.billing_pending is False
    for group, price in ((a, 1_234), (b, 3_000)):
        payment = payment_of(round, group)
        pi = gateway.payment_intent_retrieve(payment_intent_id=payment.stripe_payment_intent_id)
        assert payment.status == P.CAPTURED and payment.amount_captured_cents == price
        assert (pi.status, pi.amount_received) == ("succeeded", price)
    released = payment_of(round, c)
    assert released.status == P.RELEASED and released.amount_captured_cents == 0
    assert gateway.payment_intent_retrieve(payment_intent_id=released.stripe_payment_intent_id).status == "canceled"


def test_capturing_twice_changes_nothing(round_with_three_bids):
    round, a, b, c = round_with_three_bids
    deliver(round, {a: 1_234, b: 3_000, c: 0})
    billing_capture_round(round=round)
    before = {g.pk: [(pi.id, pi.status, pi.amount_received) for pi in intents_of(g)] for g in (a, b, c)}

    again = billing_capture_round(round=round)

    assert again.captured_cents == 4_234
    assert {g.pk: [(pi.id, pi.status, pi.amount_received) for pi in intents_of(g)] for g in (a, b, c)} == before


def test_a_price_above_the_hold_is_never_captured(localstripe):
    round = make_round()
    a = group_bidding(round, 1_000)
    deliver(round, {a: 1_001})

    billing_capture_round(round=round)

    payment = payment_of(round, a)
    assert payment.status == P.RELEASED and payment.amount_captured_cents == 0
    assert "above the hold" in payment.failure_message
    pi = gateway.payment_intent_retrieve(payment_intent_id=payment.stripe_payment_intent_id)
    assert (pi.status, pi.amount_received) == ("canceled", 0)


def test_only_a_delivered_round_is_charged(round_with_three_bids):
    round, a, b, c = round_with_three_bids
    deliver(round, {a: 1_234, b: 3_000, c: 0}, status=Round.Status.TRAINING)
    with pytest.raises(AppError) as caught:
        billing_capture_round(round=round)
    assert caught.value.code == "not_delivered"
    assert all(p.status == P.HELD for p in Payment.objects.filter(round=round))


@pytest.mark.parametrize("status", [Round.Status.FAILED, Round.Status.CANCELLED])
def test_a_failed_or_cancelled_round_releases_every_hold_and_charges_nobody(round_with_three_bids, status):
    round, a, b, c = round_with_three_bids
    Round.objects.filter(pk=round.pk).update(status=status)

    result = billing_release_round_task.apply(args=[round.pk])

    assert result.state == "SUCCESS"
    round.refresh_from_db()
    assert round.billing_pending is False
    for group in (a, b, c):
        assert [(pi.status, pi.amount_received) for pi in intents_of(group)] == [("canceled", 0)]
        assert payment_of(round, group).status == P.RELEASED


def test_a_crash_after_the_capture_and_before_the_database_write_charges_once_on_retry(round_with_three_bids):
    round, a, b, c = round_with_three_bids
    deliver(round, {a: 1_234, b: 3_000, c: 0})
    with crash_before_status_write(P.CAPTURED, times=1) as crashes:
        first = billing_capture_round_task.apply(args=[round.pk])
    assert first.state == "FAILURE" and isinstance(first.result, SimulatedCrash) and crashes
    crashed = Payment.objects.get(pk=crashes[0])
    assert crashed.status == P.CAPTURING  # Stripe captured, our database does not know yet
    round.refresh_from_db()
    assert round.billing_pending is True

    second = billing_capture_round_task.apply(args=[round.pk])

    assert second.state == "SUCCESS"
    crashed.refresh_from_db()
    price = {a.pk: 1_234, b.pk: 3_000}[crashed.group_id]
    assert crashed.status == P.CAPTURED and crashed.amount_captured_cents == price
    captured = [pi for pi in intents_of(crashed.group) if pi.amount_received]
    assert [(pi.metadata["idempotency_key"], pi.amount_received) for pi in captured] == [(crashed.idempotency_key, price)]
    round.refresh_from_db()
    assert round.billing_pending is False


def test_a_deferred_charge_interrupted_before_the_database_write_is_found_again_not_repeated(localstripe):
    now = timezone.now()
    round = make_round(opens_at=now - timedelta(hours=1), closes_at=now + timedelta(days=30))
    a = group_bidding(round, 5_000)
    assert payment_of(round, a).status == P.DEFERRED and intents_of(a) == []
    deliver(round, {a: 2_500})
    with crash_before_status_write(P.CAPTURED), pytest.raises(SimulatedCrash):
        billing_capture_round(round=round)
    payment = payment_of(round, a)
    assert payment.status == P.CAPTURING and payment.stripe_payment_intent_id == ""

    billing_capture_round(round=round)

    payment.refresh_from_db()
    charges = intents_of(a)
    assert payment.status == P.CAPTURED and payment.amount_captured_cents == 2_500
    assert [(pi.id, pi.status, pi.amount_received) for pi in charges] == [(payment.stripe_payment_intent_id, "succeeded", 2_500)]
    assert charges[0].metadata["idempotency_key"] == f"{payment.idempotency_key}:charge"


def test_a_declined_deferred_charge_marks_the_payment_failed(localstripe):
    now = timezone.now()
    round = make_round(opens_at=now - timedelta(hours=1), closes_at=now + timedelta(days=30))
    admin = make_user()
    group = make_group(admin=admin)
    billing_card_attach(group=group, by=admin, payment_method_id="pm_card_chargeCustomerFail")
    bid_place(user=admin, group=group, round=round, amount_cents=5_000)
    deliver(round, {group: 2_500})

    summary = billing_capture_round(round=round)

    payment = Payment.objects.get(round=round, group=group)
    assert summary.failed_count == 1 and summary.complete
    assert payment.status == P.FAILED and "declined" in payment.failure_message
    assert payment.amount_captured_cents == 0


def test_stripe_unreachable_during_capture_retries_with_backoff_and_completes_later(
    round_with_three_bids, stripe_down, localstripe, monkeypatch
):
    round, a, b, c = round_with_three_bids
    deliver(round, {a: 1_234, b: 3_000, c: 0})
    assert GatewayUnavailableDeclared(billing_capture_round_task)

    # The outage, seen by the service: nothing captured, nothing lost, the round says billing is pending.
    with pytest.raises(gateway.GatewayUnavailable):
        billing_capture_round(round=round)
    round.refresh_from_db()
    assert round.billing_pending is True
    assert all(pi.amount_received == 0 for g in (a, b, c) for pi in intents_of_when_up(g, localstripe, stripe_down))

    # The task retries; the outage ends after its first try.
    attempts = []
    real_retrieve = billing_services.gateway.payment_intent_retrieve

    def retrieve(**kwargs):
        try:
            return real_retrieve(**kwargs)
        except gateway.GatewayUnavailable:
            attempts.append(Round.objects.get(pk=round.pk).billing_pending)
            stripe_down.STRIPE_API_BASE = localstripe.url
            raise

    monkeypatch.setattr(billing_services.gateway, "payment_intent_retrieve", retrieve)
    result = billing_capture_round_task.apply(args=[round.pk])

    assert result.state == "SUCCESS" and attempts == [True]
    round.refresh_from_db()
    assert round.billing_pending is False
    for group, price in ((a, 1_234), (b, 3_000)):
        assert payment_of(round, group).amount_captured_cents == price
        assert [pi.amount_received for pi in intents_of(group) if pi.status == "succeeded"] == [price]
    assert [pi.status for pi in intents_of(c)] == ["canceled"]


def GatewayUnavailableDeclared(task) -> bool:
    """The task retries Stripe outages by itself, with exponential backoff and many tries."""
    return gateway.GatewayUnavailable in task.autoretry_for and task.retry_backoff and task.max_retries >= 50


def intents_of_when_up(group, localstripe, settings) -> list[gateway.PaymentIntent]:
    down = settings.STRIPE_API_BASE
    settings.STRIPE_API_BASE = localstripe.url
    try:
        return intents_of(group)
    finally:
        settings.STRIPE_API_BASE = down


def test_a_hold_left_by_a_bid_that_crashed_is_found_by_its_key_and_released(group_with_card, group_admin):
    from marketplace.billing import bids as bid_services

    round = make_round()
    with crash_after_call(bid_services.gateway, "hold_create") as holds, pytest.raises(SimulatedCrash):
        bid_place(user=group_admin, group=group_with_card, round=round, amount_cents=4_000)
    assert [pi.status for pi in holds] == ["requires_capture"]
    orphan = Payment.objects.get(round=round, group=group_with_card)
    assert orphan.status == P.CREATING and orphan.stripe_payment_intent_id == ""
    assert [pi.status for pi in intents_of(group_with_card)] == ["requires_capture"]
    Round.objects.filter(pk=round.pk).update(status=Round.Status.CANCELLED)

    billing_release_round_task.apply(args=[round.pk])

    orphan.refresh_from_db()
    assert orphan.status == P.RELEASED
    assert [pi.status for pi in intents_of(group_with_card)] == ["canceled"]
