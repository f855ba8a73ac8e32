from __future__ import annotations

import json
from pathlib import Path

import pytest

from training.lib.basemodels import TinySpec, build_tiny, load_base, resolve_base, weights_hash

SHORT = TinySpec(steps=15, warmup_steps=5)


@pytest.mark.slow
def test_tiny_build_is_deterministic_in_the_seed(tmp_path: Path):
    h1 = build_tiny(tmp_path / "a", seed=5, spec=SHORT)["weights_sha256"]
    h2 = build_tiny(tmp_path / "b", seed=5, spec=SHORT)["weights_sha256"]
    h3 = build_tiny(tmp_path / "c", seed=6, spec=SHORT)["weights_sha256"]
    assert h1 == h2
    assert h1 != h3


@pytest.mark.slow
def test_cached_tiny_reloads_through_auto_classes_with_the_built_weights(tiny_path: Path):
    info = json.loads((tiny_path / "build.json").read_text())
    model, tokenizer = load_base(tiny_path)
    assert weights_hash(model) == info["weights_sha256"]
    assert tokenizer.eos_token_id is not None and tokenizer.pad_token_id is not None
    # cached: a second resolve returns the same folder without rebuilding
    assert resolve_base("tiny", cache_dir=tiny_path.parent) == tiny_path


def test_other_names_resolve_to_themselves(tmp_path: Path):
    assert resolve_base(str(tmp_path / "some-model"), cache_dir=tmp_path) == tmp_path / "some-model"
    assert resolve_base("org/model-id", cache_dir=tmp_path) == Path("org/model-id")
