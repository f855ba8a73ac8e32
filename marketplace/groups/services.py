"""Preference groups and their memberships. Role changes lock the group's memberships so the last-admin rule holds under races."""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.utils.text import slugify

from marketplace.core.errors import AppError, Conflict, NotAllowed, NotFound
from marketplace.groups.models import Membership, PreferenceGroup
from marketplace.verification.services import require_verified_email

Role = Membership.Role
# Slugs that would collide with fixed paths under /groups/.
RESERVED_SLUGS = {"new"}
LAST_ADMIN = "A group needs at least one admin: promote another member to admin first."


def _clean_name(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise AppError("Give the group a name.", field="name")
    if len(name) > 120:
        raise AppError("Keep the name under 120 characters.", field="name")
    return name


def _unique_slug(name: str) -> str:
    base = (slugify(name) or "group")[:120].strip("-") or "group"
    slug, n = base, 2
    while slug in RESERVED_SLUGS or PreferenceGroup.objects.filter(slug=slug).exists():
        slug, n = f"{base}-{n}", n + 1
    return slug


def group_create(*, user, name: str, description: str = "") -> PreferenceGroup:
    """Create a group with `user` as its first admin (an account with a confirmed address)."""
    require_verified_email(user=user)
    name = _clean_name(name)
    for _ in range(5):
        try:
            with transaction.atomic():
                group = PreferenceGroup.objects.create(
                    name=name, slug=_unique_slug(name), description=(description or "").strip(), created_by=user
                )
                Membership.objects.create(group=group, user=user, role=Role.ADMIN)
                return group
        except IntegrityError:
            # Another request took the same slug between the check and the insert; pick the next one.
            continue
    raise AppError("Could not find a free address for this group; try a slightly different name.", field="name")


def _require_admin(*, group: PreferenceGroup, user) -> None:
    if not Membership.objects.filter(group=group, user=user, role=Role.ADMIN).exists():
        raise NotAllowed("Only the group's admins can do this.")


def group_update(*, group: PreferenceGroup, by, name: str, description: str = "") -> PreferenceGroup:
    """Rename or re-describe a group. The slug stays, so links already shared keep working."""
    _require_admin(group=group, user=by)
    group.name = _clean_name(name)
    group.description = (description or "").strip()
    group.save(update_fields=["name", "description"])
    return group


def _lock_memberships(group_id: int) -> list[Membership]:
    """Lock every membership row of the group for the rest of the transaction; two admins demoting each other serialise here."""
    return list(Membership.objects.select_for_update().filter(group_id=group_id).order_by("pk"))


def _locked(memberships: list[Membership], pk: int) -> Membership:
    for membership in memberships:
        if membership.pk == pk:
            return membership
    raise NotFound("That person is no longer a member of this group.")


def _check_admin_in(memberships: list[Membership], user) -> None:
    if not any(m.user_id == user.pk and m.role == Role.ADMIN for m in memberships):
        raise NotAllowed("Only the group's admins can do this.")


def _admin_count(memberships: list[Membership]) -> int:
    return sum(1 for m in memberships if m.role == Role.ADMIN)


def membership_promote(*, membership: Membership, by) -> Membership:
    with transaction.atomic():
        memberships = _lock_memberships(membership.group_id)
        _check_admin_in(memberships, by)
        target = _locked(memberships, membership.pk)
        if target.role == Role.ADMIN:
            raise AppError(f"{target.user.email} is already an admin.", code="already_admin")
        Membership.objects.filter(pk=target.pk, role=Role.MEMBER).update(role=Role.ADMIN)
    membership.role = Role.ADMIN
    return membership


def membership_demote(*, membership: Membership, by) -> Membership:
    with transaction.atomic():
        memberships = _lock_memberships(membership.group_id)
        _check_admin_in(memberships, by)
        target = _locked(memberships, membership.pk)
        if target.role != Role.ADMIN:
            raise AppError(f"{target.user.email} is not an admin.", code="not_admin")
        if _admin_count(memberships) <= 1:
            raise Conflict(LAST_ADMIN, code="last_admin")
        Membership.objects.filter(pk=target.pk, role=Role.ADMIN).update(role=Role.MEMBER)
    membership.role = Role.MEMBER
    return membership


def membership_remove(*, membership: Membership, by) -> None:
    with transaction.atomic():
        memberships = _lock_memberships(membership.group_id)
        _check_admin_in(memberships, by)
        target = _locked(memberships, membership.pk)
        if target.role == Role.ADMIN and _admin_count(memberships) <= 1:
            raise Conflict(LAST_ADMIN, code="last_admin")
        Membership.objects.filter(pk=target.pk).delete()


def membership_leave(*, group: PreferenceGroup, user) -> None:
    with transaction.atomic():
        memberships = _lock_memberships(group.pk)
        mine = next((m for m in memberships if m.user_id == user.pk), None)
        if mine is None:
            raise NotFound("You are not a member of this group.")
        if mine.role == Role.ADMIN and _admin_count(memberships) <= 1:
            if len(memberships) == 1:
                raise Conflict(
                    "You are the only member. A group cannot be left empty; invite someone and make them admin first.",
                    code="last_admin",
                )
            raise Conflict("You are the last admin. " + LAST_ADMIN, code="last_admin")
        Membership.objects.filter(pk=mine.pk).delete()
