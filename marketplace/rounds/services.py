"""Rounds: creation, editing and the status machine (draft -> open -> closed -> training -> delivered, or failed/cancelled)."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from marketplace.core.errors import AppError, Conflict
from marketplace.core.transitions import compare_and_set
from marketplace.rounds.models import Round

S = Round.Status

def round_transition(*, round: Round, from_status: str, to_status: str, detail: str = "") -> bool:
    """Compare-and-set the round's status. True when this call moved it; False when it was no longer `from_status`."""
    if to_status not in Round.TRANSITIONS[from_status]:
        raise AppError(f"A round cannot go from {from_status} to {to_status}.", code="bad_transition")
    extra: dict[str, Any] = {"status_detail": detail} if detail else {}
    moved = compare_and_set(
        Round, pk=round.pk, from_status=from_status, to_status=to_status, status_changed_at=timezone.now(), **extra
    )
    if moved:
        round.status = to_status
        if detail:
            round.status_detail = detail
    return moved


def round_lock_for_bidding(*, round_id: int) -> Round:
    """Lock the round row, shared, for the rest of the transaction and check the window.

    Bids take the row FOR SHARE and the close (like every status change) FOR UPDATE, so a bid racing the close is
    either fully in before the close reads the bids, or sees the round closed and is refused: never half in. Shared,
    because bids of different groups do not conflict with one another: under an exclusive lock every bid of the
    round queued behind the one in flight. What bids must not do at once is guarded by the card rows they lock
    (``marketplace.billing.bids``). SQLite has no row locks; it runs one writing transaction at a time anyway.
    """
    connection = transaction.get_connection()
    if not connection.in_atomic_block:
        raise RuntimeError("round_lock_for_bidding must run inside transaction.atomic()")
    if connection.vendor == "postgresql":
        table = connection.ops.quote_name(Round._meta.db_table)
        found = list(Round.objects.raw(f"SELECT * FROM {table} WHERE id = %s FOR SHARE", [round_id]))  # noqa: S611 - the table name is ours
        if not found:
            raise Round.DoesNotExist(f"No round {round_id}.")
        round = found[0]
    else:
        round = Round.objects.select_for_update().get(pk=round_id)
    state = round.window_state()
    if state in ("not_open",) or (state == "after" and round.status != S.OPEN):
        raise Conflict(
            f"Bidding is not open for “{round.title}” (the round is {round.get_status_display().lower()}).",
            code="round_not_open",
        )
    if state == "before":
        raise Conflict(f"Bidding for “{round.title}” opens at {round.opens_at:%Y-%m-%d %H:%M} UTC.", code="round_not_open")
    if state == "after":
        raise Conflict(f"Bidding for “{round.title}” closed at {round.closes_at:%Y-%m-%d %H:%M} UTC.", code="round_closed")
    return round
