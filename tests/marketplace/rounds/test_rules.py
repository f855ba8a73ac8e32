"""The round's rules, in their one home (Round): the bidding window and who sees a bid, and when."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from hypothesis import given
from hypothesis import strategies as st

from marketplace.rounds.models import Round

S = Round.Status
NOW = timezone.now()


def _round(status: str, *, opens_in_s: float = -60, closes_in_s: float = 3600) -> Round:
    # Unsaved: the rules read only the row's fields.
    return Round(status=status, opens_at=NOW + timedelta(seconds=opens_in_s), closes_at=NOW + timedelta(seconds=closes_in_s))


@given(
    status=st.sampled_from([value for value, _ in S.choices]),
    opens=st.integers(min_value=-10_000, max_value=10_000),
    length=st.integers(min_value=1, max_value=10_000),
)
def test_the_window_is_open_exactly_when_the_round_is_open_and_the_clock_is_inside_it(status, opens, length):
    round = _round(status, opens_in_s=opens, closes_in_s=opens + length)
    inside = round.opens_at <= NOW < round.closes_at
    assert round.window_open(NOW) is (status == S.OPEN and inside)


def test_the_window_opens_at_opens_at_and_closes_at_closes_at_to_the_microsecond():
    round = _round(S.OPEN, opens_in_s=0, closes_in_s=10)
    assert round.window_state(round.opens_at - timedelta(microseconds=1)) == "before"
    assert round.window_state(round.opens_at) == "open"
    assert round.window_state(round.closes_at - timedelta(microseconds=1)) == "open"
    assert round.window_state(round.closes_at) == "after"


@pytest.mark.parametrize(("status", "state"), [(S.DRAFT, "not_open"), (S.CLOSED, "after"), (S.TRAINING, "after"),
                                               (S.DELIVERED, "after"), (S.FAILED, "after"), (S.CANCELLED, "after")])
def test_a_round_that_is_not_open_takes_nothing_whatever_the_clock(status, state):
    assert _round(status).window_state(NOW) == state


@pytest.mark.parametrize("status", [value for value, _ in S.choices])
def test_a_groups_admins_always_see_its_bid_amount_and_staff_only_once_bidding_is_over(status):
    round = _round(status)
    sealed = status in (S.DRAFT, S.OPEN)
    assert round.bid_amount_visible(is_group_admin=True)
    assert round.bid_amount_visible(is_staff=True) is not sealed
    assert not round.bid_amount_visible()  # members who are not admins, other groups, the public


@pytest.mark.parametrize("status", [value for value, _ in S.choices])
def test_how_many_groups_took_part_is_public_only_after_a_real_close(status):
    # A round cancelled while still open must not reveal whether anybody bid.
    expected = status in (S.CLOSED, S.TRAINING, S.DELIVERED, S.FAILED)
    assert _round(status).participation_public is expected


@pytest.mark.parametrize("status", [value for value, _ in S.choices])
def test_a_round_can_be_cancelled_until_it_has_ended(status):
    assert _round(status).can_cancel is (status in (S.DRAFT, S.OPEN, S.CLOSED, S.TRAINING))
