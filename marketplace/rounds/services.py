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


# The first key of the round's advisory lock (the second is the round's id): a namespace, so another use of
# PostgreSQL's advisory locks cannot collide with it.
ROUND_LOCK_NAMESPACE = 7_310_001


def _round_advisory_lock(connection, round_id: int, *, shared: bool) -> None:
    """Queue for the round's advisory lock. PostgreSQL's lock manager serves it in turn: a shared request that comes
    after a waiting exclusive one waits behind it. A row's FOR SHARE does not: while the row is share-locked, a new
    FOR SHARE is granted at once, so a steady stream of bids could keep a close (FOR UPDATE) waiting for ever."""
    function = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {function}(%s, %s)", [ROUND_LOCK_NAMESPACE, round_id % 2**31])


def round_lock_exclusive(*, round_id: int, no_key: bool = False) -> Round:
    """Lock the round row against bids (and every other locker) for the rest of the transaction, waiting in turn
    with the bids in flight. Every change that must not interleave with a bid goes through here: status changes,
    edits, the candidate set, preference versions. ``no_key``: FOR NO KEY UPDATE (the row's key is not changed),
    which lets foreign-key checks from other transactions through."""
    connection = transaction.get_connection()
    if not connection.in_atomic_block:
        raise RuntimeError("round_lock_exclusive must run inside transaction.atomic()")
    if connection.vendor == "postgresql":
        _round_advisory_lock(connection, round_id, shared=False)
    return Round.objects.select_for_update(no_key=no_key).get(pk=round_id)


def round_lock_for_bidding(*, round_id: int) -> Round:
    """Lock the round, shared, for the rest of the transaction and check the window.

    Bids take the round shared and ``round_lock_exclusive`` takes it exclusively (the close, like every status change,
    goes through it), so a bid racing the close is either fully in before the close reads the bids, or sees the round
    closed and is refused: never half in. Shared, because bids of different groups do not conflict with one another:
    under an exclusive lock every bid of the round queued behind the one in flight. What bids must not do at once is
    guarded by the card rows they lock (``marketplace.billing.bids``). On PostgreSQL the advisory lock gives the
    order (a close waits for the bids in flight, and bids that come after it wait for it); the row's FOR SHARE keeps
    out any writer of the row that does not go through ``round_lock_exclusive``. SQLite has no row locks; it runs
    one writing transaction at a time anyway.
    """
    connection = transaction.get_connection()
    if not connection.in_atomic_block:
        raise RuntimeError("round_lock_for_bidding must run inside transaction.atomic()")
    if connection.vendor == "postgresql":
        _round_advisory_lock(connection, round_id, shared=True)
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
