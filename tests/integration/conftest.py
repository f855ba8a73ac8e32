"""A real Celery worker process on Redis, against the test database, for the end-to-end tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


def _redis_url() -> str:
    return os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


def redis_available() -> bool:
    try:
        import redis

        return bool(redis.Redis.from_url(_redis_url(), socket_connect_timeout=1).ping())
    except Exception:
        return False


def _database_url() -> str:
    db = connection.settings_dict
    if "postgresql" not in db["ENGINE"]:
        pytest.skip("the end-to-end tests run on PostgreSQL (set DATABASE_URL)")
    user = db.get("USER") or "postgres"
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or "5432"
    auth = f"{user}:{db['PASSWORD']}@" if db.get("PASSWORD") else f"{user}@"
    return f"postgres://{auth}{host}:{port}/{db['NAME']}"


class Worker:
    def __init__(self, env: dict[str, str], log_path: Path, queues: str = "default,training") -> None:
        self.env = env
        self.log_path = log_path
        self.queues = queues
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "marketplace", "worker", "-Q", self.queues, "-c", "1",
             "--pool", "solo", "-l", "info", "--without-gossip", "--without-mingle", "--without-heartbeat",
             "-n", f"e2e-{os.getpid()}-{time.monotonic_ns()}@%h"],
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )

    def kill(self) -> None:
        """SIGKILL, as a crashed machine would: no clean-up, no acknowledgement."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


@pytest.fixture
def worker_env(tmp_path_factory, transactional_db, settings):
    """Environment for a worker process that shares this test's database, a private Redis queue and the model cache."""
    if not redis_available():
        pytest.skip("Redis is not reachable; the end-to-end tests need it (make test starts it)")
    from redis import Redis

    base = _redis_url().rsplit("/", 1)[0]
    broker = f"{base}/7"
    Redis.from_url(broker).flushdb()
    env = dict(os.environ)
    env.update(
        DATABASE_URL=_database_url(),
        CELERY_BROKER_URL=broker,
        MODEL_CACHE_DIR=str(settings.MODEL_CACHE_DIR),
        ARTIFACT_DIR=str(settings.ARTIFACT_DIR),
        STRIPE_API_BASE=settings.STRIPE_API_BASE,
        PYTHONUNBUFFERED="1",
        TRAINING_HEARTBEAT_STALE_S=os.environ.get("TRAINING_HEARTBEAT_STALE_S", "120"),
    )
    # The test process enqueues on the same broker.
    from marketplace.celery import app

    saved = (app.conf.broker_url, app.conf.broker_transport_options)
    app.conf.broker_url = broker
    app.conf.broker_transport_options = {"visibility_timeout": 3600}
    app._pool = None  # the next send opens a pool on the new broker
    yield env
    app.conf.broker_url, app.conf.broker_transport_options = saved
    app._pool = None
    Redis.from_url(broker).flushdb()


@pytest.fixture
def celery_worker_process(worker_env, tmp_path):
    worker = Worker(worker_env, tmp_path / "worker.log")
    worker.start()
    yield worker
    worker.stop()


def wait_for(predicate, *, timeout: float, interval: float = 0.5, worker: Worker | None = None, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if worker and worker.proc and worker.proc.poll() is not None:
            raise AssertionError(f"the worker died while waiting for {what}:\n{worker.log_tail()}")
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}" + (f"\n{worker.log_tail()}" if worker else ""))
