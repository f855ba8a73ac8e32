"""One whole round on PostgreSQL, Redis, a real Celery worker process and localstripe."""

from __future__ import annotations

import pytest

from marketplace.billing.bids import bid_place
from marketplace.billing.services import billing_card_attach
from marketplace.devtools.demo_seed import pairs_jsonl
from marketplace.models import AuctionOutcome, GroupOutcome, Payment, Round
from marketplace.orchestration.lifecycle import round_close_request, round_open_request
from tests.factories import make_group, make_round
from tests.support.cards import another_card
from tests.support.workers import wait_for
from training.lib.corpus import demo_prompts, preference_pairs_for_style, rubric_for_style
from training.models import Candidate, Evaluation, TrainingJob
from training.services.submissions import preferences_submit

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _submit_and_bid(round, group, *, kind, payload, cents):
    admin = group.memberships.get(role="admin").user
    billing_card_attach(group=group, by=admin, payment_method_id=another_card())
    preferences_submit(user=admin, group=group, round=round, kind=kind, payload=payload, source_name="prefs.jsonl")
    bid_place(user=admin, group=group, round=round, amount_cents=cents)


def test_a_round_runs_from_open_to_delivered_and_charges_each_group_its_price_once(localstripe, celery_worker_process):
    round = make_round(status=Round.Status.DRAFT, prompts=demo_prompts(4), candidates_per_prompt=6, kl_weight=2.0)
    assert round_open_request(round=round)
    wait_for(lambda: Candidate.objects.filter(round=round).count() == 24, timeout=300,
             worker=celery_worker_process, what="candidates")

    concise, cheerful, indifferent = make_group(name="Concise"), make_group(name="Cheerful"), make_group(name="Indifferent")
    pairs = preference_pairs_for_style("concise", 40, seed=3)
    _submit_and_bid(round, concise, kind="pairs", cents=3_000,
                    payload=pairs_jsonl(pairs))
    phrases, target = rubric_for_style("enthusiastic")
    _submit_and_bid(round, cheerful, kind="rubric", cents=2_000,
                    payload={"phrases": [{"phrase": k, "weight": v} for k, v in phrases.items()], "target_length_words": target})
    # Equal scores on every candidate: a null report, which must pay nothing and get its hold released.
    flat = {f"{c.prompt_index}:{c.index}": 0.5 for c in Candidate.objects.filter(round=round)}
    _submit_and_bid(round, indifferent, kind="scores", cents=1_000, payload={"scores": flat})

    assert round_close_request(round=round)
    status = wait_for(
        lambda: Round.objects.values_list("status", flat=True).get(pk=round.pk)
        if Round.objects.values_list("status", flat=True).get(pk=round.pk) in ("delivered", "failed", "cancelled") else None,
        timeout=900, interval=1.0, worker=celery_worker_process, what="the round to finish",
    )
    round.refresh_from_db()
    assert status == "delivered", round.status_detail
    wait_for(lambda: not Round.objects.get(pk=round.pk).billing_pending, timeout=120,
             worker=celery_worker_process, what="billing")

    outcome = AuctionOutcome.objects.get(round=round)
    by_group = {go.group_id: go for go in GroupOutcome.objects.filter(outcome=outcome)}
    assert set(by_group) == {concise.pk, cheerful.pk, indifferent.pk}
    for group_id, go in by_group.items():
        payments = list(Payment.objects.filter(round=round, group_id=group_id))
        captured = [p for p in payments if p.status == Payment.Status.CAPTURED]
        if go.payment_cents > 0:
            assert len(captured) == 1, payments
            assert captured[0].amount_captured_cents == go.payment_cents
            assert go.payment_cents <= go.bid_cents
        else:
            assert captured == []
            assert any(p.status == Payment.Status.RELEASED for p in payments)
    assert by_group[indifferent.pk].payment_cents == 0
    assert by_group[concise.pk].payment_cents > 0 or by_group[cheerful.pk].payment_cents > 0

    job = TrainingJob.objects.get(round=round)
    assert job.status == TrainingJob.Status.SUCCEEDED
    assert job.steps_done == job.total_steps > 0
    evaluation = Evaluation.objects.get(job=job)
    assert evaluation.tv_after < evaluation.tv_before
