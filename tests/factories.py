"""Test data builders (factory_boy). Rows go through the ORM directly; behaviour under test goes through services.

``UserFactory()``, ``StaffFactory()``, ``GroupFactory(admin=alice, members=[bob])``, ``RoundFactory(status=...)``,
``BidFactory(round=r, group=g)``. The ``make_*`` functions below are the older spelling of the same builders, kept
so a test reads as it always did. The shared people (alice, bob, ...) are in tests/personas.py.
"""

from __future__ import annotations

from datetime import timedelta

import factory
from django.conf import settings
from django.utils import timezone
from factory.django import DjangoModelFactory

from marketplace.groups.models import Membership, PreferenceGroup
from marketplace.rounds.models import Bid, Round

PASSWORD = "correct-horse-battery-9"
PROMPTS = ("Question: How do I reset my password?\nAnswer:", "Question: Is shipping free?\nAnswer:")


class UserFactory(DjangoModelFactory):
    """A person with an account; logs in with ``PASSWORD``. The username is the (lower-cased) email."""

    class Meta:
        model = settings.AUTH_USER_MODEL
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"user{n}@example.com")
    username = factory.LazyAttribute(lambda o: o.email)
    password = factory.django.Password(PASSWORD)


class StaffFactory(UserFactory):
    """An operator: staff and superuser."""

    email = factory.Sequence(lambda n: f"staff{n}@example.com")
    is_staff = True
    is_superuser = True


class GroupFactory(DjangoModelFactory):
    """A preference group with its admin (a new user unless given) and, optionally, ``members=[...]``."""

    class Meta:
        model = PreferenceGroup
        skip_postgeneration_save = True

    class Params:
        admin = factory.SubFactory(UserFactory)

    name = factory.Sequence(lambda n: f"Group {n}")
    slug = factory.Sequence(lambda n: f"group-{n}")
    created_by = factory.SelfAttribute("admin")

    @factory.post_generation
    def admin_membership(group: PreferenceGroup, create: bool, extracted, **kwargs) -> None:
        if create:
            Membership.objects.create(group=group, user=group.created_by, role=Membership.Role.ADMIN)

    @factory.post_generation
    def members(group: PreferenceGroup, create: bool, extracted, **kwargs) -> None:
        for member in extracted or ():
            Membership.objects.create(group=group, user=member, role=Membership.Role.MEMBER)


class RoundFactory(DjangoModelFactory):
    """An open round on the tiny model, two prompts, bidding open from an hour ago until tomorrow."""

    class Meta:
        model = Round

    title = factory.Sequence(lambda n: f"Round {n}")
    slug = factory.Sequence(lambda n: f"round-{n}")
    base_model = "tiny"
    prompts = factory.LazyFunction(lambda: list(PROMPTS))
    kl_weight = 1.0
    candidates_per_prompt = 4
    currency = "usd"
    opens_at = factory.LazyFunction(lambda: timezone.now() - timedelta(hours=1))
    closes_at = factory.LazyFunction(lambda: timezone.now() + timedelta(days=1))
    status = Round.Status.OPEN
    created_by = factory.SubFactory(StaffFactory)


class BidFactory(DjangoModelFactory):
    """A group's active bid, written directly (no card hold: billing tests go through ``bid_place``)."""

    class Meta:
        model = Bid

    round = factory.SubFactory(RoundFactory)
    group = factory.SubFactory(GroupFactory)
    amount_cents = 5_000
    currency = factory.LazyAttribute(lambda o: o.round.currency)
    placed_by = factory.LazyAttribute(lambda o: o.group.memberships.get(role=Membership.Role.ADMIN).user)


# --- the older spelling --------------------------------------------------------------------------------------------


def make_user(email: str | None = None, *, staff: bool = False, password: str = PASSWORD):
    fields = {"password": password}
    if email:
        fields["email"] = email.lower()
    return (StaffFactory if staff else UserFactory)(**fields)


def make_group(*, admin=None, members=(), name: str | None = None) -> PreferenceGroup:
    fields = {"name": name} if name else {}
    if admin is not None:
        fields["admin"] = admin
    return GroupFactory(members=list(members), **fields)


def make_group_with_card(card: str = "pm_card_visa"):
    """A new group and its admin, with `card` (a localstripe test card id) saved through the real service; needs
    the ``localstripe`` fixture. Returns (group, admin)."""
    from marketplace.billing.services import billing_card_attach

    admin = make_user()
    group = make_group(admin=admin)
    billing_card_attach(group=group, by=admin, payment_method_id=card)
    return group, admin


def make_round(*, status: str = Round.Status.OPEN, created_by=None, prompts=None, **fields) -> Round:
    if created_by is not None:
        fields["created_by"] = created_by
    if prompts:
        fields["prompts"] = prompts
    return RoundFactory(status=status, **fields)


def make_bid(*, round: Round, group: PreferenceGroup, amount_cents: int = 5_000, placed_by=None) -> Bid:
    fields = {"placed_by": placed_by} if placed_by is not None else {}
    return BidFactory(round=round, group=group, amount_cents=amount_cents, **fields)
