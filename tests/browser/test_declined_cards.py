"""Declined cards in the browser: the card form says so, and a bid whose hold is declined is refused with nothing stored."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from marketplace.models import Bid, BillingCustomer, Payment
from tests.browser import pages
from tests.factories import make_group, make_round, make_user

pytestmark = pytest.mark.browser


def test_a_card_the_bank_declines_is_not_saved_and_the_form_says_why(site, stripe_stand_in, new_page, screenshot):
    admin = make_user("dee@example.com")
    group = make_group(admin=admin, name="Careful Readers")
    page = new_page()
    pages.log_in(page, admin.email)

    pages.add_card(page, group.slug, pages.CARD_DECLINED, name="Dee Admin")

    expect(page.locator("#card-errors")).to_contain_text("Your card was declined.")
    expect(page.get_by_role("button", name="Save card")).to_be_enabled()
    screenshot(page, "20-card-declined")
    customer = BillingCustomer.objects.filter(group=group).first()
    assert customer is None or not customer.has_card


def test_a_bid_whose_hold_is_declined_is_refused_and_nothing_is_stored(site, stripe_stand_in, new_page, screenshot):
    admin = make_user("eve@example.com")
    group = make_group(admin=admin, name="Thrifty Readers")
    round = make_round(title="Support answers, summer")
    page = new_page()
    pages.log_in(page, admin.email)
    # This card attaches, but the bank declines every charge or hold on it.
    pages.add_card(page, group.slug, pages.CARD_CHARGE_DECLINED, name="Eve Admin")
    expect(page.locator(".messages")).to_contain_text("Card saved: Visa ending in 0341.")

    pages.place_bid(page, round.slug, group.slug, "25.00")

    error = page.locator(".field-error, .alert-error, .messages")
    expect(error.filter(has_text="Your bid was not placed")).to_contain_text("declined")
    expect(page.locator("main")).to_contain_text("Your group has not bid in this round yet.")
    screenshot(page, "21-bid-declined")
    assert not Bid.objects.filter(round=round, group=group).exists()
    assert not Payment.objects.filter(round=round, group=group, status=Payment.Status.HELD).exists()
