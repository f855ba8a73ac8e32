"""Demo data: three groups with clearly different tastes, a staff operator and one round over the demo prompts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from marketplace.models import Membership, PreferenceGroup, Round

DEMO_PASSWORD = "demo-password-2026"


@dataclass(frozen=True)
class DemoGroup:
    slug: str
    name: str
    style: str
    kind: str  # how the group states its preferences: pairs, rubric or scores
    bid_cents: int
    admin_email: str
    member_email: str


DEMO_GROUPS = (
    DemoGroup("straight-talkers", "Straight Talkers", "concise", "pairs", 4_000, "ada@demo.test", "alan@demo.test"),
    DemoGroup("cheer-squad", "Cheer Squad", "enthusiastic", "rubric", 2_500, "grace@demo.test", "linus@demo.test"),
    DemoGroup("formal-office", "Formal Office", "formal", "scores", 1_500, "edsger@demo.test", "barbara@demo.test"),
)
STAFF_EMAIL = "operator@demo.test"


def _user(email: str, *, staff: bool = False):
    User = get_user_model()
    user, created = User.objects.get_or_create(username=email, defaults={"email": email, "is_staff": staff, "is_superuser": staff})
    if created:
        user.set_password(DEMO_PASSWORD)
        user.save()
    return user


@transaction.atomic
def demo_seed(*, prompts: list[str], kl_weight: float, candidates_per_prompt: int, title: str = "Support assistant, round 1") -> tuple[Round, dict[str, PreferenceGroup]]:
    """Create (or reuse) the demo users, groups and a fresh draft round; returns the round and groups by slug."""
    staff = _user(STAFF_EMAIL, staff=True)
    groups: dict[str, PreferenceGroup] = {}
    for spec in DEMO_GROUPS:
        admin = _user(spec.admin_email)
        member = _user(spec.member_email)
        group, _ = PreferenceGroup.objects.get_or_create(
            slug=spec.slug, defaults={"name": spec.name, "created_by": admin,
                                      "description": f"Wants {spec.style} answers."})
        Membership.objects.get_or_create(group=group, user=admin, defaults={"role": Membership.Role.ADMIN})
        Membership.objects.get_or_create(group=group, user=member, defaults={"role": Membership.Role.MEMBER})
        groups[spec.slug] = group
    now = timezone.now()
    # Runs of the demo are numbered among the demo's own rounds, not every round in the database.
    n = Round.objects.filter(slug__startswith="support-assistant-").count() + 1
    while Round.objects.filter(slug=f"support-assistant-{n}").exists():
        n += 1
    round = Round.objects.create(
        title=title if n == 1 else f"{title} (run {n})",
        slug=f"support-assistant-{n}",
        description="Three groups buy one shared support assistant: concise, enthusiastic or formal answers.",
        base_model="tiny",
        prompts=prompts,
        kl_weight=kl_weight,
        candidates_per_prompt=candidates_per_prompt,
        currency="usd",
        opens_at=now - timedelta(minutes=1),
        closes_at=now + timedelta(hours=1),
        seed=0,
        created_by=staff,
    )
    return round, groups


def pairs_jsonl(pairs: list[tuple[str, str, str]]) -> bytes:
    """Preference pairs as the JSONL file a group would upload (TRL's prompt/chosen/rejected format)."""
    import json

    return "".join(json.dumps({"prompt": p, "chosen": c, "rejected": r}) + "\n" for p, c, r in pairs).encode("utf-8")
