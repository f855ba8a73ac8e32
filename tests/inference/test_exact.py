"""Exact delivery over HTTP: K drafts, one chosen by self-normalised importance resampling toward pi*."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx2 as httpx
import numpy as np
import pytest

from tests.inference.conftest import PROMPT

pytestmark = pytest.mark.slow

RUBRIC = {"kind": "rubric", "phrases": {"seconds": 1.0, "power": 0.5, "reset": 0.5}, "target_length": 8}
EXACT = {"k": 8, "kl_weight": 0.5, "groups": [{"bid": 1.0, "reward_model": RUBRIC, "normaliser": {"lo": -1.0, "hi": 2.0}}]}


def _exact(url: str, **kw) -> dict:
    body = {"model": "alpha", "prompt": PROMPT, "max_tokens": 24, "exact_delivery": EXACT, "logprobs": 0, **kw}
    r = httpx.post(f"{url}/v1/completions", json=body, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def test_exact_delivery_returns_one_of_k_drafts_with_its_weights_and_ess(engine):
    out = _exact(engine.url, seed=7)
    choice = out["choices"][0]
    ed = choice["exact_delivery"]
    assert ed["k"] == 8
    assert 1.0 <= ed["ess"] <= 8.0
    assert len(ed["weights"]) == 8
    assert abs(sum(ed["weights"]) - 1.0) < 1e-9
    assert ed["weights"][ed["index"]] > 0
    w = np.array(ed["weights"])
    assert ed["ess"] == pytest.approx(1.0 / float(w @ w))
    # usage counts every draft, not only the chosen one
    assert out["usage"]["completion_tokens"] >= len(choice["logprobs"]["token_logprobs"])
    assert out["usage"]["completion_tokens"] > 8
    assert _exact(engine.url, seed=7)["choices"][0]["text"] == choice["text"]


def test_exact_delivery_n_choices_each_resample_their_own_drafts(engine):
    out = _exact(engine.url, n=2, seed=1)
    assert [c["index"] for c in out["choices"]] == [0, 1]
    assert all(c["exact_delivery"]["k"] == 8 for c in out["choices"])


def test_the_chosen_drafts_follow_the_resampling_weights(engine):
    """Calibration, loosely: over many requests, the chosen draft is the heaviest one about as often as the mean
    heaviest weight says, and the mean weight of the chosen draft matches E[Σ w²]."""
    with ThreadPoolExecutor(8) as pool:
        outs = list(pool.map(lambda s: _exact(engine.url, seed=1000 + s), range(120)))
    picks = [o["choices"][0]["exact_delivery"] for o in outs]
    w = [np.array(p["weights"]) for p in picks]
    chose_top = np.mean([p["index"] == int(np.argmax(x)) for p, x in zip(picks, w, strict=True)])
    expect_top = np.mean([x.max() for x in w])
    assert abs(chose_top - expect_top) < 0.15
    chosen_w = np.mean([x[p["index"]] for p, x in zip(picks, w, strict=True)])
    expect_w = np.mean([float(x @ x) for x in w])
    assert abs(chosen_w - expect_w) < 0.1
    assert np.mean([p["ess"] for p in picks]) < 8.0  # the weights are not trivially uniform


@pytest.mark.parametrize(
    "exact, param",
    [
        ({**EXACT, "k": 65}, "exact_delivery.k"),
        ({**EXACT, "kl_weight": 0}, "exact_delivery.kl_weight"),
        ({**EXACT, "groups": []}, "exact_delivery.groups"),
        ({**EXACT, "groups": [{"bid": -1, "reward_model": RUBRIC, "normaliser": {"lo": 0, "hi": 1}}]},
         "exact_delivery.groups[0].bid"),
        ({**EXACT, "groups": [{"bid": 1, "reward_model": {"kind": "magic"}, "normaliser": {"lo": 0, "hi": 1}}]},
         "exact_delivery.groups[0].reward_model"),
    ],
)
def test_bad_exact_delivery_parameters_are_400(engine, exact, param):
    r = httpx.post(f"{engine.url}/v1/completions", json={"model": "alpha", "prompt": PROMPT, "exact_delivery": exact})
    assert r.status_code == 400
    assert r.json()["error"]["param"] == param


def test_exact_delivery_cannot_stream(engine):
    r = httpx.post(
        f"{engine.url}/v1/completions",
        json={"model": "alpha", "prompt": PROMPT, "exact_delivery": EXACT, "stream": True},
    )
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "stream"
