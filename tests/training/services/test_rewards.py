"""Which preferences count: the last version saved strictly before the close, and nothing saved after it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from marketplace.models import PreferenceSubmission, Round
from tests.factories import make_bid, make_group, make_round
from training.models import Candidate, RewardModel
from training.services.rewards import counted_submission, reward_models_fit

pytestmark = pytest.mark.django_db

PROMPT = "Question: Hi?\nAnswer: "


def _closed_round():
    round = make_round(status=Round.Status.CLOSED, prompts=[PROMPT], closes_at=timezone.now() - timedelta(minutes=5))
    for k, text in enumerate(["Hello!", "Good day.", "Hi there, great question!"]):
        Candidate.objects.create(round=round, prompt_index=0, index=k, text=text, base_logprob=-5.0)
    return round


def _submit(round, group, *, version, phrase, saved_at, kind="rubric", payload=None):
    admin = group.memberships.get(role="admin").user
    submission = PreferenceSubmission.objects.create(
        round=round, group=group, version=version, kind=kind, submitted_by=admin,
        payload=payload or {"phrases": [{"phrase": phrase, "weight": 1.0}], "target_length_words": None},
    )
    PreferenceSubmission.objects.filter(pk=submission.pk).update(created_at=saved_at)
    return submission


def test_the_last_version_saved_before_the_close_counts_and_a_later_one_never_does():
    round = _closed_round()
    group = make_group()
    make_bid(round=round, group=group)
    before = _submit(round, group, version=1, phrase="great", saved_at=round.closes_at - timedelta(seconds=1))
    _submit(round, group, version=2, phrase="Good", saved_at=round.closes_at + timedelta(seconds=1))
    assert counted_submission(round=round, group=group) == before

    [fitted] = reward_models_fit(round=round)
    assert fitted.submission_id == before.pk
    assert fitted.normalised_scores == [[0.0, 0.0, 1.0]]


def test_a_version_saved_exactly_at_the_close_does_not_count():
    round = _closed_round()
    group = make_group()
    make_bid(round=round, group=group)
    _submit(round, group, version=1, phrase="great", saved_at=round.closes_at)
    assert counted_submission(round=round, group=group) is None


def test_a_group_with_nothing_saved_before_the_close_is_left_out_and_its_admins_are_told_once():
    round = _closed_round()
    on_time, late = make_group(), make_group()
    for group in (on_time, late):
        make_bid(round=round, group=group)
    _submit(round, on_time, version=1, phrase="great", saved_at=round.closes_at - timedelta(minutes=1))
    _submit(round, late, version=1, phrase="Good", saved_at=round.closes_at + timedelta(minutes=1))

    fitted = reward_models_fit(round=round)
    assert [rm.group_id for rm in fitted] == [on_time.pk]
    assert not RewardModel.objects.filter(round=round, group=late).exists()
    [notice] = mail.outbox
    assert notice.to == [late.memberships.get(role="admin").user.email]
    assert "no preferences before the close" in notice.body and "nothing is charged" in notice.body

    reward_models_fit(round=round)  # a retried settle
    assert len(mail.outbox) == 1


def test_direct_scores_keep_their_own_candidate_even_when_two_candidates_share_a_text():
    round = make_round(status=Round.Status.CLOSED, prompts=[PROMPT], closes_at=timezone.now() - timedelta(minutes=5))
    for k, text in enumerate(["Same words.", "Same words.", "Other words."]):
        Candidate.objects.create(round=round, prompt_index=0, index=k, text=text, base_logprob=-5.0)
    group = make_group()
    make_bid(round=round, group=group)
    _submit(round, group, version=1, phrase="", kind="scores", saved_at=round.closes_at - timedelta(minutes=1),
            payload={"scores": {"0:0": 1.0, "0:1": 0.0, "0:2": 0.5}})

    [fitted] = reward_models_fit(round=round)
    assert fitted.raw_scores == [[1.0, 0.0, 0.5]]
    assert fitted.normalised_scores == [[1.0, 0.0, 0.5]]
