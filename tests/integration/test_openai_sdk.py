"""The official openai SDK (pinned in requirements.txt) against the site on a live server, unchanged: base URL + token.

The refusals (401, 404, 400, 503) need no engine and always run. Generation runs against a real engine process
(``python -m inference serve --base tiny``); those tests skip, saying why, only while the ``inference`` package is
missing. The download test then checks the merged zip against the engine's log-probabilities.
"""

from __future__ import annotations

import importlib.util
import json
import os
import queue
import socket
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import openai
import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from marketplace.accounts.tokens import api_token_create
from marketplace.delivery.models import UsageDaily
from marketplace.delivery.services import model_publish
from tests.marketplace.openai_api.conftest import publish_for
from training.models import TrainingJob

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

ENGINE_MISSING = importlib.util.find_spec("inference") is None
needs_engine = pytest.mark.skipif(
    ENGINE_MISSING, reason="the inference engine package (inference/) is not in the tree yet; these run once it lands"
)
PROMPT = "Question: Is the kettle any good?\nAnswer: "


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sdk(live_server, token: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{live_server.url}/v1", api_key=token, max_retries=0, timeout=120)


@pytest.fixture
def world(cast, settings):
    settings.INFERENCE_URL = "http://127.0.0.1:9"  # no engine unless a test starts one
    model = publish_for(groups=[cast.group])
    return {"model": model, "bob": api_token_create(user=cast.bob, name="sdk")[1],
            "carol": api_token_create(user=cast.carol, name="sdk")[1]}


def test_models_list_shows_the_callers_models(live_server, world):
    ids = [m.id for m in sdk(live_server, world["bob"]).models.list()]
    assert ids == [world["model"].model_id, world["model"].model_id + ":exact"]


def test_a_wrong_token_is_an_authentication_error(live_server, world):
    with pytest.raises(openai.AuthenticationError) as err:
        sdk(live_server, "tm_not-a-token").models.list()
    assert err.value.status_code == 401


def test_a_forbidden_model_is_not_found(live_server, world):
    with pytest.raises(openai.NotFoundError) as err:
        sdk(live_server, world["carol"]).chat.completions.create(
            model=world["model"].model_id, messages=[{"role": "user", "content": "hi"}])
    assert err.value.body["code"] == "model_not_found"


@pytest.mark.parametrize("extra,param", [({"max_tokens": 10**6}, "max_tokens"), ({"n": 1000}, "n")])
def test_over_limit_parameters_are_bad_requests_naming_them(live_server, world, extra, param):
    with pytest.raises(openai.BadRequestError) as err:
        sdk(live_server, world["bob"]).chat.completions.create(
            model=world["model"].model_id, messages=[{"role": "user", "content": "hi"}], **extra)
    assert err.value.body["param"] == param


def test_an_engine_that_is_down_is_a_503_with_a_clear_message(live_server, world):
    with pytest.raises(openai.APIStatusError) as err:
        sdk(live_server, world["bob"]).completions.create(model=world["model"].model_id, prompt=PROMPT, max_tokens=4)
    assert err.value.status_code == 503 and "inference engine is not reachable" in err.value.message
    assert not UsageDaily.objects.exists()


# --- against a real engine -----------------------------------------------------------------------------------------


@pytest.fixture
def engine(settings, tmp_path):
    """``python -m inference serve --base tiny`` on a free port; INFERENCE_URL points at it."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "inference", "serve", "--base", "tiny", "--port", str(port),
         "--model-cache", str(django_settings.MODEL_CACHE_DIR)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    deadline = time.monotonic() + 300
    seen = []
    try:
        while True:
            try:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail("the engine did not get ready in 300 s:\n" + "".join(seen[-40:]))
            seen.append(line)
            if "inference: ready on" in line:
                break
        settings.INFERENCE_URL = f"http://127.0.0.1:{port}"
        yield settings.INFERENCE_URL
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture
def adapter_dir(tmp_path):
    """A LoRA adapter on the tiny base with non-zero weights (a fresh one would equal the base)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from training.lib.basemodels import resolve_base

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(str(resolve_base("tiny", cache_dir=Path(django_settings.MODEL_CACHE_DIR))))
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["c_attn"], fan_in_fan_out=True,
                                            task_type="CAUSAL_LM"))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    model.save_pretrained(str(tmp_path / "adapter"))
    return tmp_path / "adapter"


@pytest.fixture
def served(cast, engine, adapter_dir, settings, tmp_path):
    settings.ARTIFACT_DIR = tmp_path / "artifacts"
    model = publish_for(groups=[cast.group], adapter_dir=str(adapter_dir), slug="served-round")
    TrainingJob.objects.create(round=model.round, status=TrainingJob.Status.SUCCEEDED, adapter_dir=str(adapter_dir),
                               finished_at=timezone.now())
    model = model_publish(round=model.round)
    return {"model": model, "token": api_token_create(user=cast.bob, name="sdk")[1], "group": cast.group}


def _usage_row(group, model) -> tuple[int, int, int]:
    row = UsageDaily.objects.filter(group=group, model=model).first()
    return (row.prompt_tokens, row.completion_tokens, row.requests) if row else (0, 0, 0)


@needs_engine
def test_completions_and_chat_with_and_without_streaming_meter_exactly_the_tokens_returned(live_server, served):
    client = sdk(live_server, served["token"])
    mid = served["model"].model_id
    total = [0, 0, 0]

    done = client.completions.create(model=mid, prompt=PROMPT, max_tokens=16, n=2, seed=1, temperature=1.0)
    assert len(done.choices) == 2 and done.usage.completion_tokens > 0 and done.model == mid
    total = [total[0] + done.usage.prompt_tokens, total[1] + done.usage.completion_tokens, total[2] + 1]
    assert _usage_row(served["group"], served["model"]) == tuple(total)

    answer = client.chat.completions.create(model=mid, messages=[{"role": "user", "content": "Is the kettle any good?"}],
                                            max_tokens=16, stop=["\n"])
    assert answer.choices[0].message.role == "assistant" and answer.usage.total_tokens > 0
    total = [total[0] + answer.usage.prompt_tokens, total[1] + answer.usage.completion_tokens, total[2] + 1]
    assert _usage_row(served["group"], served["model"]) == tuple(total)

    for kind in ("completions", "chat"):
        if kind == "completions":
            stream = client.completions.create(model=mid, prompt=PROMPT, max_tokens=16, stream=True)
        else:
            stream = client.chat.completions.create(model=mid, messages=[{"role": "user", "content": "Is it good?"}],
                                                    max_tokens=16, stream=True)
        text, usage = "", None
        for chunk in stream:
            if chunk.usage:
                usage = chunk.usage
            for c in chunk.choices:
                text += (c.text if kind == "completions" else (c.delta.content or ""))
        assert usage is not None and usage.completion_tokens > 0 and text
        total = [total[0] + usage.prompt_tokens, total[1] + usage.completion_tokens, total[2] + 1]
        assert _usage_row(served["group"], served["model"]) == tuple(total)


@needs_engine
def test_exact_delivery_reports_the_effective_sample_size(live_server, served):
    client = sdk(live_server, served["token"])
    done = client.completions.create(model=served["model"].model_id + ":exact", prompt=PROMPT, max_tokens=16,
                                     extra_body={"exact_delivery": {"k": 4}})
    exact = done.choices[0].model_extra["exact_delivery"]
    assert exact["k"] == 4 and 1.0 <= exact["ess"] <= 4.0 + 1e-9 and 0 <= exact["index"] < 4
    # The drafts' weights and aggregate rewards are in the bids' money units: never passed on.
    assert set(exact) == {"k", "ess", "index"}


@needs_engine
def test_the_downloaded_merged_zip_reproduces_the_engines_logprobs_in_a_fresh_process(live_server, served, tmp_path):
    import httpx2

    client = sdk(live_server, served["token"])
    done = client.completions.create(model=served["model"].model_id, prompt=PROMPT, max_tokens=8, logprobs=1,
                                     temperature=1.0, seed=3)
    text = done.choices[0].text
    engine_lps = done.choices[0].logprobs.token_logprobs
    response = httpx2.get(f"{live_server.url}/api/models/{served['model'].model_id}/download?format=merged",
                          headers={"Authorization": f"Bearer {served['token']}"}, timeout=120)
    assert response.status_code == 200
    (tmp_path / "merged.zip").write_bytes(response.content)
    import hashlib

    assert hashlib.sha256(response.content).hexdigest() == served["model"].merged_zip_sha256
    with zipfile.ZipFile(tmp_path / "merged.zip") as zf:
        zf.extractall(tmp_path / "merged")
    script = (
        "import json, sys, torch\n"
        "from transformers import AutoModelForCausalLM, AutoTokenizer\n"
        f"d = {str(tmp_path / 'merged')!r}\n"
        "m = AutoModelForCausalLM.from_pretrained(d).eval(); t = AutoTokenizer.from_pretrained(d)\n"
        f"p = t({PROMPT!r})['input_ids']; full = t({PROMPT!r} + {text!r})['input_ids']\n"
        "ids = torch.tensor([full])\n"
        "with torch.no_grad(): lp = m(input_ids=ids).logits.log_softmax(-1)\n"
        "print(json.dumps([float(lp[0, i - 1, full[i]]) for i in range(len(p), len(full))]))\n"
        "assert 'peft' not in sys.modules\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True)
    mine = json.loads(out.stdout.strip().splitlines()[-1])
    # An answer that ended on end-of-text carries that token's logprob too (a completion token not in the text).
    ended_on_eos = done.choices[0].finish_reason == "stop" and len(engine_lps) == len(mine) + 1
    compared = engine_lps[: len(mine)] if ended_on_eos else engine_lps
    assert len(mine) == len(compared)
    assert max(abs(a - b) for a, b in zip(mine, compared, strict=True)) < 1e-4


@needs_engine
def test_the_playground_shows_base_adapter_and_exact_delivery_side_by_side_and_keeps_the_last_prompts(served, cast):
    from django.test import Client

    client = Client()
    client.force_login(cast.bob)
    url = f"/models/{served['model'].model_id}/playground/"
    page = client.post(url, {"prompt": "Is the kettle any good?"})
    assert page.status_code == 200
    result = page.context["result"]
    assert [c["label"].split(" (")[0] for c in result["columns"]] == ["Base model", "Fine-tuned", "Exact delivery"]
    for column in result["columns"]:
        assert len(column["answers"]) == 3
        # the group's rubric reward model scores in the page, on its normalised 0-1 scale
        assert all(a["score"] is not None and 0.0 <= a["score"] <= 1.0 for a in column["answers"])
    assert all(a["ess"] is not None for a in result["columns"][2]["answers"])
    client.post(url, {"prompt": "Does it last?"})
    assert client.get(url).context["history"] == ["Does it last?", "Is the kettle any good?"]
    assert not UsageDaily.objects.exists()  # the playground is not metered


@needs_engine
def test_a_streamed_request_the_engine_refuses_ends_on_the_engines_reason_and_meters_nothing(live_server, served):
    """max_tokens within the site's limit but past the tiny model's 128-token context: the engine refuses. Streamed,
    the status line is already sent, so the refusal is an error event; it must say why, not that the engine is down."""
    client = sdk(live_server, served["token"])
    mid = served["model"].model_id
    with pytest.raises(openai.BadRequestError) as plain:
        client.completions.create(model=mid, prompt=PROMPT, max_tokens=200)
    with pytest.raises(openai.APIError) as streamed:
        for _ in client.completions.create(model=mid, prompt=PROMPT, max_tokens=200, stream=True):
            pass
    assert "not reachable" not in streamed.value.message
    assert streamed.value.body["code"] == plain.value.body["code"] != "engine_unavailable"
    assert _usage_row(served["group"], served["model"]) == (0, 0, 0)
