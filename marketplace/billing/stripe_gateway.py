"""The one module that talks to Stripe. Everything else calls these functions and gets our own dataclasses back.

Settings decide where it talks: with STRIPE_API_BASE set (the default, localstripe on loopback) every call goes
there; with a real ``sk_test_`` key and no API base it talks to Stripe's test mode unchanged.

Errors are mapped to our own: ``CardDeclined`` (the bank said no: a person must act), ``GatewayUnavailable``
(network, rate limit or a Stripe-side error: retry later) and ``GatewayError`` (anything else: a bug or bad data).
Every call that moves money takes an idempotency key that the caller derived from our ids and stored first.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from typing import Any

import stripe
from django.conf import settings


class GatewayError(Exception):
    """Stripe refused the request for a reason that retrying will not fix."""

    def __init__(self, message: str, *, code: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class CardDeclined(GatewayError):
    """The card was declined; `decline_code` is the bank's reason when Stripe gives one (e.g. insufficient_funds)."""

    def __init__(self, message: str, decline_code: str = "") -> None:
        super().__init__(message, code="card_declined")
        self.decline_code = decline_code


class GatewayUnavailable(GatewayError):
    """Stripe could not be reached or asked us to come back later. Safe to retry with the same idempotency key."""


class WebhookSignatureInvalid(GatewayError):
    """A webhook's body does not match its Stripe-Signature header, or is not a well-formed event (code bad_payload)."""


MAX_ID_LENGTH = 255  # Stripe's ids are far shorter; our columns hold 255


@dataclass(frozen=True)
class Card:
    payment_method_id: str
    customer_id: str
    brand: str
    last4: str
    exp_month: int
    exp_year: int
    fingerprint: str = ""  # the same card number gives the same fingerprint, whichever customer holds it


@dataclass(frozen=True)
class SetupIntent:
    id: str
    client_secret: str
    status: str
    customer_id: str
    payment_method_id: str


@dataclass(frozen=True)
class PaymentIntent:
    id: str
    status: str  # requires_payment_method, requires_capture, succeeded, canceled, processing, ...
    amount: int
    amount_capturable: int
    amount_received: int
    currency: str
    customer_id: str
    metadata: dict[str, str] = field(default_factory=dict)
    error_message: str = ""


@dataclass(frozen=True)
class WebhookEvent:
    id: str
    type: str
    object_type: str
    object_id: str


@functools.cache
def _client_for(api_key: str, api_base: str) -> stripe.StripeClient:
    if api_base:
        # The stand-in does not honour Idempotency-Key, so automatic network retries could act twice there; our own
        # retries (Celery, the person) look the object up first instead.
        return stripe.StripeClient(api_key, base_addresses={"api": api_base}, max_network_retries=0)
    return stripe.StripeClient(api_key, max_network_retries=2)


def _client() -> stripe.StripeClient:
    return _client_for(settings.STRIPE_SECRET_KEY, settings.STRIPE_API_BASE)


def _translate(exc: stripe.StripeError) -> GatewayError:
    if isinstance(exc, stripe.CardError):
        error = exc.error
        decline_code = (getattr(error, "decline_code", None) if error else None) or ""
        return CardDeclined(exc.user_message or "Your card was declined.", decline_code)
    if isinstance(exc, stripe.APIConnectionError | stripe.RateLimitError):
        return GatewayUnavailable(f"Stripe could not be reached: {exc.user_message or exc}", code="unavailable")
    if isinstance(exc, stripe.APIError) or (exc.http_status or 0) >= 500:
        return GatewayUnavailable(f"Stripe had an error: {exc.user_message or exc}", code="unavailable")
    return GatewayError(exc.user_message or str(exc), code=exc.code or type(exc).__name__)


def _call(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except stripe.StripeError as exc:
        raise _translate(exc) from exc


def _options(idempotency_key: str | None) -> stripe.RequestOptions:
    return {"idempotency_key": idempotency_key} if idempotency_key else {}


def _field(obj, name: str, default=None):
    """Read a field of a stripe object that may be absent (stripe 16 objects are not dicts)."""
    try:
        value = getattr(obj, name)
    except AttributeError:
        return default
    return default if value is None else value


def _id_of(value) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else value.id


def _card(pm) -> Card:
    card = pm.card
    return Card(
        payment_method_id=pm.id,
        customer_id=_id_of(_field(pm, "customer")),
        brand=str(_field(card, "brand", "")),
        last4=str(_field(card, "last4", "")),
        exp_month=int(_field(card, "exp_month", 0)),
        exp_year=int(_field(card, "exp_year", 0)),
        fingerprint=str(_field(card, "fingerprint", "") or ""),
    )


def _payment_intent(pi) -> PaymentIntent:
    error = _field(pi, "last_payment_error")
    metadata = _field(pi, "metadata")
    return PaymentIntent(
        id=pi.id,
        status=pi.status,
        amount=int(pi.amount),
        amount_capturable=int(_field(pi, "amount_capturable", 0)),
        amount_received=int(_field(pi, "amount_received", 0)),
        currency=pi.currency,
        customer_id=_id_of(_field(pi, "customer")),
        metadata={str(k): str(v) for k, v in metadata.to_dict().items()} if metadata else {},
        error_message=str(_field(error, "message", "")) if error else "",
    )


def _setup_intent(si) -> SetupIntent:
    return SetupIntent(
        id=si.id,
        client_secret=si.client_secret,
        status=si.status,
        customer_id=_id_of(_field(si, "customer")),
        payment_method_id=_id_of(_field(si, "payment_method")),
    )


# Customers and cards


def customer_create(*, name: str, metadata: dict[str, str], idempotency_key: str) -> str:
    customer = _call(
        _client().v1.customers.create, params={"name": name, "metadata": metadata}, options=_options(idempotency_key)
    )
    return customer.id


def setup_intent_create(*, customer_id: str, metadata: dict[str, str] | None = None) -> SetupIntent:
    params: dict[str, Any] = {"customer": customer_id, "usage": "off_session", "payment_method_types": ["card"]}
    if metadata:
        params["metadata"] = metadata
    return _setup_intent(_call(_client().v1.setup_intents.create, params=params))


def setup_intent_retrieve(*, setup_intent_id: str) -> SetupIntent:
    return _setup_intent(_call(_client().v1.setup_intents.retrieve, setup_intent_id))


def card_attach(*, payment_method_id: str, customer_id: str) -> Card:
    """Attach the payment method to the customer (a no-op when a SetupIntent already did) and return its card.

    Test ids such as ``pm_card_visa`` become a new payment method on attach; the returned id is the one to keep.
    """
    client = _client()
    if not payment_method_id.startswith("pm_card_"):
        current = _call(client.v1.payment_methods.retrieve, payment_method_id)
        if _id_of(_field(current, "customer")) == customer_id:
            return _card(current)
    pm = _call(client.v1.payment_methods.attach, payment_method_id, params={"customer": customer_id})
    if _field(pm, "type") != "card":
        raise GatewayError("Only cards can be saved for bids.", code="not_a_card")
    return _card(pm)


def card_detach(*, payment_method_id: str) -> None:
    _call(_client().v1.payment_methods.detach, payment_method_id)


# PaymentIntents: holds, captures, off-session charges


def hold_create(
    *, customer_id: str, payment_method_id: str, amount_cents: int, currency: str, idempotency_key: str,
    metadata: dict[str, str],
) -> PaymentIntent:
    """Authorise `amount_cents` on the saved card without charging it (manual capture), off-session."""
    return _payment_intent_create(
        customer_id=customer_id, payment_method_id=payment_method_id, amount_cents=amount_cents, currency=currency,
        idempotency_key=idempotency_key, metadata=metadata, capture_method="manual",
    )


def charge_create(
    *, customer_id: str, payment_method_id: str, amount_cents: int, currency: str, idempotency_key: str,
    metadata: dict[str, str],
) -> PaymentIntent:
    """Charge the saved card off-session at once (used when a round is too long for a hold)."""
    return _payment_intent_create(
        customer_id=customer_id, payment_method_id=payment_method_id, amount_cents=amount_cents, currency=currency,
        idempotency_key=idempotency_key, metadata=metadata, capture_method="automatic",
    )


def _payment_intent_create(
    *, customer_id: str, payment_method_id: str, amount_cents: int, currency: str, idempotency_key: str,
    metadata: dict[str, str], capture_method: str,
) -> PaymentIntent:
    params = {
        "amount": int(amount_cents),
        "currency": currency,
        "customer": customer_id,
        "payment_method": payment_method_id,
        "payment_method_types": ["card"],
        "capture_method": capture_method,
        "confirm": True,
        "off_session": True,
        "metadata": {**metadata, "idempotency_key": idempotency_key},
    }
    return _payment_intent(_call(_client().v1.payment_intents.create, params=params, options=_options(idempotency_key)))


def payment_intent_retrieve(*, payment_intent_id: str) -> PaymentIntent:
    return _payment_intent(_call(_client().v1.payment_intents.retrieve, payment_intent_id))


def payment_intents_for_customer(*, customer_id: str) -> list[PaymentIntent]:
    client = _client()
    page = _call(client.v1.payment_intents.list, params={"customer": customer_id, "limit": 100})
    found: list[PaymentIntent] = []
    while True:
        found.extend(_payment_intent(pi) for pi in page.data)
        if not page.has_more or not page.data:
            return found
        page = _call(
            client.v1.payment_intents.list,
            params={"customer": customer_id, "limit": 100, "starting_after": page.data[-1].id},
        )


def payment_intent_find(*, customer_id: str, idempotency_key: str) -> PaymentIntent | None:
    """The PaymentIntent an earlier, interrupted call created with this key, if any (looked up by its metadata)."""
    for pi in payment_intents_for_customer(customer_id=customer_id):
        if pi.metadata.get("idempotency_key") == idempotency_key:
            return pi
    return None


def payment_intent_capture(*, payment_intent_id: str, amount_cents: int, idempotency_key: str) -> PaymentIntent:
    """Capture `amount_cents` of a hold (the rest is released). Already captured counts as done."""
    client = _client()
    try:
        pi = client.v1.payment_intents.capture(
            payment_intent_id, params={"amount_to_capture": int(amount_cents)}, options=_options(idempotency_key)
        )
    except stripe.InvalidRequestError as exc:
        current = payment_intent_retrieve(payment_intent_id=payment_intent_id)
        if current.status == "succeeded":
            return current
        raise _translate(exc) from exc
    except stripe.StripeError as exc:
        raise _translate(exc) from exc
    return _payment_intent(pi)


def payment_intent_cancel(*, payment_intent_id: str, idempotency_key: str) -> PaymentIntent:
    """Cancel a hold. Already cancelled counts as done; a captured one is left alone and returned as is."""
    client = _client()
    try:
        pi = client.v1.payment_intents.cancel(payment_intent_id, options=_options(idempotency_key))
    except stripe.InvalidRequestError as exc:
        current = payment_intent_retrieve(payment_intent_id=payment_intent_id)
        if current.status in ("canceled", "succeeded"):
            return current
        raise _translate(exc) from exc
    except stripe.StripeError as exc:
        raise _translate(exc) from exc
    return _payment_intent(pi)


# Webhooks


def webhook_event_construct(*, payload: bytes, signature: str) -> WebhookEvent:
    """Verify the Stripe-Signature header on the raw body and return the event's id, type and object."""
    try:
        text = payload.decode("utf-8")
        stripe.WebhookSignature.verify_header(text, signature, settings.STRIPE_WEBHOOK_SECRET)
    except stripe.SignatureVerificationError as exc:
        raise WebhookSignatureInvalid("The webhook signature does not match.", code="bad_signature") from exc
    except ValueError as exc:  # not UTF-8
        raise WebhookSignatureInvalid("The webhook body is not JSON.", code="bad_payload") from exc
    # Validly signed is not the same as well formed: check the shape before reading it (an array, an event
    # without data, ids longer than Stripe's 255 characters are refused as a bad payload, never a crash).
    try:
        event = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise WebhookSignatureInvalid("The webhook body is not JSON.", code="bad_payload") from exc
    data = event.get("data") if isinstance(event, dict) else None
    obj = data.get("object") if isinstance(data, dict) else None
    event_id, event_type = (event.get("id"), event.get("type")) if isinstance(event, dict) else (None, None)
    if not (isinstance(event_id, str) and isinstance(event_type, str) and isinstance(obj, dict)):
        raise WebhookSignatureInvalid("The webhook body is not a Stripe event with data.", code="bad_payload")
    object_type, object_id = obj.get("object", ""), obj.get("id", "")
    if not (isinstance(object_type, str) and isinstance(object_id, str)):
        raise WebhookSignatureInvalid("The event's object has no valid type and id.", code="bad_payload")
    if not 0 < len(event_id) <= MAX_ID_LENGTH or len(object_id) > MAX_ID_LENGTH or len(event_type) > MAX_ID_LENGTH:
        raise WebhookSignatureInvalid("An id in the event is longer than Stripe's 255 characters.", code="bad_payload")
    return WebhookEvent(id=event_id, type=event_type, object_type=object_type, object_id=object_id)
