"""Sponsored answers' pages: campaign forms, the campaign page's numbers, the click redirect, staff's switch."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from marketplace.sponsored import services
from marketplace.sponsored.models import Campaign, CampaignDaily, Impression, SponsoredSettings
from tests.marketplace.sponsored.conftest import make_campaign

pytestmark = pytest.mark.django_db
FORM = {"name": "Kettles", "ad_text": "Kettles that boil fast.", "landing_url": "https://acme.example/k",
        "bid": "0.40", "daily_budget": "20.00"}


def client_for(user) -> Client:
    c = Client()
    c.force_login(user)
    return c


def test_an_admin_creates_a_campaign_from_the_form_in_minor_units(cast):
    response = client_for(cast.alice).post(reverse("campaign_create", kwargs={"slug": cast.group.slug}), FORM)
    c = Campaign.objects.get()
    assert response.status_code == 302 and response["Location"].endswith(f"/ads/{c.pk}/")
    assert (c.bid_cents, c.daily_budget_cents, c.status) == (40, 2000, Campaign.Status.DRAFT)


@pytest.mark.parametrize("field,value", [("landing_url", "javascript:alert(1)"), ("bid", "0.001"), ("bid", "abc"),
                                         ("daily_budget", "0.10"), ("ad_text", "")])
def test_bad_form_input_is_shown_beside_the_field_never_a_500(cast, field, value):
    response = client_for(cast.alice).post(reverse("campaign_create", kwargs={"slug": cast.group.slug}),
                                           {**FORM, field: value})
    assert response.status_code == 200 and response.context["form"].errors
    assert not Campaign.objects.exists()


def test_the_campaign_page_shows_impressions_clicks_spend_and_price_per_click(cast):
    c = make_campaign(group=cast.group, by=cast.alice, bid_cents=50)
    CampaignDaily.objects.create(campaign=c, day=services.today(), impressions=7, clicks=2, spend_cents=61)
    for cents in (30, 31):
        Impression.objects.create(campaign=c, relevance=0.5, price_per_click_cents=cents, currency="usd",
                                  charged_cents=cents, charge_day=services.today())
    page = client_for(cast.alice).get(reverse("campaign_detail", kwargs={"slug": cast.group.slug, "campaign_id": c.pk}))
    body = page.content.decode()
    assert page.status_code == 200
    assert page.context["report"].impressions == 7 and page.context["report"].price_per_click_cents == 30
    assert "0.61" in body and "0.30" in body


def test_no_group_sees_another_groups_campaign(cast):
    theirs = make_campaign(group=cast.other_group, by=cast.carol, bid_cents=77)
    url = reverse("campaign_detail", kwargs={"slug": cast.group.slug, "campaign_id": theirs.pk})
    assert client_for(cast.alice).get(url).status_code == 404
    listing = client_for(cast.alice).get(reverse("campaign_list", kwargs={"slug": cast.group.slug}))
    assert "0.77" not in listing.content.decode()
    other = reverse("campaign_list", kwargs={"slug": cast.other_group.slug})
    assert client_for(cast.alice).get(other).status_code == 404


def test_a_refused_status_change_changes_nothing(cast):
    c = make_campaign(group=cast.group, by=cast.alice)
    url = reverse("campaign_status", kwargs={"slug": cast.group.slug, "campaign_id": c.pk})
    assert client_for(cast.bob).post(url, {"action": "end"}).status_code == 403
    assert client_for(cast.dave).post(url, {"action": "end"}).status_code == 404
    c.refresh_from_db()
    assert c.status == Campaign.Status.ACTIVE


def test_the_click_link_redirects_to_the_landing_page_once_and_refuses_forgeries(cast):
    c = make_campaign(group=cast.group, by=cast.alice, url="https://acme.example/landing")
    imp = Impression.objects.create(campaign=c, relevance=0.4, price_per_click_cents=20, currency="usd",
                                    landing_url=c.landing_url)
    url = reverse("sponsored_click", kwargs={"token": services.click_token(impression=imp)})
    for _ in range(2):
        response = Client().get(url)
        assert response.status_code == 302 and response["Location"] == "https://acme.example/landing"
    assert CampaignDaily.objects.get(campaign=c).clicks == 1
    assert Client().get(url[:-3] + "xx/").status_code == 404


def test_staff_switch_ads_on_for_a_deployment(cast):
    from tests.marketplace.openai_api.conftest import publish_for

    model = publish_for(groups=[cast.group])
    response = client_for(cast.staff).post(reverse("staff_sponsored"), {"model_id": model.model_id, "mode": "segment"})
    assert response.status_code == 302
    row = SponsoredSettings.objects.get(model=model)
    assert row.mode == "segment" and row.users_may_opt_out is False
    assert client_for(cast.staff).post(reverse("staff_sponsored"), {"model_id": "ft:nope", "mode": "off"}).status_code == 404
    assert client_for(cast.staff).get(reverse("staff_sponsored")).status_code == 200


def test_staff_set_mosaic_with_its_m_and_tau_and_refuse_nonsense(cast):
    from tests.marketplace.openai_api.conftest import publish_for

    model = publish_for(groups=[cast.group])
    staff = client_for(cast.staff)
    staff.post(reverse("staff_sponsored"), {"model_id": model.model_id, "mode": "mosaic", "mosaic_candidates": "16",
                                            "mosaic_tau": "0.25", "users_may_opt_out": "on"})
    row = SponsoredSettings.objects.get(model=model)
    assert (row.mode, row.mosaic_candidates, row.mosaic_tau, row.users_may_opt_out) == ("mosaic", 16, 0.25, True)
    response = staff.post(reverse("staff_sponsored"), {"model_id": model.model_id, "mode": "mosaic",
                                                       "mosaic_candidates": "1000"})
    assert response.status_code == 302
    assert SponsoredSettings.objects.get(model=model).mosaic_candidates == 16


def test_staff_set_a_segment_reserve_price_and_refuse_a_negative_or_huge_one(cast):
    from tests.marketplace.openai_api.conftest import publish_for

    model = publish_for(groups=[cast.group])
    staff = client_for(cast.staff)
    staff.post(reverse("staff_sponsored"), {"model_id": model.model_id, "mode": "segment", "reserve_cents": "25"})
    assert SponsoredSettings.objects.get(model=model).reserve_cents == 25
    for bad in ("-1", "100001", "1e3"):
        response = staff.post(reverse("staff_sponsored"), {"model_id": model.model_id, "mode": "segment",
                                                           "reserve_cents": bad})
        assert response.status_code == 302
    assert SponsoredSettings.objects.get(model=model).reserve_cents == 25
    assert "reserve 25 per click" in staff.get(reverse("staff_sponsored")).content.decode()


def test_a_bid_per_answer_is_optional_and_parsed_exactly(cast):
    url = reverse("campaign_create", kwargs={"slug": cast.group.slug})
    client_for(cast.alice).post(url, {**FORM, "reward_bid": "1.25"})
    client_for(cast.alice).post(url, {**FORM, "name": "Plain"})
    assert dict(Campaign.objects.values_list("name", "reward_bid_cents")) == {"Kettles": 125, "Plain": 0}
