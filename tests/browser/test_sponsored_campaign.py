"""A campaign in the browser: an advertiser group's admin creates it, funds it with a test card, starts it; an API
user's answer carries it (the openai SDK against the live site and a real engine process); the reader follows the
link; the campaign page shows the click and its spend; the day's budget runs out and the ad stops being shown."""

from __future__ import annotations

import openai
import pytest
from playwright.sync_api import expect

from marketplace.sponsored.models import Campaign, SponsoredSettings
from tests.browser import pages
from tests.integration.test_openai_sdk import adapter_dir, engine, needs_engine, served  # noqa: F401 (fixtures)
from tests.marketplace.sponsored.conftest import impression_of, make_campaign

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), needs_engine]
QUESTION = "Is the kettle any good?"
AD = "Acme kettles boil water in one minute."


def _answer(client: openai.OpenAI, model: str):
    return client.chat.completions.create(model=model, max_tokens=4, messages=[{"role": "user", "content": QUESTION}])


def test_a_campaign_is_created_funded_shown_clicked_and_stopped_by_its_budget(
        site, stripe_stand_in, new_page, screenshot, served, cast):  # noqa: F811 (the fixture imported above)
    SponsoredSettings.objects.create(model=served["model"], mode=SponsoredSettings.Mode.SEGMENT)
    # A competitor, so the winner pays a price above zero (alone, its critical bid would be 0).
    make_campaign(group=cast.other_group, by=cast.carol, text="Steel kettles on sale this week.", bid_cents=30,
                  name="Rival")
    page = new_page()
    pages.log_in(page, cast.alice.email)
    pages.add_card(page, cast.group.slug, pages.CARD_OK, name="Alice Admin")
    expect(page.locator(".messages")).to_contain_text("Card saved")

    page.goto(f"/groups/{cast.group.slug}/ads/")
    page.get_by_test_id("new-campaign").click()
    page.get_by_label("Name", exact=True).fill("Kettles")
    page.get_by_label("Ad text", exact=True).fill(AD)
    page.get_by_label("Landing page (http:// or https://)").fill(f"{site.url}/")
    page.get_by_label("Bid per click").fill("0.50")
    page.get_by_label("Daily budget").fill("0.50")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_test_id("campaign-status")).to_contain_text("Draft")
    page.get_by_role("button", name="Start").click()
    expect(page.get_by_test_id("campaign-status")).to_contain_text("Active")
    screenshot(page, "60-campaign-active")
    ours = Campaign.objects.get(group=cast.group)

    client = openai.OpenAI(base_url=f"{site.url}/v1", api_key=served["token"], max_retries=0, timeout=120)
    entry, link = None, ""
    # The auction is a lottery weighted by bid x relevance, and a draw's critical price can round down to 0 cents
    # (a winner far ahead of the rival): wait for an answer that shows ours at a price above zero.
    # The answer names neither the campaign nor the price (callers must not learn others' clearing prices): the
    # test reads them from the impression its link's token names.
    for _ in range(30):
        answer = _answer(client, served["model"].model_id)
        [shown] = answer.model_extra["sponsored"]
        assert answer.choices[0].message.content.endswith(f"Sponsored: {shown['text']} {shown['url']}")
        assert set(shown) == {"text", "url", "mode"}
        impression = impression_of(shown)
        assert impression.price_per_click_cents <= (50 if impression.campaign_id == ours.pk else 30)
        if impression.campaign_id == ours.pk and impression.price_per_click_cents > 0:
            entry, link = impression, shown["url"]
            break
    assert entry is not None, "our campaign never won at a price above zero in 30 answers"

    reader = new_page()
    reader.goto(link)
    assert reader.url.rstrip("/") == site.url.rstrip("/")  # the campaign's own landing page

    page.goto(f"/groups/{cast.group.slug}/ads/{ours.pk}/")
    expect(page.get_by_test_id("total-clicks")).to_have_text("1")
    expect(page.get_by_test_id("total-spend")).to_contain_text(f"0.{entry.price_per_click_cents:02d}")
    # 0.50 a day at 0.50 a click: what is left after one paid click cannot pay another, so the campaign stops.
    expect(page.get_by_test_id("campaign-status")).to_contain_text("Daily budget reached")
    expect(page.get_by_test_id("campaign-message")).to_contain_text("daily budget")
    screenshot(page, "61-campaign-budget-spent")
    for _ in range(5):
        [shown] = _answer(client, served["model"].model_id).model_extra["sponsored"]
        assert impression_of(shown).campaign_id != ours.pk
