"""Base models by name.

``tiny`` is built by this module, deterministically from a seed: the synthetic corpus of ``training.lib.corpus``, a
byte-level BPE tokenizer trained on it, and a small GPT-2 pretrained on it for well under a minute of CPU. It is
built once into ``cache_dir/tiny-v2-seed<seed>`` (written to a temporary folder and renamed into place, so
concurrent processes never see half a model) and reloaded with the transformers Auto classes. Any other name is
a local path or a model id, loaded the same way (with ``HF_HUB_OFFLINE=1`` nothing is downloaded).

torch / transformers are imported inside the functions, which keeps them out of Django start-up.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from training.lib.corpus import STYLES, build_corpus

TINY_VERSION = "v2"
EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<pad>"


@dataclass(frozen=True)
class TinySpec:
    """Everything that determines the tiny model's weights (with the seed)."""

    vocab_size: int = 1024
    n_layer: int = 2
    n_embd: int = 96
    n_head: int = 4
    n_positions: int = 128
    corpus_variants: int = 3
    steps: int = 900
    batch_size: int = 32
    learning_rate: float = 3e-3
    warmup_steps: int = 50
    threads: int = 1


TINY_SPEC = TinySpec()


def parse_tiny_name(name: str) -> int | None:
    """``"tiny"`` -> seed 0, ``"tiny-seed7"`` -> 7, anything else -> None."""
    if name == "tiny":
        return 0
    if name.startswith("tiny-seed") and name[len("tiny-seed") :].isdigit():
        return int(name[len("tiny-seed") :])
    return None


def base_model_type(name: str) -> str | None:
    """The architecture (``config.json``'s ``model_type``) of a base model, read without loading it, or None when it
    is only known after loading (a hub id). The tiny base is always GPT-2. Lets a job record its final LoRA
    hyperparameters when it is created, so they do not change when the worker loads the model."""
    if parse_tiny_name(name) is not None:
        return "gpt2"
    config = Path(name) / "config.json"
    try:
        value = json.loads(config.read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def resolve_base(name: str, *, cache_dir: Path, seed: int | None = None) -> Path:
    """Return a folder (or model id wrapped in a Path) loadable by ``load_base``.

    ``tiny`` / ``tiny-seed<k>`` is built on first use (takes ~30-60 s on 2 CPU cores) and cached. Anything else is
    returned unchanged: an existing local folder or a model id for ``from_pretrained``.
    """
    tiny_seed = parse_tiny_name(name)
    if tiny_seed is None:
        return Path(name)
    if seed is not None:
        tiny_seed = seed
    cache_dir = Path(cache_dir)
    target = cache_dir / f"tiny-{TINY_VERSION}-seed{tiny_seed}"
    if (target / "build.json").exists():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    # One builder per machine: the others wait on the lock instead of burning the same CPU minutes in parallel.
    with open(cache_dir / f".tiny-{TINY_VERSION}-seed{tiny_seed}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / "build.json").exists():
            return target
        tmp = Path(tempfile.mkdtemp(prefix=f".tiny-{tiny_seed}-", dir=cache_dir))
        try:
            build_tiny(tmp, seed=tiny_seed)
            try:
                os.rename(tmp, target)
            except OSError:
                # another process (on a shared disk without working locks) renamed its build into place first
                if not (target / "build.json").exists():
                    raise
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return target


def load_base(path: Path | str, device: str = "cpu") -> tuple[Any, Any]:
    """``(model, tokenizer)`` via the Auto classes; model in eval mode, tokenizer with a pad token and left padding."""
    # transformers imports torch: kept out of Django start-up
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path))
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    model: Any = AutoModelForCausalLM.from_pretrained(str(path))
    model = model.to(device)
    model.eval()
    return model, tokenizer


def weights_hash(model: Any) -> str:
    """sha256 over the model's state dict (names, shapes, bytes), for determinism checks and provenance."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def _train_tokenizer(texts: list[str], vocab_size: int) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=[EOS_TOKEN, PAD_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def build_tiny(out_dir: Path, *, seed: int = 0, spec: TinySpec = TINY_SPEC) -> dict[str, Any]:
    """Build the tiny base model into ``out_dir`` (no caching, no atomicity: see ``resolve_base``).

    1. Corpus ``build_corpus(seed)``; 2. byte-level BPE on prompts and responses; 3. GPT-2 from a seeded random init,
    trained as a language model on ``prompt + response + eos`` with AdamW and linear warm-up/decay for a fixed number
    of steps (fixed, not timed, so the weights depend only on the seed); 4. ``save_pretrained`` and a ``build.json``.
    """
    # torch and transformers: kept out of Django start-up
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    start = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    corpus = build_corpus(seed, variants=spec.corpus_variants)
    texts = sorted({p for p, _, _ in corpus}) + [r for _, r, _ in corpus]
    raw_tok = _train_tokenizer(texts, spec.vocab_size)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=raw_tok, eos_token=EOS_TOKEN, pad_token=PAD_TOKEN)
    tokenizer.padding_side = "left"

    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id
    prompt_ids = {p: tokenizer(p, add_special_tokens=False)["input_ids"] for p in {p for p, _, _ in corpus}}
    seqs = [prompt_ids[p] + tokenizer(r, add_special_tokens=False)["input_ids"] + [eos] for p, r, _ in corpus]
    max_len = max(len(s) for s in seqs)
    if max_len > spec.n_positions:
        raise ValueError(f"corpus sequence of {max_len} tokens exceeds n_positions={spec.n_positions}")
    ids = np.full((len(seqs), max_len), pad, dtype=np.int64)
    lens = np.array([len(s) for s in seqs])
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = s

    old_threads = torch.get_num_threads()
    torch.set_num_threads(spec.threads)
    try:
        torch.manual_seed(seed)
        config = GPT2Config(
            vocab_size=len(tokenizer),
            n_positions=spec.n_positions,
            n_embd=spec.n_embd,
            n_layer=spec.n_layer,
            n_head=spec.n_head,
            bos_token_id=eos,
            eos_token_id=eos,
            pad_token_id=pad,
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
        )
        model = GPT2LMHeadModel(config)
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=spec.learning_rate, weight_decay=0.01)

        def lr_at(step: int) -> float:
            if step < spec.warmup_steps:
                return (step + 1) / spec.warmup_steps
            return max(0.05, 1.0 - (step - spec.warmup_steps) / max(1, spec.steps - spec.warmup_steps))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
        rng = np.random.default_rng(seed)
        all_ids = torch.from_numpy(ids)
        losses = []
        for _step in range(spec.steps):
            idx = rng.choice(len(seqs), size=spec.batch_size, replace=False)
            width = int(lens[idx].max())
            batch = all_ids[idx, :width]
            mask = (torch.arange(width)[None, :] < torch.from_numpy(lens[idx])[:, None]).long()
            labels = batch.masked_fill(mask == 0, -100)
            out = model(input_ids=batch, attention_mask=mask, labels=labels)
            opt.zero_grad(set_to_none=True)
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            losses.append(out.loss.item())
    finally:
        torch.set_num_threads(old_threads)

    model.eval()
    model.generation_config.pad_token_id = pad
    model.generation_config.eos_token_id = eos
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    info = {
        "name": "tiny",
        "version": TINY_VERSION,
        "seed": seed,
        "spec": asdict(spec),
        "styles": list(STYLES),
        "corpus_examples": len(corpus),
        "final_loss": float(np.mean(losses[-50:])),
        "build_seconds": round(time.perf_counter() - start, 2),
        "weights_sha256": weights_hash(model),
        "parameters": int(sum(p.numel() for p in model.parameters())),
    }
    (out_dir / "build.json").write_text(json.dumps(info, indent=2))
    return info
