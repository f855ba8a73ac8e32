"""Rounds: creation, editing and the status machine (draft -> open -> closed -> training -> delivered, or failed/cancelled)."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from marketplace.errors import AppError
from marketplace.models import Round
from marketplace.status import compare_and_set

S = Round.Status

# Which statuses each status may move to. Anything else is refused.
ROUND_TRANSITIONS: dict[str, set[str]] = {
    S.DRAFT: {S.OPEN, S.CANCELLED},
    S.OPEN: {S.CLOSED, S.CANCELLED},
    S.CLOSED: {S.TRAINING, S.FAILED, S.CANCELLED},
    S.TRAINING: {S.DELIVERED, S.FAILED, S.CANCELLED},
    S.DELIVERED: set(),
    S.FAILED: set(),
    S.CANCELLED: set(),
}


def round_transition(*, round: Round, from_status: str, to_status: str, detail: str = "") -> bool:
    """Compare-and-set the round's status. True when this call moved it; False when it was no longer `from_status`."""
    if to_status not in ROUND_TRANSITIONS[from_status]:
        raise AppError(f"A round cannot go from {from_status} to {to_status}.", code="bad_transition")
    fields: dict[str, object] = {"status_changed_at": timezone.now()}
    if detail:
        fields["status_detail"] = detail
    moved = compare_and_set(Round, pk=round.pk, from_status=from_status, to_status=to_status, **fields)
    if moved:
        round.status = to_status
        if detail:
            round.status_detail = detail
    return moved


def round_is_accepting_bids(*, round: Round, now=None) -> bool:
    now = now or timezone.now()
    return round.status == S.OPEN and round.opens_at <= now < round.closes_at


def round_lock_for_bidding(*, round_id: int) -> Round:
    """Lock the round row for the rest of the transaction and check the window.

    Bids and the close both take this lock, so a bid racing the close is either fully in before the close reads the
    bids, or sees the round closed and is refused: never half in.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("round_lock_for_bidding must run inside transaction.atomic()")
    round = Round.objects.select_for_update().get(pk=round_id)
    now = timezone.now()
    if round.status != S.OPEN:
        raise AppError(
            f"Bidding is not open for “{round.title}” (the round is {round.get_status_display().lower()}).",
            code="round_not_open",
            status=409,
        )
    if now < round.opens_at:
        raise AppError(f"Bidding for “{round.title}” opens at {round.opens_at:%Y-%m-%d %H:%M} UTC.", code="round_not_open", status=409)
    if now >= round.closes_at:
        raise AppError(f"Bidding for “{round.title}” closed at {round.closes_at:%Y-%m-%d %H:%M} UTC.", code="round_closed", status=409)
    return round
