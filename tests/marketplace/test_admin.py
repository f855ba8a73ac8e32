"""The staff admin: rounds are created through the service, statuses move only by actions, bids stay sealed."""

from __future__ import annotations

import json

import pytest

from marketplace.models import Round
from tests.factories import make_bid, make_group, make_round, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client):
    client.force_login(make_user(staff=True))
    return client


def round_form(**overrides):
    data = {
        "title": "Polite support",
        "description": "",
        "base_model": "tiny",
        "prompts": '["Hello?", "Is shipping free?"]',
        "prompt_weights": "null",
        "kl_weight": "1.5",
        "candidates_per_prompt": "4",
        "currency": "usd",
        "opens_at_0": "2030-01-01",
        "opens_at_1": "10:00:00",
        "closes_at_0": "2030-01-02",
        "closes_at_1": "10:00:00",
        "status": "delivered",  # not a form field: must be ignored
    }
    data.update(overrides)
    return data


def test_staff_create_a_round_in_draft_whatever_status_they_post(staff_client):
    response = staff_client.post("/admin/marketplace/round/add/", round_form())
    assert response.status_code == 302, response.content.decode()[:2000]
    round = Round.objects.get()
    assert round.status == "draft" and round.slug == "polite-support" and round.prompts == ["Hello?", "Is shipping free?"]


def test_the_admin_shows_the_services_errors_beside_the_field(staff_client):
    response = staff_client.post("/admin/marketplace/round/add/", round_form(closes_at_0="2029-12-31"))
    assert response.status_code == 200
    assert "Bidding must close after it opens." in response.content.decode()
    assert not Round.objects.exists()


def test_editing_a_round_cannot_change_its_status(staff_client):
    round = make_round(status="open")
    data = round_form(title="Renamed", status="cancelled", prompts=json.dumps(round.prompts), kl_weight="1.0")
    for name in ("opens_at", "closes_at"):
        value = getattr(round, name)
        data[f"{name}_0"], data[f"{name}_1"] = value.strftime("%Y-%m-%d"), value.strftime("%H:%M:%S")
    response = staff_client.post(f"/admin/marketplace/round/{round.pk}/change/", data)
    assert response.status_code == 302, response.content.decode()[:3000]
    round.refresh_from_db()
    assert (round.title, round.status) == ("Renamed", "open")


def test_admin_actions_move_statuses_through_the_state_machine(staff_client):
    draft, other = make_round(status="draft"), make_round(status="delivered")
    staff_client.post("/admin/marketplace/round/", {"action": "open_rounds", "_selected_action": [draft.pk, other.pk]})
    draft.refresh_from_db(), other.refresh_from_db()
    assert draft.status == "open" and other.status == "delivered"
    staff_client.post("/admin/marketplace/round/", {"action": "close_rounds", "_selected_action": [draft.pk]})
    draft.refresh_from_db()
    assert draft.status == "closed"


def test_bid_amounts_are_sealed_in_the_admin_until_the_close(staff_client):
    round = make_round(status="open")
    group = make_group(name="Secretive Bidders")
    bid = make_bid(round=round, group=group, amount_cents=123_456)
    for url in ["/admin/marketplace/bid/", f"/admin/marketplace/bid/{bid.pk}/change/", "/admin/marketplace/payment/"]:
        body = staff_client.get(url, follow=True).content.decode()
        assert "1,234.56" not in body and "123456" not in body and "Secretive Bidders" not in body
    Round.objects.filter(pk=round.pk).update(status="closed")
    assert "$1,234.56" in staff_client.get("/admin/marketplace/bid/").content.decode()


@pytest.mark.parametrize("probe", ["amount_cents__gte=100000", "amount_cents__lt=200000", "amount_cents=123456"])
def test_amounts_cannot_be_probed_through_admin_url_filters(staff_client, probe):
    round = make_round(status="closed")
    make_bid(round=round, group=make_group(), amount_cents=123_456)
    response = staff_client.get(f"/admin/marketplace/bid/?{probe}")
    # Django refuses a disallowed lookup outright (DisallowedModelAdminLookup), whatever the amount.
    assert response.status_code == 400


def test_every_marketplace_admin_page_renders(staff_client):
    make_bid(round=make_round(), group=make_group())
    for name in ["round", "preferencegroup", "membership", "invitation", "preferencesubmission", "bid", "payment",
                 "billingcustomer", "webhookevent", "auctionoutcome", "apitoken"]:
        assert staff_client.get(f"/admin/marketplace/{name}/").status_code == 200, name
