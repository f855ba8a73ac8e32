"""Reads for the deals pages: who may see a group's revenue share, the round's contract, past evaluation outcomes."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings
from django.db.models import F, Sum

from marketplace.core.errors import NotAllowed, NotFound
from marketplace.deals.models import RevenueShare, RoundContract
from marketplace.deals.revenue import StatementDay, statement_days
from marketplace.deals.settlement import ContractTerms, contract_terms
from marketplace.delivery.models import FineTunedModel, ResaleListing, ResaleUsageDaily
from marketplace.groups.models import Membership, PreferenceGroup
from marketplace.rounds.models import Round
from marketplace.rounds.selectors import round_get_public
from training.models import Evaluation


@dataclass(frozen=True)
class ShareAccess:
    round: Round
    group: PreferenceGroup
    is_staff: bool


def revenue_share_access(*, user, round_slug: str, group_slug: str) -> ShareAccess:
    """A group's revenue-share page: its admins and staff only. Outsiders get the same NotFound as a missing page
    (decided before the round is looked up); members who are not admins get NotAllowed (403): the group's costs and
    share are its admins' business, as its bid amount is."""
    if not getattr(user, "is_authenticated", False):
        raise NotFound("Group not found.")
    group = PreferenceGroup.objects.filter(slug=group_slug).first()
    if group is None:
        raise NotFound("Group not found.")
    if not user.is_staff:
        membership = Membership.objects.filter(group=group, user=user).first()
        if membership is None:
            raise NotFound("Group not found.")
        if membership.role != Membership.Role.ADMIN:
            raise NotAllowed("Only the group's admins and staff can see its revenue share.")
    round = round_get_public(slug=round_slug, user=user)
    return ShareAccess(round=round, group=group, is_staff=bool(user.is_staff))


def revenue_share_of(*, round: Round, group: PreferenceGroup) -> RevenueShare | None:
    return RevenueShare.objects.filter(round=round, group=group).select_related("agreed_by").first()


def round_contract_of(*, round: Round) -> RoundContract | None:
    return RoundContract.objects.filter(round=round).first()


def round_contract_published(*, round: Round) -> RoundContract | None:
    """What groups see on the round page: the contract once staff published it, else nothing."""
    return RoundContract.objects.filter(round=round, status=RoundContract.Status.PUBLISHED).first()


@dataclass(frozen=True)
class PastOutcomes:
    """Per-group rewards measured by past rounds' evaluations: the base model's and the delivered model's."""

    rounds: int
    base: list[float]
    delivered: list[float]


def past_evaluation_outcomes(*, exclude_round: Round | None = None) -> PastOutcomes:
    """Every finished evaluation of other rounds (``training.Evaluation``): the base model's and the delivered
    adapter's expected reward per group, the two generators a provider could hand over."""
    rows = Evaluation.objects.select_related("job")
    if exclude_round is not None:
        rows = rows.exclude(job__round=exclude_round)
    base: list[float] = []
    delivered: list[float] = []
    rounds = set()
    for evaluation in rows:
        pairs = [
            (evaluation.base.get(key), value)
            for key, value in (evaluation.delivered or {}).items()
            if isinstance(evaluation.base, dict)
        ]
        for b, d in pairs:
            if isinstance(b, int | float) and isinstance(d, int | float):
                base.append(float(b))
                delivered.append(float(d))
                rounds.add(evaluation.job.round_id)
    return PastOutcomes(rounds=len(rounds), base=base, delivered=delivered)


def round_contract_terms(*, round: Round) -> ContractTerms | None:
    """The terms billing applies at delivery: the published contract's (``deals.settlement.contract_terms``), or
    None when the round has no published contract (a draft is never applied)."""
    contract = round_contract_published(round=round)
    return contract_terms(contract) if contract is not None else None


@dataclass(frozen=True)
class ResaleStatement:
    """A group's resale of its model in a round: the listing, the share applied and the revenue per day. Its
    admins' and staff's only (reach it through ``revenue_share_access``)."""

    round: Round
    group: PreferenceGroup
    model: FineTunedModel | None
    listing: ResaleListing | None
    delta: float
    delta_agreed: bool  # False: no agreed share, settings.RESALE_PLATFORM_SHARE_DEFAULT applies
    delta_proposed: float | None = None  # a group admin's share that the platform has not confirmed yet
    days: list[StatementDay] = field(default_factory=list)

    @property
    def currency(self) -> str:
        return self.round.currency

    @property
    def totals(self) -> dict[str, int]:
        return {
            name: sum(getattr(d, name) for d in self.days)
            for name in ("tokens", "requests", "revenue_cents", "platform_cents", "group_cents")
        }


def resale_statement(*, round: Round, group: PreferenceGroup, days: int = 90) -> ResaleStatement:
    """The group's resale revenue per day (the latest ``days`` days with usage), split by its agreed share
    (``RevenueShare.delta``) or, without one, the platform's default share (``deals.revenue`` rounds).

    A share is agreed, and moves money, only when the platform's side recorded it (staff): a share a group admin
    records is the group's proposal, shown as such, until staff record the same or another one. Otherwise one side
    alone could set the other's cut (a group admin could write δ = 0)."""
    share = RevenueShare.objects.filter(round=round, group=group).select_related("agreed_by").first()
    agreed = share is not None and share.agreed_by is not None and share.agreed_by.is_staff
    delta = share.delta if agreed and share is not None else float(settings.RESALE_PLATFORM_SHARE_DEFAULT)
    model = FineTunedModel.objects.filter(round=round).first()
    listing = ResaleListing.objects.filter(model=model, group=group).first() if model is not None else None
    rows: list[tuple[object, int, int, int]] = []
    if listing is not None:
        recent = list(
            ResaleUsageDaily.objects.filter(listing=listing).values_list("day", flat=True).distinct().order_by("-day")[:days]
        )
        rows = [
            (r["day"], r["price_per_mtok_cents"], r["day_tokens"] or 0, r["day_requests"] or 0)
            for r in ResaleUsageDaily.objects.filter(listing=listing, day__in=recent)
            .values("day", "price_per_mtok_cents")
            .annotate(day_tokens=Sum(F("prompt_tokens") + F("completion_tokens")), day_requests=Sum("requests"))
        ]
    return ResaleStatement(
        round=round, group=group, model=model, listing=listing, delta=delta, delta_agreed=agreed,
        delta_proposed=share.delta if share is not None and not agreed else None,
        days=statement_days(rows, delta=delta),
    )
