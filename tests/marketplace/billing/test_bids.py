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
from tests.factories import make_group, make_group_with_card, make_round, make_user

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


def test_one_card_backs_one_groups_bid_per_round(group_with_card, group_admin):
    round = make_round()
    bid_place(user=group_admin, group=group_with_card, round=round, amount_cents=1_000)
    twin, twin_admin = make_group_with_card("pm_card_visa")  # the same card number: a fake identity of the first group
    with pytest.raises(AppError) as refused:
        bid_place(user=twin_admin, group=twin, round=round, amount_cents=1_000)
    assert refused.value.code == "card_in_use"
    assert not Bid.objects.filter(round=round, group=twin, status=Bid.Status.ACTIVE).exists()
    assert not Payment.objects.filter(round=round, group=twin, status=P.HELD).exists()
    # Another round, or another card, is fine.
    assert bid_place(user=twin_admin, group=twin, round=make_round(), amount_cents=1_000).status == Bid.Status.ACTIVE
    other, other_admin = make_group_with_card("pm_card_mastercard")
    assert bid_place(user=other_admin, group=other, round=round, amount_cents=1_000).status == Bid.Status.ACTIVE


def test_the_participation_fee_is_held_with_the_bid(group_with_card, group_admin):
    round = make_round(participation_fee_cents=250)
    bid_place(user=group_admin, group=group_with_card, round=round, amount_cents=4_000)
    payment = Payment.objects.get(round=round, group=group_with_card)
    assert payment.amount_held_cents == 4_250
    assert intent(payment).amount == 4_250


def test_a_bid_below_the_rounds_minimum_is_refused(group_with_card, group_admin):
    round = make_round(min_bid_cents=500)
    with pytest.raises(AppError, match="smallest bid"):
        bid_place(user=group_admin, group=group_with_card, round=round, amount_cents=499)


@pytest.mark.parametrize(("code", "bid", "held"), [("jpy", 3_000, 3_000), ("kwd", 1_255, 1_260), ("eur", 4_200, 4_200)])
def test_holds_are_in_the_rounds_minor_units_as_stripe_takes_them(group_with_card, group_admin, code, bid, held):
    round = make_round(currency=code)
    bid_place(user=group_admin, group=group_with_card, round=round, amount_cents=bid)
    payment = Payment.objects.get(round=round, group=group_with_card)
    assert payment.amount_held_cents == held and payment.currency == code
    pi = intent(payment)
    assert (pi.amount, pi.currency) == (held, code)


def _deferred_round():
    # A window longer than a card hold lasts: bids save the card and are authorised only when bidding closes.
    now = timezone.now()
    return make_round(opens_at=now - timedelta(hours=1), closes_at=now + timedelta(days=30))


def test_at_the_close_deferred_bids_are_authorised_and_a_declined_one_is_dropped(localstripe, mailoutbox):
    round = _deferred_round()
    assert billing_mode_for_round(round=round).mode == "deferred"
    good, good_admin = make_group_with_card("pm_card_mastercard")
    bad, bad_admin = make_group_with_card("pm_card_chargeCustomerFail")  # saves fine, every hold on it is declined
    bid_place(user=good_admin, group=good, round=round, amount_cents=2_000)
    bid_place(user=bad_admin, group=bad, round=round, amount_cents=3_000)
    Round.objects.filter(pk=round.pk).update(status=Round.Status.CLOSED)

    dropped = bid_services.bids_reauthorise(round=round)

    assert dropped == [bad.pk]
    assert Bid.objects.get(round=round, group=bad).status == Bid.Status.WITHDRAWN
    assert Bid.objects.get(round=round, group=good).status == Bid.Status.ACTIVE
    held = Payment.objects.get(round=round, group=good, status=P.HELD)
    assert held.amount_held_cents == 2_000 and intent(held).status == "requires_capture"
    assert not Payment.objects.filter(round=round, group=bad, status__in=[P.HELD, P.DEFERRED]).exists()
    assert any(bad_admin.email in m.to and "could not be confirmed" in m.subject for m in mailoutbox)
    # Run again (a redelivered settle): nothing changes, nothing is held twice.
    assert bid_services.bids_reauthorise(round=round) == []
    assert Payment.objects.filter(round=round, group=good, status=P.HELD).count() == 1


def test_the_auction_runs_without_the_group_whose_reauthorisation_failed(localstripe):
    from marketplace.orchestration.auction import auction_instance_for_round
    from training.models import Candidate, RewardModel

    round = _deferred_round()
    good, good_admin = make_group_with_card("pm_card_mastercard")
    bad, bad_admin = make_group_with_card("pm_card_chargeCustomerFail")
    for group, admin in ((good, good_admin), (bad, bad_admin)):
        bid_place(user=admin, group=group, round=round, amount_cents=2_000)
        RewardModel.objects.create(round=round, group=group, kind="rubric", normalised_scores=[[1.0, 0.0]])
    Round.objects.filter(pk=round.pk).update(status=Round.Status.CLOSED, prompts=["p"])
    round.refresh_from_db()
    for k in range(2):
        Candidate.objects.create(round=round, prompt_index=0, index=k, text=f"a{k}", base_logprob=-1.0)

    bid_services.bids_reauthorise(round=round)
    instance, _ = auction_instance_for_round(round=round)
    assert [g["id"] for g in instance["groups"]] == [good.slug]
