"""The project's localstripe launcher and the gateway's choice of Stripe endpoint."""

from __future__ import annotations

import psutil
import pytest

from marketplace.billing import stripe_gateway as gateway
from marketplace.localstripe_server import LocalStripe, is_answering


def test_the_launcher_listens_on_loopback_only_and_keeps_its_state_across_restarts(tmp_path, settings):
    state = tmp_path / "var" / "localstripe" / "state"
    with LocalStripe(state_path=state, from_scratch=True) as server:
        listening = [c.laddr.ip for c in psutil.Process(server.pid).net_connections(kind="inet") if c.status == "LISTEN"]
        assert listening == ["127.0.0.1"]
        settings.STRIPE_API_BASE = server.url
        customer_id = gateway.customer_create(name="Readers", metadata={"group_id": "1"}, idempotency_key="t-1")
        port = server.port
    assert state.exists() and not is_answering(f"http://127.0.0.1:{port}")

    with LocalStripe(port=port, state_path=state):
        card = gateway.card_attach(payment_method_id="pm_card_visa", customer_id=customer_id)
    assert card.customer_id == customer_id and card.last4 == "4242"


def test_it_refuses_to_start_where_something_already_answers(tmp_path):
    with LocalStripe(state_path=tmp_path / "a" / "state") as first:
        with pytest.raises(RuntimeError, match="already answers"):
            LocalStripe(port=first.port, state_path=tmp_path / "b" / "state").start()


def test_an_unreachable_stripe_is_reported_as_unavailable(stripe_down):
    with pytest.raises(gateway.GatewayUnavailable):
        gateway.customer_create(name="Readers", metadata={}, idempotency_key="t-2")


def test_without_an_api_base_the_gateway_talks_to_stripe_itself(settings):
    settings.STRIPE_SECRET_KEY = "sk_test_not_a_real_key"
    settings.STRIPE_API_BASE = ""
    client = gateway._client()
    assert client._requestor._options.base_addresses["api"] == "https://api.stripe.com"
