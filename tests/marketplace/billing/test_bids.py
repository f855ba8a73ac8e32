"""Bids are backed by a hold on the group's card: placed with it, replaced with it, released with it, or not at all."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from marketplace.billing import bids as bid_services
from marketplace.billing import stripe_gateway as gateway
from marketplace.billing.bids import bid_place, bid_withdraw
from marketplace.billing.selectors import billing_mode_for_round
from marketplace.billing.services import billing_card_attach
from marketplace.core.errors import AppError, NotAllowed, NotFound
from marketplace.models import Bid, BillingCustomer, Payment, Round
from tests.factories import make_group, make_round, make_user

pytestmark = pytest.mark.django_db
P = Payment.Status


def intent(payment: Payment) -> gateway.PaymentIntent:
    return gateway.payment_intent_retrieve(payment_intent_id=payment.stripe_payment_intent_id)


def test_placing_a_bid_holds_the_amount_on_the_card_until_capture(group_with_card, group_admin):
    round = make_round()
    bid = bid_place(user=group_admin, group=group_with_card, round=round, amount_cents=4_200)

    payment = Payment.objects.get(round=round, group=group_with_card)
    assert bid.status == Bid.Status.ACTIVE and bid.amount_cents == 4_200
    assert payment.status == P.HELD and payment.bid_id == bid.pk and payment.amount_held_cents == 4_200
    assert payment.idempotency_key == f"round-{round.pk}-group-{group_with_card.pk}-hold-1"
    pi = intent(payment)
    assert (pi.status, pi.amount, pi.amount_capturable, pi.currency) == ("requires_capture", 4_200, 4_200, "usd")
    assert pi.customer_id == BillingCustomer.objects.get(group=group_with_card).stripe_customer_id
    assert pi.metadata["idempotency_key"] == payment.idempotency_key


def test_changing_a_bid_replaces_the_hold_and_releases_the_old_one(group_with_card, group_admin):
    round = make_round()
    bid_place(user=group_admin, group=group_with_card, round=round, amount_cents=4_200)
    bid = bid_place(user=group_admin, group=group_with_card, round=round, amount_cents=6_000)

    old, new = Payment.objects.filter(round=round, group=group_with_card).order_by("attempt")
    assert bid.amount_cents == 6_000 and Bid.objects.filter(round=round, group=group_with_card).count() == 1
    assert (old.status, new.status) == (P.RELEASED, P.HELD)
    assert intent(old).status == "canceled"
    assert intent(new).status == "requires_capture" and intent(new).amount == 6_000


def test_placing_the_same_amount_again_keeps_the_existing_hold(group_with_card, group_admin):
    round = make_round()
    bid_place(user=group_admin, group=group_with_card, round=round, amount_cents=4_200)
    bid_place(user=group_admin, group=group_with_card, round=round, amount_cents=4_200)
    assert Payment.objects.filter(round=round, group=group_with_card).count() == 1


def test_withdrawing_a_bid_cancels_its_hold(group_with_card, group_admin):
    round = make_round()
    bid_place(user=group_admin, group=group_with_card, round=round, amount_cents=4_200)
    bid_withdraw(user=group_admin, group=group_with_card, round=round)

    payment = Payment.objects.get(round=round, group=group_with_card)
    assert Bid.objects.get(round=round, group=group_with_card).status == Bid.Status.WITHDRAWN
    assert payment.status == P.RELEASED and intent(payment).status == "canceled"

    bid = bid_place(user=group_admin, group=group_with_card, round=round, amount_cents=3_000)
    assert bid.status == Bid.Status.ACTIVE and bid.amount_cents == 3_000


def test_a_declined_card_refuses_the_bid_and_stores_nothing_half_way(localstripe):
    admin = make_user()
    group = make_group(admin=admin)
    # Attaches fine, then every charge or hold on it is declined.
    billing_card_attach(group=group, by=admin, payment_method_id="pm_card_chargeCustomerFail")
    round = make_round()

    with pytest.raises(AppError) as caught:
        bid_place(user=admin, group=group, round=round, amount_cents=4_200)

    assert caught.value.code == "card_declined"
    assert "was not placed" in caught.value.message and "declined" in caught.value.message
    assert "another card on the group's billing page" in caught.value.message
    assert not Bid.objects.filter(round=round, group=group).exists()
    assert not Payment.objects.filter(round=round, group=group).exclude(status=P.FAILED).exists()


def test_a_declined_change_keeps_the_previous_bid_and_its_hold(group_with_card, group_admin):
    round = make_round()
    bid_place(user=group_admin, group=group_with_card, round=round, amount_cents=4_200)
    billing_card_attach(group=group_with_card, by=group_admin, payment_method_id="pm_card_chargeCustomerFail")

    with pytest.raises(AppError):
        bid_place(user=group_admin, group=group_with_card, round=round, amount_cents=9_000)

    assert Bid.objects.get(round=round, group=group_with_card).amount_cents == 4_200
    held = Payment.objects.get(round=round, group=group_with_card, status=P.HELD)
    assert held.amount_held_cents == 4_200 and intent(held).status == "requires_capture"


def test_the_bid_page_says_why_a_declined_bid_was_refused(client, localstripe):
    admin = make_user()
    group = make_group(admin=admin)
    billing_card_attach(group=group, by=admin, payment_method_id="pm_card_chargeCustomerFail")
    round = make_round()
    client.force_login(admin)

    response = client.post(f"/rounds/{round.slug}/groups/{group.slug}/bid/", {"amount": "42.00"})

    assert response.status_code == 400
    assert "the bank declined a hold" in response.content.decode()
    assert not Bid.objects.filter(round=round, group=group).exists()


def test_it_refuses_a_bid_without_a_card_on_file(db):
    admin = make_user()
    group = make_group(admin=admin)
    with pytest.raises(AppError) as caught:
        bid_place(user=admin, group=group, round=make_round(), amount_cents=4_200)
    assert caught.value.code == "no_card"
    assert caught.value.message.startswith("Add a card on the group's billing page before bidding")


@pytest.mark.parametrize("amount", [0, -5, 10**12, 42.5, True, "100"])
def test_it_refuses_amounts_that_are_not_a_sane_positive_number_of_cents(group_with_card, group_admin, amount):
    with pytest.raises(AppError) as caught:
        bid_place(user=group_admin, group=group_with_card, round=make_round(), amount_cents=amount)
    assert caught.value.code == "invalid_amount"
    assert not Payment.objects.filter(group=group_with_card).exists()


def test_only_admins_bid_and_outsiders_learn_nothing(group_with_card):
    member, outsider = make_user(), make_user()
    group_with_card.memberships.create(user=member, role="member")
    round = make_round()
    with pytest.raises(NotAllowed):
        bid_place(user=member, group=group_with_card, round=round, amount_cents=4_200)
    with pytest.raises(NotFound):
        bid_place(user=outsider, group=group_with_card, round=round, amount_cents=4_200)
    assert not Payment.objects.filter(group=group_with_card).exists()


def test_it_refuses_bids_after_close_without_touching_the_card(group_with_card, group_admin):
    round = make_round(closes_at=timezone.now() - timedelta(minutes=1))
    with pytest.raises(AppError) as caught:
        bid_place(user=group_admin, group=group_with_card, round=round, amount_cents=4_200)
    assert caught.value.code == "round_closed"
    assert not Payment.objects.filter(group=group_with_card).exists()


def test_a_round_that_closes_while_the_hold_is_made_refuses_the_bid_and_releases_the_hold(
    group_with_card, group_admin, monkeypatch
):
    round = make_round()
    real_hold = bid_services.gateway.hold_create

    def hold_then_close(**kwargs):
        held = real_hold(**kwargs)
        Round.objects.filter(pk=round.pk).update(status=Round.Status.CLOSED)
        return held

    monkeypatch.setattr(bid_services.gateway, "hold_create", hold_then_close)
    with pytest.raises(AppError) as caught:
        bid_place(user=group_admin, group=group_with_card, round=round, amount_cents=4_200)

    payment = Payment.objects.get(round=round, group=group_with_card)
    assert caught.value.code == "round_not_open"
    assert not Bid.objects.filter(round=round, group=group_with_card).exists()
    assert payment.status == P.RELEASED and intent(payment).status == "canceled"


def test_an_unreachable_payment_provider_refuses_the_bid_with_a_retry_message(group_with_card, group_admin, stripe_down):
    round = make_round()
    with pytest.raises(AppError) as caught:
        bid_place(user=group_admin, group=group_with_card, round=round, amount_cents=4_200)
    assert caught.value.code == "payment_unavailable" and "try again" in caught.value.message
    assert not Bid.objects.filter(round=round).exists()
    assert not Payment.objects.filter(round=round, status=P.HELD).exists()


def test_a_round_longer_than_a_hold_saves_the_card_and_defers_the_charge(group_with_card, group_admin, settings):
    settings.STRIPE_HOLD_DAYS = 5
    now = timezone.now()
    round = make_round(opens_at=now - timedelta(hours=1), closes_at=now + timedelta(days=6))
    mode = billing_mode_for_round(round=round)
    assert mode.mode == "deferred" and "charged" in mode.explanation and "5 days" in mode.explanation

    bid = bid_place(user=group_admin, group=group_with_card, round=round, amount_cents=4_200)

    payment = Payment.objects.get(round=round, group=group_with_card)
    assert bid.amount_cents == 4_200
    assert payment.status == P.DEFERRED and payment.stripe_payment_intent_id == "" and payment.amount_held_cents == 0


def test_a_short_round_holds_at_bid_time(settings):
    settings.STRIPE_HOLD_DAYS = 5
    settings.BILLING_TRAINING_ALLOWANCE_HOURS = 24
    now = timezone.now()
    round = Round(opens_at=now, closes_at=now + timedelta(days=4), title="r")
    too_long = Round(opens_at=now, closes_at=now + timedelta(days=4, hours=1), title="r")
    assert billing_mode_for_round(round=round).mode == "hold"
    assert billing_mode_for_round(round=too_long).mode == "deferred"
