"""Hostile preference and bid input any member can send: a 4xx in the site's error shape, nothing stored, never a 500.

Each case is one the production probe (issue 12, finding 3 and the API part of finding 9) turned into a server error
or a silent acceptance.
"""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from marketplace.models import Bid, PreferenceSubmission
from tests.factories import make_round
from tests.marketplace.api.test_api import Api, gpath

pytestmark = pytest.mark.django_db

HUGE_INT = "1" + "0" * 4400
OVERFLOW_INT = "1" + "0" * 309  # an integer >= 1e309: float() of it overflows
PAIR = '{"prompt": "Q", "chosen": "A", "rejected": "B"}'


@pytest.fixture
def open_round():
    return make_round()


def raw_post(api: Api, path: str, body: str):
    return api.client.post(f"/api{path}", body, content_type="application/json", headers=api.headers)


def assert_refused(response, status=400):
    assert response.status_code == status, response.content[:300]
    assert set(response.json()["error"]) >= {"code", "message", "field"}
    assert not PreferenceSubmission.objects.exists()


JSON_BODIES = {
    "integer_over_4300_digits_in_a_rubric": f'{{"kind": "rubric", "phrases": [{{"phrase": "x", "weight": 1}}], "target_length_words": {HUGE_INT}}}',
    "integer_over_4300_digits_as_a_score": f'{{"kind": "scores", "scores": {{"0:0": {HUGE_INT}}}}}',
    "lone_surrogate_in_a_pair": f'{{"kind": "pairs", "pairs": [{{"prompt": "Q\\ud800", "chosen": "A", "rejected": "B"}}, {PAIR}]}}',
    "lone_surrogate_in_a_rubric_phrase": '{"kind": "rubric", "phrases": [{"phrase": "x\\ud800", "weight": 1}]}',
    "phrases_is_a_number": '{"kind": "rubric", "phrases": 5}',
    "phrases_is_true": '{"kind": "rubric", "phrases": true}',
    "phrases_is_an_empty_object": '{"kind": "rubric", "phrases": {}, "target_length_words": 40}',
    "weight_is_an_integer_over_1e309": f'{{"kind": "rubric", "phrases": [{{"phrase": "x", "weight": {OVERFLOW_INT}}}]}}',
    "score_is_an_integer_over_1e309": f'{{"kind": "scores", "scores": {{"0:0": {OVERFLOW_INT}}}}}',
}


@pytest.mark.parametrize("body", JSON_BODIES.values(), ids=JSON_BODIES.keys())
def test_hostile_json_preferences_are_refused_with_400(cast, open_round, body):
    assert_refused(raw_post(Api(cast.bob), gpath(open_round, cast.group, "preferences"), body))


FILES = {
    "jsonl_integer_over_4300_digits": ("p.jsonl", f'{PAIR}\n{{"prompt": {HUGE_INT}, "chosen": "A", "rejected": "B"}}\n'.encode(), "pairs"),
    "jsonl_lone_surrogate": ("p.jsonl", f'{PAIR}\n{{"prompt": "Q\\ud800", "chosen": "A", "rejected": "B"}}\n'.encode(), "pairs"),
    "scores_csv_field_over_128_kib": ("s.csv", b"prompt_index,candidate_index,score\n0,0," + b"1" * (200 * 1024) + b"\n", "scores"),
    "scores_csv_unterminated_quote": ("s.csv", b'prompt_index,candidate_index,score\n0,0,1\n0,1,"3\n', "scores"),
}


@pytest.mark.parametrize("name,data,kind", FILES.values(), ids=FILES.keys())
def test_hostile_preference_files_are_refused_with_400(cast, open_round, name, data, kind):
    from training.models import Candidate

    for k in range(2):
        Candidate.objects.create(round=open_round, prompt_index=0, index=k, text=f"answer {k}", base_logprob=-2.0)
    api = Api(cast.bob)
    response = api.post(gpath(open_round, cast.group, "preferences"), files={"kind": kind, "file": SimpleUploadedFile(name, data)})
    assert_refused(response)


def test_a_json_body_over_the_upload_limit_is_413_in_the_error_shape(cast, open_round, settings):
    body = json.dumps({"kind": "rubric", "phrases": [{"phrase": "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 10), "weight": 1}]})
    response = raw_post(Api(cast.bob), gpath(open_round, cast.group, "preferences"), body)
    assert_refused(response, status=413)
    assert response.json()["error"]["code"] == "too_large"


def test_a_multipart_part_with_a_huge_filename_is_400_in_the_error_shape(cast, open_round):
    api = Api(cast.bob)
    response = api.post(
        gpath(open_round, cast.group, "preferences"), files={"file": SimpleUploadedFile("p" * 5000 + ".jsonl", PAIR.encode())}
    )
    assert_refused(response)


@pytest.mark.parametrize("amount", ["true", '"150"', "150.0", HUGE_INT])
def test_the_api_takes_a_bid_only_as_a_json_integer(cast, open_round, amount):
    response = Api(cast.alice).client.put(
        f"/api{gpath(open_round, cast.group, 'bid')}", f'{{"amount_cents": {amount}}}',
        content_type="application/json", headers=Api(cast.alice).headers,
    )
    assert response.status_code in (400, 422), response.content[:300]  # 400: the body is not JSON Python reads
    assert "error" in response.json()
    assert not Bid.objects.exists()


def test_a_client_without_a_token_never_sees_a_500_for_a_big_body():
    response = Client().post("/api/rounds/x/groups/y/preferences", "x" * (4 * 1024 * 1024), content_type="application/json")
    assert response.status_code in (401, 413)
