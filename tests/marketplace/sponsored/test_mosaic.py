"""MOSAIC per query on the platform: the campaigns' rewards steer which candidate is shown, each paying advertiser
is charged its MOSAIC payment per answer (within its budget) and labelled; the /v1/ checks that need no engine."""

from __future__ import annotations

import json
from datetime import timedelta

import numpy as np
import pytest
from django.test import Client

from auctions.ads.mosaic import mosaic_solve
from marketplace.accounts.tokens import api_token_create
from marketplace.core.currency import major_to_minor_floor, minimum_charge
from marketplace.sponsored import mosaic, services
from marketplace.sponsored.models import CampaignDaily, Impression, SponsoredSettings
from tests.marketplace.sponsored.conftest import make_campaign

pytestmark = pytest.mark.django_db
KETTLE_AD = "Acme kettles boil water in one minute."
ANSWERS = ["This kettle boils water very quickly.", "The weather is nice today.", "I like trains and buses.",
           "Boiling water for tea takes a minute with a good kettle."]


@pytest.fixture
def mosaic_row(deployment):
    SponsoredSettings.objects.filter(model=deployment).update(mode=SponsoredSettings.Mode.MOSAIC, mosaic_tau=0.1)
    return SponsoredSettings.objects.get(model=deployment)


def test_the_campaigns_reward_steers_the_answer_and_it_pays_its_mosaic_payment(cast, deployment, mosaic_row, encoder):
    c = make_campaign(group=cast.group, by=cast.alice, text=KETTLE_AD, bid_cents=10, budget_cents=100_000)
    c.reward_bid_cents = 100
    c.save()
    rng = np.random.default_rng(0)
    picks = [mosaic.mosaic_choose(model=deployment, texts=ANSWERS, row=mosaic_row, rng=rng)[0] for _ in range(30)]
    assert sum(p in (0, 3) for p in picks) > 20  # the kettle answers, far more often than half the time
    rewards = mosaic.rewards_of(texts=ANSWERS, ads=[KETTLE_AD])
    expected = major_to_minor_floor(float(mosaic_solve(bids=[1.0], rewards=rewards, log_ref=np.zeros(4), tau=0.1)
                                          .payment[0]), "usd")
    charges = list(Impression.objects.filter(campaign=c).values_list("kind", "charged_cents", "charge_day"))
    assert len(charges) == 30 and 0 < expected <= 100
    assert all(kind == "answer" and cents == expected and day == services.today() for kind, cents, day in charges)
    assert CampaignDaily.objects.get(campaign=c).spend_cents == 30 * expected


def test_only_campaigns_with_a_bid_per_answer_and_budget_for_it_take_part(cast, deployment, mosaic_row, encoder):
    make_campaign(group=cast.other_group, by=cast.carol, text=KETTLE_AD)  # per click only
    assert mosaic.mosaic_choose(model=deployment, texts=ANSWERS, row=mosaic_row) == (0, [])
    c = make_campaign(group=cast.group, by=cast.alice, text=KETTLE_AD, bid_cents=10, budget_cents=100)
    c.reward_bid_cents = 100
    c.save()
    _, ads = mosaic.mosaic_choose(model=deployment, texts=ANSWERS, row=mosaic_row)
    assert [a.campaign_id for a in ads] == [c.pk] and ads[0].as_json("u")["mode"] == "mosaic"
    assert 0 < CampaignDaily.objects.get(campaign=c).spend_cents == ads[0].price_cents
    assert mosaic.mosaic_pool() == []  # what is left cannot pay another answer at its bid


def test_a_click_on_a_mosaic_link_is_logged_and_free(cast, deployment, mosaic_row, encoder):
    c = make_campaign(group=cast.group, by=cast.alice, text=KETTLE_AD)
    c.reward_bid_cents = 100
    c.save()
    _, [ad] = mosaic.mosaic_choose(model=deployment, texts=ANSWERS, row=mosaic_row)
    spent = CampaignDaily.objects.get(campaign=c).spend_cents
    services.click_record(token=ad.click_path.split("/")[-2])
    day = CampaignDaily.objects.get(campaign=c)
    assert (day.clicks, day.spend_cents) == (1, spent)


def test_mosaic_answers_are_billed_with_the_clicks_of_their_day(funded, deployment, mosaic_row, encoder):
    cast = funded
    c = make_campaign(group=cast.group, by=cast.alice, text=KETTLE_AD, budget_cents=100_000)
    c.reward_bid_cents = 100
    c.save()
    # Answers until their payments reach Stripe's minimum charge (below it, the day is carried over, not charged).
    for _ in range(60):
        mosaic.mosaic_choose(model=deployment, texts=ANSWERS, row=mosaic_row)
        if sum(Impression.objects.values_list("charged_cents", flat=True)) >= minimum_charge("usd"):
            break
    yesterday = services.today() - timedelta(days=1)
    Impression.objects.update(charge_day=yesterday)
    [result] = services.ads_bill_group(group=cast.group, period=yesterday)
    total = sum(Impression.objects.values_list("charged_cents", flat=True))
    assert result.status == "paid" and result.invoice.amount_cents == total >= minimum_charge("usd")


@pytest.mark.parametrize("extra,param", [({"stream": True}, "stream"), ({"n": 2}, "n")])
def test_a_mosaic_deployment_refuses_streams_and_several_choices_before_the_engine(cast, mosaic_row, extra, param,
                                                                                   settings):
    settings.INFERENCE_URL = "http://127.0.0.1:9"
    token = api_token_create(user=cast.bob, name="t")[1]
    body = {"model": mosaic_row.model.model_id, "messages": [{"role": "user", "content": "Is it good?"}], **extra}
    response = Client().post("/v1/chat/completions", json.dumps(body), content_type="application/json",
                             headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 400 and response.json()["error"]["param"] == param
    body["ads"] = False  # the deployment lets requests opt out: then it is a plain answer (here: no engine, 503)
    response = Client().post("/v1/chat/completions", json.dumps(body), content_type="application/json",
                             headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 503
