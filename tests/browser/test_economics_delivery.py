"""The economics at delivery in the browser: a receipt that says the round's pay-for-performance contract set the
charge, and a group admin who lists the model for resale and reads the revenue statement."""

from __future__ import annotations

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from marketplace.billing.bids import bid_place
from marketplace.billing.services import billing_capture_round, billing_card_attach
from marketplace.deals.models import RevenueShare, RoundContract
from marketplace.delivery.services import resale_usage_record
from marketplace.models import AuctionOutcome, GroupOutcome, Payment, Round
from tests.browser import pages
from tests.factories import make_round
from tests.marketplace.openai_api.conftest import publish_for

pytestmark = [pytest.mark.browser]


def test_the_receipt_says_the_contract_set_the_charge(new_page, site, cast, stripe_stand_in, screenshot):
    round = make_round(title="Contract delivered")
    billing_card_attach(group=cast.group, by=cast.alice, payment_method_id="pm_card_visa")
    bid_place(user=cast.alice, group=cast.group, round=round, amount_cents=5_000)
    RoundContract.objects.create(
        round=round, status=RoundContract.Status.PUBLISHED, published_at=timezone.now(),
        inputs={"actions": [], "outcomes": ["below target", "on target"], "outcome_edges": [0.0, 0.6, 1.0]},
        payments=[0.0, 9.0], payments_cents=[0, 900], expected_payment=9.0, max_payment=9.0,
    )
    outcome = AuctionOutcome.objects.create(
        round=round, inputs_hash="0" * 64, instance={}, result={}, welfare=1.0, kl_to_base=0.1, revenue_cents=1_234
    )
    GroupOutcome.objects.create(  # what auction_delivery_settle writes when the contract binds (tests/marketplace/deals)
        outcome=outcome, group=cast.group, bid_cents=5_000, expected_reward=0.8, promised_value=40.0, payment=12.34,
        payment_cents=1_234, utility=27.66, delivered_reward_candidates=0.8, guarantee_cents=2_000, charge_cents=900,
        charge_basis="contract", contract_outcome=1, contract_payment_cents=900,
    )
    Round.objects.filter(pk=round.pk).update(status=Round.Status.DELIVERED)
    round.refresh_from_db()
    billing_capture_round(round=round)
    assert Payment.objects.get(round=round, group=cast.group).amount_captured_cents == 900

    member = new_page()
    pages.log_in(member, cast.bob.email)
    member.goto(f"/rounds/{round.slug}/groups/{cast.group.slug}/receipt/")
    line = member.get_by_test_id("receipt-contract")
    expect(line).to_contain_text("The contract set this charge: outcome on target, payment $9.00")
    expect(member.get_by_test_id("receipt-model-charge")).to_contain_text("$9.00")
    expect(member.get_by_test_id("receipt-charged")).to_contain_text("$9.00")
    screenshot(member, "economics-07-receipt-contract")


def test_a_group_admin_lists_the_model_and_reads_the_revenue_statement(new_page, site, cast, screenshot):
    model = publish_for(groups=[cast.group])
    RevenueShare.objects.create(round=model.round, group=cast.group, delta=0.25, inputs={"c0": 1, "c1": 2, "r": 1},
                                agreed_by=cast.staff, agreed_at=timezone.now())
    admin = new_page()
    pages.log_in(admin, cast.alice.email)
    admin.goto(f"/rounds/{model.round.slug}/groups/{cast.group.slug}/revenue-share/")
    expect(admin.locator("[data-revenue-statement]")).to_contain_text("No resale usage yet")
    admin.get_by_label("Offer the model to others through the platform's API").check()
    admin.get_by_label("Price per 1M tokens (USD)").fill("4.00")
    admin.get_by_role("button", name="Save listing").click()
    expect(admin.locator(".messages")).to_contain_text("Resale listing saved")
    expect(admin.get_by_test_id("resale-price")).to_contain_text("$4.00")

    listing = model.listings.get()
    resale_usage_record(listing=listing, buyer=cast.dave, prompt_tokens=1_500_000, completion_tokens=500_000)
    admin.reload()
    table = admin.get_by_test_id("revenue-statement")
    expect(table.locator("tbody tr")).to_have_count(1)
    row = table.locator("tbody tr").first
    for text in ("2000000", "$8.00", "$2.00", "$6.00"):  # tokens, revenue, platform 25 %, the group's 75 %
        expect(row).to_contain_text(text)
    expect(admin.locator("[data-revenue-statement]")).to_contain_text("(the agreed share)")
    screenshot(admin, "economics-08-revenue-statement")

    # The buyer uses the model but never sees the statement.
    buyer = new_page()
    pages.log_in(buyer, cast.dave.email)
    assert buyer.goto(f"/models/{model.model_id}/").status == 200
    assert buyer.goto(f"/rounds/{model.round.slug}/groups/{cast.group.slug}/revenue-share/").status == 404
