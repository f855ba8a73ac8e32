"""Campaign and AdInvoice life cycles: every pair of statuses, allowed moves succeed once, all others are refused."""

from __future__ import annotations

import itertools
import secrets

import pytest

from marketplace.core.transitions import IllegalTransition, compare_and_set
from marketplace.sponsored.models import AdInvoice, Campaign
from marketplace.sponsored.services import today
from tests.factories import make_group, make_user
from tests.marketplace.sponsored.conftest import make_campaign

pytestmark = pytest.mark.django_db


def _row(model, status: str):
    if model is Campaign:
        admin = make_user()
        return make_campaign(group=make_group(admin=admin), by=admin, status=status)
    return AdInvoice.objects.create(group=make_group(), period=today(), currency="usd", amount_cents=10,
                                    idempotency_key=secrets.token_hex(8), status=status)


CASES = [(m, a, b) for m in (Campaign, AdInvoice)
         for a, b in itertools.product([v for v, _ in m.Status.choices], repeat=2)]


def test_each_table_names_every_status_and_nothing_else():
    for model in (Campaign, AdInvoice):
        assert set(model.TRANSITIONS) == set(model.Status.values)
        assert all(t <= set(model.TRANSITIONS) for t in model.TRANSITIONS.values())


@pytest.mark.parametrize("model,from_status,to_status", CASES, ids=lambda v: getattr(v, "__name__", v))
def test_every_move_is_allowed_once_or_refused_without_change(model, from_status, to_status):
    row = _row(model, from_status)
    if to_status in model.TRANSITIONS[from_status]:
        assert compare_and_set(model, pk=row.pk, from_status=from_status, to_status=to_status)
        assert not compare_and_set(model, pk=row.pk, from_status=from_status, to_status=to_status) or from_status == to_status
        row.refresh_from_db()
        assert row.status == to_status
    else:
        with pytest.raises(IllegalTransition):
            compare_and_set(model, pk=row.pk, from_status=from_status, to_status=to_status)
        row.refresh_from_db()
        assert row.status == from_status
