"""Crash injection for the money path: the process dies right after the payment provider answered, before our
database recorded what it did. Retries, webhooks and the release sweep must find such half-done work by its
idempotency key and finish it, never repeat it.

    with crash_before_status_write(Payment.Status.CAPTURED, times=1) as lost:
        billing_capture_round_task.apply(args=[round.pk])   # Stripe captured; the CAPTURED write is lost
    # lost == [pk of the payment whose write was lost]

    with crash_after_call(bids.gateway, "hold_create"):
        bid_place(...)                                       # the hold exists at Stripe; bid_place dies after it
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest


class SimulatedCrash(RuntimeError):
    """Raised where the process would have died: nothing after this point of the interrupted code runs."""


@contextmanager
def crash_before_status_write(to_status: str, *, times: int | None = None) -> Iterator[list[int]]:
    """While the block runs, billing's compare-and-set to `to_status` raises SimulatedCrash instead of writing:
    the provider call before it has happened, the database never hears of it. `times` limits how many such writes
    are lost (default: all of them); yields the primary keys of the rows whose write was lost."""
    from marketplace.billing import services as billing_services

    real = billing_services.compare_and_set
    lost: list[int] = []

    def compare_and_set(model, **kwargs: Any) -> bool:
        if kwargs.get("to_status") == to_status and (times is None or len(lost) < times):
            lost.append(kwargs["pk"])
            raise SimulatedCrash(f"the worker died between the payment provider and writing {model.__name__} {to_status}")
        return real(model, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(billing_services, "compare_and_set", compare_and_set)
        yield lost


@contextmanager
def crash_after_call(owner: object, name: str) -> Iterator[list[Any]]:
    """While the block runs, ``owner.name(...)`` really happens and then raises SimulatedCrash, as if the process died
    the moment the answer came back. Yields the answers that were lost."""
    real = getattr(owner, name)
    answers: list[Any] = []

    def call_then_crash(*args: Any, **kwargs: Any) -> Any:
        answers.append(real(*args, **kwargs))
        raise SimulatedCrash(f"the process died right after {name} answered")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(owner, name, call_then_crash)
        yield answers
