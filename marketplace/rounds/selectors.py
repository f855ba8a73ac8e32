"""Reading rounds, preferences and bids, always with the viewer in mind: bids are sealed, drafts are staff-only."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, Q, QuerySet

from marketplace.core.errors import NotFound
from marketplace.groups.models import Membership, PreferenceGroup
from marketplace.groups.selectors import group_for_member, membership_of
from marketplace.rounds.models import Bid, PreferenceSubmission, Round

S = Round.Status


def rounds_public() -> QuerySet[Round]:
    """Rounds anyone may see: everything past draft, newest first."""
    return Round.objects.exclude(status=S.DRAFT).order_by("-opens_at", "-pk")


def rounds_for_staff() -> QuerySet[Round]:
    return Round.objects.order_by("-created_at", "-pk")


def round_get_public(*, slug: str, user=None) -> Round:
    """The round by slug; drafts exist only for staff."""
    round = Round.objects.filter(slug=slug).first()
    if round is None or (round.status == S.DRAFT and not getattr(user, "is_staff", False)):
        raise NotFound("Round not found.")
    return round


def round_get_for_staff(*, slug: str) -> Round:
    round = Round.objects.filter(slug=slug).first()
    if round is None:
        raise NotFound("Round not found.")
    return round


def rounds_public_listed() -> QuerySet[Round]:
    """``rounds_public()`` for a list: each round carries its count of groups with an active bid
    (``active_bid_groups``), one query for the whole list instead of one per round. Read it through
    ``round_participating_group_count``, which still hides it while bidding is open."""
    return rounds_public().annotate(
        active_bid_groups=Count("bids__group", filter=Q(bids__status=Bid.Status.ACTIVE), distinct=True)
    )


def round_participating_group_count(*, round: Round) -> int | None:
    """Groups with an active bid, or None while the count would leak who is bidding (before the close, or cancelled)."""
    if not round.participation_public:
        return None
    annotated = getattr(round, "active_bid_groups", None)  # from rounds_public_listed
    if annotated is not None:
        return annotated
    return Bid.objects.filter(round=round, status=Bid.Status.ACTIVE).values("group_id").distinct().count()


def bid_of_group(*, group: PreferenceGroup, round: Round) -> Bid | None:
    """The group's active bid in the round, if any. Callers decide who may see the amount."""
    return Bid.objects.filter(group=group, round=round, status=Bid.Status.ACTIVE).first()


def preferences_current(*, group: PreferenceGroup, round: Round) -> PreferenceSubmission | None:
    """The version that counts: the newest one (submissions are refused after close, so it is the last before it)."""
    return PreferenceSubmission.objects.filter(group=group, round=round).order_by("-version").first()


def preference_versions(*, group: PreferenceGroup, round: Round) -> QuerySet[PreferenceSubmission]:
    return (
        PreferenceSubmission.objects.filter(group=group, round=round)
        .select_related("submitted_by")
        .defer("payload")
        .order_by("-version")
    )


@dataclass(frozen=True)
class MemberRoundRow:
    group: PreferenceGroup
    role: str
    has_bid: bool
    submission: PreferenceSubmission | None

    @property
    def is_admin(self) -> bool:
        return self.role == Membership.Role.ADMIN


def round_rows_for_member(*, user, round: Round) -> list[MemberRoundRow]:
    """The viewer's groups and their part in this round: whether they bid (never how much) and their current preferences."""
    if not getattr(user, "is_authenticated", False):
        return []
    memberships = list(Membership.objects.filter(user=user).select_related("group").order_by("group__name"))
    groups = [m.group for m in memberships]
    bids = set(
        Bid.objects.filter(round=round, group__in=groups, status=Bid.Status.ACTIVE).values_list("group_id", flat=True)
    )
    latest: dict[int, PreferenceSubmission] = {}
    for submission in (
        PreferenceSubmission.objects.filter(round=round, group__in=groups).defer("payload").order_by("group_id", "-version")
    ):
        latest.setdefault(submission.group_id, submission)
    return [
        MemberRoundRow(group=m.group, role=m.role, has_bid=m.group_id in bids, submission=latest.get(m.group_id))
        for m in memberships
    ]


def round_bids_for_staff(*, round: Round) -> list[Bid] | None:
    """Every bid with its amount, for staff, once bidding is over; None while the round is draft or open (sealed)."""
    if round.bids_sealed:
        return None
    return list(Bid.objects.filter(round=round).select_related("group", "placed_by").order_by("group__name"))


@dataclass(frozen=True)
class RoundGroupAccess:
    round: Round
    group: PreferenceGroup
    membership: Membership

    @property
    def is_admin(self) -> bool:
        return self.membership.role == Membership.Role.ADMIN


def round_group_for_member(*, user, round_slug: str, group_slug: str) -> RoundGroupAccess:
    """A group's page in a round, for its members only. Outsiders (staff too) get the same NotFound as a missing page,
    checked before the round so that the answer never depends on whether the group exists."""
    group = group_for_member(user=user, slug=group_slug)
    round = round_get_public(slug=round_slug, user=user)
    membership = membership_of(user=user, group=group)
    if membership is None:  # left the group between the two reads
        raise NotFound("Group not found.")
    return RoundGroupAccess(round=round, group=group, membership=membership)


def group_round_rows(*, group: PreferenceGroup) -> list[dict]:
    """Every round past draft with this group's part in it: preferences submitted, bid placed (never the amount here)."""
    rounds = list(Round.objects.exclude(status=Round.Status.DRAFT).order_by("-opens_at", "-pk"))
    bids = set(
        Bid.objects.filter(group=group, status=Bid.Status.ACTIVE, round__in=rounds).values_list("round_id", flat=True)
    )
    latest: dict[int, PreferenceSubmission] = {}
    for submission in PreferenceSubmission.objects.filter(group=group, round__in=rounds).order_by("round_id", "-version"):
        latest.setdefault(submission.round_id, submission)
    rows = []
    for round in rounds:
        current = latest.get(round.pk)
        has_bid = round.pk in bids
        if has_bid and current:
            participation = "bid"
        elif current:
            participation = "submitted"
        else:
            participation = "none"
        rows.append({"round": round, "has_bid": has_bid, "submission": current, "participation": participation})
    return rows
