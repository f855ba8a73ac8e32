"""Reading groups, memberships and invitations, always through the viewer's membership."""

from __future__ import annotations

from django.db.models import Count, OuterRef, QuerySet, Subquery

from marketplace.accounts.tokens import hash_token
from marketplace.core.errors import NotFound
from marketplace.groups.models import Invitation, Membership, PreferenceGroup


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
