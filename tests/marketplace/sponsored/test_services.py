"""Sponsored answers' services: the auction's choice and price, the budget stop, the signed click link, billing."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import numpy as np
import pytest
from django.core import signing
from django.utils import timezone

from auctions.ads.segment import segment_auction, segment_draw
from marketplace.billing import stripe_gateway as gateway
from marketplace.billing.models import BillingCustomer
from marketplace.core.currency import major_to_minor_floor, minimum_charge
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


def _impression(campaign, price: int, *, user=None, currency: str = "usd") -> Impression:
    """An impression as ad_serve logs it: the campaign's landing URL of the moment, and the API user it was for."""
    return Impression.objects.create(campaign=campaign, relevance=0.5, price_per_click_cents=price, currency=currency,
                                     landing_url=campaign.landing_url, requested_by=user)


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


def _clicked_yesterday(campaign, cents: int, *, days_ago: int = 1, currency: str = "usd") -> Impression:
    imp = _impression(campaign, cents, currency=currency)
    day = services.today() - timedelta(days=days_ago)
    Impression.objects.filter(pk=imp.pk).update(clicked_at=imp.shown_at, click_day=day, charge_day=day,
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
    _clicked_yesterday(c, 60)
    period = services.today() - timedelta(days=1)
    key = services.invoice_key(group_id=cast.group.pk, period=period, currency="usd")
    customer = BillingCustomer.objects.get(group=cast.group)
    # The crash: the invoice row and Stripe's charge exist, our status was never written.
    invoice = AdInvoice.objects.create(group=cast.group, period=period, currency="usd", amount_cents=60, idempotency_key=key)
    Impression.objects.filter(campaign=c).update(invoice=invoice)
    gateway.charge_create(customer_id=customer.stripe_customer_id, payment_method_id=customer.payment_method_id,
                          amount_cents=60, currency="usd", idempotency_key=key, metadata={})
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
    _clicked_yesterday(running, 70)
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
    _clicked_yesterday(make_campaign(group=cast.group, by=cast.alice), 55)
    assert sponsored_billing_run_task() == 1
    [message] = OutboxMessage.objects.filter(task_name=tasknames.SPONSORED_BILL_GROUP)
    assert message.args == [cast.group.pk, (services.today() - timedelta(days=1)).isoformat()]
    assert sponsored_bill_group_task(*message.args) == ["paid"]
    assert sponsored_bill_group_task(*message.args) == []  # a redelivered message charges nothing


# --- billing: stranded invoices, Stripe's refusals, the minimum charge ------------------------------------------------


def _yesterday():
    return services.today() - timedelta(days=1)


def _age(invoice: AdInvoice) -> None:
    """Make the invoice's last write older than the grace a running charge gets."""
    AdInvoice.objects.filter(pk=invoice.pk).update(
        updated_at=timezone.now() - services.CHARGING_GRACE - timedelta(minutes=1))


def _charges(group, key: str) -> list:
    customer = BillingCustomer.objects.get(group=group)
    return [pi for pi in gateway.payment_intents_for_customer(customer_id=customer.stripe_customer_id)
            if pi.metadata.get("idempotency_key") == key]


def test_an_invoice_left_charging_by_a_dead_run_is_taken_up_by_a_later_run_and_charged_once(funded):
    cast = funded
    c = make_campaign(group=cast.group, by=cast.alice)
    _clicked_yesterday(c, 60)
    key = services.invoice_key(group_id=cast.group.pk, period=_yesterday(), currency="usd")
    # The task died after attaching the impressions, before Stripe heard of the charge.
    invoice = AdInvoice.objects.create(group=cast.group, period=_yesterday(), currency="usd", amount_cents=60,
                                       idempotency_key=key)
    Impression.objects.filter(campaign=c).update(invoice=invoice)
    assert services.groups_to_bill(before=services.today()) == []  # still within the grace: a run may be at it
    _age(invoice)
    assert services.groups_to_bill(before=services.today()) == [(cast.group.pk, _yesterday().isoformat())]
    [result] = services.ads_bill_group(group=cast.group, period=_yesterday())
    assert result.status == "paid" and result.invoice.amount_cents == 60
    assert len(_charges(cast.group, key)) == 1
    assert services.groups_to_bill(before=services.today()) == []


def test_a_processing_charge_stays_charging_and_a_later_run_finishes_it(funded, monkeypatch):
    cast = funded
    _clicked_yesterday(make_campaign(group=cast.group, by=cast.alice), 80)
    real_create = gateway.charge_create

    # localstripe settles at once; a bank that has not answered yet is Stripe's "processing" (a stand-in here).
    def processing(**kwargs):
        pi = real_create(**kwargs)
        return dataclasses.replace(pi, status="processing")

    monkeypatch.setattr(gateway, "charge_create", processing)
    [first] = services.ads_bill_group(group=cast.group, period=_yesterday())
    assert first.status == "charging" and first.invoice.stripe_payment_intent_id
    monkeypatch.setattr(gateway, "charge_create", real_create)
    _age(first.invoice)
    assert services.groups_to_bill(before=services.today()) == [(cast.group.pk, _yesterday().isoformat())]
    [second] = services.ads_bill_group(group=cast.group, period=_yesterday())  # finds the charge by its key
    assert second.status == "paid"
    assert len(_charges(cast.group, first.invoice.idempotency_key)) == 1


def test_a_refusal_that_retrying_cannot_fix_fails_the_invoice_with_a_message_instead_of_crashing(funded):
    cast = funded
    running = make_campaign(group=cast.group, by=cast.alice)
    _clicked_yesterday(running, 90)
    # A card Stripe does not know (detached at Stripe, say): an invalid request, not a decline and not an outage.
    BillingCustomer.objects.filter(group=cast.group).update(payment_method_id="pm_gone_missing")
    [result] = services.ads_bill_group(group=cast.group, period=_yesterday())
    assert result.status == "failed"
    assert result.invoice.status == AdInvoice.Status.FAILED
    assert result.invoice.failure_message.startswith("The payment provider refused the charge")
    running.refresh_from_db()
    assert running.status == Campaign.Status.PAUSED


def test_stripe_out_of_reach_leaves_the_invoice_charging_for_the_task_to_retry(funded, settings):
    cast = funded
    _clicked_yesterday(make_campaign(group=cast.group, by=cast.alice), 90)
    settings.STRIPE_API_BASE = "http://127.0.0.1:9"
    with pytest.raises(gateway.GatewayUnavailable):
        services.ads_bill_group(group=cast.group, period=_yesterday())
    assert AdInvoice.objects.get().status == AdInvoice.Status.CHARGING


def test_charges_below_stripes_minimum_are_carried_over_into_a_later_invoice(funded):
    cast = funded
    c = make_campaign(group=cast.group, by=cast.alice)
    early = _clicked_yesterday(c, 30, days_ago=2)
    assert services.groups_to_bill(before=services.today()) == [(cast.group.pk, (services.today() - timedelta(days=2))
                                                                  .isoformat())]
    [small] = services.ads_bill_group(group=cast.group, period=services.today() - timedelta(days=2))
    assert small.status == "below_minimum" and not AdInvoice.objects.exists()
    late = _clicked_yesterday(c, 25)
    # The group's latest finished day carries the earlier day's 30 with it: 55 >= Stripe's 50.
    assert services.groups_to_bill(before=services.today()) == [(cast.group.pk, _yesterday().isoformat())]
    [result] = services.ads_bill_group(group=cast.group, period=_yesterday())
    assert result.status == "paid" and result.invoice.amount_cents == 55
    assert set(result.invoice.impressions.values_list("pk", flat=True)) == {early.pk, late.pk}


def test_stripes_minimum_charge_is_known_per_currency():
    assert (minimum_charge("usd"), minimum_charge("EUR"), minimum_charge("gbp"), minimum_charge("jpy")) == (50, 50, 30, 50)
    assert minimum_charge("kwd") % 10 == 0 and minimum_charge("kwd") >= 50


def test_a_three_decimal_currency_is_charged_a_multiple_of_ten_rounded_down(funded):
    cast = funded
    c = make_campaign(group=cast.group, by=cast.alice)
    Campaign.objects.filter(pk=c.pk).update(currency="kwd")
    _clicked_yesterday(c, 1234, currency="kwd")
    [result] = services.ads_bill_group(group=cast.group, period=_yesterday())
    assert result.invoice.amount_cents == 1230 and result.status == "paid"


# --- a declined invoice is recovered before the group's ads run again --------------------------------------------------


def _declined(cast) -> tuple[Campaign, AdInvoice]:
    from marketplace.billing.services import billing_card_attach

    billing_card_attach(group=cast.group, by=cast.alice, payment_method_id="pm_card_chargeCustomerFail")
    running = make_campaign(group=cast.group, by=cast.alice)
    _clicked_yesterday(running, 70)
    [result] = services.ads_bill_group(group=cast.group, period=_yesterday())
    assert result.status == "failed"
    running.refresh_from_db()
    assert running.status == Campaign.Status.PAUSED
    return running, result.invoice


def test_a_group_with_a_failed_ad_invoice_cannot_restart_its_campaigns_until_the_card_pays_it(funded):
    from marketplace.billing.services import billing_card_attach

    cast = funded
    running, invoice = _declined(cast)
    with pytest.raises(AppError) as err:
        services.campaign_set_status(campaign=running, by=cast.alice, action="activate")
    assert err.value.code == "unpaid_ad_invoice" and "Update the card" in err.value.message
    running.refresh_from_db()
    assert running.status == Campaign.Status.PAUSED
    billing_card_attach(group=cast.group, by=cast.alice, payment_method_id="pm_card_visa")
    # Starting again charges the debt to the new card first (a new attempt, a new key: the old one was refused).
    assert services.campaign_set_status(campaign=running, by=cast.alice, action="activate").status == Campaign.Status.ACTIVE
    invoice.refresh_from_db()
    assert (invoice.status, invoice.attempt, invoice.amount_cents) == (AdInvoice.Status.PAID, 2, 70)
    paid = [pi for pi in _charges(cast.group, invoice.idempotency_key) if pi.status == "succeeded"]
    assert len(paid) == 1 and paid[0].amount_received == 70


def test_the_billing_run_retries_a_failed_invoice_once_the_groups_card_changed(funded):
    from marketplace.billing.services import billing_card_attach
    from marketplace.sponsored.tasks import sponsored_bill_group_task

    cast = funded
    _, invoice = _declined(cast)
    assert services.groups_to_bill(before=services.today()) == []  # the same card would be refused again
    billing_card_attach(group=cast.group, by=cast.alice, payment_method_id="pm_card_visa")
    assert services.groups_to_bill(before=services.today()) == [(cast.group.pk, _yesterday().isoformat())]
    assert sponsored_bill_group_task(cast.group.pk, _yesterday().isoformat()) == ["paid"]
    assert sponsored_bill_group_task(cast.group.pk, _yesterday().isoformat()) == []
    invoice.refresh_from_db()
    assert invoice.status == AdInvoice.Status.PAID and services.groups_to_bill(before=services.today()) == []


# --- clicks: the URL shown, stopped campaigns, the per-user cap --------------------------------------------------------


def test_a_click_goes_to_the_landing_url_the_ad_showed_not_one_edited_in_afterwards(cast):
    c = make_campaign(group=cast.group, by=cast.alice, url="https://acme.example/kettles")
    token = services.click_token(impression=_impression(c, 30))
    services.campaign_update(campaign=c, by=cast.alice, data=_input(landing_url="https://phish.example/login"))
    assert services.click_record(token=token) == "https://acme.example/kettles"


def test_a_served_impression_keeps_the_landing_url_and_the_api_user(cast, deployment, encoder):
    c = make_campaign(group=cast.group, by=cast.alice, url="https://acme.example/kettles")
    ad = serving.ad_serve(model=deployment, query=QUERY, user=cast.bob)
    imp = Impression.objects.get(pk=ad.impression_id)
    assert (imp.landing_url, imp.requested_by) == (c.landing_url, cast.bob)


def test_a_click_on_an_ended_or_paused_campaign_redirects_and_charges_nothing(cast):
    ended = make_campaign(group=cast.group, by=cast.alice, name="Ended")
    paused = make_campaign(group=cast.group, by=cast.alice, name="Paused")
    tokens = [services.click_token(impression=_impression(c, 30)) for c in (ended, paused)]
    services.campaign_set_status(campaign=ended, by=cast.alice, action="end")
    services.campaign_set_status(campaign=paused, by=cast.alice, action="pause")
    for token in tokens:
        assert services.click_record(token=token) == "https://acme.example/kettles"
    assert not Impression.objects.filter(charged_cents__gt=0).exists()
    assert sum(CampaignDaily.objects.values_list("spend_cents", flat=True)) == 0


def test_billed_clicks_are_capped_per_api_user_campaign_and_day(cast, settings):
    settings.SPONSORED_MAX_BILLED_CLICKS_PER_USER_DAY = 3
    c = make_campaign(group=cast.group, by=cast.alice, bid_cents=50, budget_cents=10_000)
    replayed = [_impression(c, 40, user=cast.dave) for _ in range(5)]
    for imp in replayed:
        assert services.click_record(token=services.click_token(impression=imp)) == c.landing_url
    assert [Impression.objects.get(pk=i.pk).charged_cents for i in replayed] == [40, 40, 40, 0, 0]
    honest = _impression(c, 40, user=cast.bob)  # another user's click is billed as usual
    services.click_record(token=services.click_token(impression=honest))
    assert Impression.objects.get(pk=honest.pk).charged_cents == 40
    day = CampaignDaily.objects.get(campaign=c)
    assert (day.clicks, day.spend_cents) == (6, 160)


# --- what API callers see ------------------------------------------------------------------------------------------


def test_callers_see_the_label_the_link_and_the_mode_never_prices_or_campaign_ids(cast, deployment, encoder):
    make_campaign(group=cast.group, by=cast.alice, text=KETTLE, bid_cents=50)
    make_campaign(group=cast.other_group, by=cast.carol, text=CARS, bid_cents=80, name="Cars")
    ad = serving.ad_serve(model=deployment, query=QUERY, rng=np.random.default_rng(7))
    entry = ad.as_json("https://site.example" + ad.click_path)
    assert entry == {"text": ad.text, "url": "https://site.example" + ad.click_path, "mode": "segment"}
    # The link's signed token names the impression; its price is on the row, for the advertiser's pages.
    token = ad.click_path.rstrip("/").rsplit("/", 1)[1]
    assert services.click_impression(token=token).pk == ad.impression_id
