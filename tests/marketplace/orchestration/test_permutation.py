"""Prices do not depend on the order anything was created or saved in.

The same round is built several times on the real database: its groups created, its candidates inserted and the
groups' preference versions saved in permuted orders (so every primary key and timestamp order differs), then
scored by the real reward-model path (``reward_models_fit``: Bradley-Terry on MiniLM embeddings, a rubric, direct
scores) and priced by the real auction (``auction_run``). Every build must give bit-identical prices, promises and
results. Each build is rolled back before the next, so the group slugs are the same in every build while their ids
are not, and the embedding cache is emptied so each build embeds its own texts in its own order.
"""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from marketplace.models import PreferenceSubmission, Round
from marketplace.orchestration.auction import auction_run
from marketplace.rounds.outcomes import GroupOutcome
from tests.factories import GroupFactory, make_bid, make_round
from training.lib import rewards as reward_lib
from training.models import Candidate
from training.services.rewards import reward_models_fit

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

PROMPTS = ["Question: How do I reset my password?\nAnswer:", "Question: Is shipping free?\nAnswer:"]
TEXTS = [
    ["Click 'Forgot password' on the login page.", "Great question! Just click 'Forgot password'! You'll love it!",
     "Kindly select 'Forgot password' on the sign-in page.", "Click 'Forgot password' on the login page."],
    ["Yes, over $50.", "Absolutely! Shipping is free over $50, amazing!", "Shipping is complimentary for orders above $50.",
     "No."],
]
PAIRS = [
    (PROMPTS[0], TEXTS[0][0], TEXTS[0][1]), (PROMPTS[0], TEXTS[0][3], TEXTS[0][2]),
    (PROMPTS[1], TEXTS[1][0], TEXTS[1][1]), (PROMPTS[1], TEXTS[1][3], TEXTS[1][2]),
    (PROMPTS[1], TEXTS[1][0], TEXTS[1][2]), (PROMPTS[0], TEXTS[0][0], TEXTS[0][2]),
]
# slug -> (bid in cents, the versions it saves: (kind, payload, saved before the close?))
GROUPS = {
    "brisk-answers": (4_000, [("pairs", {"pairs": [{"prompt": p, "chosen": c, "rejected": r} for p, c, r in PAIRS]}, True)]),
    "cheer-squad": (2_500, [
        ("rubric", {"phrases": [{"phrase": "great", "weight": 1.0}], "target_length_words": None}, True),
        ("rubric", {"phrases": [{"phrase": "!", "weight": 2.0}, {"phrase": "love", "weight": 1.0}], "target_length_words": 8}, True),
        # Saved after the close: never counts, whatever order it was written in.
        ("rubric", {"phrases": [{"phrase": "Kindly", "weight": 5.0}], "target_length_words": None}, False),
    ]),
    "formal-office": (1_500, [("scores", {"scores": {"0:0": 0.1, "0:1": 0.0, "0:2": 1.0, "0:3": 0.4,
                                                     "1:0": 0.2, "1:1": 0.0, "1:2": 0.9, "1:3": 0.3}}, True)]),
    "even-keel": (2_500, [("rubric", {"phrases": [{"phrase": "free", "weight": 1.0}], "target_length_words": 5}, True)]),
}


def _build(order_seed: int) -> dict:
    """Build, score and price the round with everything done in the order ``order_seed`` shuffles; returns what was
    stored, keyed by group slug."""
    rng = random.Random(order_seed)
    reward_lib._EMBED_CACHE.clear()
    closes = timezone.now() - timedelta(minutes=10)
    round = make_round(status=Round.Status.CLOSED, prompts=PROMPTS, candidates_per_prompt=4, closes_at=closes,
                       kl_weight=0.75, seed=3)
    slots = [(p, k) for p in range(len(PROMPTS)) for k in range(4)]
    rng.shuffle(slots)
    for p, k in slots:
        Candidate.objects.create(round=round, prompt_index=p, index=k, text=TEXTS[p][k], base_logprob=-3.0 - k,
                                 base_logweight=[0.0, -0.5, 0.25, 0.0][k])
    slugs = list(GROUPS)
    rng.shuffle(slugs)
    groups = {slug: GroupFactory(slug=slug, name=slug.replace("-", " ").title()) for slug in slugs}
    rng.shuffle(slugs)
    for slug in slugs:
        make_bid(round=round, group=groups[slug], amount_cents=GROUPS[slug][0])
    # Every version of every group, saved in a shuffled order that keeps each group's own versions in sequence.
    queue = [slug for slug in GROUPS for _ in GROUPS[slug][1]]
    rng.shuffle(queue)
    written = dict.fromkeys(GROUPS, 0)
    for n, slug in enumerate(queue):
        kind, payload, before_close = GROUPS[slug][1][written[slug]]
        written[slug] += 1
        submission = PreferenceSubmission.objects.create(
            round=round, group=groups[slug], version=written[slug], kind=kind, payload=payload,
            submitted_by=groups[slug].memberships.get(role="admin").user,
        )
        saved_at = closes - timedelta(seconds=100 - n) if before_close else closes + timedelta(seconds=n)
        PreferenceSubmission.objects.filter(pk=submission.pk).update(created_at=saved_at)

    reward_models_fit(round=round)
    outcome = auction_run(round=round)
    rows = GroupOutcome.objects.filter(outcome=outcome).select_related("group")
    return {
        "groups": {
            go.group.slug: (go.payment_cents, go.payment, go.expected_reward, go.promised_value, go.utility,
                            go.without_reward, go.candidate_base_reward)
            for go in rows
        },
        "result": outcome.result,
        "instance": outcome.instance,
        "inputs_hash": outcome.inputs_hash,
        "welfare": outcome.welfare,
    }


def _build_and_roll_back(order_seed: int) -> dict:
    with transaction.atomic():
        built = _build(order_seed)
        transaction.set_rollback(True)
    return built


def test_permuting_the_order_of_groups_candidates_and_submissions_gives_bit_identical_prices():
    first = _build_and_roll_back(0)
    assert set(first["groups"]) == set(GROUPS)
    assert any(cents > 0 for cents, *_ in first["groups"].values()), "a round where nobody pays proves little"
    for order_seed in (1, 2, 3):
        again = _build_and_roll_back(order_seed)
        # Python floats compare bit for bit here (no NaN can reach a stored outcome).
        assert again["groups"] == first["groups"], f"order {order_seed}"
        assert again["result"] == first["result"], f"order {order_seed}"
        assert again["inputs_hash"] == first["inputs_hash"] and again["welfare"] == first["welfare"]


def test_the_counted_versions_are_the_last_before_the_close_in_every_order():
    built = _build_and_roll_back(5)
    scores = {slug: rewards for slug, rewards in built["instance"]["prompts"][0]["rewards"].items()}
    # cheer-squad's second version (exclamation marks, "love", 8 words) counts; its late "Kindly" one does not.
    assert scores["cheer-squad"].index(max(scores["cheer-squad"])) == 1
