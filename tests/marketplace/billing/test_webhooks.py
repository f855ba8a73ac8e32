"""Stripe's webhooks: signed, handled once per event id, and trusted only as a hint to look at the object again."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.request

import pytest
from django.conf import settings
from django.urls import reverse

from marketplace.billing import stripe_gateway as gateway
from marketplace.billing.bids import bid_place
from marketplace.billing.services import billing_capture_round, billing_card_attach
from marketplace.models import AuctionOutcome, GroupOutcome, Payment, Round, WebhookEvent
from tests.factories import make_group, make_round, make_user
from tests.support.crash import SimulatedCrash, crash_before_status_write

P = Payment.Status
URL = "/stripe/webhook/"


def sign(payload: bytes, secret: str | None = None, timestamp: int | None = None) -> str:
    timestamp = timestamp or int(time.time())
    signed = f"{timestamp}.".encode() + payload
    return f"t={timestamp},v1={hmac.new((secret or settings.STRIPE_WEBHOOK_SECRET).encode(), signed, hashlib.sha256).hexdigest()}"


def localstripe_events(type: str, object_id: str) -> list[dict]:
    request = urllib.request.Request(
        f"{settings.STRIPE_API_BASE}/v1/events?type={type}&limit=100",
        headers={"Authorization": f"Bearer {settings.STRIPE_SECRET_KEY}"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        events = json.loads(response.read())["data"]
    return [e for e in events if e["data"]["object"]["id"] == object_id]


def post_event(client, event: dict):
    payload = json.dumps(event).encode()
    return client.post(URL, data=payload, content_type="application/json", HTTP_STRIPE_SIGNATURE=sign(payload))


def a_capture_whose_database_write_was_lost() -> Payment:
    """A delivered round whose capture reached Stripe but crashed before our database recorded it."""
    admin = make_user()
    group = make_group(admin=admin)
    billing_card_attach(group=group, by=admin, payment_method_id="pm_card_visa")
    round = make_round()
    bid = bid_place(user=admin, group=group, round=round, amount_cents=5_000)
    outcome = AuctionOutcome.objects.create(
        round=round, inputs_hash="0" * 64, instance={}, result={}, welfare=1.0, kl_to_base=0.1, revenue_cents=1_500
    )
    GroupOutcome.objects.create(
        outcome=outcome, group=group, bid_cents=bid.amount_cents, expected_reward=0.5, promised_value=25.0,
        payment=15.0, payment_cents=1_500, utility=10.0,
    )
    Round.objects.filter(pk=round.pk).update(status=Round.Status.DELIVERED)
    with crash_before_status_write(P.CAPTURED), pytest.raises(SimulatedCrash):
        billing_capture_round(round=round)
    payment = Payment.objects.get(round=round, group=group)
    assert payment.status == P.CAPTURING
    return payment


@pytest.mark.django_db
def test_it_rejects_an_event_whose_signature_does_not_match(client, localstripe):
    payload = json.dumps({"id": "evt_forged", "object": "event", "type": "payment_intent.succeeded",
                          "data": {"object": {"id": "pi_x", "object": "payment_intent"}}}).encode()
    bad = client.post(URL, data=payload, content_type="application/json", HTTP_STRIPE_SIGNATURE=sign(payload, "whsec_wrong"))
    missing = client.post(URL, data=payload, content_type="application/json")
    assert bad.status_code == 400 and missing.status_code == 400
    assert bad.json()["error"]["code"] == "bad_signature"
    assert not WebhookEvent.objects.exists()


@pytest.mark.django_db
def test_a_succeeded_event_completes_a_capture_and_its_replay_changes_nothing(client, localstripe):
    payment = a_capture_whose_database_write_was_lost()
    [event] = localstripe_events("payment_intent.succeeded", payment.stripe_payment_intent_id)

    first = post_event(client, event)
    payment.refresh_from_db()
    after_first = (payment.status, payment.amount_captured_cents, payment.updated_at)
    replay = post_event(client, event)
    payment.refresh_from_db()

    assert first.json() == {"status": "reconciled"} and replay.json() == {"status": "duplicate"}
    assert after_first[:2] == (P.CAPTURED, 1_500)
    assert (payment.status, payment.amount_captured_cents, payment.updated_at) == after_first
    assert WebhookEvent.objects.filter(event_id=event["id"]).count() == 1


@pytest.mark.django_db
def test_an_out_of_order_event_is_checked_against_the_object_and_moves_nothing_back(client, localstripe, group_with_card, group_admin):
    round = make_round()
    bid_place(user=group_admin, group=group_with_card, round=round, amount_cents=5_000)
    payment = Payment.objects.get(round=round, group=group_with_card)
    # A stale or misleading event: it claims the hold was cancelled, but at Stripe it is still held.
    stale = {
        "id": "evt_stale_cancel", "object": "event", "type": "payment_intent.canceled", "created": int(time.time()),
        "data": {"object": {"id": payment.stripe_payment_intent_id, "object": "payment_intent", "status": "canceled"}},
    }
    response = post_event(client, stale)
    payment.refresh_from_db()
    assert response.status_code == 200 and payment.status == P.HELD

    Round.objects.filter(pk=round.pk).update(status=Round.Status.DELIVERED)
    outcome = AuctionOutcome.objects.create(
        round=round, inputs_hash="0" * 64, instance={}, result={}, welfare=1.0, kl_to_base=0.1, revenue_cents=2_000
    )
    GroupOutcome.objects.create(
        outcome=outcome, group=group_with_card, bid_cents=5_000, expected_reward=0.5, promised_value=25.0,
        payment=20.0, payment_cents=2_000, utility=5.0,
    )
    billing_capture_round(round=round)
    # An older "payment failed" event arriving after the capture: the object says succeeded, so nothing moves.
    late = {**stale, "id": "evt_late_failure", "type": "payment_intent.payment_failed"}
    post_event(client, late)
    payment.refresh_from_db()
    assert (payment.status, payment.amount_captured_cents) == (P.CAPTURED, 2_000)


@pytest.mark.django_db(transaction=True)
def test_localstripe_delivers_a_signed_webhook_that_finishes_an_interrupted_capture(live_server, localstripe):
    hook = f"{localstripe.url}/_config/webhooks/billing-test"
    register = {"url": f"{live_server.url}{reverse('stripe_webhook')}", "secret": settings.STRIPE_WEBHOOK_SECRET}
    urllib.request.urlopen(urllib.request.Request(hook, data=json.dumps(register).encode()), timeout=5)
    try:
        payment = a_capture_whose_database_write_was_lost()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            payment.refresh_from_db()
            if payment.status == P.CAPTURED:
                break
            time.sleep(0.2)
        assert (payment.status, payment.amount_captured_cents) == (P.CAPTURED, 1_500)
        assert WebhookEvent.objects.filter(type="payment_intent.succeeded").exists()
    finally:
        # Stop sending this session's later events to a server that is about to go away.
        urllib.request.urlopen(
            urllib.request.Request(hook, data=json.dumps({**register, "events": []}).encode()), timeout=5
        )


@pytest.mark.django_db
def test_a_hold_cancelled_outside_our_flow_is_charged_off_session_at_delivery(client, localstripe, group_with_card, group_admin):
    round = make_round()
    bid_place(user=group_admin, group=group_with_card, round=round, amount_cents=5_000)
    payment = Payment.objects.get(round=round, group=group_with_card)
    # The authorisation lapses at the bank (Stripe cancels it and tells us).
    gateway.payment_intent_cancel(payment_intent_id=payment.stripe_payment_intent_id, idempotency_key="lapse")
    post_event(client, {
        "id": "evt_lapsed", "object": "event", "type": "payment_intent.canceled", "created": int(time.time()),
        "data": {"object": {"id": payment.stripe_payment_intent_id, "object": "payment_intent"}},
    })
    payment.refresh_from_db()
    assert payment.status == P.DEFERRED and "lapsed" in payment.failure_message

    Round.objects.filter(pk=round.pk).update(status=Round.Status.DELIVERED)
    outcome = AuctionOutcome.objects.create(
        round=round, inputs_hash="0" * 64, instance={}, result={}, welfare=1.0, kl_to_base=0.1, revenue_cents=2_000
    )
    GroupOutcome.objects.create(
        outcome=outcome, group=group_with_card, bid_cents=5_000, expected_reward=0.5, promised_value=25.0,
        payment=20.0, payment_cents=2_000, utility=5.0,
    )
    billing_capture_round(round=round)

    payment.refresh_from_db()
    charge = gateway.payment_intent_retrieve(payment_intent_id=payment.stripe_payment_intent_id)
    assert (payment.status, payment.amount_captured_cents) == (P.CAPTURED, 2_000)
    assert (charge.status, charge.amount_received, charge.metadata["idempotency_key"]) == (
        "succeeded", 2_000, f"{payment.idempotency_key}:charge"
    )


def post_raw(client, payload: bytes):
    return client.post(URL, data=payload, content_type="application/json", HTTP_STRIPE_SIGNATURE=sign(payload))


@pytest.mark.django_db
@pytest.mark.parametrize(
    "payload",
    [
        b"[]",
        b'[{"id": "evt_1", "type": "payment_intent.succeeded"}]',
        b'{"id": "evt_nodata", "type": "payment_intent.succeeded"}',
        b'{"id": "evt_nullobj", "type": "payment_intent.succeeded", "data": {"object": null}}',
        json.dumps({"id": "evt_" + "x" * 300, "type": "payment_intent.succeeded", "data": {"object": {"object": "payment_intent", "id": "pi_1"}}}).encode(),
        json.dumps({"id": "evt_longobj", "type": "payment_intent.succeeded", "data": {"object": {"object": "payment_intent", "id": "pi_" + "y" * 300}}}).encode(),
        b'{"id": 5, "type": "x", "data": {"object": {}}}',
        b'{"id": "evt_deep", "type": "x", "data": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    ],
    ids=["empty-array", "array", "no-data", "null-object", "long-event-id", "long-object-id", "numeric-id", "deep"],
)
def test_validly_signed_but_malformed_events_are_400_in_the_error_shape(client, localstripe, payload):
    response = post_raw(client, payload)
    assert response.status_code == 400, response.content[:200]
    assert response.json()["error"]["code"] == "bad_payload"
    assert not WebhookEvent.objects.exists()


@pytest.mark.django_db
def test_a_validly_signed_event_for_an_unknown_payment_intent_is_200_and_stored_once(client, localstripe):
    event = {"id": "evt_unknown_pi", "type": "payment_intent.succeeded", "data": {"object": {"object": "payment_intent", "id": "pi_nobody_knows"}}}
    response = post_event(client, event)
    assert response.status_code == 200 and response.json() == {"status": "unknown"}
    assert post_event(client, event).json() == {"status": "duplicate"}
    assert WebhookEvent.objects.filter(event_id="evt_unknown_pi").count() == 1
