"""The people every suite shares, after healthchecks' alice, bob and charlie: one cast instead of a dict per file.

    staff  an operator (staff and superuser), in no group
    alice  admin of ``group``
    bob    member of ``group``
    carol  admin of ``other_group``, so a "member of some other group" is always at hand
    dave   signed up, in no group: the outsider

Everyone logs in with ``tests.factories.PASSWORD``. The ``cast`` fixture (tests/conftest.py) builds a fresh cast for
each test that asks for it.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import User

from marketplace.groups.models import PreferenceGroup
from tests.factories import GroupFactory, StaffFactory, UserFactory

# Distinctive, so "the page never shows the group's name" cannot pass by accident (no characters HTML escapes).
GROUP_NAME = "Zanzibar Quokka Collective"
OTHER_GROUP_NAME = "Yellowstone Marmot Guild"
# The viewers a permission table is written for, from least to most trusted within the group, and staff.
ROLES = ("anonymous", "outsider", "member", "admin", "staff")


@dataclass(frozen=True)
class Cast:
    staff: User
    alice: User
    bob: User
    carol: User
    dave: User
    group: PreferenceGroup
    other_group: PreferenceGroup

    def as_role(self, role: str) -> User | None:
        """The person who plays `role` (one of ROLES) towards ``group``; None for the anonymous visitor."""
        return {"anonymous": None, "outsider": self.dave, "member": self.bob, "admin": self.alice, "staff": self.staff}[role]


def cast_build() -> Cast:
    staff = StaffFactory(email="staff@example.com", first_name="Sam")
    alice = UserFactory(email="alice@example.com", first_name="Alice")
    bob = UserFactory(email="bob@example.com", first_name="Bob")
    carol = UserFactory(email="carol@example.com", first_name="Carol")
    dave = UserFactory(email="dave@example.com", first_name="Dave")
    group = GroupFactory(name=GROUP_NAME, slug="zanzibar-quokka-collective", admin=alice, members=[bob])
    other_group = GroupFactory(name=OTHER_GROUP_NAME, slug="yellowstone-marmot-guild", admin=carol)
    return Cast(staff=staff, alice=alice, bob=bob, carol=carol, dave=dave, group=group, other_group=other_group)
