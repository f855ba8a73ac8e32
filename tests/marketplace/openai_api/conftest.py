from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from marketplace.accounts.tokens import api_token_create
from marketplace.delivery.models import FineTunedModel
from marketplace.models import AuctionOutcome, GroupOutcome, Round
from tests.factories import make_round
from training.models import RewardModel


def publish_for(*, groups, adapter_dir: str = "/nonexistent/adapter", slug: str | None = None) -> FineTunedModel:
    """A delivered round the given groups bid in (its auction outcome and rubric reward models) and its model row."""
    fields = {"slug": slug} if slug else {}
    round = make_round(status=Round.Status.DELIVERED, closes_at=timezone.now() - timedelta(hours=1), kl_weight=0.5, **fields)
    outcome = AuctionOutcome.objects.create(
        round=round, inputs_hash="0" * 64, result={}, welfare=0.0, kl_to_base=0.0, revenue_cents=0,
        instance={"kl_weight": 0.5, "groups": [{"id": g.slug, "bid": 10.0 + i} for i, g in enumerate(groups)], "prompts": []},
    )
    for g in groups:
        GroupOutcome.objects.create(outcome=outcome, group=g, bid_cents=1000, expected_reward=0.5, promised_value=5.0,
                                    payment=0.0, payment_cents=0, utility=5.0)
        RewardModel.objects.create(round=round, group=g, kind="rubric",
                                   params={"kind": "rubric", "phrases": {"great": 1.0}, "target_length": None, "max_count": 3},
                                   norm_min=0.0, norm_max=2.0)
    return FineTunedModel.objects.create(model_id=FineTunedModel.id_for(round), round=round, base_model="tiny",
                                         kl_weight=0.5, adapter_dir=adapter_dir, card="# card")


@pytest.fixture
def published(cast):
    """A model the cast's group bid for; carol's group did not."""
    return publish_for(groups=[cast.group])


@pytest.fixture
def token_of():
    return lambda user: api_token_create(user=user, name="sdk")[1]
