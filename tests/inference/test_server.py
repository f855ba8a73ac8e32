"""The engine over real HTTP: health, models, adapters, completions with the official openai SDK, errors."""

from __future__ import annotations

import json

import httpx2 as httpx
import openai
import pytest

from tests.inference.conftest import ADAPTERS, PROMPT

pytestmark = pytest.mark.slow


def test_health_reports_the_base_model_and_registered_adapters(engine):
    r = httpx.get(f"{engine.url}/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok"
    assert body["base_model"] == "tiny"
    assert set(ADAPTERS) <= set(body["adapters_loaded"])
    assert isinstance(body["queue_depth"], int)


def test_models_list_holds_the_base_and_the_adapters(oai):
    ids = [m.id for m in oai.models.list().data]
    assert ids[0] == "tiny"
    assert set(ADAPTERS) <= set(ids)


def test_loading_an_adapter_again_is_a_no_op_and_another_path_is_refused(engine, adapters):
    url = f"{engine.url}/v1/load_lora_adapter"
    assert httpx.post(url, json={"lora_name": "alpha", "lora_path": str(adapters["alpha"])}).status_code == 200
    r = httpx.post(url, json={"lora_name": "alpha", "lora_path": str(adapters["beta"])})
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "lora_name"
    r = httpx.post(url, json={"lora_name": "nowhere", "lora_path": "/nonexistent"})
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "lora_path"


def test_unloading_an_adapter_makes_it_unknown(engine, adapters):
    url = engine.url
    assert httpx.post(f"{url}/v1/load_lora_adapter", json={"lora_name": "temp", "lora_path": str(adapters["gamma"])}).status_code == 200
    r = httpx.post(f"{url}/v1/completions", json={"model": "temp", "prompt": PROMPT, "max_tokens": 2})
    assert r.status_code == 200
    assert httpx.post(f"{url}/v1/unload_lora_adapter", json={"lora_name": "temp"}).status_code == 200
    r = httpx.post(f"{url}/v1/completions", json={"model": "temp", "prompt": PROMPT, "max_tokens": 2})
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "model_not_found"


def test_a_completion_honours_max_tokens_and_counts_its_tokens(oai):
    out = oai.completions.create(model="alpha", prompt=PROMPT, max_tokens=5, temperature=1.0, seed=3, logprobs=0)
    choice = out.choices[0]
    assert out.object == "text_completion"
    assert len(choice.logprobs.token_logprobs) <= 5
    assert out.usage.completion_tokens == len(choice.logprobs.token_logprobs)
    assert out.usage.total_tokens == out.usage.prompt_tokens + out.usage.completion_tokens
    assert choice.finish_reason in ("stop", "length")
    if choice.finish_reason == "length":
        assert len(choice.logprobs.token_logprobs) == 5


def test_n_choices_are_counted_in_usage(oai):
    out = oai.completions.create(model="beta", prompt=PROMPT, max_tokens=8, n=3, seed=1, logprobs=0)
    assert sorted(c.index for c in out.choices) == [0, 1, 2]
    assert out.usage.completion_tokens == sum(len(c.logprobs.token_logprobs) for c in out.choices)


def test_the_same_seed_gives_the_same_text(oai):
    kw = dict(model="gamma", prompt=PROMPT, max_tokens=20, temperature=1.0, top_p=0.9, seed=42, n=2)
    a = oai.completions.create(**kw)
    b = oai.completions.create(**kw)
    assert [c.text for c in a.choices] == [c.text for c in b.choices]


def test_greedy_answers_are_the_same_on_every_call(oai):
    kw = dict(model="tiny", prompt=PROMPT, max_tokens=20, temperature=0)
    assert oai.completions.create(**kw).choices[0].text == oai.completions.create(**kw).choices[0].text


def test_a_stop_string_ends_the_text_before_it(oai):
    full = oai.completions.create(model="tiny", prompt=PROMPT, max_tokens=30, temperature=0).choices[0].text
    assert " " in full
    word = full.split(" ")[2]
    out = oai.completions.create(model="tiny", prompt=PROMPT, max_tokens=30, temperature=0, stop=[word])
    assert out.choices[0].finish_reason == "stop"
    assert out.choices[0].text == full[: full.index(word)]
    assert word not in out.choices[0].text


def test_streaming_gives_the_same_text_and_usage_at_the_end(oai):
    kw = dict(model="alpha", prompt=PROMPT, max_tokens=20, temperature=0)
    whole = oai.completions.create(**kw)
    chunks = list(oai.completions.create(**kw, stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text == whole.choices[0].text
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == [
        whole.choices[0].finish_reason
    ]
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    assert chunks[-1].usage.prompt_tokens == whole.usage.prompt_tokens


def test_streaming_n_choices_streams_each_index(oai):
    chunks = list(oai.completions.create(model="beta", prompt=PROMPT, max_tokens=6, n=2, seed=5, stream=True))
    assert {c.choices[0].index for c in chunks if c.choices} == {0, 1}


def test_the_raw_stream_is_server_sent_events_ending_in_done(engine):
    with httpx.stream(
        "POST", f"{engine.url}/v1/completions", json={"model": "tiny", "prompt": PROMPT, "max_tokens": 4, "stream": True}
    ) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        events = [line for line in r.iter_lines() if line]
    assert events[-1] == "data: [DONE]"
    assert all(e.startswith("data: ") for e in events)
    assert json.loads(events[-2][6:])["usage"]["completion_tokens"] >= 1


# --- errors ------------------------------------------------------------------------------------------------------


def test_an_unknown_model_is_404_in_openai_shape(oai):
    with pytest.raises(openai.NotFoundError) as info:
        oai.completions.create(model="nope", prompt=PROMPT, max_tokens=2)
    assert info.value.status_code == 404
    assert info.value.body["code"] == "model_not_found"


def test_max_tokens_over_the_limit_is_400_naming_it(oai):
    with pytest.raises(openai.BadRequestError) as info:
        oai.completions.create(model="tiny", prompt=PROMPT, max_tokens=100_000)
    assert info.value.body["param"] == "max_tokens"


def test_max_tokens_past_the_context_is_400_naming_it(oai):
    with pytest.raises(openai.BadRequestError) as info:
        oai.completions.create(model="tiny", prompt=PROMPT, max_tokens=127)
    assert info.value.body["param"] == "max_tokens"
    assert info.value.body["code"] == "context_length_exceeded"


def test_a_prompt_over_the_context_length_is_400(oai):
    with pytest.raises(openai.BadRequestError) as info:
        oai.completions.create(model="tiny", prompt=PROMPT * 40, max_tokens=2)
    assert info.value.body["param"] == "prompt"
    assert info.value.body["code"] == "context_length_exceeded"


def test_n_over_the_limit_is_400(oai):
    with pytest.raises(openai.BadRequestError) as info:
        oai.completions.create(model="tiny", prompt=PROMPT, max_tokens=2, n=9)
    assert info.value.body["param"] == "n"


@pytest.mark.parametrize(
    "body, param",
    [
        ({"model": "tiny", "prompt": PROMPT, "temperature": 3}, "temperature"),
        ({"model": "tiny", "prompt": PROMPT, "top_p": 0}, "top_p"),
        ({"model": "tiny", "prompt": PROMPT, "max_tokens": 0}, "max_tokens"),
        ({"model": "tiny", "prompt": PROMPT, "max_tokens": "ten"}, "max_tokens"),
        ({"model": "tiny", "prompt": 7}, "prompt"),
        ({"model": "tiny", "prompt": [PROMPT, PROMPT]}, "prompt"),
        ({"model": "tiny", "prompt": PROMPT, "stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"model": "tiny", "prompt": PROMPT, "logprobs": 6}, "logprobs"),
        ({"prompt": PROMPT}, "model"),
        ({"model": "tiny", "prompt": PROMPT, "exact_delivery": {"k": 0}}, "exact_delivery.k"),
    ],
)
def test_bad_parameters_are_400_naming_the_parameter(engine, body, param):
    r = httpx.post(f"{engine.url}/v1/completions", json=body)
    assert r.status_code == 400
    assert r.json()["error"]["param"] == param


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b"", "\"ü\"".encode("latin-1")])
def test_malformed_bodies_are_400_not_500(engine, raw):
    r = httpx.post(f"{engine.url}/v1/completions", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert set(r.json()["error"]) == {"message", "type", "param", "code"}


def test_an_unknown_path_is_404_in_openai_shape(engine):
    r = httpx.get(f"{engine.url}/v1/nothing")
    assert r.status_code == 404
    assert "error" in r.json()
