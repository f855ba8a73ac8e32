"""Every life cycle is one transition table, and every status write goes through it: walk each table whole."""

from __future__ import annotations

import itertools
import secrets
from datetime import timedelta

import pytest
from django.utils import timezone

from marketplace.billing.models import Payment
from marketplace.core.transitions import IllegalTransition, compare_and_set
from marketplace.deals.models import RoundContract
from marketplace.groups.models import Invitation
from marketplace.rounds.models import Bid, Round
from tests.factories import make_group, make_round, make_user
from training.models import TrainingJob

MODELS = [Round, Payment, Bid, Invitation, TrainingJob, RoundContract]


def _row(model, status: str):
    """A row of `model` sitting in `status`, created directly (the state under test, not a path to it)."""
    if model is Round:
        return make_round(status=status)
    if model is RoundContract:
        return RoundContract.objects.create(
            round=make_round(), status=status, inputs={}, payments=[0.0], payments_cents=[0], expected_payment=0.0,
            max_payment=0.0,
        )
    if model is TrainingJob:
        return TrainingJob.objects.create(round=make_round(status=Round.Status.TRAINING), status=status)
    group = make_group()
    if model is Invitation:
        return Invitation.objects.create(
            group=group, token_hash=secrets.token_hex(32), invited_by=make_user(), status=status,
            expires_at=timezone.now() + timedelta(days=1),
        )
    round = make_round(status=Round.Status.OPEN)
    if model is Bid:
        return Bid.objects.create(round=round, group=group, amount_cents=100, currency="usd", placed_by=make_user(),
                                  status=status)
    return Payment.objects.create(round=round, group=group, currency="usd", idempotency_key=secrets.token_hex(16),
                                  status=status)


def _pairs(model):
    statuses = [value for value, _ in model.Status.choices]
    return [(model, a, b) for a, b in itertools.product(statuses, statuses)]


def test_every_status_has_a_row_in_its_table():
    for model in MODELS:
        assert set(model.TRANSITIONS) == {value for value, _ in model.Status.choices}, model.__name__
        for targets in model.TRANSITIONS.values():
            assert targets <= set(model.TRANSITIONS), model.__name__


@pytest.mark.django_db
@pytest.mark.parametrize(("model", "from_status", "to_status"), [p for m in MODELS for p in _pairs(m)],
                         ids=lambda v: getattr(v, "__name__", v))
def test_allowed_moves_succeed_once_and_all_others_are_refused(model, from_status, to_status):
    row = _row(model, from_status)
    if to_status in model.TRANSITIONS[from_status]:
        assert compare_and_set(model, pk=row.pk, from_status=from_status, to_status=to_status)
        # The second identical request finds the row moved (unless the move is onto itself) and changes nothing.
        again = compare_and_set(model, pk=row.pk, from_status=from_status, to_status=to_status)
        assert again is (from_status == to_status)
        assert model.objects.get(pk=row.pk).status == to_status
    else:
        with pytest.raises(IllegalTransition):
            compare_and_set(model, pk=row.pk, from_status=from_status, to_status=to_status)
        assert model.objects.get(pk=row.pk).status == from_status


@pytest.mark.django_db
def test_a_row_in_another_status_is_left_alone():
    round = make_round(status=Round.Status.CLOSED)
    assert not compare_and_set(Round, pk=round.pk, from_status=Round.Status.OPEN, to_status=Round.Status.CANCELLED)
    assert Round.objects.get(pk=round.pk).status == Round.Status.CLOSED
