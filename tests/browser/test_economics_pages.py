"""The economics pages in the browser: staff price a launch and set a round's pay-for-performance contract, which a
group then sees on the round page; a group's admin analyses and records the revenue share of its resold model."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from marketplace.deals.models import RevenueShare, RoundContract
from marketplace.rounds.models import Round
from tests.browser import pages
from tests.factories import make_round

pytestmark = [pytest.mark.browser]

MT_BENCH = [
    ("7B", "0.18165", ".15625 .16875 .0375 .00625 0 .04375 .05 .1125 .1375 .2875"),
    ("13B", "0.2415", ".16875 .1375 .0125 0 .00625 .04375 .05625 .05 .16875 .35625"),
    ("70B", "0.6405", ".09375 .1875 .01875 .00625 .00625 .0375 .0625 .075 .11875 .39375"),
]


def test_staff_price_a_launch_against_a_latecomer(new_page, site, cast, screenshot):
    page = new_page()
    pages.log_in(page, cast.staff.email)
    page.goto("/staff/pricing/")
    page.get_by_label("Demand slope b").fill("0.5")
    page.get_by_label("Task 1: demand scale a").fill("1")
    page.get_by_label("Task 1: relative performance κ").fill("1")
    page.get_by_label("Task 2: demand scale a").fill("1")
    page.get_by_label("Task 2: relative performance κ").fill("0.3")
    page.get_by_role("button", name="Analyse").click()
    expect(page.locator("[data-region]")).to_have_attribute("data-region", "tight_bound")
    expect(page.locator("[data-winner='first mover']")).to_have_count(1)
    expect(page.locator("svg.chart polyline")).to_have_count(1)
    screenshot(page, "economics-01-pricing")

    # Nonsense is refused on the form, never with an error page.
    page.get_by_label("Demand slope b").fill("-2")
    page.get_by_label("Task 2: relative performance κ").fill("")
    page.get_by_role("button", name="Analyse").click()
    expect(page.locator(".field-error").first).to_be_visible()
    expect(page.locator("[data-region]")).to_have_count(0)
    screenshot(page, "economics-02-pricing-errors")


def test_staff_publish_a_contract_that_groups_see_before_bidding(new_page, site, cast, screenshot):
    round = make_round(status=Round.Status.OPEN, title="Contract round")
    staff = new_page()
    pages.log_in(staff, cast.staff.email)
    staff.goto(f"/staff/rounds/{round.slug}/")
    staff.get_by_role("link", name="Pay-for-performance contract").first.click()
    for i, (name, cost, dist) in enumerate(MT_BENCH, start=1):
        staff.get_by_label(f"Generator {i}: name").fill(name)
        staff.get_by_label(f"Generator {i}: cost").fill(cost)
        staff.get_by_label(f"Generator {i}: outcome distribution").fill(dist)
    staff.get_by_label("Outcome labels").fill(", ".join(str(s) for s in range(1, 11)))
    staff.get_by_label("Monotone (pay never falls as the outcome improves)").check()
    staff.get_by_role("button", name="Compute and save draft").click()
    expect(staff.locator(".messages")).to_contain_text("Contract computed and saved as a draft.")
    expect(staff.locator("[data-contract-payments]")).to_contain_text("10.64")
    screenshot(staff, "economics-03-contract-draft")
    staff.get_by_role("button", name="Publish to groups").click()
    expect(staff.locator(".messages")).to_contain_text("Contract published")
    assert RoundContract.objects.get(round=round).status == "published"

    member = new_page()
    pages.log_in(member, cast.bob.email)
    member.goto(f"/rounds/{round.slug}/")
    section = member.locator("section[data-contract-status='published']")
    expect(section).to_contain_text("10.64")
    expect(section).to_contain_text("never charged more than the hold")
    screenshot(member, "economics-04-contract-on-round-page")


def test_a_group_admin_analyses_and_records_the_revenue_share(new_page, site, cast, screenshot):
    round = make_round(status=Round.Status.DELIVERED, title="Delivered round")
    url = f"/rounds/{round.slug}/groups/{cast.group.slug}/revenue-share/"
    admin = new_page()
    pages.log_in(admin, cast.alice.email)
    admin.goto(url)
    expect(admin.get_by_label("Platform's cost coefficient c0")).to_be_disabled()
    admin.get_by_label("Your group's cost coefficient c1").fill("2")
    admin.get_by_label("Revenue estimate r (per unit of performance)").fill("1")
    admin.get_by_label("Proposed platform share δ").fill("0.1")
    admin.get_by_role("button", name="Analyse").click()
    expect(admin.locator("[data-proposed='outside']")).to_contain_text("outside the Pareto set")
    expect(admin.locator("svg.chart")).to_have_count(2)
    screenshot(admin, "economics-05-revenue-share-warning")

    admin.get_by_label("Proposed platform share δ").fill("0.6228")
    admin.get_by_role("button", name="Record as the agreed share").click()
    expect(admin.locator(".messages")).to_contain_text("Agreed share recorded")
    expect(admin.locator("[data-agreed-delta]")).to_contain_text("0.6228")
    assert RevenueShare.objects.get(round=round, group=cast.group).agreed_by == cast.alice
    screenshot(admin, "economics-06-revenue-share-agreed")

    # A member who is not an admin is refused.
    member = new_page()
    pages.log_in(member, cast.bob.email)
    response = member.goto(url)
    assert response.status == 403
