"""The pages and endpoints the load test drives cost a fixed number of queries, however many rounds and bids there
are (bench/load.py measures their latency; this pins why it stays flat)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from marketplace.accounts.tokens import api_token_create
from marketplace.models import ApiToken, Round
from tests.factories import make_bid, make_group, make_round

pytestmark = pytest.mark.django_db


def _queries(call) -> int:
    call()  # warm: sessions, content types, the token's "last used"
    with CaptureQueriesContext(connection) as captured:
        response = call()
    assert response.status_code == 200
    return len(captured.captured_queries)


def _world(cast, n_rounds: int):
    for i in range(n_rounds):
        round = make_round(slug=f"closed-{n_rounds}-{i}", status=Round.Status.CLOSED)
        for g in range(3):
            make_bid(round=round, group=make_group(name=f"Bidder {n_rounds}-{i}-{g}"))
    open_round = make_round(slug=f"open-{n_rounds}")
    make_bid(round=open_round, group=cast.group)
    return open_round


def test_the_api_round_list_costs_the_same_queries_for_any_number_of_rounds(cast):
    _, token = api_token_create(user=cast.alice, name="load")
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    client = Client()
    counts = []
    for n in (1, 6):
        _world(cast, n)
        counts.append(_queries(lambda: client.get("/api/rounds", **headers)))
    assert counts == [2, 2]  # the token, the rounds with their bidder counts (the "last used" write is per minute)
    body = client.get("/api/rounds", **headers).json()
    assert {r["participating_groups"] for r in body if r["status"] == "closed"} == {3}
    assert [r["participating_groups"] for r in body if r["status"] == "open"] == [None, None]  # sealed while open


def test_a_token_is_written_at_most_once_a_minute(cast):
    _, token = api_token_create(user=cast.alice, name="load")
    client = Client()
    client.get("/api/rounds", HTTP_AUTHORIZATION=f"Bearer {token}")
    first = ApiToken.objects.get(user=cast.alice, name="load").last_used_at
    client.get("/api/rounds", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert first is not None and ApiToken.objects.get(user=cast.alice, name="load").last_used_at == first


def test_the_bid_read_and_the_round_page_do_not_grow_with_the_bids(cast):
    _, token = api_token_create(user=cast.alice, name="load")
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    member = Client()
    member.force_login(cast.alice)
    counts = []
    for n in (1, 6):
        round = _world(cast, n)
        for g in range(n * 3):
            make_bid(round=round, group=make_group(name=f"Open bidder {n}-{g}"))
        counts.append((
            _queries(lambda r=round: Client().get(f"/api/rounds/{r.slug}/groups/{cast.group.slug}/bid", **headers)),
            _queries(lambda r=round: member.get(f"/rounds/{r.slug}/")),
            _queries(lambda r=round: Client().get(f"/rounds/{r.slug}/")),
        ))
    assert counts[0] == counts[1]
    bid_read, member_page, visitor_page = counts[0]
    assert bid_read <= 6 and member_page <= 14 and visitor_page <= 6


def test_changing_a_bid_costs_the_same_queries_however_many_groups_bid(cast, localstripe):
    """Placing a bid is the load test's write: two short transactions, one card hold and the old hold's release.
    The count is pinned so that a change which makes each bid read the round's other bids shows here."""
    from marketplace.billing.services import billing_card_attach

    billing_card_attach(group=cast.group, by=cast.alice, payment_method_id="pm_card_visa")
    _, token = api_token_create(user=cast.alice, name="load")
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    counts = []
    for n in (1, 6):
        round = make_round(slug=f"bidding-{n}")
        for g in range(n * 3):
            make_bid(round=round, group=make_group(name=f"Rival {n}-{g}"))
        path = f"/api/rounds/{round.slug}/groups/{cast.group.slug}/bid"
        amounts = iter(range(1_000, 2_000, 100))
        counts.append(_queries(lambda p=path, amounts=amounts: Client().put(
            p, data={"amount_cents": next(amounts)}, content_type="application/json", **headers
        )))
    assert counts[0] == counts[1]
    # 28 (two of them the round's advisory lock, one per transaction), and a SAVEPOINT and its RELEASE for each of
    # the two transactions inside the test's own.
    assert counts[0] <= 32
