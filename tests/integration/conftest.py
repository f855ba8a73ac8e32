"""The end-to-end suite's worker: a real Celery worker process on a private Redis database, against this test's
PostgreSQL database and the shared model cache. `celery_worker_process` (tests/conftest.py) starts it."""

from __future__ import annotations

import os

import pytest

from tests.support.workers import broker_switched, private_broker, redis_available, worker_database_url

BROKER_DB = 7


@pytest.fixture
def worker_env(transactional_db, settings):
    """Environment for a worker process that shares this test's database, a private Redis queue and the model cache."""
    if not redis_available():
        pytest.skip("Redis is not reachable; the end-to-end tests need it (make test starts it)")
    broker = private_broker(BROKER_DB)
    env = dict(os.environ)
    env.update(
        DATABASE_URL=worker_database_url(),
        CELERY_BROKER_URL=broker,
        MODEL_CACHE_DIR=str(settings.MODEL_CACHE_DIR),
        ARTIFACT_DIR=str(settings.ARTIFACT_DIR),
        STRIPE_API_BASE=settings.STRIPE_API_BASE,
        PYTHONUNBUFFERED="1",
        TRAINING_HEARTBEAT_STALE_S=os.environ.get("TRAINING_HEARTBEAT_STALE_S", "120"),
    )
    # The test process enqueues on the same broker.
    with broker_switched(broker):
        yield env
