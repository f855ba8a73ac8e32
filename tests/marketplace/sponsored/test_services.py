"""Sponsored answers' services: the auction's choice and price, the budget stop, the signed click link, billing."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from django.core import signing

from auctions.ads.segment import segment_auction, segment_draw
from marketplace.billing import stripe_gateway as gateway
from marketplace.billing.models import BillingCustomer
from marketplace.core.currency import major_to_minor_floor
from marketplace.core.errors import AppError, Conflict, Gone, NotAllowed, NotFound
from marketplace.sponsored import services, serving
from marketplace.sponsored.models import AdInvoice, Campaign, CampaignDaily, Impression, SponsoredSettings
from marketplace.sponsored.services import CampaignInput
from tests.marketplace.sponsored.conftest import make_campaign

pytestmark = pytest.mark.django_db
QUERY = "Which kettle should I buy to boil water quickly?"
KETTLE = "Acme kettles boil water in one minute."
CARS = "Cheap car insurance for young drivers."


def _input(**over) -> CampaignInput:
    fields = dict(name="Kettles", ad_text=KETTLE, landing_url="https://acme.example/k", bid_cents=50,
                  daily_budget_cents=1000)
    return CampaignInput(**{**fields, **over})


# --- campaigns ---------------------------------------------------------------------------------------------------


def test_only_the_groups_admins_create_campaigns_and_outsiders_learn_nothing(cast):
    c = services.campaign_create(group=cast.group, by=cast.alice, data=_input())
    assert c.status == Campaign.Status.DRAFT and c.currency == "usd" and c.bid_cents == 50
    with pytest.raises(NotAllowed):
        services.campaign_create(group=cast.group, by=cast.bob, data=_input())
    with pytest.raises(NotFound):
        services.campaign_create(group=cast.group, by=cast.dave, data=_input())


@pytest.mark.parametrize("over,field", [
    ({"landing_url": "javascript:alert(1)"}, "landing_url"),
    ({"landing_url": "ftp://acme.example/"}, "landing_url"),
    ({"landing_url": "acme.example"}, "landing_url"),
    ({"ad_text": "x" * 201}, "ad_text"),
    ({"ad_text": "   "}, "ad_text"),
    ({"bid_cents": 0}, "bid"),
    ({"daily_budget_cents": 10}, "daily_budget"),
])
def test_it_refuses_bad_campaign_fields_naming_them(cast, over, field):
    with pytest.raises(AppError) as err:
        services.campaign_create(group=cast.group, by=cast.alice, data=_input(**over))
    assert err.value.field == field
    assert not Campaign.objects.exists()


def test_a_campaign_starts_only_with_a_card_on_file_and_moves_by_its_table(cast, localstripe):
    c = services.campaign_create(group=cast.group, by=cast.alice, data=_input())
    with pytest.raises(AppError) as err:
        services.campaign_set_status(campaign=c, by=cast.alice, action="activate")
    assert err.value.code == "no_card"
    from marketplace.billing.services import billing_card_attach

    billing_card_attach(group=cast.group, by=cast.alice, payment_method_id="pm_card_visa")
    assert services.campaign_set_status(campaign=c, by=cast.alice, action="activate").status == Campaign.Status.ACTIVE
    with pytest.raises(Conflict):
        services.campaign_set_status(campaign=c, by=cast.alice, action="activate")
    assert services.campaign_set_status(campaign=c, by=cast.alice, action="pause").status == Campaign.Status.PAUSED
    assert services.campaign_set_status(campaign=c, by=cast.alice, action="end").status == Campaign.Status.ENDED
    with pytest.raises(Conflict):
        services.campaign_update(campaign=c, by=cast.alice, data=_input(bid_cents=70))


# --- the auction ---------------------------------------------------------------------------------------------------


def test_ads_are_wanted_only_where_the_deployment_opts_in_and_the_request_may_opt_out(cast, deployment):
    assert serving.ads_wanted(model=deployment, ads=None) is True
    assert serving.ads_wanted(model=deployment, ads=False) is False
    with pytest.raises(AppError) as err:
        serving.ads_wanted(model=deployment, ads="no")
    assert err.value.field == "ads"
    SponsoredSettings.objects.filter(model=deployment).update(users_may_opt_out=False)
    with pytest.raises(AppError) as err:
        serving.ads_wanted(model=deployment, ads=False)
    assert err.value.code == "ads_required"
    SponsoredSettings.objects.filter(model=deployment).update(mode=SponsoredSettings.Mode.OFF)
    assert serving.ads_wanted(model=deployment, ads=None) is False


def test_relevance_is_the_encoders_cosine_and_ranks_the_matching_ad_first(encoder):
    q = serving.relevance(query=QUERY, texts=[KETTLE, CARS])
    assert 0.0 <= q[1] < q[0] <= 1.0


def test_the_winner_pays_its_critical_bid_for_the_draw_rounded_down(cast, deployment, encoder):
    kettle = make_campaign(group=cast.group, by=cast.alice, text=KETTLE, bid_cents=50)
    cars = make_campaign(group=cast.other_group, by=cast.carol, text=CARS, bid_cents=80, name="Cars")
    ad = serving.ad_serve(model=deployment, query=QUERY, rng=np.random.default_rng(7))
    assert ad is not None
    # The same draw, recomputed from the library: candidates are ordered by bid (cars first).
    q = serving.relevance(query=QUERY, texts=[CARS, KETTLE])
    draw = segment_draw(segment_auction(bids=[0.80, 0.50], relevance=q), rng=np.random.default_rng(7))
    winner = [cars, kettle][draw.winners[0][0]]
    expected = major_to_minor_floor(float(draw.payment[draw.winners[0][0]]), "usd")
    assert ad.campaign_id == winner.pk and ad.price_per_click_cents == min(expected, winner.bid_cents)
    imp = Impression.objects.get(pk=ad.impression_id)
    assert imp.price_per_click_cents == ad.price_per_click_cents <= winner.bid_cents
    assert CampaignDaily.objects.get(campaign=winner).impressions == 1
    assert ad.click_path.startswith("/ads/click/")


def test_the_relevant_ad_wins_most_answers(cast, deployment, encoder):
    make_campaign(group=cast.group, by=cast.alice, text=KETTLE, bid_cents=50)
    make_campaign(group=cast.other_group, by=cast.carol, text=CARS, bid_cents=50, name="Cars")
    rng = np.random.default_rng(0)
    wins = [serving.ad_serve(model=deployment, query=QUERY, rng=rng).text for _ in range(40)]
    assert wins.count(KETTLE) > wins.count(CARS)


def test_a_lone_campaign_is_shown_for_free_and_drafts_paused_and_other_currencies_never(cast, deployment, encoder):
    make_campaign(group=cast.group, by=cast.alice, status=Campaign.Status.PAUSED)
    make_campaign(group=cast.group, by=cast.alice, status=Campaign.Status.DRAFT)
    assert serving.ad_serve(model=deployment, query=QUERY) is None
    c = make_campaign(group=cast.other_group, by=cast.carol)
    ad = serving.ad_serve(model=deployment, query=QUERY)
    assert ad.campaign_id == c.pk and ad.price_per_click_cents == 0


def test_a_reserve_price_keeps_low_bids_out_and_is_the_least_a_winner_pays(cast, deployment, encoder):
    SponsoredSettings.objects.filter(model=deployment).update(reserve_cents=20)
    make_campaign(group=cast.group, by=cast.alice, bid_cents=19)  # below the reserve: never entered
    assert serving.ad_serve(model=deployment, query=QUERY) is None
    lone = make_campaign(group=cast.other_group, by=cast.carol, text=CARS, bid_cents=30, name="Cars")
    ad = serving.ad_serve(model=deployment, query=QUERY)
    assert ad.campaign_id == lone.pk and ad.price_per_click_cents == 20  # alone, it pays the reserve, not 0
    rival = make_campaign(group=cast.group, by=cast.alice, text=KETTLE, bid_cents=90, name="Kettles")
    rng = np.random.default_rng(3)
    for _ in range(20):
        ad = serving.ad_serve(model=deployment, query=QUERY, rng=rng)
        bid = {lone.pk: lone.bid_cents, rival.pk: rival.bid_cents}[ad.campaign_id]
        assert 20 <= ad.price_per_click_cents <= bid


def test_no_ad_when_the_encoder_is_down(cast, deployment, settings):
    settings.INFERENCE_URL = "http://127.0.0.1:9"
    make_campaign(group=cast.group, by=cast.alice)
    assert serving.ad_serve(model=deployment, query=QUERY) is None
    assert not Impression.objects.exists()


# --- clicks and budgets ---------------------------------------------------------------------------------------------


def _impression(campaign, price: int) -> Impression:
    return Impression.objects.create(campaign=campaign, relevance=0.5, price_per_click_cents=price, currency="usd")


def test_a_click_is_logged_once_per_impression_and_goes_to_the_campaigns_own_page(cast):
    c = make_campaign(group=cast.group, by=cast.alice, bid_cents=50, budget_cents=1000)
    token = services.click_token(impression=_impression(c, 30))
    assert services.click_record(token=token) == "https://acme.example/kettles"
    assert services.click_record(token=token) == "https://acme.example/kettles"
    day = CampaignDaily.objects.get(campaign=c)
    assert (day.clicks, day.spend_cents) == (1, 30)


def test_a_forged_or_altered_link_is_not_found_and_an_old_one_is_gone(cast, settings):
    c = make_campaign(group=cast.group, by=cast.alice)
    imp = _impression(c, 30)
    token = services.click_token(impression=imp)
    with pytest.raises(NotFound):
        services.click_record(token=token[:-2] + ("AA" if not token.endswith("AA") else "BB"))
    with pytest.raises(NotFound):
        services.click_record(token=signing.dumps({"i": imp.pk}, salt="another-salt"))
    settings.SPONSORED_CLICK_TTL_S = -1
    with pytest.raises(Gone):
        services.click_record(token=token)
    assert not CampaignDaily.objects.filter(clicks__gt=0).exists()


def test_spend_never_passes_the_daily_budget_and_the_campaign_stops_for_the_day(cast):
    c = make_campaign(group=cast.group, by=cast.alice, bid_cents=50, budget_cents=80)
    first, second = _impression(c, 50), _impression(c, 50)
    services.click_record(token=services.click_token(impression=first))
    c.refresh_from_db()
    assert c.status == Campaign.Status.EXHAUSTED  # 30 left cannot pay a 50 click
    assert serving.candidates() == []
    services.click_record(token=services.click_token(impression=second))
    day = CampaignDaily.objects.get(campaign=c)
    assert (day.clicks, day.spend_cents) == (2, 80)
    assert Impression.objects.get(pk=second.pk).charged_cents == 30


def test_a_campaign_stopped_for_budget_runs_again_the_next_day(cast):
    c = make_campaign(group=cast.group, by=cast.alice, status=Campaign.Status.EXHAUSTED)
    Campaign.objects.filter(pk=c.pk).update(exhausted_on=services.today() - timedelta(days=1))
    assert [x.pk for x in serving.candidates()] == [c.pk]
    c.refresh_from_db()
    assert c.status == Campaign.Status.ACTIVE


def test_a_campaign_whose_budget_left_is_below_its_bid_is_not_entered(cast):
    c = make_campaign(group=cast.group, by=cast.alice, bid_cents=50, budget_cents=100)
    CampaignDaily.objects.create(campaign=c, day=services.today(), spend_cents=60)
    assert serving.candidates() == []


# --- billing (localstripe) ------------------------------------------------------------------------------------------


def _clicked_yesterday(campaign, cents: int) -> Impression:
    imp = _impression(campaign, cents)
    yesterday = services.today() - timedelta(days=1)
    Impression.objects.filter(pk=imp.pk).update(clicked_at=imp.shown_at, click_day=yesterday, charge_day=yesterday,
                                                charged_cents=cents)
    return imp


def test_billing_charges_a_period_once_however_often_it_runs(funded):
    cast = funded
    c = make_campaign(group=cast.group, by=cast.alice)
    _clicked_yesterday(c, 30)
    _clicked_yesterday(c, 45)
    period = services.today() - timedelta(days=1)
    assert services.groups_to_bill(before=services.today()) == [(cast.group.pk, period.isoformat())]
    [first] = services.ads_bill_group(group=cast.group, period=period)
    assert first.status == "paid" and first.invoice.amount_cents == 75
    assert services.ads_bill_group(group=cast.group, period=period) == []  # nothing left unbilled
    assert services.groups_to_bill(before=services.today()) == []
    customer = BillingCustomer.objects.get(group=cast.group)
    charges = [pi for pi in gateway.payment_intents_for_customer(customer_id=customer.stripe_customer_id)
               if pi.metadata.get("idempotency_key") == first.invoice.idempotency_key]
    assert len(charges) == 1 and charges[0].amount_received == 75
    assert AdInvoice.objects.get().status == AdInvoice.Status.PAID


def test_a_run_interrupted_after_stripe_charged_finds_the_charge_instead_of_charging_again(funded):
    cast = funded
    c = make_campaign(group=cast.group, by=cast.alice)
    _clicked_yesterday(c, 40)
    period = services.today() - timedelta(days=1)
    key = services.invoice_key(group_id=cast.group.pk, period=period, currency="usd")
    customer = BillingCustomer.objects.get(group=cast.group)
    # The crash: the invoice row and Stripe's charge exist, our status was never written.
    invoice = AdInvoice.objects.create(group=cast.group, period=period, currency="usd", amount_cents=40, idempotency_key=key)
    Impression.objects.filter(campaign=c).update(invoice=invoice)
    gateway.charge_create(customer_id=customer.stripe_customer_id, payment_method_id=customer.payment_method_id,
                          amount_cents=40, currency="usd", idempotency_key=key, metadata={})
    [result] = services.ads_bill_group(group=cast.group, period=period)
    assert result.status == "paid"
    charges = [pi for pi in gateway.payment_intents_for_customer(customer_id=customer.stripe_customer_id)
               if pi.metadata.get("idempotency_key") == key]
    assert len(charges) == 1


def test_a_declined_card_fails_the_invoice_and_pauses_the_groups_campaigns(funded):
    cast = funded
    from marketplace.billing.services import billing_card_attach

    billing_card_attach(group=cast.group, by=cast.alice, payment_method_id="pm_card_chargeCustomerFail")
    running = make_campaign(group=cast.group, by=cast.alice)
    other = make_campaign(group=cast.other_group, by=cast.carol)
    _clicked_yesterday(running, 30)
    [result] = services.ads_bill_group(group=cast.group, period=services.today() - timedelta(days=1))
    assert result.status == "failed" and result.invoice.failure_message
    running.refresh_from_db()
    other.refresh_from_db()
    assert running.status == Campaign.Status.PAUSED and "billing" in running.status_message
    assert other.status == Campaign.Status.ACTIVE
    # A later run does not charge the failed period again.
    assert services.ads_bill_group(group=cast.group, period=services.today() - timedelta(days=1)) == []


def test_the_web_process_serves_ads_without_importing_torch():
    import subprocess
    import sys

    script = ("import sys, django; django.setup(); import marketplace.urls, marketplace.sponsored.serving, "
              "marketplace.openai_api.views; import auctions.ads.segment; "
              "bad = [m for m in ('torch', 'transformers', 'sentence_transformers') if m in sys.modules]; "
              "assert not bad, bad")
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)


def test_the_beat_task_enqueues_one_billing_task_per_group_and_day_after_commit(funded):
    from marketplace.core import tasknames
    from marketplace.outbox.models import OutboxMessage
    from marketplace.sponsored.tasks import sponsored_bill_group_task, sponsored_billing_run_task

    cast = funded
    _clicked_yesterday(make_campaign(group=cast.group, by=cast.alice), 25)
    assert sponsored_billing_run_task() == 1
    [message] = OutboxMessage.objects.filter(task_name=tasknames.SPONSORED_BILL_GROUP)
    assert message.args == [cast.group.pk, (services.today() - timedelta(days=1)).isoformat()]
    assert sponsored_bill_group_task(*message.args) == ["paid"]
    assert sponsored_bill_group_task(*message.args) == []  # a redelivered message charges nothing
