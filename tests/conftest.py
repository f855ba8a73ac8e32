from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


import pytest  # noqa: E402
from django.conf import settings as django_settings  # noqa: E402

from marketplace.localstripe_server import LocalStripe, free_port  # noqa: E402


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """Hashing with PBKDF2 dominates the suite's time; tests check behaviour, not the hash's strength."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


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
def cast(db):
    """The shared people and their two groups (tests/personas.py): staff, alice, bob, carol, dave."""
    from tests.personas import cast_build

    return cast_build()


@pytest.fixture
def celery_worker_process(worker_env, tmp_path):
    """A real Celery worker on both queues, ready before the test starts and stopped after it. Its environment is
    the requesting suite's ``worker_env`` (tests/integration, tests/browser): database, broker, model cache."""
    from marketplace.devtools.worker import CeleryWorker
    from tests.support.workers import worker_name

    with CeleryWorker(log_path=tmp_path / "worker.log", env=worker_env, name=worker_name()) as worker:
        yield worker
