from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from training.basemodels import TinySpec, build_tiny, load_base, resolve_base, weights_hash
from training.corpus import STYLES, build_corpus, classify_style, demo_prompts, heldout_prompts

SHORT = TinySpec(steps=15, warmup_steps=5)


def test_corpus_is_deterministic_and_balanced_over_styles():
    a, b = build_corpus(3), build_corpus(3)
    assert a == b
    assert a != build_corpus(4)
    counts = Counter(style for _, _, style in a)
    assert set(counts) == set(STYLES) and len(set(counts.values())) == 1
    assert all(classify_style(r) == s for _, r, s in a)


def test_demo_and_heldout_prompts_are_disjoint():
    assert len(demo_prompts()) == 8 and len(heldout_prompts()) == 8
    assert not set(demo_prompts()) & set(heldout_prompts())


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
