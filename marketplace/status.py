"""Compare-and-set status changes: the only way any status column in this project moves."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import models
from django.utils import timezone


def compare_and_set(
    model: type[models.Model],
    *,
    pk: int,
    from_status: str | Iterable[str],
    to_status: str,
    stamp_field: str | None = None,
    **fields: object,
) -> bool:
    """Move row `pk` from one of `from_status` to `to_status` in one UPDATE; True when this call made the change.

    A redelivered task, a double click or a second worker finds the row already moved and gets False, so the
    caller can treat the step as done by someone else instead of doing it twice.
    """
    allowed = [from_status] if isinstance(from_status, str) else list(from_status)
    if stamp_field:
        fields[stamp_field] = timezone.now()
    changed = model._default_manager.filter(pk=pk, status__in=allowed).update(status=to_status, **fields)
    return changed == 1
