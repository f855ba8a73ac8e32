"""A walk through every page a newcomer meets, at desktop width and on a phone (390 x 844), on a delivered round with
its job, charts, receipt and reward model: no page errors, no CSP violation, no sideways scroll on the phone.
Screenshots of every page go to var/screenshots/walk-*.png for a person to look at."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from marketplace.billing.models import BillingCustomer, Payment
from marketplace.models import AuctionOutcome, GroupOutcome, Round
from tests.browser import pages
from tests.browser.test_newcomer_fixes import PHONE, assert_no_sideways_scroll, csp_violations
from tests.factories import make_bid, make_group, make_round, make_user
from training.models import Candidate, Checkpoint, Evaluation, JobEvent, RewardModel, TrainingJob

pytestmark = pytest.mark.browser


def _delivered_world():
    admin = make_user("ada@example.com")
    member = make_user("ben@example.com")
    staff = make_user("ops@example.com", staff=True)
    group = make_group(admin=admin, members=[member], name="Plain Speakers")
    group.description = "Short, plain answers for our support desk."
    group.save()
    prompts = ["How do I reset my password?", "My laptop will not turn on after the update. What now?"]
    round = make_round(status=Round.Status.DELIVERED, title="Support answers, round one", prompts=prompts,
                       closes_at=timezone.now() - timedelta(hours=2))
    open_round = make_round(title="Support answers, round two", prompts=prompts)
    for p in range(2):
        for i in range(3):
            for r in (round, open_round):
                Candidate.objects.create(round=r, prompt_index=p, index=i, text=f"Answer {i}: try the reset link.",
                                         num_tokens=8, base_logprob=-3.0)
    bid = make_bid(round=round, group=group, amount_cents=4_000)
    outcome = AuctionOutcome.objects.create(
        round=round, inputs_hash="0" * 64, instance={"kl_weight": 4.0, "groups": [], "prompts": []}, result={},
        welfare=20.0, kl_to_base=1.9, revenue_cents=1_250,
    )
    GroupOutcome.objects.create(
        outcome=outcome, group=group, bid_cents=4_000, expected_reward=0.82, promised_value=32.8, payment=12.5,
        payment_cents=1_250, utility=20.3, delivered_reward=0.74, base_reward=0.41, candidate_base_reward=0.4,
        without_reward=0.45, delivered_reward_candidates=0.76, guarantee_cents=1_240, charge_cents=1_240,
        charge_basis="delivery_guarantee",
    )
    BillingCustomer.objects.create(group=group, stripe_customer_id="cus_walk", payment_method_id="pm_x",
                                   card_brand="visa", card_last4="4242", card_exp_month=12, card_exp_year=2030)
    Payment.objects.create(round=round, group=group, bid=bid, currency="usd", amount_held_cents=4_000,
                           amount_captured_cents=1_240, stripe_payment_intent_id="pi_walk", idempotency_key="walk-1",
                           status=Payment.Status.CAPTURED)
    job = TrainingJob.objects.create(
        round=round, status=TrainingJob.Status.SUCCEEDED, steps_done=60, total_steps=60, tokens_seen=12_000, loss=0.61,
        started_at=timezone.now() - timedelta(minutes=3), finished_at=timezone.now(),
        hyperparameters={"objective": "sum_x mu(x) [KL(q* || q_theta)] + 0.1 x NLL", "steps": 60, "model_type": "gpt2",
                         "fan_in_fan_out": True, "learning_rate": 0.0005},
    )
    for step, loss, tv in ((20, 1.4, 0.5), (40, 0.9, 0.3), (60, 0.7, 0.2)):
        Checkpoint.objects.create(job=job, step=step, path=f"c{step}", is_best=step == 60,
                                  metrics={"loss": loss, "tokens": step * 200, "weighted_nll": loss + 0.2, "tv_to_target": tv})
        JobEvent.objects.create(job=job, type=JobEvent.Type.CHECKPOINT, message=f"Checkpoint at step {step}")
    Evaluation.objects.create(job=job, tv_before=0.62, tv_after=0.2, kl_estimate=2.1, delivered={}, base={})
    RewardModel.objects.create(round=round, group=group, kind="rubric", normalised_scores=[[1.0, 0.2, 0.0], [0.5, 0.7, 0.1]],
                               raw_scores=[[1, 0, 0], [0, 1, 0]])
    return {"admin": admin, "staff": staff, "group": group, "round": round, "open_round": open_round}


# What the walk reads on the pages the newcomer's notes were about: (text, whether it must be there).
CHECKS = {
    "receipt": [("Visa ending in 4242", True), ("pi_walk", False), ("per unit of reward", False)],
    "staff-round": [("Captured", True), ("Active", False)],
    "job": [("the auction's target: 1.9000", True), ("Checkpoint at step 60", True), ("Training loss", True)],
    "bid": [("at most its bid × its reward gain", True)],
    "staff-round-open": [("Close bidding…", True)],
}


def _paths(w):
    r, o, g = w["round"].slug, w["open_round"].slug, w["group"].slug
    member_pages = [
        ("home", "/"), ("rounds", "/rounds/"), ("round", f"/rounds/{r}/"), ("round-open", f"/rounds/{o}/"),
        ("job", f"/rounds/{r}/job/"), ("groups", "/groups/"), ("group", f"/groups/{g}/"),
        ("members", f"/groups/{g}/members/"), ("group-rounds", f"/groups/{g}/rounds/"),
        ("billing", f"/groups/{g}/billing/"), ("preferences", f"/rounds/{o}/groups/{g}/preferences/"),
        ("bid", f"/rounds/{o}/groups/{g}/bid/"), ("label", f"/rounds/{o}/groups/{g}/label/"),
        ("reward-model", f"/rounds/{r}/groups/{g}/reward-model/"), ("receipt", f"/rounds/{r}/groups/{g}/receipt/"),
        ("profile", "/accounts/profile/"), ("api-docs", "/api/docs"), ("not-found", "/no-such-page/"),
    ]
    staff_pages = [
        ("staff-rounds", "/staff/rounds/"), ("staff-round", f"/staff/rounds/{r}/"), ("staff-round-open", f"/staff/rounds/{o}/"),
        ("staff-new-round", "/staff/rounds/new/"), ("staff-billing", f"/staff/rounds/{r}/billing/"),
    ]
    return member_pages, staff_pages


@pytest.mark.parametrize("width", ["desktop", "phone"])
def test_every_page_of_a_delivered_round_renders_cleanly(site, chromium, live_server, browser_errors, screenshot, width):
    w = _delivered_world()
    member_pages, staff_pages = _paths(w)
    viewport = PHONE if width == "phone" else {"width": 1280, "height": 900}
    failures = []
    for who, paths in ((w["admin"], member_pages), (w["staff"], staff_pages)):
        context = chromium.new_context(base_url=live_server.url, viewport=viewport)
        context.set_default_timeout(20_000)
        page = context.new_page()
        browser_errors.watch(page)
        try:
            pages.log_in(page, who.email)
            for name, path in paths:
                response = page.goto(path)
                status = response.status if response else 0
                if status >= 500 or (status >= 400 and name != "not-found"):
                    failures.append(f"{path}: HTTP {status}")
                screenshot(page, f"walk-{width}-{name}")
                text = page.locator("body").inner_text()
                for needle, present in CHECKS.get(name, ()):
                    if (needle in text) != present:
                        failures.append(f"{path}: {'missing' if present else 'shows'} {needle!r}")
                if width == "phone" and name != "api-docs":  # the API docs page is the vendored Swagger UI's own
                    try:
                        assert_no_sideways_scroll(page, path)
                    except AssertionError as exc:
                        failures.append(str(exc))
        finally:
            context.close()
    page_errors = [line for line in browser_errors.lines if line.startswith(("page error", "console error"))]
    assert failures == []
    assert page_errors == []
    assert csp_violations(browser_errors) == []
