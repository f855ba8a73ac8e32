"""Reading groups, memberships and invitations, always through the viewer's membership."""

from __future__ import annotations

from django.db.models import Count, OuterRef, QuerySet, Subquery

from marketplace.errors import NotFound
from marketplace.models import Bid, Invitation, Membership, PreferenceGroup, PreferenceSubmission, Round
from marketplace.services.tokens import hash_token


def membership_of(*, user, group: PreferenceGroup) -> Membership | None:
    if not getattr(user, "is_authenticated", False):
        return None
    return Membership.objects.filter(user=user, group=group).first()


def is_group_admin(*, user, group: PreferenceGroup) -> bool:
    if not getattr(user, "is_authenticated", False):
        return False
    return Membership.objects.filter(user=user, group=group, role=Membership.Role.ADMIN).exists()


def group_for_member(*, user, slug: str) -> PreferenceGroup:
    """The group if `user` belongs to it. Outsiders (staff included) get the same NotFound as for a missing slug."""
    if not getattr(user, "is_authenticated", False):
        raise NotFound("Group not found.")
    group = PreferenceGroup.objects.filter(slug=slug, memberships__user=user).first()
    if group is None:
        raise NotFound("Group not found.")
    return group


def user_groups(*, user) -> QuerySet[PreferenceGroup]:
    """The user's groups, each annotated with `my_role` and `member_count`."""
    if not getattr(user, "is_authenticated", False):
        return PreferenceGroup.objects.none()
    role = Membership.objects.filter(group=OuterRef("pk"), user=user).values("role")[:1]
    # Filter through a subquery, not a join: a join on memberships would make the count see only the user's own row.
    mine = Membership.objects.filter(user=user).values("group_id")
    return (
        PreferenceGroup.objects.filter(pk__in=mine)
        .annotate(my_role=Subquery(role), member_count=Count("memberships", distinct=True))
        .order_by("name")
    )


def group_members(*, group: PreferenceGroup) -> QuerySet[Membership]:
    # "admin" sorts before "member": admins first, then by seniority.
    return group.memberships.select_related("user").order_by("role", "joined_at")


def group_admin_count(*, group: PreferenceGroup) -> int:
    return group.memberships.filter(role=Membership.Role.ADMIN).count()


def group_pending_invitations(*, group: PreferenceGroup) -> QuerySet[Invitation]:
    return group.invitations.filter(status=Invitation.Status.PENDING).select_related("invited_by").order_by("-created_at")


def invitation_for_token(*, token: str) -> Invitation | None:
    if not token or len(token) > 200:
        return None
    return Invitation.objects.select_related("group", "invited_by").filter(token_hash=hash_token(token)).first()


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
        submission = latest.get(round.pk)
        has_bid = round.pk in bids
        if has_bid and submission:
            participation = "bid"
        elif submission:
            participation = "submitted"
        else:
            participation = "none"
        rows.append({"round": round, "has_bid": has_bid, "submission": submission, "participation": participation})
    return rows
