"""Fixtures for the marketplace tests: a real localstripe for the whole session, and a group with a card on file."""

from __future__ import annotations

import pytest

from marketplace.localstripe_server import free_port
from tests.factories import make_group, make_user


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
    from marketplace.billing.services import billing_card_attach

    group = make_group(admin=group_admin)
    billing_card_attach(group=group, by=group_admin, payment_method_id="pm_card_visa")
    return group


@pytest.fixture
def sent(monkeypatch):
    """The task names the services hand to Celery after commit (the broker itself is not what is tested here)."""
    from marketplace.celery import app

    names: list[tuple[str, list]] = []
    monkeypatch.setattr(app, "send_task", lambda name, args=None, **kw: names.append((name, args)))
    return names
