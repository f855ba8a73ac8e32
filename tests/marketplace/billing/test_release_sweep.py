"""A withdrawn bid's hold is let go by the release sweep once Stripe is back, not at the round's final billing run."""

from __future__ import annotations

import pytest

from marketplace.billing import stripe_gateway as gateway
from marketplace.billing.bids import bid_place, bid_withdraw
from marketplace.billing.services import payments_release_sweep
from marketplace.celery import app
from marketplace.core import tasknames
from marketplace.localstripe_server import free_port
from marketplace.models import Bid, Payment
from tests.factories import make_round

pytestmark = pytest.mark.django_db
P = Payment.Status


def test_a_hold_left_releasing_while_stripe_was_down_is_released_by_the_sweep(group_with_card, group_admin, settings):
    round = make_round()
    bid_place(user=group_admin, group=group_with_card, round=round, amount_cents=4_200)
    payment = Payment.objects.get(round=round)
    stripe_up = settings.STRIPE_API_BASE

    settings.STRIPE_API_BASE = f"http://127.0.0.1:{free_port()}"  # Stripe goes down
    bid_withdraw(user=group_admin, group=group_with_card, round=round)  # the person still gets their answer
    payment.refresh_from_db()
    assert payment.status == P.RELEASING and Bid.objects.get(round=round).status == Bid.Status.WITHDRAWN
    assert payments_release_sweep() == 0  # still down: nothing moves, nothing raises
    payment.refresh_from_db()
    assert payment.status == P.RELEASING

    settings.STRIPE_API_BASE = stripe_up  # Stripe is back
    assert payments_release_sweep() == 1

    payment.refresh_from_db()
    assert payment.status == P.RELEASED
    assert gateway.payment_intent_retrieve(payment_intent_id=payment.stripe_payment_intent_id).status == "canceled"
    assert payments_release_sweep() == 0


def test_the_sweep_is_on_the_beat_schedule():
    app.loader.import_default_modules()
    entries = [e for e in app.conf.beat_schedule.values() if e["task"] == tasknames.BILLING_RELEASE_SWEEP]
    assert entries and entries[0]["schedule"] <= 300
