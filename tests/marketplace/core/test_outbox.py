"""The outbox: a committed status always gets its task message, even when the broker is down at that moment.

A real redis-server on a free port is the broker here; the test stops it at close and starts it again.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time
from contextlib import contextmanager

import pytest
import redis
from django.urls import reverse

from marketplace.celery import app
from marketplace.core import tasknames
from marketplace.core.enqueue import outbox_relay
from marketplace.localstripe_server import free_port
from marketplace.outbox.models import OutboxMessage
from marketplace.rounds.models import Round
from tests.factories import make_round, make_user

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server on PATH"),
]


class Broker:
    """A throwaway redis-server that can be stopped and started again on the same port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port)
        for _ in range(100):
            try:
                client.ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

    def queued_tasks(self, queue: str = "default") -> list[tuple[str, list]]:
        messages = [json.loads(m) for m in redis.Redis(port=self.port).lrange(queue, 0, -1)]
        return [(m["headers"]["task"], json.loads(base64.b64decode(m["body"]))[0]) for m in messages]


@contextmanager
def celery_broker(url: str):
    old = app.conf.broker_url
    app.conf.broker_url = url
    app._after_fork()  # drop pooled connections to the old broker
    try:
        yield
    finally:
        app.conf.broker_url = old
        app._after_fork()


@pytest.fixture
def broker():
    b = Broker()
    b.start()
    with celery_broker(b.url):
        yield b
    b.stop()


def test_close_with_the_broker_down_answers_a_redirect_and_the_step_goes_out_when_the_broker_is_back(
    client, broker, django_capture_on_commit_callbacks
):
    staff = make_user(staff=True)
    round = make_round(created_by=staff)
    client.force_login(staff)
    broker.stop()

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("staff_round_close", kwargs={"slug": round.slug}))

    assert response.status_code == 302
    round.refresh_from_db()
    assert round.status == Round.Status.CLOSED
    message = OutboxMessage.objects.get()
    assert (message.task_name, message.args, message.sent_at) == (tasknames.ROUND_SETTLE, [round.pk], None)
    assert message.attempts == 1 and "Error" in message.last_error

    broker.start()
    assert broker.queued_tasks() == []
    # What the beat runs every OUTBOX_RELAY_INTERVAL_S seconds (and a worker runs when it starts).
    assert outbox_relay() == 1

    assert broker.queued_tasks() == [(tasknames.ROUND_SETTLE, [round.pk])]
    message.refresh_from_db()
    assert message.sent_at is not None
    assert outbox_relay() == 0  # sent once, not again


def test_the_relay_runs_every_few_seconds_not_every_fifteen_minutes():
    app.loader.import_default_modules()
    relay = [e for e in app.conf.beat_schedule.values() if e["task"] == tasknames.OUTBOX_RELAY]
    assert relay and relay[0]["schedule"] <= 10


def test_a_task_is_sent_right_after_commit_when_the_broker_is_up(broker, django_capture_on_commit_callbacks):
    from marketplace.core.enqueue import enqueue_after_commit

    with django_capture_on_commit_callbacks(execute=True):
        enqueue_after_commit(tasknames.ROUND_SAMPLE, 7)
        assert OutboxMessage.objects.get().sent_at is None  # written in the transaction, not yet sent

    assert broker.queued_tasks() == [(tasknames.ROUND_SAMPLE, [7])]
    assert OutboxMessage.objects.get().sent_at is not None


def test_a_rolled_back_transaction_leaves_no_message(broker, django_capture_on_commit_callbacks):
    from django.db import transaction

    from marketplace.core.enqueue import enqueue_after_commit

    with django_capture_on_commit_callbacks(execute=True):
        with pytest.raises(RuntimeError), transaction.atomic():
            enqueue_after_commit(tasknames.ROUND_SAMPLE, 8)
            raise RuntimeError
    assert not OutboxMessage.objects.exists() and broker.queued_tasks() == []
