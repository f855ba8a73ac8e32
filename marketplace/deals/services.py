"""Writes for the deals pages: a round's contract (draft, then published) and a group's agreed revenue share."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from marketplace.core.errors import AppError, Conflict
from marketplace.core.transitions import compare_and_set
from marketplace.deals.analysis import ContractResult
from marketplace.deals.models import RevenueShare, RoundContract
from marketplace.groups.models import PreferenceGroup
from marketplace.rounds.models import Round

# A contract is shown to groups before they bid, so it may be written and published only until bidding closes.
CONTRACT_EDITABLE = (Round.Status.DRAFT, Round.Status.OPEN)


def round_contract_save(*, round: Round, by, inputs: dict, result: ContractResult) -> RoundContract:
    """Create or replace the round's draft contract. A published contract is final (Conflict)."""
    if round.status not in CONTRACT_EDITABLE:
        raise Conflict("The contract can be changed only before bidding closes.")
    with transaction.atomic():
        current = RoundContract.objects.select_for_update().filter(round=round).first()
        if current is not None and current.status != RoundContract.Status.DRAFT:
            raise Conflict("This round's contract is published; it can no longer change.")
        fields = {
            "inputs": inputs,
            "payments": result.payments,
            "payments_cents": result.payments_cents,
            "expected_payment": result.expected_payment,
            "max_payment": result.max_payment,
            "created_by": by,
        }
        if current is None:
            return RoundContract.objects.create(round=round, **fields)
        for name, value in fields.items():
            setattr(current, name, value)
        current.save()
        return current


def round_contract_publish(*, round: Round, by) -> bool:
    """Publish the round's draft contract (compare-and-set draft -> published); False when already published."""
    if round.status not in CONTRACT_EDITABLE:
        raise Conflict("The contract can be published only before bidding closes.")
    contract = RoundContract.objects.filter(round=round).first()
    if contract is None:
        raise Conflict("Compute and save a contract first.")
    return compare_and_set(
        RoundContract,
        pk=contract.pk,
        from_status=RoundContract.Status.DRAFT,
        to_status=RoundContract.Status.PUBLISHED,
        published_at=timezone.now(),
    )


def revenue_share_record(
    *, round: Round, group: PreferenceGroup, by, delta: float, c0: float, c1: float, r: float
) -> RevenueShare:
    """Record (or replace) the share of resale revenue agreed for the group's model in this round."""
    if not 0.0 <= delta <= 1.0:
        raise AppError("The share must be between 0 and 1.", field="delta")
    share, _ = RevenueShare.objects.update_or_create(
        round=round,
        group=group,
        defaults={
            "delta": delta,
            "inputs": {"c0": c0, "c1": c1, "r": r},
            "agreed_by": by,
            "agreed_at": timezone.now(),
        },
    )
    return share
