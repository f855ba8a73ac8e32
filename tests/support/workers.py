"""What the end-to-end suites need around a real Celery worker: its database and broker, and waiting on it.

The worker process itself is ``marketplace.devtools.worker.CeleryWorker``, the same launcher the demo uses.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import pytest
from django.db import connection

from marketplace.devtools.worker import CeleryWorker

T = TypeVar("T")


def worker_name(prefix: str = "e2e") -> str:
    """A node name no other worker of this machine uses, so two test runs at once never look like one worker."""
    return f"{prefix}-{os.getpid()}-{time.monotonic_ns()}@%h"


def redis_url() -> str:
    return os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


def redis_available() -> bool:
    try:
        import redis

        return bool(redis.Redis.from_url(redis_url(), socket_connect_timeout=1).ping())
    except Exception:
        return False


def private_broker(db: int) -> str:
    """The Redis URL of database `db` on the test Redis server: one per suite, so two suites never share a queue."""
    return f"{redis_url().rsplit('/', 1)[0]}/{db}"


def worker_database_url() -> str:
    """This test's database as a URL a worker process can be given. The end-to-end tests need PostgreSQL."""
    db = connection.settings_dict
    if "postgresql" not in db["ENGINE"]:
        pytest.skip("the end-to-end tests run on PostgreSQL (set DATABASE_URL)")
    user = db.get("USER") or "postgres"
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or "5432"
    auth = f"{user}:{db['PASSWORD']}@" if db.get("PASSWORD") else f"{user}@"
    return f"postgres://{auth}{host}:{port}/{db['NAME']}"


@contextmanager
def broker_switched(broker: str) -> Iterator[None]:
    """Point this process's Celery app (the test, or the live server in it) at `broker`, emptied before and after."""
    from redis import Redis

    from marketplace.celery import app

    Redis.from_url(broker).flushdb()
    saved = app.conf.broker_url, app.conf.broker_transport_options
    app.conf.broker_url = broker
    app.conf.broker_transport_options = {"visibility_timeout": 3600}
    _forget_broker_connections(app)
    try:
        yield
    finally:
        app.conf.broker_url, app.conf.broker_transport_options = saved
        _forget_broker_connections(app)
        Redis.from_url(broker).flushdb()


def _forget_broker_connections(app) -> None:
    """Make the app connect anew (to the broker now configured) on its next send.

    What Celery itself does after a fork. Closing the pool instead (``app.pool.force_close_all()``) leaves the app
    holding a closed pool, and the next send fails with "Acquire on closed pool".
    """
    app._pool = None
    if "amqp" in app.__dict__:
        app.amqp._producer_pool = None


def wait_for(
    predicate: Callable[[], T],
    *,
    timeout: float,
    interval: float = 0.5,
    worker: CeleryWorker | None = None,
    what: str = "condition",
) -> T:
    """Poll `predicate` until it returns something truthy and return that; fail with the worker's log tail if the
    worker dies first or the time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if worker is not None and worker.pid is not None and not worker.running:
            raise AssertionError(f"the worker died while waiting for {what}:\n{worker.log_tail()}")
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}" + (f"\n{worker.log_tail()}" if worker else ""))
