"""Small builders for test data. Rows go through the ORM directly; behaviour under test goes through services."""

from __future__ import annotations

import itertools
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.utils import timezone

from marketplace.models import Bid, Membership, PreferenceGroup, Round

_seq = itertools.count(1)
PASSWORD = "correct-horse-battery-9"


def make_user(email: str | None = None, *, staff: bool = False, password: str = PASSWORD):
    n = next(_seq)
    email = (email or f"user{n}@example.com").lower()
    user = get_user_model().objects.create_user(username=email, email=email, password=password)
    if staff:
        user.is_staff = True
        user.is_superuser = True
        user.save(update_fields=["is_staff", "is_superuser"])
    return user


def make_group(*, admin=None, members=(), name: str | None = None) -> PreferenceGroup:
    n = next(_seq)
    admin = admin or make_user()
    group = PreferenceGroup.objects.create(name=name or f"Group {n}", slug=f"group-{n}", created_by=admin)
    Membership.objects.create(group=group, user=admin, role=Membership.Role.ADMIN)
    for member in members:
        Membership.objects.create(group=group, user=member, role=Membership.Role.MEMBER)
    return group


def make_round(*, status: str = Round.Status.OPEN, created_by=None, prompts=None, **fields) -> Round:
    n = next(_seq)
    now = timezone.now()
    defaults = dict(
        title=f"Round {n}",
        slug=f"round-{n}",
        base_model="tiny",
        prompts=prompts or ["Question: How do I reset my password?\nAnswer:", "Question: Is shipping free?\nAnswer:"],
        kl_weight=1.0,
        candidates_per_prompt=4,
        currency="usd",
        opens_at=now - timedelta(hours=1),
        closes_at=now + timedelta(days=1),
        status=status,
    )
    defaults.update(fields)
    return Round.objects.create(created_by=created_by or make_user(staff=True), **defaults)


def make_bid(*, round: Round, group: PreferenceGroup, amount_cents: int = 5_000, placed_by=None) -> Bid:
    placed_by = placed_by or group.memberships.filter(role=Membership.Role.ADMIN).first().user
    return Bid.objects.create(round=round, group=group, amount_cents=amount_cents, currency=round.currency, placed_by=placed_by)
