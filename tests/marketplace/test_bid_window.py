"""The bid page and the bidding window: amounts typed exactly, sealed views, and a bid racing the close."""

from __future__ import annotations

import random
import threading
import time
from datetime import timedelta

import pytest
from django import forms
from django.db import connection, transaction
from django.urls import reverse
from django.utils import timezone

from marketplace.errors import AppError
from marketplace.forms.bids import amount_to_cents
from marketplace.models import Bid, Payment, Round
from marketplace.services.bids import bid_place
from marketplace.services.rounds import round_transition
from tests.factories import make_bid, make_group, make_round, make_user

S = Round.Status


def bid_url(round, group, name="bid_edit"):
    return reverse(name, kwargs={"slug": round.slug, "group_slug": group.slug})


# ---------- amounts ----------


@pytest.mark.parametrize(
    "text,cents",
    [("25.00", 2500), ("25", 2500), ("0.01", 1), ("1,000,000", 100_000_000), ("$19.99", 1999), ("0.1", 10), ("7.500", 750)],
)
def test_amounts_become_exact_cents(text, cents):
    assert amount_to_cents(text) == cents


@pytest.mark.parametrize(
    "text,message",
    [
        ("25.001", "two decimal places"),
        ("-5", "cannot be negative"),
        ("0", "more than zero"),
        ("0.00", "more than zero"),
        ("1000000.01", "largest bid"),
        ("1e9", "largest bid"),
        ("abc", "such as 25.00"),
        ("NaN", "such as 25.00"),
        ("", "such as 25.00"),
    ],
)
def test_it_refuses_bad_amounts(text, message):
    with pytest.raises(forms.ValidationError, match=message):
        amount_to_cents(text)


# ---------- the page ----------


@pytest.mark.django_db
def test_an_admin_places_and_changes_a_bid_on_the_page(client, group_with_card, group_admin):
    round = make_round()
    client.force_login(group_admin)
    response = client.post(bid_url(round, group_with_card), {"amount": "25.00"}, follow=True)
    assert response.status_code == 200
    assert "$25.00" in response.content.decode()
    response = client.post(bid_url(round, group_with_card), {"amount": "30.10"}, follow=True)
    bid = Bid.objects.get(round=round, group=group_with_card)
    assert (bid.amount_cents, bid.status) == (3010, Bid.Status.ACTIVE)
    assert Payment.objects.filter(bid=bid, status=Payment.Status.HELD, amount_held_cents=3010).exists()


@pytest.mark.django_db
def test_an_admin_withdraws_a_bid(client, group_with_card, group_admin):
    round = make_round()
    bid_place(user=group_admin, group=group_with_card, round=round, amount_cents=4200)
    client.force_login(group_admin)
    response = client.post(bid_url(round, group_with_card, "bid_withdraw"), follow=True)
    assert "withdrawn" in response.content.decode()
    assert Bid.objects.get(round=round, group=group_with_card).status == Bid.Status.WITHDRAWN


@pytest.mark.django_db
def test_a_bad_amount_is_shown_beside_the_field_and_nothing_is_placed(client):
    admin = make_user()
    group = make_group(admin=admin)
    round = make_round()
    client.force_login(admin)
    response = client.post(bid_url(round, group), {"amount": "12.345"})
    assert response.status_code == 400
    assert "two decimal places" in response.content.decode()
    assert not Bid.objects.exists()


@pytest.mark.django_db
def test_bidding_without_a_card_says_what_to_do(client):
    admin = make_user()
    group = make_group(admin=admin)
    round = make_round()
    client.force_login(admin)
    response = client.post(bid_url(round, group), {"amount": "10"})
    assert "Add a card" in response.content.decode()
    assert not Bid.objects.exists()


@pytest.mark.django_db
def test_members_see_that_their_group_bid_but_not_the_amount(client):
    member = make_user()
    group = make_group(members=[member])
    round = make_round()
    make_bid(round=round, group=group, amount_cents=123_456)
    client.force_login(member)
    body = client.get(bid_url(round, group)).content.decode()
    assert "Your group has bid" in body
    assert "1,234.56" not in body and "1234.56" not in body and "123456" not in body


@pytest.mark.django_db
def test_members_cannot_place_or_withdraw(client):
    member = make_user()
    group = make_group(members=[member])
    round = make_round()
    make_bid(round=round, group=group, amount_cents=5000)
    client.force_login(member)
    assert client.post(bid_url(round, group), {"amount": "99"}).status_code == 403
    assert client.post(bid_url(round, group, "bid_withdraw")).status_code == 403
    assert Bid.objects.get().amount_cents == 5000 and Bid.objects.get().status == Bid.Status.ACTIVE


@pytest.mark.django_db
def test_the_page_explains_what_a_bid_means_and_the_hold():
    from django.test import Client

    admin = make_user()
    group = make_group(admin=admin)
    client = Client()
    client.force_login(admin)
    body = client.get(bid_url(make_round(), group)).content.decode()
    assert "the most your group would pay for a model that always gives your favourite kind of answer instead of your least favourite" in body
    assert "held for the bid amount" in body and "Only the auction price is captured" in body


@pytest.mark.django_db
def test_after_close_admins_see_their_amount_but_cannot_change_it(client, group_with_card, group_admin):
    round = make_round()
    bid_place(user=group_admin, group=group_with_card, round=round, amount_cents=7777)
    round_transition(round=round, from_status=S.OPEN, to_status=S.CLOSED)
    client.force_login(group_admin)
    body = client.get(bid_url(round, group_with_card)).content.decode()
    assert "$77.77" in body and "Change bid" not in body
    response = client.post(bid_url(round, group_with_card), {"amount": "1.00"})
    assert "not open" in response.content.decode()
    assert Bid.objects.get(round=round).amount_cents == 7777


@pytest.mark.django_db
def test_a_bid_after_the_window_is_refused(group_with_card, group_admin):
    past = make_round(closes_at=timezone.now() - timedelta(seconds=1))
    with pytest.raises(AppError, match="closed"):
        bid_place(user=group_admin, group=group_with_card, round=past, amount_cents=1000)
    assert not Bid.objects.filter(round=past).exists()


# ---------- the race with the close ----------


def _close_with_lock(round_id: int, seen: list[int], hold_s: float = 0.0) -> None:
    """Close the round the way the lifecycle does: lock the row, read the bids that count, flip the status."""
    with transaction.atomic():
        locked = Round.objects.select_for_update().get(pk=round_id)
        if hold_s:
            time.sleep(hold_s)
        seen.extend(Bid.objects.filter(round_id=round_id, status=Bid.Status.ACTIVE).values_list("pk", flat=True))
        assert round_transition(round=locked, from_status=S.OPEN, to_status=S.CLOSED)


def _run_in_threads(*targets):
    errors: list[BaseException] = []

    def wrap(fn):
        def run():
            try:
                fn()
            except BaseException as exc:  # surfaced by the test, not lost in the thread
                errors.append(exc)
            finally:
                connection.close()

        return run

    threads = [threading.Thread(target=wrap(t)) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return errors


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("attempt", range(6))
def test_a_bid_racing_the_close_is_either_in_before_it_or_refused(attempt, group_with_card, group_admin):
    round = make_round()
    seen_by_close: list[int] = []
    outcome: dict[str, object] = {}
    start = threading.Barrier(2)
    delay = random.Random(attempt).uniform(0, 0.25)  # spread the close across the bid's steps

    def place():
        start.wait()
        try:
            outcome["bid"] = bid_place(user=group_admin, group=group_with_card, round=round, amount_cents=2500 + attempt)
        except AppError as exc:
            outcome["refused"] = exc

    def close():
        start.wait()
        time.sleep(delay)
        _close_with_lock(round.pk, seen_by_close)

    assert _run_in_threads(place, close) == []
    round.refresh_from_db()
    active = list(Bid.objects.filter(round=round, status=Bid.Status.ACTIVE).values_list("pk", flat=True))
    assert round.status == S.CLOSED
    if "bid" in outcome:
        # In, and in before the close: the close saw exactly this bid.
        assert active == [outcome["bid"].pk] == seen_by_close
    else:
        assert outcome["refused"].code in ("round_closed", "round_not_open")
        assert active == [] and seen_by_close == []
        assert not Payment.objects.filter(round=round, status=Payment.Status.HELD).exists()


@pytest.mark.django_db(transaction=True)
def test_a_bid_waits_for_a_close_in_progress_and_is_then_refused(group_with_card, group_admin):
    round = make_round()
    seen: list[int] = []
    locked = threading.Event()
    outcome: dict[str, object] = {}

    def close():
        with transaction.atomic():
            Round.objects.select_for_update().get(pk=round.pk)
            locked.set()
            time.sleep(0.5)
            seen.extend(Bid.objects.filter(round=round).values_list("pk", flat=True))
            round_transition(round=round, from_status=S.OPEN, to_status=S.CLOSED)

    def place():
        locked.wait(timeout=10)
        try:
            outcome["bid"] = bid_place(user=group_admin, group=group_with_card, round=round, amount_cents=900)
        except AppError as exc:
            outcome["refused"] = exc

    assert _run_in_threads(close, place) == []
    assert "refused" in outcome and outcome["refused"].code in ("round_closed", "round_not_open")
    assert seen == [] and not Bid.objects.filter(round=round).exists()
