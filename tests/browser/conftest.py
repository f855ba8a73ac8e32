"""Browser tests: Playwright (sync API) driving Debian's Chromium against pytest-django's live server.

Every test here gets its own localstripe on a free port (the page's Stripe.js stand-in and the server's Stripe calls
both go there) and, where the round has to run, a real Celery worker on a private Redis database. Screenshots of
the main pages go to var/screenshots/ so a person can look at what the tests saw.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# Playwright's sync API runs an event loop in this thread; Django would otherwise refuse ORM calls from the test.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

from tests.support.workers import (  # noqa: E402 - after the environment switch above
    broker_switched,
    private_broker,
    redis_available,
    worker_database_url,
)

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("BROWSER_TESTS_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-quic",
    "--disable-sync",
]
SCREENSHOTS = ROOT / "var" / "screenshots"
# A Redis database of its own, so a browser run and an integration run at the same time never share a queue.
BROKER_DB = int(os.environ.get("BROWSER_TESTS_REDIS_DB", "9"))
DEFAULT_TIMEOUT_MS = 20_000


@pytest.fixture(scope="session")
def chromium():
    """One headless Chromium for the session; each user of a test gets a fresh context (its own cookies)."""
    if not CHROMIUM.exists():
        pytest.skip(f"browser tests need Chromium at {CHROMIUM} (apt-get install chromium); it is missing")
    sync_api = pytest.importorskip("playwright.sync_api", reason="browser tests need the playwright package")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


class BrowserErrors:
    """JavaScript errors and failed requests seen by the pages of one test, reported when the test fails."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def watch(self, page) -> None:
        page.on("pageerror", lambda exc: self.lines.append(f"page error on {page.url}: {exc}"))
        page.on("console", lambda msg: self._console(page, msg))
        page.on("response", self._response)

    def _console(self, page, msg) -> None:
        # Failed loads are reported with their address by _response.
        if msg.type == "error" and not msg.text.startswith("Failed to load resource"):
            self.lines.append(f"console error on {page.url}: {msg.text}")

    def _response(self, response) -> None:
        if response.status >= 400 and not response.url.endswith("/favicon.ico"):
            self.lines.append(f"HTTP {response.status} {response.request.method} {response.url}")


@pytest.fixture
def browser_errors() -> BrowserErrors:
    return BrowserErrors()


@pytest.fixture
def new_page(chromium, live_server, browser_errors, request) -> Iterator[Callable[[], object]]:
    """`new_page()` opens a page in a fresh browser context: one per person in the story."""
    contexts = []

    def open_page():
        context = chromium.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
        context.set_default_timeout(DEFAULT_TIMEOUT_MS)
        contexts.append(context)
        page = context.new_page()
        browser_errors.watch(page)
        return page

    yield open_page
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed and browser_errors.lines:
        print("\n".join(["Browser errors:", *browser_errors.lines]))
    for context in contexts:
        context.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call":
        item.rep_call = report
    return report


@pytest.fixture
def screenshot() -> Callable[[object, str], Path]:
    """`screenshot(page, "01-signup")` saves a full-page PNG under var/screenshots/."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def save(page, name: str) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return save


@pytest.fixture
def site(live_server, settings):
    """The live server's address, also used for links the site writes (invitation links)."""
    settings.SITE_URL = live_server.url
    return live_server


@pytest.fixture
def stripe_stand_in(tmp_path, settings) -> Iterator[str]:
    """localstripe on a free port for this test, with the site's Stripe API and Stripe.js both pointed at it."""
    from marketplace.localstripe_server import LocalStripe

    with LocalStripe(state_path=tmp_path / "localstripe" / "state", from_scratch=True) as stand_in:
        settings.STRIPE_API_BASE = stand_in.url
        settings.STRIPE_JS_URL = f"{stand_in.url}/js.stripe.com/v3/"
        yield stand_in.url


@pytest.fixture(scope="session")
def base_model_built() -> Path:
    """The tiny base model, built into the shared model cache before any worker needs it.

    A no-op once it is cached; the first build takes a minute or more on a busy machine, which would otherwise be
    spent inside the worker while the test waits for candidates.
    """
    from django.conf import settings

    from training.lib.basemodels import resolve_base

    return resolve_base("tiny", cache_dir=settings.MODEL_CACHE_DIR)


@pytest.fixture
def worker_env(base_model_built, stripe_stand_in, transactional_db, settings):
    """Environment of the browser suite's Celery worker: this test's database and localstripe,
    a Redis database of the browser suite's own, and a short training run so the whole round takes a minute or two.
    `celery_worker_process` (tests/conftest.py) starts the worker with it."""
    if not redis_available():
        pytest.skip("Redis is not reachable; the browser round test needs it (make test starts it)")
    broker = private_broker(BROKER_DB)
    env = dict(os.environ)
    env.update(
        DATABASE_URL=worker_database_url(),
        CELERY_BROKER_URL=broker,
        MODEL_CACHE_DIR=str(settings.MODEL_CACHE_DIR),
        ARTIFACT_DIR=str(settings.ARTIFACT_DIR),
        STRIPE_API_BASE=stripe_stand_in,
        PYTHONUNBUFFERED="1",
        TRAINING_DEFAULT_STEPS=os.environ.get("BROWSER_TESTS_TRAINING_STEPS", "20"),
        TRAINING_HEARTBEAT_STALE_S="120",
    )
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    # The live server (same process) enqueues on the worker's broker.
    with broker_switched(broker):
        yield env
