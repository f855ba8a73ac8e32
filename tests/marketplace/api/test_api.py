"""The JSON API: token auth, the same rules as the pages, one error shape, and an OpenAPI schema that lists it all."""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from marketplace.accounts.tokens import api_token_create
from marketplace.billing.bids import bid_place
from marketplace.models import ApiToken, Bid, PreferenceSubmission, Round
from tests.factories import make_bid, make_round
from tests.personas import GROUP_NAME

pytestmark = pytest.mark.django_db


PAIRS = b'{"prompt": "Q", "chosen": "A", "rejected": "B"}\n{"prompt": "Q2", "chosen": "C", "rejected": "D"}\n'


class Api:
    """A test client that sends a bearer token and JSON."""

    def __init__(self, user=None):
        self.client = Client()
        self.headers = {}
        if user is not None:
            _, plain = api_token_create(user=user, name="tests")
            self.headers["Authorization"] = f"Bearer {plain}"

    def get(self, path):
        return self.client.get(f"/api{path}", headers=self.headers)

    def delete(self, path):
        return self.client.delete(f"/api{path}", headers=self.headers)

    def put(self, path, body):
        return self.client.put(f"/api{path}", json.dumps(body), content_type="application/json", headers=self.headers)

    def post(self, path, body=None, files=None):
        if files is not None:
            return self.client.post(f"/api{path}", files, headers=self.headers)
        return self.client.post(f"/api{path}", json.dumps(body), content_type="application/json", headers=self.headers)


@pytest.fixture
def open_round():
    return make_round()


def gpath(round, group, tail):
    return f"/rounds/{round.slug}/groups/{group.slug}/{tail}"


def test_the_openapi_schema_loads_and_lists_every_endpoint():
    response = Client().get("/api/openapi.json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["info"]["title"] == "Tunemarket API"
    paths = schema["paths"]
    assert set(paths["/api/rounds/{slug}/groups/{group_slug}/bid"]) == {"get", "put", "delete"}
    assert set(paths["/api/rounds/{slug}/groups/{group_slug}/preferences"]) == {"get", "post"}
    for p in ("/api/rounds", "/api/rounds/{slug}", "/api/groups"):
        assert "get" in paths[p]
    post = paths["/api/rounds/{slug}/groups/{group_slug}/preferences"]["post"]
    assert {"multipart/form-data", "application/json"} <= set(post["requestBody"]["content"])
    assert any(s.get("scheme") == "bearer" for s in schema["components"]["securitySchemes"].values())


def test_the_openapi_document_has_no_key_twice():
    """Swagger UI parses the document as YAML, where a response status written both as 401 and "401" is a duplicate
    key and the docs page shows an error instead of the API."""
    seen: list[str] = []

    def pairs(items):
        keys = [k for k, _ in items]
        seen.extend(k for k in set(keys) if keys.count(k) > 1)
        return dict(items)

    json.loads(Client().get("/api/openapi.json").content, object_pairs_hook=pairs)
    assert seen == []


def test_the_docs_page_loads_without_a_cdn():
    response = Client().get("/api/docs")
    assert response.status_code == 200
    body = response.content.decode()
    assert "/static/ninja/swagger-ui-bundle.js" in body
    assert "cdn" not in body.lower()


@pytest.mark.parametrize("path", ["/rounds", "/groups", "/rounds/x", "/rounds/x/groups/y/bid"])
def test_it_answers_401_without_a_valid_token(path):
    anonymous = Api()
    response = anonymous.get(path)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthenticated"
    anonymous.headers["Authorization"] = "Bearer tm_not-a-real-token"
    assert anonymous.get(path).status_code == 401


def test_a_session_cookie_is_not_enough(cast):
    client = Client()
    client.force_login(cast.bob)
    assert client.get("/api/groups").status_code == 401


def test_the_token_is_recorded_as_used(cast):
    Api(cast.bob).get("/groups")
    assert ApiToken.objects.get(user=cast.bob).last_used_at is not None


def test_rounds_list_and_detail_without_bids(cast, open_round):
    make_round(status=Round.Status.DRAFT, title="Hidden draft")
    make_bid(round=open_round, group=cast.group, amount_cents=4444)
    api = Api(cast.dave)
    rounds = api.get("/rounds").json()
    assert [r["slug"] for r in rounds] == [open_round.slug]
    detail = api.get(f"/rounds/{open_round.slug}").json()
    assert detail["prompts"] == open_round.prompts and detail["participating_groups"] is None
    assert detail["my_groups"] == []
    assert "4444" not in json.dumps(detail)


def test_a_member_sees_their_groups_participation_in_a_round(cast, open_round):
    make_bid(round=open_round, group=cast.group, amount_cents=4444)
    detail = Api(cast.bob).get(f"/rounds/{open_round.slug}").json()
    assert detail["my_groups"] == [
        {"group_slug": cast.group.slug, "group_name": GROUP_NAME, "role": "member", "has_bid": True, "preferences_version": None}
    ]
    assert "4444" not in json.dumps(detail)


def test_a_draft_round_is_404(cast):
    draft = make_round(status=Round.Status.DRAFT)
    response = Api(cast.bob).get(f"/rounds/{draft.slug}")
    assert response.status_code == 404
    assert response.json() == {"error": {"code": "not_found", "message": "Round not found.", "field": None}}


def test_my_groups_with_role(cast):
    assert Api(cast.alice).get("/groups").json() == [{"slug": cast.group.slug, "name": GROUP_NAME, "role": "admin"}]
    assert Api(cast.dave).get("/groups").json() == []


def test_members_upload_pairs_as_multipart(cast, open_round):
    response = Api(cast.bob).post(gpath(open_round, cast.group, "preferences"), files={"file": SimpleUploadedFile("p.jsonl", PAIRS)})
    assert response.status_code == 201, response.content
    assert response.json()["version"] == 1 and response.json()["kind"] == "pairs" and response.json()["source_name"] == "p.jsonl"


def test_members_submit_a_rubric_and_pairs_as_json(cast, open_round):
    api = Api(cast.bob)
    rubric = api.post(gpath(open_round, cast.group, "preferences"), {"kind": "rubric", "phrases": [{"phrase": "thanks", "weight": 1.5}], "target_length_words": 40})
    assert rubric.status_code == 201 and rubric.json()["version"] == 1
    pairs = api.post(gpath(open_round, cast.group, "preferences"), {"kind": "pairs", "pairs": [{"prompt": "Q", "chosen": "A", "rejected": "B"}, {"prompt": "Q2", "chosen": "C", "rejected": "D"}]})
    assert pairs.status_code == 201 and pairs.json()["version"] == 2
    current = api.get(gpath(open_round, cast.group, "preferences")).json()
    assert current["version_count"] == 2 and current["current"]["kind"] == "pairs"


def test_bad_uploads_get_the_error_shape_with_every_problem_and_store_nothing(cast, open_round):
    api = Api(cast.bob)
    bad = b'{"prompt": "Q", "chosen": "A"}\n{"prompt": "Q", "chosen": "X", "rejected": "X"}\n'
    response = api.post(gpath(open_round, cast.group, "preferences"), files={"file": SimpleUploadedFile("p.jsonl", bad)})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_upload" and error["field"] == "file"
    assert error["errors"] == ["line 1: missing field 'rejected'", "line 2: 'chosen' and 'rejected' are identical"]
    response = api.post(gpath(open_round, cast.group, "preferences"), {"kind": "rubric", "phrases": [{"phrase": "x", "weight": 0}]})
    assert response.status_code == 400 and "weight 0 has no effect" in response.json()["error"]["message"]
    response = api.post(gpath(open_round, cast.group, "preferences"), {"kind": "nonsense"})
    assert response.status_code == 400 and response.json()["error"]["field"] == "kind"
    assert PreferenceSubmission.objects.count() == 0


def test_preferences_after_close_are_refused_with_409(cast, open_round):
    Round.objects.filter(pk=open_round.pk).update(status=Round.Status.CLOSED)
    response = Api(cast.bob).post(gpath(open_round, cast.group, "preferences"), {"kind": "rubric", "phrases": [{"phrase": "x", "weight": 1}]})
    assert response.status_code == 409 and response.json()["error"]["code"] == "round_closed"


@pytest.mark.parametrize("who", ["outsider", "staff"])
def test_outsiders_and_staff_outside_the_group_get_404_everywhere(cast, open_round, who):
    make_bid(round=open_round, group=cast.group, amount_cents=31_337)
    user = cast.dave if who == "outsider" else cast.staff
    api = Api(user)
    responses = [
        api.get(gpath(open_round, cast.group, "preferences")),
        api.post(gpath(open_round, cast.group, "preferences"), {"kind": "rubric", "phrases": [{"phrase": "x", "weight": 1}]}),
        api.get(gpath(open_round, cast.group, "bid")),
        api.put(gpath(open_round, cast.group, "bid"), {"amount_cents": 100}),
        api.delete(gpath(open_round, cast.group, "bid")),
    ]
    for response in responses:
        assert response.status_code == 404
        assert "31337" not in response.content.decode() and GROUP_NAME not in response.content.decode()
    assert Bid.objects.get().amount_cents == 31_337 and PreferenceSubmission.objects.count() == 0


def test_members_see_only_that_the_group_bid(cast, open_round):
    make_bid(round=open_round, group=cast.group, amount_cents=31_337)
    response = Api(cast.bob).get(gpath(open_round, cast.group, "bid"))
    assert response.json() == {"has_bid": True}
    assert Api(cast.alice).get(gpath(open_round, cast.group, "bid")).json() == {"has_bid": True, "amount_cents": 31_337, "currency": "usd"}


def test_members_cannot_bid_or_withdraw(cast, open_round):
    make_bid(round=open_round, group=cast.group, amount_cents=500)
    api = Api(cast.bob)
    assert api.put(gpath(open_round, cast.group, "bid"), {"amount_cents": 100}).status_code == 403
    assert api.delete(gpath(open_round, cast.group, "bid")).status_code == 403
    assert Bid.objects.get().amount_cents == 500 and Bid.objects.get().status == Bid.Status.ACTIVE


@pytest.mark.parametrize(
    "body,status,field",
    [
        ({"amount_cents": 0}, 422, "amount_cents"),
        ({"amount_cents": -5}, 422, "amount_cents"),
        ({"amount_cents": 100_000_001}, 422, "amount_cents"),  # over the schema's maximum, like 0 under its minimum
        ({"amount_cents": True}, 422, "amount_cents"),
        ({"amount_cents": "150"}, 422, "amount_cents"),
        ({"amount_cents": 150.0}, 422, "amount_cents"),
        ({"amount_cents": "lots"}, 422, "amount_cents"),
        ({}, 422, "amount_cents"),
    ],
)
def test_bad_bid_amounts_are_refused(cast, open_round, body, status, field):
    response = Api(cast.alice).put(gpath(open_round, cast.group, "bid"), body)
    assert response.status_code == status
    assert response.json()["error"]["field"] == field
    assert not Bid.objects.exists()


def test_bidding_without_a_card_is_refused_with_a_clear_message(cast, open_round):
    response = Api(cast.alice).put(gpath(open_round, cast.group, "bid"), {"amount_cents": 2500})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "no_card" and "Add a card" in response.json()["error"]["message"]


def test_admins_place_change_and_withdraw_a_bid(group_with_card, group_admin):
    round = make_round()
    api = Api(group_admin)
    path = f"/rounds/{round.slug}/groups/{group_with_card.slug}/bid"
    response = api.put(path, {"amount_cents": 2500})
    assert response.status_code == 200 and response.json() == {"has_bid": True, "amount_cents": 2500, "currency": "usd"}
    assert api.put(path, {"amount_cents": 3100}).json()["amount_cents"] == 3100
    assert api.delete(path).status_code == 204
    assert api.get(path).json() == {"has_bid": False}
    assert Bid.objects.get(round=round).status == Bid.Status.WITHDRAWN


def test_a_bid_after_close_is_refused_with_409(group_with_card, group_admin):
    round = make_round()
    bid_place(user=group_admin, group=group_with_card, round=round, amount_cents=800)
    Round.objects.filter(pk=round.pk).update(status=Round.Status.CLOSED)
    api = Api(group_admin)
    path = f"/rounds/{round.slug}/groups/{group_with_card.slug}/bid"
    response = api.put(path, {"amount_cents": 900})
    assert response.status_code == 409 and response.json()["error"]["code"] == "round_not_open"
    assert api.delete(path).status_code == 409
    assert Bid.objects.get(round=round).amount_cents == 800


def test_members_submit_direct_scores_as_json_and_as_a_csv_upload(cast, open_round):
    from training.models import Candidate

    for k in range(2):
        Candidate.objects.create(round=open_round, prompt_index=0, index=k, text=f"answer {k}", base_logprob=-2.0)
    api = Api(cast.bob)
    as_json = api.post(gpath(open_round, cast.group, "preferences"), {"kind": "scores", "scores": {"0:0": 2, "0:1": -1}})
    assert as_json.status_code == 201 and as_json.json()["kind"] == "scores", as_json.content
    csv_file = SimpleUploadedFile("s.csv", b"prompt_index,candidate_index,score\n0,0,1\n0,1,3\n")
    as_file = api.post(gpath(open_round, cast.group, "preferences"), files={"kind": "scores", "file": csv_file})
    assert as_file.status_code == 201 and as_file.json()["version"] == 2, as_file.content
    unknown = api.post(gpath(open_round, cast.group, "preferences"), {"kind": "scores", "scores": {"9:9": 1}})
    assert unknown.status_code == 400 and "No such candidate" in unknown.json()["error"]["message"]
