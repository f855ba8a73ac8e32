"""Watching PostgreSQL's row locks from a test, to put two threads in a known order without sleeping and hoping.

Each thread has its own database connection (Django opens one per thread), so each has its own backend process.
A thread that holds a lock can wait until another backend is queued behind it:

    pids["bid"] = backend_pid()                      # in the bidding thread, before it starts
    wait_until_blocked(waiter=lambda: pids.get("bid"), blocker=backend_pid(), timeout=5)   # in the lock holder
"""

from __future__ import annotations

import time
from collections.abc import Callable

from django.db import connection


def backend_pid() -> int:
    """The PostgreSQL backend serving this thread's connection."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def wait_until_blocked(*, waiter: int | Callable[[], int | None], blocker: int, timeout: float) -> bool:
    """Poll until backend `waiter` is waiting for a lock that backend `blocker` holds (``pg_blocking_pids``).
    True once it is; False if that has not happened after `timeout` seconds. `waiter` may be a callable, for a
    thread that has not told its pid yet."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid = waiter() if callable(waiter) else waiter
        if pid is not None:
            with connection.cursor() as cursor:
                cursor.execute("SELECT %s = ANY(pg_blocking_pids(%s))", [blocker, pid])
                if cursor.fetchone()[0]:
                    return True
        time.sleep(0.01)
    return False
