"""The engine in-process: the bounded adapter cache evicts the least recently used adapter and reloads it intact."""

from __future__ import annotations

import threading

import pytest

from tests.inference.conftest import PROMPT

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def small_engine(model_cache):
    from inference.batcher import Batcher
    from inference.engine import Engine

    engine = Engine("tiny", model_cache=model_cache, max_adapters=2, threads=1)
    batcher = Batcher(engine, max_batch=8)
    batcher.start()
    yield engine, batcher
    batcher.stop()


def greedy(engine, batcher, key, max_new=16):
    from inference.batcher import Slot

    done = threading.Event()
    out: dict = {}

    def emit(ev):
        if ev.kind == "done":
            out["ids"] = ev.token_ids
            done.set()
        elif ev.kind == "error":
            out["error"] = ev.error
            done.set()

    ids = engine.tokenizer(PROMPT, add_special_tokens=False)["input_ids"]
    batcher.submit([Slot(prompt_ids=ids, adapter=key, max_new=max_new, emit=emit, temperature=0.0)])
    assert done.wait(60)
    assert "error" not in out, out
    return out["ids"]


def test_the_cache_keeps_at_most_max_adapters_and_reloads_an_evicted_one_identically(small_engine, adapters):
    engine, batcher = small_engine
    for name, path in adapters.items():
        engine.register(name, str(path))
    first = greedy(engine, batcher, engine.resolve("alpha"))
    greedy(engine, batcher, engine.resolve("beta"))
    greedy(engine, batcher, engine.resolve("gamma"))
    assert engine.in_memory() == ["beta", "gamma"]  # alpha, the least recently used, went
    assert greedy(engine, batcher, engine.resolve("alpha")) == first
    assert len(engine.in_memory()) == 2
    assert "alpha" in engine.in_memory()


def test_a_name_registered_again_with_another_folder_serves_the_new_weights(small_engine, adapters):
    engine, batcher = small_engine
    engine.register("swap", str(adapters["alpha"]))
    as_alpha = greedy(engine, batcher, engine.resolve("swap"))
    engine.unregister("swap")
    engine.register("swap", str(adapters["beta"]))
    assert greedy(engine, batcher, engine.resolve("swap")) == greedy(engine, batcher, engine.resolve("beta"))
    assert as_alpha == greedy(engine, batcher, engine.resolve("alpha"))
    assert as_alpha != greedy(engine, batcher, engine.resolve("beta"))
