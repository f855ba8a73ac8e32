"""Fixtures for the marketplace tests: a real localstripe for the whole session, and a group with a card on file."""

from __future__ import annotations

import os

import pytest
from django.conf import settings as django_settings

from marketplace.localstripe_server import LocalStripe, free_port
from tests.factories import make_group, make_user


@pytest.fixture(scope="session")
def localstripe(tmp_path_factory):
    """localstripe on a free loopback port (or LOCALSTRIPE_TEST_PORT), its state under pytest's tmp dir; the Stripe
    settings point at it for the session and are put back afterwards."""
    state = tmp_path_factory.mktemp("localstripe") / "state"
    port = int(os.environ.get("LOCALSTRIPE_TEST_PORT", "0")) or free_port()
    saved = {name: getattr(django_settings, name) for name in ("STRIPE_API_BASE", "STRIPE_JS_URL", "STRIPE_SECRET_KEY")}
    with LocalStripe(port=port, state_path=state, from_scratch=True) as server:
        django_settings.STRIPE_API_BASE = server.url
        django_settings.STRIPE_JS_URL = f"{server.url}/js.stripe.com/v3/"
        django_settings.STRIPE_SECRET_KEY = "sk_test_localstripe"
        try:
            yield server
        finally:
            for name, value in saved.items():
                setattr(django_settings, name, value)


@pytest.fixture
def stripe_down(localstripe, settings):
    """Point the gateway at a loopback port where nothing listens, for this test only."""
    settings.STRIPE_API_BASE = f"http://127.0.0.1:{free_port()}"
    return settings


@pytest.fixture
def group_admin(db):
    return make_user()


@pytest.fixture
def group_with_card(localstripe, group_admin):
    """A group whose admin saved pm_card_visa through the real service (so it exists at localstripe)."""
    from marketplace.services.billing import billing_card_attach

    group = make_group(admin=group_admin)
    billing_card_attach(group=group, by=group_admin, payment_method_id="pm_card_visa")
    return group
