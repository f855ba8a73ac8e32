"""A whole round in the browser: sign-up, group, invitation, card, preferences, bid, close, training, receipt.

A real Celery worker runs the round (sampling, auction, a short LoRA job, evaluation, capture) on this test's
database, with localstripe as the payment provider. A second group takes part through the services, so the auction
has another group to weigh ours against.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from marketplace.billing.bids import bid_place
from marketplace.billing.services import billing_card_attach
from marketplace.models import Bid, GroupOutcome, Payment, PreferenceGroup, PreferenceSubmission, Round
from marketplace.templatetags.money import format_money
from tests.browser import pages
from tests.factories import make_group, make_round, make_user
from tests.support.cards import another_card
from tests.support.workers import wait_for
from training.lib.corpus import demo_prompts, preference_pairs_for_style, rubric_for_style
from training.models import Candidate
from training.services.submissions import preferences_submit

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PROMPTS = 3
CANDIDATES = 4


def _round_status(round_id: int) -> str:
    return Round.objects.values_list("status", flat=True).get(pk=round_id)


def _other_group_bids(round: Round) -> None:
    """A group with the opposite taste bids through the services, as the API would."""
    other = make_group(name="Cheerful")
    admin = other.memberships.get(role="admin").user
    billing_card_attach(group=other, by=admin, payment_method_id=another_card())
    phrases, target = rubric_for_style("enthusiastic")
    preferences_submit(
        user=admin, group=other, round=round, kind="rubric",
        payload={"phrases": [{"phrase": k, "weight": v} for k, v in phrases.items()], "target_length_words": target},
    )
    bid_place(user=admin, group=other, round=round, amount_cents=2_000)


def test_a_group_joins_bids_and_reads_the_receipt_of_the_delivered_model(
    new_page, site, stripe_stand_in, celery_worker_process, screenshot
):
    worker = celery_worker_process
    round = make_round(
        status=Round.Status.DRAFT, title="Support answers, spring", prompts=demo_prompts(PROMPTS),
        candidates_per_prompt=CANDIDATES, kl_weight=2.0,
    )
    staff = make_user("operator@example.com", staff=True)

    # The operator opens the round; the worker samples its candidates while the groups get ready.
    operator = new_page()
    pages.log_in(operator, staff.email)
    operator.goto(f"/staff/rounds/{round.slug}/")
    operator.get_by_role("button", name="Open", exact=True).click()
    expect(operator.locator(".messages")).to_contain_text("Round opened")
    assert _round_status(round.pk) == Round.Status.OPEN

    # Ada signs up and creates the group.
    ada = new_page()
    ada.goto("/accounts/signup/")
    pages.sign_up(ada, "ada@example.com", first_name="Ada", screenshot=screenshot, shot_name="01-signup")
    slug = pages.create_group(ada, "Concise Readers", description="Short, direct answers.")
    screenshot(ada, "02-group")
    group = PreferenceGroup.objects.get(slug=slug)

    # She invites Bob by link; Bob signs up from the invitation and joins as a member.
    link = pages.create_invitation_link(ada, slug)
    assert link.startswith(site.url + "/invitations/"), link
    screenshot(ada, "03-invitation-link")
    bob = new_page()
    bob.goto(link)
    expect(bob.get_by_role("heading", name="Join Concise Readers")).to_be_visible()
    screenshot(bob, "04-invitation")
    bob.locator("main").get_by_role("link", name="Sign up").click()
    pages.sign_up(bob, "bob@example.com", first_name="Bob")
    expect(bob.get_by_role("heading", name="Join Concise Readers")).to_be_visible()
    bob.get_by_role("button", name="Accept and join").click()
    expect(bob.locator(".messages")).to_contain_text("Welcome to Concise Readers!")
    assert group.memberships.filter(user__email="bob@example.com", role="member").exists()
    ada.goto(f"/groups/{slug}/members/")
    expect(ada.locator("main table").first).to_contain_text("bob@example.com")
    screenshot(ada, "05-members")

    # Ada adds the group's card through the stand-in Stripe.js.
    pages.add_card(ada, slug, pages.CARD_OK, screenshot=screenshot, shot_name="06-card-form")
    expect(ada.locator(".messages")).to_contain_text("Card saved: Visa ending in 4242.")
    expect(ada.get_by_test_id("card-details")).to_contain_text("4242")
    screenshot(ada, "07-billing")

    ada.goto(f"/rounds/{round.slug}/")
    expect(ada.locator("main table")).to_contain_text("Concise Readers")
    screenshot(ada, "08-round")

    # A file with a missing field is refused with its line number, and nothing is stored.
    pairs = preference_pairs_for_style("concise", 30, seed=3)
    rows = [{"prompt": p, "chosen": c, "rejected": r} for p, c, r in pairs]
    bad = pages.pairs_jsonl(rows[:1]) + pages.pairs_jsonl([{k: v for k, v in rows[1].items() if k != "rejected"}])
    pages.upload_pairs(ada, round.slug, slug, filename="pairs-bad.jsonl", content=bad)
    errors = ada.get_by_test_id("upload-errors")
    expect(errors).to_contain_text("line 2: missing field 'rejected'")
    expect(ada.get_by_role("alert").filter(has_text="Nothing was saved")).to_be_visible()
    screenshot(ada, "09-preferences-error")
    latin1 = pages.pairs_jsonl(rows[:1]) + '{"prompt": "Café?", "chosen": "Oui.", "rejected": "Non."}\n'.encode("latin-1")
    pages.upload_pairs(ada, round.slug, slug, filename="pairs-latin1.jsonl", content=latin1)
    expect(ada.get_by_test_id("upload-errors")).to_contain_text("The file is not UTF-8 text")
    assert not PreferenceSubmission.objects.filter(group=group, round=round).exists()

    # The whole file goes in as version 1.
    pages.upload_pairs(ada, round.slug, slug, filename="pairs.jsonl", content=pages.pairs_jsonl(rows))
    expect(ada.locator(".messages")).to_contain_text(f"Saved as version 1 ({len(rows)} ")
    screenshot(ada, "10-preferences")
    submission = PreferenceSubmission.objects.get(group=group, round=round)
    assert submission.version == 1 and submission.row_count == len(rows)

    # Ada bids 30.00; the card is held for it. Bob sees that the group bid, not how much.
    pages.place_bid(ada, round.slug, slug, "30.00")
    expect(ada.locator(".messages")).to_contain_text("Your group's bid is now 30.00 USD.")
    expect(ada.get_by_test_id("bid-amount")).to_have_text("$30.00")
    screenshot(ada, "11-bid")
    bid = Bid.objects.get(round=round, group=group, status=Bid.Status.ACTIVE)
    assert bid.amount_cents == 3_000
    assert Payment.objects.filter(bid=bid, status=Payment.Status.HELD, amount_held_cents=3_000).count() == 1
    bob.goto(f"/rounds/{round.slug}/groups/{slug}/bid/")
    expect(bob.locator("main")).to_contain_text("Your group has bid")
    expect(bob.locator("main")).not_to_contain_text("30.00")

    _other_group_bids(round)
    wait_for(lambda: Candidate.objects.filter(round=round).count() == PROMPTS * CANDIDATES, timeout=240,
             worker=worker, what="the round's candidates")

    # The operator closes bidding; everyone can watch the job's progress live on the round's job page.
    operator.goto(f"/staff/rounds/{round.slug}/")
    expect(operator.locator("main")).to_contain_text("Bids are sealed until bidding closes")
    expect(operator.locator("main")).not_to_contain_text("$30.00")
    screenshot(operator, "12-staff-round-open")
    # Closing asks first (a step of its own, no script); the operator says yes.
    operator.get_by_test_id("close-step").locator("summary").click()
    operator.get_by_role("button", name="Yes, close bidding now").click()
    expect(operator.locator(".messages")).to_contain_text("Bidding closed")
    ada.goto(f"/rounds/{round.slug}/job/")
    status = ada.locator("[data-round-progress] [data-field=status]")
    # The page follows the round by itself (progress.js polls progress.json): no reload from here on.
    expect(ada.locator("[data-round-progress] [data-field=job]")).to_be_visible(timeout=240_000)
    screenshot(ada, "13-job-training")
    expect(status).to_contain_text("Delivered", timeout=300_000)
    wait_for(lambda: not Round.objects.get(pk=round.pk).billing_pending, timeout=120, worker=worker, what="billing")
    ada.reload()
    expect(ada.locator("[data-round-progress] [data-field=evaluation]")).to_be_visible()
    screenshot(ada, "14-job-delivered")

    # The receipt shows the auction price, which is what was captured.
    outcome = GroupOutcome.objects.get(outcome__round=round, group=group)
    ada.goto(f"/rounds/{round.slug}/groups/{slug}/receipt/")
    price = format_money(outcome.payment_cents, "usd")
    expect(ada.get_by_test_id("receipt-price")).to_have_text(price)
    expect(ada.get_by_test_id("receipt-charged")).to_have_text(price)
    expect(ada.get_by_test_id("receipt-held")).to_have_text("$30.00")
    expect(ada.get_by_test_id("receipt-status")).to_have_text("Captured" if outcome.payment_cents else "Released")
    screenshot(ada, "15-receipt")
    payment = Payment.objects.get(bid=bid, status__in=[Payment.Status.CAPTURED, Payment.Status.RELEASED])
    assert payment.amount_captured_cents == outcome.payment_cents <= 3_000
    # Bob, a member, sees the price but not the bid.
    bob.goto(f"/rounds/{round.slug}/groups/{slug}/receipt/")
    expect(bob.get_by_test_id("receipt-price")).to_have_text(price)
    expect(bob.get_by_test_id("receipt-bid")).to_have_count(0)

    # After the close, the operator sees each group's bid.
    operator.goto(f"/staff/rounds/{round.slug}/")
    expect(operator.locator("main table")).to_contain_text("Concise Readers")
    expect(operator.locator("main table")).to_contain_text("$30.00")
    screenshot(operator, "16-staff-round-delivered")
