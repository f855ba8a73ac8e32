"""A real engine process for the inference tests: the tiny base model and three LoRA adapters with random weights.

The tiny model is built once per session into a temporary folder (about 30-60 s on 2 cores); set
TRAINING_TINY_CACHE to a folder to reuse one build across sessions while developing. The adapters are peft LoRA
adapters with ``init_lora_weights=False`` (random A and B), so each one's answers differ from the base model's;
one of them also targets ``c_proj``, so a mixed batch holds adapters with different target modules and ranks.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ADAPTERS = {
    "alpha": {"r": 4, "target_modules": ["c_attn"], "seed": 1},
    "beta": {"r": 8, "target_modules": ["c_attn", "c_proj"], "seed": 2},
    "gamma": {"r": 2, "target_modules": ["c_attn"], "seed": 3},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from training.lib.basemodels import resolve_base

    cache = os.environ.get("TRAINING_TINY_CACHE")
    cache_dir = Path(cache) if cache else tmp_path_factory.mktemp("models")
    resolve_base("tiny", cache_dir=cache_dir)
    return cache_dir


def build_random_adapter(base_path: Path, out: Path, *, r: int, target_modules: list[str], seed: int) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model

    from training.lib.basemodels import load_base

    torch.manual_seed(seed)
    base, tokenizer = load_base(base_path)
    config = LoraConfig(
        r=r,
        lora_alpha=2 * r,
        target_modules=target_modules,
        fan_in_fan_out=True,
        init_lora_weights=False,
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(base, config)
    with torch.no_grad():  # random LoRA weights, scaled so answers change without turning into noise
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.mul_(0.5)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def adapters(model_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from training.lib.basemodels import resolve_base

    base_path = resolve_base("tiny", cache_dir=model_cache)
    root = tmp_path_factory.mktemp("adapters")
    return {name: build_random_adapter(base_path, root / name, **spec) for name, spec in ADAPTERS.items()}


@dataclass
class EngineProcess:
    url: str
    port: int
    process: subprocess.Popen[str]
    log: Path

    @property
    def v1(self) -> str:
        return f"{self.url}/v1"


@pytest.fixture(scope="session")
def engine(model_cache: Path, adapters: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    """``python -m inference serve`` on a free loopback port, with the adapters registered."""
    import httpx2 as httpx

    port = free_port()
    log = tmp_path_factory.mktemp("engine") / "engine.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    with open(log, "w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "inference", "serve", "--base", "tiny", "--model-cache", str(model_cache),
             "--host", "127.0.0.1", "--port", str(port), "--threads", "1", "--max-adapters", "8"],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=err, text=True,
        )
    try:
        deadline = time.monotonic() + 180
        assert proc.stdout is not None
        while True:
            line = proc.stdout.readline()
            if "inference: ready on" in line:
                break
            if not line and proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the engine did not start:\n{log.read_text()[-4000:]}")
        url = f"http://127.0.0.1:{port}"
        for name, path in adapters.items():
            r = httpx.post(f"{url}/v1/load_lora_adapter", json={"lora_name": name, "lora_path": str(path)})
            r.raise_for_status()
        yield EngineProcess(url=url, port=port, process=proc, log=log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="session")
def oai(engine: EngineProcess):
    import openai

    return openai.OpenAI(base_url=engine.v1, api_key="x", max_retries=0, timeout=60)


PROMPT = "Question: How do I reset my laptop?\nAnswer: "
