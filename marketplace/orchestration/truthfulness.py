"""The staff truthfulness lab of a closed round: the lab's misreport sweeps (auctions.lab) on the round's real instance.

Read-only. The instance is the one the auction ran on, as stored on the outcome row (``AuctionOutcome.instance``), so
what the page shows is what each group faced: for each family of misreports, the group's true utility at every
report, the truthful report marked, and the best misreport's gain over the truth, which the mechanism makes <= 0 (up
to float rounding). Sweeping costs one solve per grid point, so a page sweeps at most ``MAX_GROUPS`` groups and names
the others, each reachable on its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from auctions.lab import LABELS, SYMBOLS, default_other, sweep
from auctions.mechanism import Instance
from auctions.misreport import FAMILIES, TRUTHFUL
from auctions.schema import instance_from_json
from marketplace.core.errors import NotFound
from marketplace.rounds.models import Round
from marketplace.rounds.outcomes import AuctionOutcome, GroupOutcome

MAX_GROUPS = 12
POINTS = 21


@dataclass(frozen=True)
class FamilySweep:
    family: str
    title: str
    symbol: str
    parameters: list[float]
    truthful_parameter: float
    value: list[float]
    payment: list[float]
    utility_with: list[float]
    truthful_utility: float
    best_parameter: float
    best_gain: float  # best misreport's utility minus the truth's, with payments: <= tolerance
    best_gain_without_payments: float  # the same without payments (value alone): usually > 0, lying would pay
    truth_is_best: bool


@dataclass(frozen=True)
class GroupLab:
    slug: str
    name: str
    bid: float
    sweeps: list[FamilySweep]


@dataclass(frozen=True)
class RoundLab:
    round: Round
    available: bool
    reason: str = ""
    currency: str = ""
    kl_weight: float = 0.0
    tolerance: float = 0.0
    groups: list[GroupLab] = field(default_factory=list)
    not_swept: list[tuple[str, str]] = field(default_factory=list)  # (slug, name) of the groups left for their own page
    selected: str | None = None


def _family(instance: Instance, index: int, family: str, *, points: int, tolerance: float) -> FamilySweep:
    other = default_other(instance, index) if family == "mixing" else None
    s = sweep(instance, index, family, other=other, points=points)
    utility = s.utility_with
    truth = float(utility[s.truthful_index])
    best = int(np.argmax(utility))
    gain = float(utility[best]) - truth
    gain_without = float(np.max(s.utility_without)) - float(s.utility_without[s.truthful_index])
    other_id = instance.group_ids[other] if other is not None else None
    return FamilySweep(
        family=family,
        title=LABELS[family].format(other=other_id),
        symbol=SYMBOLS[family],
        parameters=[float(x) for x in s.parameters],
        truthful_parameter=float(TRUTHFUL[family]),
        value=[float(x) for x in s.value],
        payment=[float(x) for x in s.payment],
        utility_with=[float(x) for x in utility],
        truthful_utility=truth,
        best_parameter=float(s.parameters[best]),
        best_gain=gain,
        best_gain_without_payments=gain_without,
        truth_is_best=gain <= tolerance,
    )


def round_truthfulness_lab(*, round: Round, group_slug: str | None = None, points: int = POINTS) -> RoundLab:
    """The lab's sweeps for each group of the round's stored auction (or for ``group_slug`` alone).

    A round without an outcome, or whose stored instance cannot be read, gives ``available=False`` with the reason; a
    ``group_slug`` that is not in the round's auction raises NotFound.
    """
    if round.bids_sealed:  # the instance carries every bid, which staff see only once bidding is over
        return RoundLab(round=round, available=False, reason="Bids are sealed until bidding closes.")
    outcome = AuctionOutcome.objects.filter(round=round).first()
    if outcome is None:
        return RoundLab(round=round, available=False, reason="The auction has not run for this round.")
    try:
        instance = instance_from_json(outcome.instance)
    except (ValueError, TypeError, KeyError) as exc:  # MechanismError is a ValueError
        return RoundLab(round=round, available=False, reason=f"The stored auction instance cannot be read: {exc}")
    names = dict(
        GroupOutcome.objects.filter(outcome=outcome).values_list("group__slug", "group__name")
    )
    ids = list(instance.group_ids)
    if group_slug is not None:
        if group_slug not in ids:
            raise NotFound("This group is not in the round's auction.")
        swept = [group_slug]
    else:
        swept = ids[:MAX_GROUPS]
    # Rounding of a payment is a few ulps of the round's total bid (docs/auction.md, "Accuracy"); anything a lie
    # gains beyond 1e-9 of that scale would be a real gain.
    tolerance = 1e-9 * (1.0 + float(np.sum(instance.bids)))
    groups = []
    for slug in swept:
        index = ids.index(slug)
        sweeps = [
            _family(instance, index, family, points=points, tolerance=tolerance)
            for family in FAMILIES
            if family != "mixing" or instance.n_groups >= 2
        ]
        groups.append(GroupLab(slug=slug, name=names.get(slug, slug), bid=float(instance.bids[index]), sweeps=sweeps))
    return RoundLab(
        round=round,
        available=True,
        currency=round.currency,
        kl_weight=float(instance.kl_weight),
        tolerance=tolerance,
        groups=groups,
        not_swept=[(slug, names.get(slug, slug)) for slug in ids if slug not in swept],
        selected=group_slug,
    )
