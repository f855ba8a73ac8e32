"""Receipts for group members (amounts for admins only) and the staff billing overview of a round."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from marketplace.billing.bids import bid_place
from marketplace.billing.services import billing_capture_round
from marketplace.models import AuctionOutcome, GroupOutcome, Payment, Round
from tests.factories import make_round, make_user
from tests.support.cards import another_card
from training.models import TrainingJob

pytestmark = pytest.mark.django_db


@pytest.fixture
def delivered(group_with_card, group_admin):
    round = make_round()
    bid_place(user=group_admin, group=group_with_card, round=round, amount_cents=5_000)
    outcome = AuctionOutcome.objects.create(
        round=round, inputs_hash="0" * 64, instance={}, result={}, welfare=1.0, kl_to_base=0.1, revenue_cents=1_234
    )
    GroupOutcome.objects.create(
        outcome=outcome, group=group_with_card, bid_cents=5_000, expected_reward=0.8, promised_value=40.0,
        payment=12.34, payment_cents=1_234, utility=27.66, delivered_reward=0.7, base_reward=0.4,
    )
    Round.objects.filter(pk=round.pk).update(status=Round.Status.DELIVERED)
    round.refresh_from_db()
    billing_capture_round(round=round)
    return round, group_with_card


def receipt_url(round, group) -> str:
    return reverse("receipt", kwargs={"slug": round.slug, "group_slug": group.slug})


def test_admins_see_the_whole_receipt(client, delivered, group_admin):
    round, group = delivered
    payment = Payment.objects.get(round=round, group=group)
    client.force_login(group_admin)

    html = client.get(receipt_url(round, group)).content.decode()

    assert "$50.00" in html  # the bid and the hold
    assert "$12.34" in html  # the price
    assert "the welfare your group's participation cost the other groups" in html
    assert "$40.00" in html  # promised value: 0.8 x bid
    assert "$35.00" in html  # delivered value: 0.7 x bid
    # The payment as people know it (brand and last four), never Stripe's raw id.
    customer = group.billing
    assert f"{customer.card_brand.title()} ending in {customer.card_last4}" in html
    assert payment.stripe_payment_intent_id not in html
    assert "data-print" in html  # page_actions.js prints; the CSP allows no inline handler


def test_members_see_the_price_but_never_the_bid(client, delivered):
    round, group = delivered
    member = make_user()
    group.memberships.create(user=member, role="member")
    client.force_login(member)

    html = client.get(receipt_url(round, group)).content.decode()

    assert "$12.34" in html
    assert "$50.00" not in html and "$40.00" not in html and "$35.00" not in html
    assert Payment.objects.get(round=round, group=group).stripe_payment_intent_id not in html


def test_the_receipt_is_a_404_for_outsiders_and_staff(client, delivered):
    round, group = delivered
    for user in (make_user(), make_user(staff=True)):
        client.force_login(user)
        assert client.get(receipt_url(round, group)).status_code == 404


def test_staff_see_held_captured_released_and_revenue_against_the_job_cost(client, delivered, settings):
    round, group = delivered
    settings.BILLING_GPU_COST_PER_HOUR_CENTS = 300
    now = timezone.now()
    TrainingJob.objects.create(round=round, status="succeeded", started_at=now - timedelta(hours=2), finished_at=now)
    client.force_login(make_user(staff=True))

    html = client.get(reverse("staff_round_billing", kwargs={"slug": round.slug})).content.decode()

    assert 'data-testid="total-captured">$12.34' in html
    assert 'data-testid="total-released">$37.66' in html
    assert 'data-testid="job-cost">$6.00' in html
    assert 'data-testid="margin">$6.34' in html


def test_staff_do_not_see_held_amounts_while_bidding_is_open(client, group_with_card, group_admin):
    round = make_round()
    bid_place(user=group_admin, group=group_with_card, round=round, amount_cents=5_000)
    client.force_login(make_user(staff=True))
    html = client.get(reverse("staff_round_billing", kwargs={"slug": round.slug})).content.decode()
    assert "$50.00" not in html and "Sealed until bidding closes" in html


def test_staff_see_no_payment_sums_or_counts_while_bidding_is_open(client, group_with_card, group_admin, localstripe):
    """Released sums followed replaced and withdrawn holds (0 -> 100 -> 350) and counts showed activity: none leaks."""
    from marketplace.billing.bids import bid_withdraw
    from marketplace.billing.services import billing_card_attach
    from tests.factories import make_group

    round = make_round()
    bid_place(user=group_admin, group=group_with_card, round=round, amount_cents=10_000)
    bid_place(user=group_admin, group=group_with_card, round=round, amount_cents=12_000)
    other_admin = make_user()
    other = make_group(admin=other_admin)
    billing_card_attach(group=other, by=other_admin, payment_method_id=another_card())
    bid_place(user=other_admin, group=other, round=round, amount_cents=25_000)
    bid_withdraw(user=other_admin, group=other, round=round)
    assert Payment.objects.filter(round=round, status=Payment.Status.RELEASED).count() == 2
    client.force_login(make_user(staff=True))

    html = client.get(reverse("staff_round_billing", kwargs={"slug": round.slug})).content.decode()

    for testid in ("total-held", "total-captured", "total-released", "total-failed", "margin"):
        assert f'data-testid="{testid}"' not in html
    for amount in ("$100.00", "$120.00", "$250.00", "$350.00"):
        assert amount not in html
    assert "Still in progress" not in html and group_with_card.name not in html
    assert "Sealed until bidding closes" in html


def test_the_staff_overview_is_a_404_for_everyone_else(client, delivered, group_admin):
    round, _ = delivered
    client.force_login(group_admin)
    assert client.get(reverse("staff_round_billing", kwargs={"slug": round.slug})).status_code == 404


def test_the_receipt_says_when_the_contract_set_the_charge(client, group_with_card, group_admin):
    from marketplace.deals.models import RoundContract

    round = make_round()
    bid_place(user=group_admin, group=group_with_card, round=round, amount_cents=5_000)
    RoundContract.objects.create(
        round=round, status=RoundContract.Status.PUBLISHED, published_at=timezone.now(),
        inputs={"actions": [], "outcomes": ["poor", "good"], "outcome_edges": [0.0, 0.5, 1.0]},
        payments=[0.0, 9.0], payments_cents=[0, 900], expected_payment=9.0, max_payment=9.0,
    )
    outcome = AuctionOutcome.objects.create(
        round=round, inputs_hash="0" * 64, instance={}, result={}, welfare=1.0, kl_to_base=0.1, revenue_cents=1_234
    )
    GroupOutcome.objects.create(
        outcome=outcome, group=group_with_card, bid_cents=5_000, expected_reward=0.8, promised_value=40.0,
        payment=12.34, payment_cents=1_234, utility=27.66, delivered_reward_candidates=0.8, guarantee_cents=2_000,
        charge_cents=900, charge_basis="contract", contract_outcome=1, contract_payment_cents=900,
    )
    Round.objects.filter(pk=round.pk).update(status=Round.Status.DELIVERED)
    round.refresh_from_db()
    billing_capture_round(round=round)
    client.force_login(group_admin)

    html = client.get(receipt_url(round, group_with_card)).content.decode()

    assert 'data-testid="receipt-contract"' in html
    assert "The contract set this charge: outcome" in html and "<strong>good</strong>" in html and "$9.00" in html
    assert Payment.objects.get(round=round, group=group_with_card).amount_captured_cents == 900
    from marketplace.accounts.tokens import api_token_create

    token = api_token_create(user=group_admin, name="receipt")[1]
    body = client.get(f"/api/rounds/{round.slug}/groups/{group_with_card.slug}/receipt",
                      headers={"Authorization": f"Bearer {token}"}).json()
    assert body["charge_basis"] == "contract" and body["contract"] == {"outcome": 1, "label": "good", "payment_cents": 900}


def test_a_member_cannot_divide_the_charge_back_into_the_bid_through_the_guarantee(client, group_with_card, group_admin):
    """Charged the delivery guarantee, bid x (D - C), with D and C on the receipt: the guarantee or the basis would
    give a plain member the bid (charge / (D - C)). Admins see both; members see neither, on the page or in the API."""
    from marketplace.accounts.tokens import api_token_create

    round = make_round()
    bid_place(user=group_admin, group=group_with_card, round=round, amount_cents=5_000)
    outcome = AuctionOutcome.objects.create(
        round=round, inputs_hash="0" * 64, instance={}, result={}, welfare=1.0, kl_to_base=0.1, revenue_cents=1_234
    )
    GroupOutcome.objects.create(
        outcome=outcome, group=group_with_card, bid_cents=5_000, expected_reward=0.8, promised_value=40.0,
        payment=12.34, payment_cents=1_234, utility=27.66, delivered_reward_candidates=0.55, without_reward=0.4,
        guarantee_cents=750, charge_cents=750, charge_basis="delivery_guarantee",
    )
    Round.objects.filter(pk=round.pk).update(status=Round.Status.DELIVERED)
    member = make_user()
    group_with_card.memberships.create(user=member, role="member")
    api = f"/api/rounds/{round.slug}/groups/{group_with_card.slug}/receipt"

    client.force_login(group_admin)
    assert "delivery guarantee" in client.get(receipt_url(round, group_with_card)).content.decode()
    admin_body = client.get(api, headers={"Authorization": f"Bearer {api_token_create(user=group_admin, name='a')[1]}"}).json()
    assert admin_body["charge_basis"] == "delivery_guarantee" and admin_body["guarantee_cents"] == 750

    client.force_login(member)
    html = client.get(receipt_url(round, group_with_card)).content.decode()
    assert "$7.50" in html  # the charge itself
    assert "delivery guarantee instead" not in html and "the delivery guarantee (" not in html
    body = client.get(api, headers={"Authorization": f"Bearer {api_token_create(user=member, name='m')[1]}"}).json()
    assert body["charge_cents"] == 750 and "charge_basis" not in body and "guarantee_cents" not in body
