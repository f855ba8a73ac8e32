"""Whether any Celery worker is alive, from heartbeats the workers write next to the broker.

Why heartbeats and not ``app.control.ping()``: the workers run the solo pool (one task at a time in the main thread,
see ``marketplace.devtools.worker``), so a worker busy sampling or training answers no ping until its task ends, and
a ping would report "no worker" exactly while the work is happening. A daemon thread in each worker instead writes
a heartbeat every ``HEARTBEAT_EVERY_S`` whatever the main thread is doing. The heartbeat lives where the web and the
workers already meet, the broker: a Redis key with an expiry on a Redis broker, a file in the broker's folder on the
filesystem broker of the demo (which only works when both sides share that folder). On any other broker the check
falls back to a short ping.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from celery import current_app as app
from django.conf import settings

log = logging.getLogger(__name__)

HEARTBEAT_EVERY_S = 10
ALIVE_WITHIN_S = 45
CACHE_FOR_S = 5.0
REDIS_PREFIX = "tunemarket:worker-heartbeat:"


@dataclass(frozen=True)
class WorkerStatus:
    """The workers seen alive just now, and the queues they consume."""

    hostnames: tuple[str, ...] = ()
    queues: frozenset[str] = field(default_factory=frozenset)
    how: str = "heartbeat"

    @property
    def any_alive(self) -> bool:
        return bool(self.hostnames)

    def missing(self, wanted: tuple[str, ...] = ("default", "training")) -> list[str]:
        return [queue for queue in wanted if queue not in self.queues]


def _broker_url() -> str:
    return str(app.conf.broker_url or settings.CELERY_BROKER_URL)


def _heartbeat_folder() -> Path:
    return Path(settings.CELERY_BROKER_FOLDER) / "heartbeats"


def _redis(url: str):
    from redis import Redis

    return Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)


def heartbeat_write(*, hostname: str, queues: list[str], at: float | None = None) -> None:
    """Record that ``hostname`` is alive and consumes ``queues``; expires on its own after ALIVE_WITHIN_S."""
    url = _broker_url()
    now = time.time() if at is None else at
    body = json.dumps({"hostname": hostname, "queues": sorted(queues), "at": now})
    if url.startswith(("redis://", "rediss://")):
        _redis(url).set(REDIS_PREFIX + hostname, body, ex=ALIVE_WITHIN_S)
    elif url.startswith("filesystem://"):
        folder = _heartbeat_folder()
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{hostname}.tmp"
        tmp.write_text(body)
        tmp.replace(folder / f"{hostname}.json")


def heartbeat_clear(*, hostname: str) -> None:
    url = _broker_url()
    if url.startswith(("redis://", "rediss://")):
        _redis(url).delete(REDIS_PREFIX + hostname)
    elif url.startswith("filesystem://"):
        (_heartbeat_folder() / f"{hostname}.json").unlink(missing_ok=True)


def heartbeat_start(*, hostname: str, queues: list[str]) -> threading.Thread:
    """Write a heartbeat now and then every HEARTBEAT_EVERY_S from a daemon thread (the worker's main thread may be busy)."""

    def beat() -> None:
        while True:
            try:
                heartbeat_write(hostname=hostname, queues=queues)
            except Exception:  # a broker hiccup must not kill the worker; the next beat tries again
                log.warning("worker heartbeat failed", exc_info=True)
            time.sleep(HEARTBEAT_EVERY_S)

    thread = threading.Thread(target=beat, name="worker-heartbeat", daemon=True)
    thread.start()
    return thread


def _read_heartbeats(url: str, now: float) -> list[dict]:
    beats: list[dict] = []
    if url.startswith(("redis://", "rediss://")):
        client = _redis(url)
        for key in client.scan_iter(match=REDIS_PREFIX + "*", count=100):
            raw = client.get(key)
            if raw:
                beats.append(json.loads(raw))
    else:
        folder = _heartbeat_folder()
        for path in folder.glob("*.json") if folder.is_dir() else []:
            try:
                beats.append(json.loads(path.read_text()))
            except (OSError, ValueError):
                continue
    return [beat for beat in beats if now - float(beat.get("at", 0)) <= ALIVE_WITHIN_S]


def _ping() -> WorkerStatus:
    replies = app.control.ping(timeout=0.5) or []
    hostnames = tuple(sorted(name for reply in replies for name in reply))
    # A ping does not say which queues a worker consumes; assume the usual ones.
    return WorkerStatus(hostnames=hostnames, queues=frozenset({"default", "training"}) if hostnames else frozenset(), how="ping")


_cache: dict[str, tuple[float, WorkerStatus]] = {}
_cache_lock = threading.Lock()


def workers_alive(*, use_cache: bool = True) -> WorkerStatus | None:
    """The workers alive now (cached for CACHE_FOR_S per broker), or None when the broker cannot be asked at all."""
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return None  # tasks run inline: there is no worker to miss
    url = _broker_url()
    now = time.monotonic()
    with _cache_lock:
        hit = _cache.get(url)
        if use_cache and hit and now - hit[0] < CACHE_FOR_S:
            return hit[1]
    try:
        if url.startswith(("redis://", "rediss://", "filesystem://")):
            beats = _read_heartbeats(url, time.time())
            status = WorkerStatus(
                hostnames=tuple(sorted(str(b.get("hostname", "")) for b in beats)),
                queues=frozenset(q for b in beats for q in b.get("queues", [])),
            )
        elif url.startswith("memory://"):
            return None  # an in-process broker: nothing to run a worker against
        else:
            status = _ping()
    except Exception:
        log.warning("could not ask the broker whether a worker is alive", exc_info=True)
        return None
    with _cache_lock:
        _cache[url] = (now, status)
    return status


def workers_cache_clear() -> None:
    with _cache_lock:
        _cache.clear()
