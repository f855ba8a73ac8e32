"""/v1/ before the engine: auth, access, parameters, the rate limit, an engine that is down, exact delivery's request,
and metering. Generation itself runs against a real engine process in tests/integration/test_openai_sdk.py."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from marketplace.delivery.models import UsageDaily
from marketplace.delivery.selectors import exact_delivery_groups, usage_group_for
from marketplace.delivery.services import usage_record
from tests.factories import make_group
from tests.marketplace.openai_api.conftest import publish_for

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_engine(settings):
    settings.INFERENCE_URL = "http://127.0.0.1:9"  # nothing listens on the discard port


def post(path: str, body: dict, token: str | None, **headers):
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return Client().post(path, json.dumps(body), content_type="application/json", headers=headers)


def chat(model: str, **extra) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": "Is it good?"}], **extra}


def assert_openai_error(response, status: int, param: str | None = None) -> dict:
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    if param is not None:
        assert error["param"] == param
    return error


@pytest.mark.parametrize("auth", [None, "Bearer tm_wrong", "Basic abc", "Bearer "])
def test_it_refuses_a_missing_or_wrong_token_with_401(auth, published):
    headers = {"Authorization": auth} if auth else {}
    response = Client().get("/v1/models", headers=headers)
    assert assert_openai_error(response, 401)["type"] == "authentication_error"
    assert_openai_error(Client().post("/v1/chat/completions", "{}", content_type="application/json", headers=headers), 401)


def test_models_lists_only_the_models_the_token_may_use(cast, published, token_of):
    other = publish_for(groups=[cast.other_group])
    ids = [m["id"] for m in Client().get("/v1/models", headers={"Authorization": f"Bearer {token_of(cast.bob)}"}).json()["data"]]
    assert ids == [published.model_id, published.model_id + ":exact"]
    staff_ids = {m["id"] for m in Client().get("/v1/models", headers={"Authorization": f"Bearer {token_of(cast.staff)}"}).json()["data"]}
    assert {published.model_id, other.model_id} <= staff_ids
    assert Client().get("/v1/models", headers={"Authorization": f"Bearer {token_of(cast.dave)}"}).json()["data"] == []


@pytest.mark.parametrize("path", ["/v1/completions", "/v1/chat/completions"])
def test_a_forbidden_model_is_a_404_like_a_missing_one(path, cast, published, token_of):
    body = chat(published.model_id) | {"prompt": "x"}
    forbidden = assert_openai_error(post(path, body, token_of(cast.carol)), 404, "model")
    missing = assert_openai_error(post(path, body | {"model": "ft:nope"}, token_of(cast.carol)), 404, "model")
    assert forbidden["code"] == missing["code"] == "model_not_found"
    assert forbidden["message"].replace(published.model_id, "X") == missing["message"].replace("ft:nope", "X")


@pytest.mark.parametrize(
    "extra,param",
    [
        ({"max_tokens": 10**6}, "max_tokens"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"n": 99}, "n"),
        ({"temperature": 5}, "temperature"),
        ({"top_p": "high"}, "top_p"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"seed": 1.5}, "seed"),
        ({"stream": "yes"}, "stream"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "user"}]}, "messages"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, "messages"),
        ({"messages": [{"role": "system", "content": "only a system message"}]}, "messages"),
        ({"exact_delivery": {"k": 10**4}}, "k"),
        ({"exact_delivery": True, "stream": True}, "stream"),
    ],
)
def test_bad_parameters_are_400_naming_the_parameter(extra, param, cast, published, token_of):
    error = assert_openai_error(post("/v1/chat/completions", chat(published.model_id) | extra, token_of(cast.bob)), 400, param)
    assert error["type"] == "invalid_request_error"
    assert not UsageDaily.objects.exists()


def test_completions_checks_its_prompt(cast, published, token_of):
    for prompt in (None, "", [], ["a", ""], 7):
        assert_openai_error(post("/v1/completions", {"model": published.model_id, "prompt": prompt}, token_of(cast.bob)), 400, "prompt")
    assert_openai_error(Client().post("/v1/completions", "not json", content_type="application/json",
                                      headers={"Authorization": f"Bearer {token_of(cast.bob)}"}), 400)


@pytest.mark.parametrize("stream", [False, True])
def test_an_engine_that_is_down_is_a_503_that_says_so_and_meters_nothing(stream, cast, published, token_of):
    error = assert_openai_error(post("/v1/chat/completions", chat(published.model_id, stream=stream), token_of(cast.bob)), 503)
    assert "inference engine is not reachable" in error["message"]
    assert not UsageDaily.objects.exists()


def test_over_the_rate_limit_is_429_with_retry_after(settings, cast, published, token_of):
    from django.core.cache import cache

    cache.clear()
    settings.OPENAI_API_RATE_LIMIT = 2
    token = token_of(cast.bob)
    headers = {"Authorization": f"Bearer {token}"}
    assert [Client().get("/v1/models", headers=headers).status_code for _ in range(2)] == [200, 200]
    refused = Client().get("/v1/models", headers=headers)
    assert assert_openai_error(refused, 429)["type"] == "rate_limit_error"
    assert 1 <= int(refused["Retry-After"]) <= settings.OPENAI_API_RATE_WINDOW_S + 1
    # Per token: another token of the same user has its own window.
    assert Client().get("/v1/models", headers={"Authorization": f"Bearer {token_of(cast.bob)}"}).status_code == 200


def test_csrf_is_exempt_only_because_the_token_is_the_credential(cast, published, token_of):
    client = Client(enforce_csrf_checks=True)
    response = client.post("/v1/chat/completions", json.dumps(chat(published.model_id, n=99)), content_type="application/json",
                           headers={"Authorization": f"Bearer {token_of(cast.bob)}"})
    assert response.status_code == 400  # reached the parameter check, not a CSRF 403


def test_exact_delivery_sends_each_bidding_groups_reward_model_normaliser_and_bid(cast):
    model = publish_for(groups=[cast.group, cast.other_group])
    groups = exact_delivery_groups(model=model)
    assert [g["group"] for g in groups] == sorted([cast.group.slug, cast.other_group.slug])
    bids = {g["group"]: g["bid"] for g in groups}
    assert sorted(bids.values()) == [10.0, 11.0]
    assert all(g["reward_model"]["kind"] == "rubric" and g["normaliser"] == {"lo": 0.0, "hi": 2.0} for g in groups)
    from training.lib.rewards import reward_model_from_dict

    assert reward_model_from_dict(groups[0]["reward_model"]).score(["q"], ["great"]).tolist() == [1.0]


def test_usage_goes_to_the_organization_header_group_if_the_user_may_else_the_first_bidding_group_by_name(cast):
    second = make_group(admin=cast.bob, name="Aardvark Second Group")
    model = publish_for(groups=[cast.group, second])
    assert usage_group_for(user=cast.bob, model=model, organization=None) == second  # "Aardvark" sorts first
    assert usage_group_for(user=cast.bob, model=model, organization=cast.group.slug) == cast.group
    assert usage_group_for(user=cast.bob, model=model, organization=cast.other_group.slug) == second
    assert usage_group_for(user=cast.staff, model=model, organization=None) is None


def test_usage_rows_add_up_per_group_model_and_day_and_show_in_the_api(cast, published, token_of):
    usage_record(group=cast.group, model=published, prompt_tokens=5, completion_tokens=7)
    usage_record(group=cast.group, model=published, prompt_tokens=3, completion_tokens=1)
    row = UsageDaily.objects.get()
    assert (row.prompt_tokens, row.completion_tokens, row.requests) == (8, 8, 2)
    body = Client().get(f"/api/groups/{cast.group.slug}/usage", headers={"Authorization": f"Bearer {token_of(cast.bob)}"}).json()
    assert body == [{"day": row.day.isoformat(), "model": published.model_id, "requests": 2, "prompt_tokens": 8, "completion_tokens": 8}]
    page = Client()
    page.force_login(cast.bob)
    assert published.model_id in page.get(f"/groups/{cast.group.slug}/usage/").content.decode()
