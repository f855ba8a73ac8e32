"""Sponsored answers through /v1/chat/completions with the official openai SDK, against a real engine process
(``python -m inference serve --base tiny``: the tiny model, its LoRA adapter and the MiniLM encoder's
/v1/embeddings), on a live server; then the click link in the answer, and the engine's embeddings with the SDK."""

from __future__ import annotations

import httpx2
import openai
import pytest

from marketplace.sponsored.models import Campaign, CampaignDaily, Impression, SponsoredSettings
from tests.integration.test_openai_sdk import needs_engine, sdk
from tests.marketplace.sponsored.conftest import impression_of, make_campaign

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True), needs_engine]
KETTLE = "Acme kettles boil water in one minute."
QUESTION = "Is the kettle any good?"


@pytest.fixture
def ads_on(served, cast):
    SponsoredSettings.objects.create(model=served["model"], mode=SponsoredSettings.Mode.SEGMENT, users_may_opt_out=True)
    make_campaign(group=cast.group, by=cast.alice, text=KETTLE, bid_cents=60, url="https://acme.example/kettles")
    make_campaign(group=cast.other_group, by=cast.carol, text="Garden hoses that never kink.", bid_cents=40,
                  url="https://hoses.example/", name="Hoses")
    return {**served, "user": cast.bob}  # the API token's user (tests/integration/test_openai_sdk.py served)


def test_an_opted_in_deployment_labels_its_ad_in_the_text_and_a_field_and_the_link_counts_one_click(live_server, ads_on):
    client = sdk(live_server, ads_on["token"])
    answer = client.chat.completions.create(model=ads_on["model"].model_id, max_tokens=8,
                                            messages=[{"role": "user", "content": QUESTION}])
    [entry] = answer.model_extra["sponsored"]
    text = answer.choices[0].message.content
    assert text.endswith(f"Sponsored: {entry['text']} {entry['url']}")
    assert entry["url"].startswith(live_server.url + "/ads/click/")
    # The caller learns the label, the link and the mode, not the clearing price or whose campaign it is.
    assert set(entry) == {"text", "url", "mode"} and entry["mode"] == "segment"
    impression = impression_of(entry)
    assert impression.price_per_click_cents <= impression.campaign.bid_cents
    assert impression.requested_by == ads_on["user"] and impression.landing_url == impression.campaign.landing_url
    for _ in range(2):
        hop = httpx2.get(entry["url"], follow_redirects=False, timeout=30)
        assert hop.status_code == 302 and hop.headers["location"] == impression.landing_url
    day = CampaignDaily.objects.get(campaign=impression.campaign)
    assert (day.impressions, day.clicks, day.spend_cents) == (1, 1, impression.price_per_click_cents)


def test_a_streamed_answer_ends_with_the_sponsored_chunk(live_server, ads_on):
    stream = sdk(live_server, ads_on["token"]).chat.completions.create(
        model=ads_on["model"].model_id, max_tokens=8, stream=True, messages=[{"role": "user", "content": QUESTION}])
    text, sponsored, usage = "", None, None
    for chunk in stream:
        for c in chunk.choices:
            text += c.delta.content or ""
        if (chunk.model_extra or {}).get("sponsored"):
            sponsored = chunk.model_extra["sponsored"][0]
        if chunk.usage:
            usage = chunk.usage
    assert sponsored is not None and text.endswith(f"Sponsored: {sponsored['text']} {sponsored['url']}")
    assert usage is not None and usage.completion_tokens > 0


def test_a_request_turns_ads_off_where_the_deployment_allows_and_is_refused_where_not(live_server, ads_on):
    client = sdk(live_server, ads_on["token"])
    mid = ads_on["model"].model_id
    plain = client.chat.completions.create(model=mid, max_tokens=8, messages=[{"role": "user", "content": QUESTION}],
                                           extra_body={"ads": False})
    assert "sponsored" not in (plain.model_extra or {}) and "Sponsored:" not in plain.choices[0].message.content
    SponsoredSettings.objects.filter(model=ads_on["model"]).update(users_may_opt_out=False)
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model=mid, max_tokens=8, messages=[{"role": "user", "content": QUESTION}],
                                       extra_body={"ads": False})
    assert err.value.body["param"] == "ads"
    assert not Impression.objects.exists()


def test_a_deployment_without_ads_answers_as_before(live_server, served, cast):
    make_campaign(group=cast.group, by=cast.alice, text=KETTLE)
    answer = sdk(live_server, served["token"]).chat.completions.create(
        model=served["model"].model_id, max_tokens=8, messages=[{"role": "user", "content": QUESTION}])
    assert "sponsored" not in (answer.model_extra or {})
    assert Campaign.objects.get().impressions.count() == 0


def test_the_engine_serves_openai_shaped_embeddings(engine):
    client = openai.OpenAI(base_url=f"{engine}/v1", api_key="unused", max_retries=0, timeout=120)
    out = client.embeddings.create(model="all-MiniLM-L6-v2", input=[KETTLE, QUESTION])
    assert [d.index for d in out.data] == [0, 1] and len(out.data[0].embedding) == 384
    assert abs(sum(x * x for x in out.data[0].embedding) - 1.0) < 1e-4
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="text-embedding-3-small", input="x")
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model="all-MiniLM-L6-v2", input=[])


def test_a_mosaic_deployment_chooses_among_m_answers_and_charges_the_steering_per_answer(live_server, ads_on):
    from marketplace.delivery.models import UsageDaily

    SponsoredSettings.objects.filter(model=ads_on["model"]).update(mode=SponsoredSettings.Mode.MOSAIC,
                                                                   mosaic_candidates=4, mosaic_tau=0.5)
    # A bid per answer high enough to steer the tiny model's near-random answers measurably.
    Campaign.objects.filter(ad_text=KETTLE).update(reward_bid_cents=100_000, daily_budget_cents=10_000_000)
    answer = sdk(live_server, ads_on["token"]).chat.completions.create(
        model=ads_on["model"].model_id, max_tokens=8, messages=[{"role": "user", "content": QUESTION}])
    [entry] = answer.model_extra["sponsored"]
    assert entry["mode"] == "mosaic" and set(entry) == {"text", "url", "mode"}
    assert answer.choices[0].message.content.endswith(f"{entry['text']} {entry['url']}")
    impression = impression_of(entry)
    assert impression.kind == "answer" and 0 < impression.charged_cents <= 100_000
    assert CampaignDaily.objects.get(campaign=impression.campaign).spend_cents == impression.charged_cents
    # The four candidates came from one engine request; all their tokens are metered, as exact delivery's drafts are.
    usage = UsageDaily.objects.get(group=ads_on["group"], model=ads_on["model"])
    assert usage.requests == 1 and usage.completion_tokens >= answer.usage.completion_tokens > 0
