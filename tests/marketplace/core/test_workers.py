"""Whether a worker is alive comes from heartbeats next to the broker: a Redis key with an expiry, or a file in the
filesystem broker's folder; an old heartbeat counts as no worker, and the staff round pages say so."""

from __future__ import annotations

import time

import pytest
from django.urls import reverse

from marketplace.celery import app
from marketplace.core import workers
from tests.factories import make_round, make_user
from tests.support.workers import redis_available

pytestmark = pytest.mark.django_db


@pytest.fixture
def filesystem_broker(tmp_path, settings):
    saved = app.conf.broker_url
    settings.CELERY_BROKER_FOLDER = tmp_path / "broker"
    settings.CELERY_TASK_ALWAYS_EAGER = False
    app.conf.broker_url = "filesystem://"
    workers.workers_cache_clear()
    yield
    app.conf.broker_url = saved
    workers.workers_cache_clear()


@pytest.fixture
def redis_broker(settings):
    if not redis_available():
        pytest.skip("Redis is not reachable")
    from redis import Redis

    from tests.support.workers import private_broker

    url = private_broker(12)
    Redis.from_url(url).flushdb()
    saved = app.conf.broker_url
    settings.CELERY_TASK_ALWAYS_EAGER = False
    app.conf.broker_url = url
    workers.workers_cache_clear()
    yield
    app.conf.broker_url = saved
    Redis.from_url(url).flushdb()
    workers.workers_cache_clear()


@pytest.mark.parametrize("broker", ["filesystem_broker", "redis_broker"])
def test_a_fresh_heartbeat_is_a_live_worker_and_an_old_one_is_not(broker, request) -> None:
    request.getfixturevalue(broker)
    assert not workers.workers_alive(use_cache=False).any_alive

    workers.heartbeat_write(hostname="w1@box", queues=["default"])
    status = workers.workers_alive(use_cache=False)
    assert status.hostnames == ("w1@box",) and status.missing() == ["training"]

    workers.heartbeat_write(hostname="w1@box", queues=["default"], at=time.time() - workers.ALIVE_WITHIN_S - 1)
    assert not workers.workers_alive(use_cache=False).any_alive

    workers.heartbeat_write(hostname="w1@box", queues=["default", "training"])
    workers.heartbeat_clear(hostname="w1@box")
    assert not workers.workers_alive(use_cache=False).any_alive


def test_staff_see_the_warning_on_both_round_pages_and_others_do_not(filesystem_broker, client) -> None:
    round = make_round(title="Warned round")
    staff = make_user("ops@example.com", staff=True)
    client.force_login(staff)
    for url in (reverse("staff_round_detail", kwargs={"slug": round.slug}), reverse("round_detail", kwargs={"slug": round.slug})):
        assert b"No Celery worker is running" in client.get(url).content

    client.force_login(make_user("member@example.com"))
    assert b"No Celery worker" not in client.get(reverse("round_detail", kwargs={"slug": round.slug})).content

    client.force_login(staff)
    workers.heartbeat_write(hostname="w1@box", queues=["default", "training"])
    workers.workers_cache_clear()
    assert b"No Celery worker" not in client.get(reverse("staff_round_detail", kwargs={"slug": round.slug})).content
