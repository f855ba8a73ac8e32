"""Mixed-adapter batches give each row exactly what it gets alone; the engine's log-probabilities are the model's;
a client that goes away frees its row and disturbs nobody."""

from __future__ import annotations

import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx2 as httpx
import pytest

from tests.inference.conftest import PROMPT

pytestmark = pytest.mark.slow

MODELS = ["tiny", "alpha", "beta", "gamma"]
PROMPTS = [PROMPT, "Question: Can I return the tablet?\nAnswer: ", "Question: Is the smart watch waterproof?\nAnswer: "]


def _greedy(url: str, model: str, prompt: str, max_tokens: int = 24) -> dict:
    r = httpx.post(
        f"{url}/v1/completions",
        json={"model": model, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "logprobs": 0},
        timeout=60,
    )
    assert r.status_code == 200, r.text
    return r.json()["choices"][0]


def test_a_mixed_batch_answers_each_row_as_if_it_were_alone(engine):
    cases = [(m, p) for m in MODELS for p in PROMPTS]
    alone = {case: _greedy(engine.url, *case) for case in cases}
    assert len({alone[(m, PROMPT)]["text"] for m in MODELS}) > 1, "the adapters should change the answers"
    barrier = threading.Barrier(len(cases))

    def together(case):
        barrier.wait()
        return _greedy(engine.url, *case)

    with ThreadPoolExecutor(len(cases)) as pool:
        batched = dict(zip(cases, pool.map(together, cases), strict=True))
    assert httpx.get(f"{engine.url}/health").json()["max_rows_seen"] >= 4
    for case in cases:
        a, b = alone[case], batched[case]
        assert a["text"] == b["text"], case
        la, lb = a["logprobs"]["token_logprobs"], b["logprobs"]["token_logprobs"]
        assert len(la) == len(lb)
        assert max(abs(x - y) for x, y in zip(la, lb, strict=True)) < 1e-4, case


def test_the_engine_log_probabilities_are_the_adapter_models(engine, adapters, model_cache):
    """The engine's per-token log-probabilities equal a plain peft model's on the same tokens (to 1e-4)."""
    import torch

    from training.lib.adapters import load_adapter
    from training.lib.basemodels import resolve_base

    choice = _greedy(engine.url, "beta", PROMPT)
    model, tokenizer = load_adapter(resolve_base("tiny", cache_dir=model_cache), adapters["beta"])
    prompt_ids = tokenizer(PROMPT, add_special_tokens=False)["input_ids"]
    completion = tokenizer(choice["text"], add_special_tokens=False)["input_ids"]
    if choice["finish_reason"] == "stop":
        completion = completion + [tokenizer.eos_token_id]
    ids = torch.tensor([prompt_ids + completion])
    with torch.inference_mode():
        logp = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), -1)
    ref = [float(logp[len(prompt_ids) - 1 + i, t]) for i, t in enumerate(completion)]
    got = choice["logprobs"]["token_logprobs"]
    assert len(got) == len(ref)
    assert max(abs(a - b) for a, b in zip(got, ref, strict=True)) < 1e-4


def _wait_idle(url: str, timeout: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        h = httpx.get(f"{url}/health").json()
        if h["queue_depth"] == 0 or time.monotonic() > deadline:
            return h
        time.sleep(0.05)


def test_a_client_that_disconnects_mid_stream_frees_its_row_and_others_finish(engine):
    others_done: list[dict] = []

    def other(model):
        others_done.append(_greedy(engine.url, model, PROMPT, max_tokens=40))

    threads = [threading.Thread(target=other, args=(m,)) for m in MODELS]
    before = httpx.get(f"{engine.url}/health").json()["cancelled"]
    with httpx.stream(
        "POST",
        f"{engine.url}/v1/completions",
        json={"model": "alpha", "prompt": PROMPT, "max_tokens": 100, "temperature": 1.0, "stream": True,
              "ignore_eos": True},
        timeout=60,
    ) as r:
        lines = r.iter_lines()
        for t in threads:
            t.start()
        got = [next(lines) for _ in range(4)]
        assert all(g == "" or g.startswith("data: ") for g in got)
    for t in threads:
        t.join(timeout=60)
    assert len(others_done) == len(MODELS)
    h = _wait_idle(engine.url)
    assert h["status"] == "ok"
    assert h["queue_depth"] == 0
    assert h["cancelled"] == before + 1


def test_a_client_that_gives_up_waiting_frees_its_rows(engine):
    """A non-streamed request whose client closes the connection: aiohttp cancels the handler, which cancels the
    request's rows."""
    before = httpx.get(f"{engine.url}/health").json()["cancelled"]
    body = json.dumps({"model": "gamma", "prompt": PROMPT, "max_tokens": 100, "n": 8, "ignore_eos": True}).encode()
    sock = socket.create_connection(("127.0.0.1", engine.port))
    sock.sendall(
        b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    deadline = time.monotonic() + 30
    while httpx.get(f"{engine.url}/health").json()["queue_depth"] < 8 and time.monotonic() < deadline:
        time.sleep(0.01)
    sock.close()
    h = _wait_idle(engine.url)
    assert h["queue_depth"] == 0
    assert h["cancelled"] == before + 8
    assert _greedy(engine.url, "gamma", PROMPT, max_tokens=4)["text"]
