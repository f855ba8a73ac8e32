"""Compare-and-set status changes against a model's transition table: the only way any status column moves.

Each model with a life cycle declares ``TRANSITIONS: dict[status, frozenset[next statuses]]`` beside its
``Status`` choices. ``compare_and_set`` refuses (with ``IllegalTransition``, a programming error, never shown to a
person) any move the table does not allow, so no code path can write a status the life cycle does not have.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from django.db import models
from django.db.models import Q
from django.utils import timezone


class IllegalTransition(RuntimeError):
    """A status write the model's transition table does not allow: a bug in the caller, not a user error."""


def transitions_of(model: type[models.Model]) -> Mapping[str, frozenset[str]]:
    table: Mapping[str, frozenset[str]] | None = getattr(model, "TRANSITIONS", None)
    if table is None:
        raise IllegalTransition(f"{model.__name__} declares no TRANSITIONS table")
    return table


def check_transition(model: type[models.Model], from_status: str, to_status: str) -> None:
    table = transitions_of(model)
    if from_status not in table:
        raise IllegalTransition(f"{model.__name__}: unknown status {from_status!r}")
    if to_status not in table[from_status]:
        raise IllegalTransition(f"{model.__name__} cannot go from {from_status} to {to_status}")


def compare_and_set(
    model: type[models.Model],
    *,
    pk: int,
    from_status: str | Iterable[str],
    to_status: str,
    stamp_field: str | None = None,
    where: Q | None = None,
    **fields: Any,
) -> bool:
    """Move row `pk` from one of `from_status` to `to_status` in one UPDATE; True when this call made the change.

    Every (from, to) pair is checked against the model's table first. A redelivered task, a double click or a second
    worker finds the row already moved and gets False, so the caller can treat the step as done by someone else
    instead of doing it twice. ``where`` narrows the row further (for example "only while this worker holds it").
    """
    allowed = [from_status] if isinstance(from_status, str) else list(from_status)
    for status in allowed:
        check_transition(model, status, to_status)
    if stamp_field:
        fields[stamp_field] = timezone.now()
    rows = model._default_manager.filter(pk=pk, status__in=allowed)
    if where is not None:
        rows = rows.filter(where)
    changed = rows.update(status=to_status, **fields)
    return changed == 1
