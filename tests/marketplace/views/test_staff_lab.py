"""The staff truthfulness lab of a closed round: the lab's sweeps on the round's real stored auction, per group."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from marketplace.models import PreferenceSubmission, Round
from marketplace.orchestration.auction import auction_run
from marketplace.orchestration.truthfulness import round_truthfulness_lab
from tests.factories import make_bid, make_group, make_round, make_user
from training.models import Candidate
from training.services.rewards import reward_models_fit

pytestmark = pytest.mark.django_db

PROMPTS = ["Question: Hi?\nAnswer: ", "Question: Bye?\nAnswer: "]
TEXTS = [["Hello!", "Good day.", "Hi there, great question!"], ["Bye.", "Farewell, kind friend.", "See you! Great!"]]
PHRASES = {"Lively Lot": "great", "Polite Pack": "kind", "Brief Bunch": "Bye"}


def _delivered_round():
    round = make_round(status=Round.Status.CLOSED, prompts=PROMPTS, closes_at=timezone.now() - timedelta(hours=1),
                       kl_weight=0.5)
    for p, row in enumerate(TEXTS):
        for k, text in enumerate(row):
            Candidate.objects.create(round=round, prompt_index=p, index=k, text=text, base_logprob=-5.0)
    for n, (name, phrase) in enumerate(PHRASES.items()):
        group = make_group(name=name)
        make_bid(round=round, group=group, amount_cents=1_000 + 700 * n)
        submission = PreferenceSubmission.objects.create(
            round=round, group=group, version=1, kind="rubric", submitted_by=group.memberships.get(role="admin").user,
            payload={"phrases": [{"phrase": phrase, "weight": 1.0}], "target_length_words": None},
        )
        PreferenceSubmission.objects.filter(pk=submission.pk).update(created_at=round.closes_at - timedelta(minutes=1))
    reward_models_fit(round=round)
    auction_run(round=round)
    Round.objects.filter(pk=round.pk).update(status=Round.Status.DELIVERED)
    round.refresh_from_db()
    return round


def test_every_group_of_the_real_auction_finds_no_misreport_that_beats_the_truth():
    lab = round_truthfulness_lab(round=_delivered_round(), points=11)
    assert lab.available and len(lab.groups) == 3
    for group in lab.groups:
        assert [s.family for s in group.sweeps] == ["bid_scale", "exaggeration", "mixing"]
        for s in group.sweeps:
            assert s.truthful_parameter in s.parameters
            assert s.best_gain <= lab.tolerance and s.truth_is_best, (group.slug, s.family, s.best_gain)
    # Without payments some lie pays (the bid scaled up buys a model closer to the group's taste).
    assert any(s.best_gain_without_payments > 1e-6 for g in lab.groups for s in g.sweeps)


def test_staff_see_the_charts_linked_from_the_round_page_and_the_page_has_no_inline_script_or_style(client):
    round = _delivered_round()
    client.force_login(make_user(staff=True))
    detail = client.get(f"/staff/rounds/{round.slug}/").content.decode()
    assert f"/staff/rounds/{round.slug}/lab/" in detail

    response = client.get(f"/staff/rounds/{round.slug}/lab/")
    body = response.content.decode()
    assert response.status_code == 200
    assert body.count("<svg") == 9 and body.count('data-truth-is-best="yes"') == 9
    for name in PHRASES:
        assert name in body
    assert 'data-marker="truthful alpha = 1"' in body
    assert not re.search(r"<script(?![^>]*\bsrc=)", body), "inline script"
    assert " style=" not in body and "<style" not in body


def test_one_group_alone_and_an_unknown_group_is_a_404(client):
    round = _delivered_round()
    client.force_login(make_user(staff=True))
    slug = round.outcome.instance["groups"][0]["id"]
    alone = client.get(f"/staff/rounds/{round.slug}/lab/?group={slug}").content.decode()
    assert alone.count("<svg") == 3
    assert client.get(f"/staff/rounds/{round.slug}/lab/?group=nobody%00<x>").status_code == 404


def test_a_round_without_an_auction_says_so(client):
    client.force_login(make_user(staff=True))
    closed = make_round(status=Round.Status.CLOSED)
    response = client.get(f"/staff/rounds/{closed.slug}/lab/")
    assert response.status_code == 200 and "The auction has not run for this round." in response.content.decode()
    sealed = make_round(status=Round.Status.OPEN)
    assert "sealed" in client.get(f"/staff/rounds/{sealed.slug}/lab/").content.decode()


def test_people_who_are_not_staff_get_a_404(client):
    round = _delivered_round()
    client.force_login(make_user())
    assert client.get(f"/staff/rounds/{round.slug}/lab/").status_code == 404
