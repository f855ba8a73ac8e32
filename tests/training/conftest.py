"""Shared fixtures for the pure training-library tests (no Django, no database, no network).

The tiny base model is built once per test session into a temporary folder (about 30-40 s on 2 cores). Set
TRAINING_TINY_CACHE to a folder to reuse one build across sessions while developing.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from training.lib.basemodels import resolve_base

    cache = os.environ.get("TRAINING_TINY_CACHE")
    cache_dir = Path(cache) if cache else tmp_path_factory.mktemp("models")
    return resolve_base("tiny", cache_dir=cache_dir)


@pytest.fixture(scope="session")
def tiny(tiny_path: Path):
    from training.lib.basemodels import load_base

    return load_base(tiny_path)


@pytest.fixture(scope="session")
def demo_round(tiny):
    """The demo round on the tiny model: 8 prompts x 16 candidates, three groups (rubric, Bradley-Terry, direct)."""
    from training.lib.demo import build_demo_round

    model, tokenizer = tiny
    return build_demo_round(model, tokenizer, n=16, seed=0, kl_weight=1.0)
