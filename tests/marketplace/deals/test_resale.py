"""Resale: a bidding group lists its delivered model, verified outsiders may then use it, their tokens are metered per
buyer, listing, day and price, and the revenue (tokens x price, rounded down) is split by the agreed share."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone

from marketplace.accounts.tokens import api_token_create
from marketplace.core.errors import AppError, NotAllowed, NotFound
from marketplace.deals.models import RevenueShare
from marketplace.deals.revenue import platform_part_cents, resale_revenue_cents, statement_days
from marketplace.deals.selectors import resale_statement
from marketplace.delivery import engine_client, inference
from marketplace.delivery.models import FineTunedModel, ResaleUsageDaily, UsageDaily
from marketplace.delivery.services import resale_listing_set, resale_usage_record
from marketplace.verification.models import PendingVerification
from tests.factories import make_group, make_user
from tests.marketplace.openai_api.conftest import publish_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def token_of():
    return lambda user: api_token_create(user=user, name="sdk")[1]


@pytest.fixture
def listed(cast):
    model = publish_for(groups=[cast.group])
    listing = resale_listing_set(user=cast.alice, model=model, group=cast.group, listed=True, price_per_mtok_cents=250)
    return model, listing


# --- the arithmetic -----------------------------------------------------------------------------------------------


def test_revenue_is_tokens_times_the_price_per_million_rounded_down():
    assert resale_revenue_cents(tokens=1_000_000, price_per_mtok_cents=250) == 250
    assert resale_revenue_cents(tokens=3_999, price_per_mtok_cents=250) == 0  # 0.99975 cents
    assert resale_revenue_cents(tokens=4_000, price_per_mtok_cents=250) == 1


def test_the_platform_part_is_rounded_down_at_the_shares_decimal_value_and_the_parts_add_up():
    assert platform_part_cents(revenue_cents=100, delta=0.29) == 29  # 100 x 0.29 in binary floats is 28.999...
    assert platform_part_cents(revenue_cents=7, delta=0.5) == 3
    days = statement_days([("d1", 250, 4_000, 1), ("d1", 100, 1_000_000, 2), ("d0", 250, 10, 1)], delta=0.5)
    assert [(d.day, d.tokens, d.requests, d.revenue_cents, d.platform_cents, d.group_cents) for d in days] == [
        ("d1", 1_004_000, 3, 101, 50, 51),  # each price rounded on its own tokens, then added
        ("d0", 10, 1, 0, 0, 0),
    ]


# --- who may list, and who may then use the model --------------------------------------------------------------


def test_only_the_groups_admins_and_staff_list_the_model(cast):
    model = publish_for(groups=[cast.group])
    with pytest.raises(NotAllowed):
        resale_listing_set(user=cast.bob, model=model, group=cast.group, listed=True, price_per_mtok_cents=100)
    with pytest.raises(NotFound):
        resale_listing_set(user=cast.dave, model=model, group=cast.group, listed=True, price_per_mtok_cents=100)
    with pytest.raises(NotFound):  # carol's group did not bid in this round
        resale_listing_set(user=cast.carol, model=model, group=cast.other_group, listed=True, price_per_mtok_cents=100)
    assert resale_listing_set(user=cast.staff, model=model, group=cast.group, listed=False, price_per_mtok_cents=0)


@pytest.mark.parametrize(("listed", "price"), [(True, 0), (True, -1), (True, 10**12), (False, 1.5)])
def test_a_listing_needs_a_whole_positive_sane_price(cast, listed, price):
    model = publish_for(groups=[cast.group])
    with pytest.raises(AppError):
        resale_listing_set(user=cast.alice, model=model, group=cast.group, listed=listed, price_per_mtok_cents=price)


def test_a_listed_model_is_usable_by_any_active_verified_user_and_a_withdrawn_one_is_not(cast, listed):
    model, _ = listed
    stranger = make_user()
    assert list(FineTunedModel.objects.usable_by(stranger)) == [model]
    assert list(FineTunedModel.objects.usable_by(cast.carol)) == [model]
    unverified = make_user()
    PendingVerification.objects.create(user=unverified)
    assert not FineTunedModel.objects.usable_by(unverified).exists()
    stranger.is_active = False
    assert not FineTunedModel.objects.usable_by(stranger).exists()
    resale_listing_set(user=cast.alice, model=model, group=cast.group, listed=False, price_per_mtok_cents=250)
    assert not FineTunedModel.objects.usable_by(cast.dave).exists()
    assert list(FineTunedModel.objects.usable_by(cast.bob)) == [model]  # its own members keep it


# --- metering -------------------------------------------------------------------------------------------------


@pytest.fixture
def engine_answers(monkeypatch):
    """The engine's reply (the real engine runs in tests/integration): 30 prompt and 12 completion tokens."""
    monkeypatch.setattr(engine_client, "adapter_ensure", lambda **kw: None)
    body = {"choices": [{"text": "great"}], "usage": {"prompt_tokens": 30, "completion_tokens": 12}}
    monkeypatch.setattr(engine_client, "completion", lambda payload: body)


def test_an_outside_buyers_tokens_are_metered_to_the_listing_and_a_members_to_the_group(cast, listed, engine_answers):
    model, listing = listed
    for user in (cast.dave, cast.dave, cast.bob, cast.staff):
        target = inference.target_resolve(user=user, requested=model.model_id)
        inference.complete(target=target, prompt="Question: hi\nAnswer:", gen=inference.Generation())
    row = ResaleUsageDaily.objects.get()
    assert (row.listing_id, row.buyer, row.price_per_mtok_cents) == (listing.pk, cast.dave, 250)
    assert (row.prompt_tokens, row.completion_tokens, row.requests) == (60, 24, 2)
    assert UsageDaily.objects.get(group=cast.group).requests == 1  # bob's; staff's use is not metered


def test_the_organization_header_picks_the_seller_else_the_cheapest_listing(cast):
    second = make_group(admin=cast.carol, name="Aardvark Sellers")
    model = publish_for(groups=[cast.group, second])
    resale_listing_set(user=cast.alice, model=model, group=cast.group, listed=True, price_per_mtok_cents=300)
    resale_listing_set(user=cast.carol, model=model, group=second, listed=True, price_per_mtok_cents=200)
    assert inference.target_resolve(user=cast.dave, requested=model.model_id).resale.group == second
    chosen = inference.target_resolve(user=cast.dave, requested=model.model_id, organization=cast.group.slug)
    assert chosen.resale.group == cast.group and chosen.group is None


def test_a_price_change_starts_a_new_row_so_revenue_is_always_at_the_price_paid(cast, listed):
    model, listing = listed
    resale_usage_record(listing=listing, buyer=cast.dave, prompt_tokens=600_000, completion_tokens=400_000)
    resale_listing_set(user=cast.alice, model=model, group=cast.group, listed=True, price_per_mtok_cents=1_000)
    resale_usage_record(listing=listing, buyer=cast.dave, prompt_tokens=1_000, completion_tokens=1_000)
    statement = resale_statement(round=model.round, group=cast.group)
    (today,) = statement.days
    assert today.tokens == 1_002_000 and today.revenue_cents == 250 + 2
    assert not statement.delta_agreed and statement.delta == pytest.approx(0.3)  # the settings default
    assert (today.platform_cents, today.group_cents) == (75, 177)


def test_a_share_only_a_group_admin_recorded_is_a_proposal_and_moves_no_money(cast, listed):
    model, listing = listed
    RevenueShare.objects.create(round=model.round, group=cast.group, delta=0.0, inputs={}, agreed_by=cast.alice,
                                agreed_at=timezone.now())
    resale_usage_record(listing=listing, buyer=cast.dave, prompt_tokens=2_000_000, completion_tokens=0)
    statement = resale_statement(round=model.round, group=cast.group)
    assert not statement.delta_agreed and statement.delta_proposed == 0.0
    assert statement.delta == settings.RESALE_PLATFORM_SHARE_DEFAULT and statement.totals["platform_cents"] > 0


def test_the_agreed_share_splits_the_revenue(cast, listed):
    model, listing = listed
    RevenueShare.objects.create(round=model.round, group=cast.group, delta=0.2, inputs={}, agreed_by=cast.staff,
                                agreed_at=timezone.now())
    resale_usage_record(listing=listing, buyer=cast.dave, prompt_tokens=2_000_000, completion_tokens=0)
    yesterday = timezone.localdate() - timedelta(days=1)
    ResaleUsageDaily.objects.create(listing=listing, buyer=make_user(), day=yesterday, price_per_mtok_cents=250,
                                    prompt_tokens=1_000_000, requests=1)
    statement = resale_statement(round=model.round, group=cast.group)
    assert statement.delta_agreed and statement.delta == 0.2
    assert [(d.revenue_cents, d.platform_cents, d.group_cents) for d in statement.days] == [(500, 100, 400), (250, 50, 200)]
    assert statement.totals["revenue_cents"] == 750


# --- the page and the API -------------------------------------------------------------------------------------


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_revenue_share_page_sets_the_listing_and_shows_the_statement(cast):
    model = publish_for(groups=[cast.group])
    url = f"/rounds/{model.round.slug}/groups/{cast.group.slug}/revenue-share/"
    alice = _client(cast.alice)
    assert alice.post(url, {"action": "listing", "listed": "on", "price": "2.50"}).status_code == 302
    listing = model.listings.get()
    assert listing.listed and listing.price_per_mtok_cents == 250
    resale_usage_record(listing=listing, buyer=cast.dave, prompt_tokens=1_000_000, completion_tokens=0)
    body = alice.get(url).content.decode()
    assert 'data-testid="revenue-statement"' in body and "$2.50" in body and "$0.75" in body and "$1.75" in body
    for bad in ("abc", "-1", "2.555", "1e3"):
        assert alice.post(url, {"action": "listing", "listed": "on", "price": bad}).status_code == 400
    assert model.listings.get().price_per_mtok_cents == 250


def test_the_statement_in_the_api_is_for_the_groups_admins_and_staff_only(cast, listed, token_of):
    model, listing = listed
    resale_usage_record(listing=listing, buyer=cast.dave, prompt_tokens=1_000_000, completion_tokens=0)
    path = f"/api/rounds/{model.round.slug}/groups/{cast.group.slug}/revenue"
    get = lambda user: Client().get(path, headers={"Authorization": f"Bearer {token_of(user)}"})  # noqa: E731
    body = get(cast.alice).json()
    assert body["listing"] == {"model": model.model_id, "listed": True, "price_per_mtok_cents": 250}
    assert body["days"][0]["revenue_cents"] == 250 and body["days"][0]["platform_cents"] == 75
    assert get(cast.staff).status_code == 200
    assert get(cast.bob).status_code == 403
    assert get(cast.dave).status_code == 404  # the buyer sees the model, never the sellers' revenue
    put = Client().put(
        f"/api/rounds/{model.round.slug}/groups/{cast.group.slug}/resale",
        '{"listed": false, "price_per_mtok_cents": 250}', content_type="application/json",
        headers={"Authorization": f"Bearer {token_of(cast.alice)}"},
    )
    assert put.status_code == 200 and put.json()["listed"] is False
