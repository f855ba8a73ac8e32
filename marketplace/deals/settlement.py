"""A published pay-for-performance contract applied to a delivered round's charges (docs/economics.md, "On the site").

The rule, in one place:

1. The group's outcome is the bin of the contract's ``inputs["outcome_edges"]`` (k + 1 increasing numbers for k
   outcomes, on the groups' normalised [0, 1] reward scale) that the group's delivered reward D falls in, D being
   the measure billing already uses (``GroupOutcome.delivered_reward_candidates``: the adapter's reweighting of the
   round's fixed candidates, scored by the group's own reward model as the auction scored them). A bin is
   ``[e_j, e_{j+1})``; D below the first edge counts as the worst outcome and D at or above the last as the best, so
   the outcome never decreases as D grows.
2. The model charge becomes ``min(current charge, payments_cents[outcome])``, rounded down to an amount the currency
   can charge. The current charge is already ``min(auction price, delivery guarantee)`` <= bid, so the result is never
   above the hold (bid + fee); the fee is not touched.
3. The contract *binds* when its payment is below the current charge; only then does ``charge_basis`` become
   ``"contract"``. The outcome reached and the contract's payment are recorded either way.

It reads no database: plain numbers in, a frozen dataclass out, so the rule has its own property tests.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass

from marketplace.core import currency
from marketplace.core.errors import AppError

CONTRACT_BASIS = "contract"


@dataclass(frozen=True)
class ContractCharge:
    outcome: int  # index into the contract's outcomes (0 the worst)
    payment_cents: int  # the contract's payment for that outcome, chargeable in the currency
    charge_cents: int  # min(current charge, payment_cents)
    binds: bool  # the contract lowered the charge


def equal_width_edges(outcomes: int) -> list[float]:
    """The default bins of a contract entered by hand: ``outcomes`` equal-width ranges over [0, 1]."""
    if outcomes < 1:
        raise AppError("A contract needs at least one outcome.", field="outcome_edges")
    return [j / outcomes for j in range(outcomes + 1)]


def edges_check(edges: list[float], outcomes: int) -> list[float]:
    """Edges for ``outcomes`` bins: outcomes + 1 finite, strictly increasing numbers (AppError otherwise)."""
    if len(edges) != outcomes + 1:
        raise AppError(f"Give {outcomes + 1} edges for {outcomes} outcomes.", field="outcome_edges")
    if any(not isinstance(e, int | float) or not math.isfinite(e) for e in edges):
        raise AppError("Edges must be finite numbers.", field="outcome_edges")
    if any(a >= b for a, b in zip(edges, edges[1:], strict=False)):
        raise AppError("Edges must increase strictly from the worst outcome to the best.", field="outcome_edges")
    return [float(e) for e in edges]


def outcome_of(*, delivered: float, edges: list[float]) -> int:
    """The bin D falls in (step 1 above): bins [e_j, e_{j+1}), clamped to the first and the last."""
    outcomes = len(edges) - 1
    return min(max(bisect_right(edges, delivered) - 1, 0), outcomes - 1)


@dataclass(frozen=True)
class ContractTerms:
    """What settlement reads of a published contract: its bin edges and its payment per outcome."""

    edges: list[float]
    payments_cents: list[int]
    labels: list[str]


def contract_terms(contract) -> ContractTerms:
    """A published ``RoundContract``'s terms. A contract saved before edges were required has none stored: it is
    read with the default equal-width bins over [0, 1] that the staff form proposes."""
    payments = [int(c) for c in contract.payments_cents]
    stored = (contract.inputs or {}).get("outcome_edges")
    edges = edges_check(list(stored), len(payments)) if stored else equal_width_edges(len(payments))
    labels = (contract.inputs or {}).get("outcomes") or [str(j + 1) for j in range(len(payments))]
    return ContractTerms(edges=edges, payments_cents=payments, labels=[str(x) for x in labels])


def contract_charge(*, current_cents: int, delivered: float, terms: ContractTerms, currency_code: str) -> ContractCharge:
    """Steps 1-3 above for one group."""
    outcome = outcome_of(delivered=delivered, edges=terms.edges)
    payment = currency.charge_floor(max(0, int(terms.payments_cents[outcome])), currency_code)
    charge = min(int(current_cents), payment)
    return ContractCharge(outcome=outcome, payment_cents=payment, charge_cents=charge, binds=payment < current_cents)


def contract_settle(
    *, terms: ContractTerms | None, charge_cents: int, charge_basis: str, delivered: float, currency_code: str
) -> dict[str, object]:
    """The GroupOutcome fields that fix a group's charge at delivery: unchanged without a published contract, else
    the contract's charge with the outcome reached (``auction_delivery_settle`` writes them)."""
    if terms is None:
        return {"charge_cents": charge_cents, "charge_basis": charge_basis}
    settled = contract_charge(current_cents=charge_cents, delivered=delivered, terms=terms, currency_code=currency_code)
    return {
        "charge_cents": settled.charge_cents,
        "charge_basis": CONTRACT_BASIS if settled.binds else charge_basis,
        "contract_outcome": settled.outcome,
        "contract_payment_cents": settled.payment_cents,
    }
