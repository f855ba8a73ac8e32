"""Sponsored answers' fixtures: the engine's real /v1/embeddings handler (the bundled MiniLM encoder) on a loopback
port, campaigns, and a deployment that shows ads."""

from __future__ import annotations

import asyncio
import os
import socket
import threading

import pytest

from marketplace.billing.services import billing_card_attach
from marketplace.sponsored.models import Campaign, Impression, SponsoredSettings

# The real engine process, an adapter and a published model on it (test_sdk.py): the integration suite's fixtures.
from tests.integration.test_openai_sdk import adapter_dir, engine, served  # noqa: F401
from tests.marketplace.openai_api.conftest import publish_for


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def encoder_url():
    """``inference.server.embeddings`` served alone (no base model): the encoder the engine uses, over HTTP.

    The whole engine (``python -m inference serve``) runs in tests/marketplace/sponsored/test_sdk.py; here only the
    encoder is needed, and loading the base model for every services test would triple their time."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from aiohttp import web

    from inference.server import embeddings, errors_middleware

    port = _free_port()
    ready = threading.Event()
    loop = asyncio.new_event_loop()

    async def start() -> web.AppRunner:
        app = web.Application(middlewares=[errors_middleware])
        app.router.add_post("/v1/embeddings", embeddings)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        return runner

    def run() -> None:
        asyncio.set_event_loop(loop)
        runner = loop.run_until_complete(start())
        ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    ready.wait(30)
    yield f"http://127.0.0.1:{port}"
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


@pytest.fixture
def encoder(encoder_url, settings):
    settings.INFERENCE_URL = encoder_url
    return encoder_url


@pytest.fixture
def deployment(cast):
    """A published model the cast's group may use, with ads on (segment mode, requests may opt out)."""
    model = publish_for(groups=[cast.group])
    SponsoredSettings.objects.create(model=model, mode=SponsoredSettings.Mode.SEGMENT, users_may_opt_out=True)
    return model


def make_campaign(*, group, by, text: str = "Acme kettles boil water in one minute.", bid_cents: int = 50,
                  budget_cents: int = 2_000, status: str = Campaign.Status.ACTIVE, url: str = "https://acme.example/kettles",
                  name: str = "Kettles") -> Campaign:
    return Campaign.objects.create(group=group, created_by=by, name=name, ad_text=text, landing_url=url, bid_cents=bid_cents,
                                   daily_budget_cents=budget_cents, currency="usd", status=status)


def impression_of(entry: dict) -> Impression:
    """The impression an answer's sponsored entry stands for, from its link's signed token (the entry names none)."""
    from marketplace.sponsored.services import click_impression

    return click_impression(token=entry["url"].rstrip("/").rsplit("/", 1)[1])


@pytest.fixture
def funded(cast, localstripe):
    """Both of the cast's groups have a test card on file (localstripe)."""
    billing_card_attach(group=cast.group, by=cast.alice, payment_method_id="pm_card_visa")
    billing_card_attach(group=cast.other_group, by=cast.carol, payment_method_id="pm_card_visa")
    return cast
