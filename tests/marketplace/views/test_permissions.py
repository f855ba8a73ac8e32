"""Who may see or change a group's data: one table of every page and endpoint that touches it, checked for five viewers.

Each row says, per viewer, "ok" (allowed), "denied" (403 or 404), "404", "login" (sent to the login page), "401" (API
without a token), "400" (a refused parameter, checked after access) or None (allowed or refused by rules its own tests pin, e.g. an admin's POST without form data).
Whatever the outcome, a response never shows the bid amount to anyone but the group's admins, and never shows the
group's name to someone outside the group; a refused request changes nothing. Rows whose URL name does not resolve yet
are skipped, so a page is covered as soon as it exists.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.shortcuts import resolve_url
from django.test import Client
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from marketplace.accounts.tokens import api_token_create
from marketplace.deals.models import RevenueShare, RoundContract
from marketplace.delivery.models import FineTunedModel, ResaleListing
from marketplace.models import (
    AuctionOutcome,
    Bid,
    GroupOutcome,
    Invitation,
    Membership,
    PreferenceGroup,
    PreferenceSubmission,
    Round,
)
from tests.factories import make_bid, make_round
from tests.personas import GROUP_NAME, ROLES
from training.services.submissions import preferences_submit

pytestmark = pytest.mark.django_db

AMOUNT_CENTS = 98_765
AMOUNT_STRINGS = ("987.65", "98765", "98,765")



@dataclass(frozen=True)
class Route:
    name: str
    kwargs: Callable[[dict], dict]
    expect: dict[str, str | None]
    method: str = "get"
    data: Callable[[dict], Any] | None = None
    api_path: Callable[[dict], str] | None = None  # set for API endpoints instead of `name`
    staff_sees_group: bool = False  # pages the lead opened to operators (reward models)
    id: str = field(default="")

    @property
    def label(self) -> str:
        return self.id or f"{self.method.upper()} {self.name}"


def group_kw(w):
    return {"slug": w["group"].slug}


def round_group_kw(w):
    return {"slug": w["round"].slug, "group_slug": w["group"].slug}


def delivered_round_group_kw(w):
    return {"slug": w["delivered"].slug, "group_slug": w["group"].slug}


def published_round_group_kw(w):
    return {"slug": w["model"].round.slug, "group_slug": w["group"].slug}


def round_kw(w):
    return {"slug": w["round"].slug}


def member_kw(w):
    return {"slug": w["group"].slug, "membership_id": w["member_membership"].pk}


def invitation_kw(w):
    return {"slug": w["group"].slug, "invitation_id": w["invitation"].pk}


def model_kw(w):
    return {"model_id": w["model"].model_id}


def campaign_kw(w):
    """The group's ad campaign (created on first use; its 0.50 bid is not one of AMOUNT_STRINGS)."""
    from marketplace.sponsored.models import Campaign

    campaign = Campaign.objects.filter(group=w["group"]).first() or Campaign.objects.create(
        group=w["group"], created_by=w["cast"].alice, name="Matrix ad", ad_text="Kettles that boil fast.",
        landing_url="https://acme.example/", bid_cents=50, daily_budget_cents=1_000)
    return {"slug": w["group"].slug, "campaign_id": campaign.pk}


def model_api(path: str):
    return lambda w: path.format(model=w["model"].model_id, group=w["group"].slug)


def published_api(path: str):
    return lambda w: "/api" + path.format(round=w["model"].round.slug, group=w["group"].slug)


def api(path: str):
    return lambda w: "/api" + path.format(round=w["round"].slug, group=w["group"].slug)


# Shorthands for the common shapes of a row.
GROUP_PAGE = {"anonymous": "login", "outsider": "404", "member": "ok", "admin": "ok", "staff": "404"}
ADMIN_PAGE = {"anonymous": "login", "outsider": "404", "member": "denied", "admin": "ok", "staff": "404"}
ADMIN_ACTION = {"anonymous": "login", "outsider": "404", "member": "denied", "admin": None, "staff": "404"}
MEMBER_ACTION = {"anonymous": "login", "outsider": "404", "member": None, "admin": None, "staff": "404"}
STAFF_PAGE = {"anonymous": "login", "outsider": "404", "member": "404", "admin": "404", "staff": "ok"}
STAFF_ACTION = {"anonymous": "login", "outsider": "404", "member": "404", "admin": "404", "staff": None}
PUBLIC = dict.fromkeys(ROLES, "ok")
API_ANYONE = {"anonymous": "401", "outsider": "ok", "member": "ok", "admin": "ok", "staff": "ok"}
API_GROUP = {"anonymous": "401", "outsider": "404", "member": "ok", "admin": "ok", "staff": "404"}
API_ADMIN_ACTION = {"anonymous": "401", "outsider": "404", "member": "denied", "admin": None, "staff": "404"}
# A group's costs, shares and resale revenue: its admins' and staff's (members 403, everyone else 404).
API_SHARES = {"anonymous": "401", "outsider": "404", "member": "denied", "admin": "ok", "staff": "ok"}
# The delivered model: the bidding groups' members and staff (FineTunedModel.objects.usable_by), nobody else.
MODEL_PAGE = {"anonymous": "login", "outsider": "404", "member": "ok", "admin": "ok", "staff": "ok"}
LOGGED_IN = {"anonymous": "login", "outsider": "ok", "member": "ok", "admin": "ok", "staff": "ok"}
API_MODEL = {"anonymous": "401", "outsider": "404", "member": "ok", "admin": "ok", "staff": "ok"}
# /v1/ generation: the model is checked before the parameters, so with max_tokens over the limit those with access
# get a 400 without reaching the engine (generation itself: tests/marketplace/openai_api, tests/integration).
API_MODEL_PARAMS = {"anonymous": "401", "outsider": "404", "member": "400", "admin": "400", "staff": "400"}

RUBRIC_FORM = {"kind": "rubric", "phrases": "kind words, 1"}
CONTRACT_FORM = {
    "action": "compute", "objective": "min_pay", "name_0": "base", "cost_0": "0", "dist_0": "0.6 0.4",
    "name_1": "tuned", "cost_1": "1", "dist_1": "0.2 0.8",
}
SHARE_FORM = {"action": "agree", "c0": "1", "c1": "2", "r": "1", "delta": "0.6"}
LISTING_FORM = {"action": "listing", "listed": "on", "price": "2.50"}
CAMPAIGN_FORM = {"name": "Kettles", "ad_text": "Kettles that boil fast.", "landing_url": "https://acme.example/",
                 "bid": "0.40", "daily_budget": "20.00"}

ROUTES = [
    # site-core: the group's own pages
    Route("group_detail", group_kw, GROUP_PAGE),
    Route("group_members", group_kw, GROUP_PAGE),
    Route("group_rounds", group_kw, GROUP_PAGE),
    Route("group_preferences", group_kw, GROUP_PAGE),
    Route("group_invitations", group_kw, ADMIN_PAGE),
    Route("group_settings", group_kw, ADMIN_PAGE),
    Route("group_settings", group_kw, ADMIN_ACTION, method="post", data=lambda w: {"name": "Renamed", "description": ""}),
    Route("group_invitations", group_kw, ADMIN_ACTION, method="post", data=lambda w: {"email": "new@example.com", "role": "member"}),
    Route("membership_promote", member_kw, ADMIN_ACTION, method="post"),
    Route("membership_demote", member_kw, ADMIN_ACTION, method="post"),
    Route("membership_remove", member_kw, ADMIN_ACTION, method="post"),
    Route("invitation_revoke", invitation_kw, ADMIN_ACTION, method="post"),
    Route("group_leave", group_kw, MEMBER_ACTION, method="post"),
    # billing: the card and receipts
    Route("group_billing", group_kw, {**ADMIN_PAGE, "member": None}),
    Route("group_billing_setup", group_kw, ADMIN_ACTION, method="post"),
    Route("group_billing_card", group_kw, ADMIN_ACTION, method="post", data=lambda w: {"payment_method_id": "pm_card_visa"}),
    Route("receipt", delivered_round_group_kw, {**ADMIN_PAGE, "member": None, "admin": None}),
    Route("staff_round_billing", round_kw, STAFF_PAGE),
    # training: the group's reward model and labelling
    Route("group_reward_model", round_group_kw, {**GROUP_PAGE, "staff": "ok"}, staff_sees_group=True),
    Route("group_label", round_group_kw, GROUP_PAGE),
    # rounds: public pages, the group's preferences and bid, the staff pages
    Route("round_list", lambda w: {}, PUBLIC),
    Route("round_detail", round_kw, PUBLIC),
    Route("preferences_edit", round_group_kw, GROUP_PAGE),
    Route("candidates_csv", round_group_kw, GROUP_PAGE),
    Route("preferences_edit", round_group_kw, {**GROUP_PAGE, "member": "ok", "admin": "ok"}, method="post", data=lambda w: RUBRIC_FORM),
    Route("bid_edit", round_group_kw, GROUP_PAGE),
    Route("bid_edit", round_group_kw, ADMIN_ACTION, method="post", data=lambda w: {"amount": "1.00"}),
    Route("bid_withdraw", round_group_kw, ADMIN_ACTION, method="post"),
    Route("staff_round_list", lambda w: {}, STAFF_PAGE),
    Route("staff_round_new", lambda w: {}, STAFF_PAGE),
    Route("staff_round_detail", round_kw, STAFF_PAGE),
    Route("staff_round_edit", round_kw, STAFF_PAGE),
    Route("staff_round_close", round_kw, STAFF_ACTION, method="post"),
    Route("staff_round_cancel", round_kw, STAFF_ACTION, method="post"),
    Route("staff_round_resume", round_kw, STAFF_ACTION, method="post"),
    Route("staff_round_lab", round_kw, STAFF_PAGE),
    Route("staff_round_lab", lambda w: {"slug": w["model"].round.slug}, STAFF_PAGE, id="GET staff_round_lab delivered"),
    Route("staff_round_open", lambda w: {"slug": w["draft"].slug}, STAFF_ACTION, method="post"),
    # economics (marketplace.deals): launch pricing and a round's contract are staff's; a group's revenue share is its
    # admins' and staff's only (members 403, outsiders 404)
    Route("staff_pricing", lambda w: {}, STAFF_PAGE),
    Route("staff_round_contract", round_kw, STAFF_PAGE),
    Route("staff_round_contract", round_kw, STAFF_ACTION, method="post", data=lambda w: CONTRACT_FORM),
    Route("revenue_share", delivered_round_group_kw, {**ADMIN_PAGE, "staff": "ok"}, staff_sees_group=True),
    Route(
        "revenue_share", delivered_round_group_kw, {**ADMIN_ACTION, "admin": "ok", "staff": "ok"}, method="post",
        data=lambda w: SHARE_FORM, staff_sees_group=True,
    ),
    # the resale listing and revenue statement live on the revenue-share page of the round whose model is published
    Route("revenue_share", published_round_group_kw, {**ADMIN_PAGE, "staff": "ok"}, staff_sees_group=True,
          id="GET revenue_share published"),
    Route(
        "revenue_share", published_round_group_kw, {**ADMIN_ACTION, "admin": "ok", "staff": "ok"}, method="post",
        data=lambda w: LISTING_FORM, staff_sees_group=True, id="POST revenue_share listing",
    ),
    # sponsored answers: the advertiser group's campaigns are its admins' only; deployments' ad switch is staff's
    Route("campaign_list", group_kw, ADMIN_PAGE),
    Route("campaign_create", group_kw, ADMIN_PAGE),
    Route("campaign_create", group_kw, ADMIN_ACTION, method="post", data=lambda w: CAMPAIGN_FORM),
    Route("campaign_detail", campaign_kw, ADMIN_PAGE),
    Route("campaign_edit", campaign_kw, ADMIN_PAGE),
    Route("campaign_edit", campaign_kw, ADMIN_ACTION, method="post", data=lambda w: CAMPAIGN_FORM),
    Route("campaign_status", campaign_kw, ADMIN_ACTION, method="post", data=lambda w: {"action": "end"}),
    Route("staff_sponsored", lambda w: {}, STAFF_PAGE),
    Route("staff_sponsored", lambda w: {}, STAFF_ACTION, method="post",
          data=lambda w: {"model_id": w["model"].model_id, "mode": "segment", "users_may_opt_out": "on"}),
    # the JSON API
    Route("api_rounds", None, API_ANYONE, api_path=api("/rounds")),
    Route("api_round", None, API_ANYONE, api_path=api("/rounds/{round}")),
    Route("api_round_progress", None, API_ANYONE, api_path=api("/rounds/{round}/progress")),
    Route("api_groups", None, API_ANYONE, api_path=api("/groups")),
    Route("api_round_job", None, API_ANYONE, api_path=api("/rounds/{round}/job")),
    Route("api_round_results", None, API_ANYONE, api_path=api("/rounds/{round}/results")),
    Route("api_receipt", None, API_GROUP, api_path=lambda w: f"/api/rounds/{w['delivered'].slug}/groups/{w['group'].slug}/receipt"),
    Route("api_reward_model", None, {**API_GROUP, "staff": "ok"}, api_path=api("/rounds/{round}/groups/{group}/reward-model"),
          staff_sees_group=True),
    Route("api_revenue", None, API_SHARES, api_path=published_api("/rounds/{round}/groups/{group}/revenue"),
          staff_sees_group=True),
    Route("api_resale", None, {**API_SHARES, "admin": "ok"}, method="put", staff_sees_group=True,
          data=lambda w: {"listed": True, "price_per_mtok_cents": 250},
          api_path=published_api("/rounds/{round}/groups/{group}/resale")),
    Route("api_preferences", None, API_GROUP, api_path=api("/rounds/{round}/groups/{group}/preferences")),
    Route(
        "api_preferences",
        None,
        API_GROUP,
        method="post",
        data=lambda w: {"kind": "rubric", "phrases": [{"phrase": "kind words", "weight": 1}]},
        api_path=api("/rounds/{round}/groups/{group}/preferences"),
    ),
    Route("api_bid", None, API_GROUP, api_path=api("/rounds/{round}/groups/{group}/bid")),
    Route("api_bid", None, API_ADMIN_ACTION, method="put", data=lambda w: {"amount_cents": 100}, api_path=api("/rounds/{round}/groups/{group}/bid")),
    Route("api_bid", None, API_ADMIN_ACTION, method="delete", api_path=api("/rounds/{round}/groups/{group}/bid")),
    # delivery: the published model's pages, downloads, usage, the JSON API and the OpenAI-compatible API
    Route("model_list", lambda w: {}, LOGGED_IN),
    Route("model_detail", model_kw, MODEL_PAGE, staff_sees_group=True),
    Route("model_download", lambda w: {**model_kw(w), "format": "adapter"}, MODEL_PAGE, staff_sees_group=True),
    Route("model_download", lambda w: {**model_kw(w), "format": "merged"}, MODEL_PAGE, staff_sees_group=True,
          id="GET model_download merged"),
    Route("model_playground", model_kw, MODEL_PAGE, staff_sees_group=True),
    Route("group_usage", group_kw, GROUP_PAGE),
    Route("api_models", None, API_ANYONE, api_path=model_api("/api/models")),
    Route("api_model", None, API_MODEL, api_path=model_api("/api/models/{model}"), staff_sees_group=True),
    Route("api_model_download", None, API_MODEL, api_path=model_api("/api/models/{model}/download?format=merged"),
          staff_sees_group=True),
    Route("api_group_usage", None, API_GROUP, api_path=model_api("/api/groups/{group}/usage")),
    Route("v1_models", None, API_ANYONE, api_path=model_api("/v1/models")),
    Route("v1_completions", None, API_MODEL_PARAMS, method="post", api_path=model_api("/v1/completions"),
          data=lambda w: {"model": w["model"].model_id, "prompt": "Question: x\nAnswer: ", "max_tokens": 10**6}),
    Route("v1_chat", None, API_MODEL_PARAMS, method="post", api_path=model_api("/v1/chat/completions"),
          data=lambda w: {"model": w["model"].model_id, "messages": [{"role": "user", "content": "x"}], "max_tokens": 10**6}),
]


@pytest.fixture
def world(cast, tmp_path, settings):
    """The cast's group (alice admin, bob member) with an open round, a delivered one and a draft, both rounds bid
    on, a rubric submitted and an invitation pending; each role is played by its persona (tests/personas.py)."""
    admin, member, group = cast.alice, cast.bob, cast.group
    round = make_round()
    delivered = make_round(status=Round.Status.DELIVERED, closes_at=timezone.now() - timedelta(hours=1))
    make_bid(round=round, group=group, amount_cents=AMOUNT_CENTS)
    make_bid(round=delivered, group=group, amount_cents=AMOUNT_CENTS)
    preferences_submit(user=member, group=group, round=round, kind="rubric", payload={"phrases": [{"phrase": "x", "weight": 1}]})
    invitation = Invitation.objects.create(
        group=group, email="invitee@example.com", token_hash="f" * 64, invited_by=admin, expires_at=timezone.now() + timedelta(days=1)
    )
    published = make_round(status=Round.Status.DELIVERED, closes_at=timezone.now() - timedelta(hours=1))
    outcome = AuctionOutcome.objects.create(
        round=published, inputs_hash="0" * 64, instance={"kl_weight": 1.0, "groups": [], "prompts": []}, result={},
        welfare=0.0, kl_to_base=0.0, revenue_cents=0,
    )
    GroupOutcome.objects.create(
        outcome=outcome, group=group, bid_cents=4_321, expected_reward=0.5, promised_value=21.6, payment=0.0,
        payment_cents=0, utility=21.6,
    )
    zips = {}
    for fmt in ("adapter", "merged"):
        zips[fmt] = tmp_path / f"{fmt}.zip"
        zips[fmt].write_bytes(b"PK\x05\x06" + b"\x00" * 18)
    model = FineTunedModel.objects.create(
        model_id=FineTunedModel.id_for(published), round=published, base_model="tiny", kl_weight=1.0,
        adapter_dir=str(tmp_path), adapter_zip=str(zips["adapter"]), adapter_zip_size=22, adapter_zip_sha256="a" * 64,
        merged_zip=str(zips["merged"]), merged_zip_size=22, merged_zip_sha256="b" * 64, card="# card",
    )
    settings.INFERENCE_URL = "http://127.0.0.1:9"  # no engine: nothing here may reach one
    return {
        "cast": cast,
        "model": model,
        "group": group,
        "round": round,
        "delivered": delivered,
        "draft": make_round(status=Round.Status.DRAFT),
        "invitation": invitation,
        "member_membership": Membership.objects.get(group=group, user=member),
    }


def snapshot() -> tuple:
    """Everything a refused request must leave as it was."""
    return (
        list(Membership.objects.order_by("pk").values_list("pk", "user_id", "role")),
        list(PreferenceGroup.objects.order_by("pk").values_list("pk", "name", "description")),
        list(Invitation.objects.order_by("pk").values_list("pk", "status")),
        list(Bid.objects.order_by("pk").values_list("pk", "amount_cents", "status")),
        list(PreferenceSubmission.objects.order_by("pk").values_list("pk", "version")),
        list(RoundContract.objects.order_by("pk").values_list("pk", "status", "payments")),
        list(RevenueShare.objects.order_by("pk").values_list("pk", "delta", "inputs")),
        list(ResaleListing.objects.order_by("pk").values_list("pk", "listed", "price_per_mtok_cents")),
        list(Round.objects.order_by("pk").values_list("pk", "status")),
    )


def request(route: Route, w: dict, role: str):
    client = Client()
    user = w["cast"].as_role(role)
    headers = {}
    if route.api_path is not None:
        path = route.api_path(w)
        if user is not None:
            headers["Authorization"] = f"Bearer {api_token_create(user=user, name='matrix')[1]}"
        data = route.data(w) if route.data else None
        if route.method == "get":
            return client.get(path, headers=headers)
        body = json.dumps(data) if data is not None else ""
        return getattr(client, route.method)(path, body, content_type="application/json", headers=headers)
    try:
        path = reverse(route.name, kwargs=route.kwargs(w))
    except NoReverseMatch:
        pytest.skip(f"{route.name} does not resolve yet")
    if user is not None:
        client.force_login(user)
    data = route.data(w) if route.data else {}
    return client.get(path) if route.method == "get" else client.post(path, data)


CASES = [pytest.param(route, role, id=f"{route.label}-{role}") for route in ROUTES for role in ROLES]


@pytest.mark.parametrize("route,role", CASES)
def test_the_permission_matrix(world, route, role, localstripe_if_billing):
    expected = route.expect[role]
    before = snapshot()
    response = request(route, world, role)
    status = response.status_code
    raw = b"".join(response.streaming_content) if response.streaming else response.content
    body = raw.decode(errors="replace")

    assert status < 500, f"{route.label} as {role}: {status}"
    if expected == "ok":
        assert status in (200, 201, 204) or (status == 302 and not _to_login(response)), f"{route.label} as {role}: {status}"
    elif expected == "denied":
        assert status in (403, 404), f"{route.label} as {role}: {status}"
    elif expected == "404":
        assert status == 404, f"{route.label} as {role}: {status}"
    elif expected == "401":
        assert status == 401, f"{route.label} as {role}: {status}"
    elif expected == "400":
        assert status == 400, f"{route.label} as {role}: {status}"
    elif expected == "login":
        assert status == 302 and _to_login(response), f"{route.label} as {role}: {status}"

    refused = status in (401, 403, 404) or (status == 302 and _to_login(response))
    if refused:
        assert snapshot() == before, f"{route.label} as {role} was refused but changed data"
    if role != "admin" or refused:
        for amount in AMOUNT_STRINGS:
            assert amount not in body, f"{route.label} as {role} shows the bid amount"
    outside_group = role in ("anonymous", "outsider") or (role == "staff" and not route.staff_sees_group)
    if outside_group or refused and role not in ("member", "admin"):
        assert GROUP_NAME not in body, f"{route.label} as {role} shows the group's name"
        assert GROUP_NAME not in response.get("Location", "")


def _to_login(response) -> bool:
    return response.status_code == 302 and response["Location"].startswith(resolve_url(settings.LOGIN_URL))


@pytest.fixture
def localstripe_if_billing(request):
    """Billing pages talk to Stripe; start localstripe only for the rows that need it."""
    route = request.node.callspec.params["route"]
    if route.name.startswith(("group_billing", "receipt", "staff_round_billing")):
        request.getfixturevalue("localstripe")


def test_the_matrix_covers_every_group_url_that_exists():
    """A new page under a group must be added to the table above, or this fails."""
    from django.urls import get_resolver

    covered = {r.name for r in ROUTES}
    group_urls = set()

    def walk(patterns, prefix=""):
        for p in patterns:
            if hasattr(p, "url_patterns"):
                walk(p.url_patterns, prefix + str(p.pattern))
            elif p.name and ("<slug:group_slug>" in prefix + str(p.pattern) or (prefix + str(p.pattern)).startswith("groups/<")):
                group_urls.add(p.name)

    walk(get_resolver().url_patterns)
    assert group_urls - covered == set()


def test_a_resale_buyer_sees_the_model_but_never_the_sellers_bids_shares_or_revenue(world):
    """dave, in no group, once the group lists the round's model: he may use it, and nothing else of the group's."""
    from marketplace.delivery.services import resale_listing_set

    cast, model = world["cast"], world["model"]
    resale_listing_set(user=cast.alice, model=model, group=world["group"], listed=True, price_per_mtok_cents=250)
    RevenueShare.objects.create(round=model.round, group=world["group"], delta=0.25, inputs={"c0": 1, "c1": 2, "r": 1},
                                agreed_at=timezone.now())
    client = Client()
    client.force_login(cast.dave)
    assert client.get(reverse("model_detail", kwargs={"model_id": model.model_id})).status_code == 200
    body = client.get(reverse("model_detail", kwargs={"model_id": model.model_id})).content.decode()
    assert "43.21" not in body and "4321" not in body  # the group's bid in that round
    kw = {"slug": model.round.slug, "group_slug": world["group"].slug}
    assert client.get(reverse("revenue_share", kwargs=kw)).status_code == 404
    assert client.get(reverse("receipt", kwargs=kw)).status_code == 404
    token = api_token_create(user=cast.dave, name="buyer")[1]
    api_get = lambda path: Client().get(path, headers={"Authorization": f"Bearer {token}"})  # noqa: E731
    assert [m["id"] for m in api_get("/api/models").json()] == [model.model_id]
    assert api_get(f"/api/rounds/{model.round.slug}/groups/{world['group'].slug}/revenue").status_code == 404
    assert api_get(f"/api/groups/{world['group'].slug}/usage").status_code == 404


def test_a_resale_buyer_calls_the_model_through_the_api_only_never_downloads_it_or_uses_the_free_playground(world):
    """The weights and the unmetered playground are what every bidding group paid for; a buyer pays per token."""
    from marketplace.delivery.services import resale_listing_set

    cast, model = world["cast"], world["model"]
    resale_listing_set(user=cast.alice, model=model, group=world["group"], listed=True, price_per_mtok_cents=250)
    buyer = Client()
    buyer.force_login(cast.dave)
    page = buyer.get(reverse("model_detail", kwargs={"model_id": model.model_id})).content.decode()
    assert "Use it through the API" in page and "Playground" not in page
    for fmt in ("adapter", "merged"):
        response = buyer.get(reverse("model_download", kwargs={"model_id": model.model_id, "format": fmt}))
        assert response.status_code == 403 and b"through the API" in response.content
    assert buyer.get(reverse("model_playground", kwargs={"model_id": model.model_id})).status_code == 403
    token = api_token_create(user=cast.dave, name="buyer")[1]
    response = Client().get(f"/api/models/{model.model_id}/download?format=merged",
                            headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 403 and response.json()["error"]["code"] == "resale_api_only"
    # A member of the bidding group still gets both.
    member = Client()
    member.force_login(cast.bob)
    assert member.get(reverse("model_playground", kwargs={"model_id": model.model_id})).status_code == 200
