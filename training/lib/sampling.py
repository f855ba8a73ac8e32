"""Candidate sampling and sequence log-probabilities.

Conventions shared with the training loops and the evaluation:

- A response is scored as ``prompt ids + response ids + eos``, prompt and response tokenised separately (no special
  tokens added). ``sequence_logprobs`` is the sum of the log-probabilities of the response tokens and the final eos.
- A sampled candidate's text is the decoded continuation up to (not including) the first eos, whitespace-stripped.
  Its stored log-probability is *recomputed* on that text with ``sequence_logprobs`` rather than read off the
  sampler, so it is exactly what fidelity, KL and the trainer see even when the sampler took a non-canonical token
  path to produce the same text. (A continuation cut by ``max_new_tokens`` is treated as if it ended there;
  ``Candidate.finished`` says whether the sampler itself emitted eos.)
- Generation pads on the left (transformers derives position ids from the attention mask); scoring pads on the
  right, where the default position ids are already correct.

torch is imported inside the functions, which keeps it out of Django start-up.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Candidate:
    text: str
    base_logprob: float
    proposal_logprob: float | None  # None when the proposal is the base model itself
    num_tokens: int  # response tokens including the final eos
    finished: bool = True  # the sampler emitted eos within max_new_tokens


def encode_pairs(
    tokenizer: Any, prompts: Sequence[str], responses: Sequence[str], append_eos: bool
) -> list[tuple[list[int], int]]:
    """Per pair: (token ids of prompt+response[+eos], number of prompt tokens). Prompt encodings are cached."""
    cache: dict[str, list[int]] = {}
    eos = tokenizer.eos_token_id
    out = []
    for p, r in zip(prompts, responses, strict=True):
        if p not in cache:
            cache[p] = tokenizer(p, add_special_tokens=False)["input_ids"]
        pids = cache[p]
        rids = tokenizer(r, add_special_tokens=False)["input_ids"] if r else []
        out.append((pids + rids + ([eos] if append_eos else []), len(pids)))
    return out


def _model_device(model: Any) -> Any:
    return next(model.parameters()).device


def sequence_logprobs(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    responses: Sequence[str],
    batch_size: int = 32,
    *,
    temperature: float = 1.0,
    append_eos: bool = True,
) -> np.ndarray:
    """``log p(response + eos | prompt)`` for each pair (float64 array), under ``model`` with logits / temperature."""
    # torch: kept out of Django start-up
    import torch

    enc = encode_pairs(tokenizer, prompts, responses, append_eos)
    out = np.zeros(len(enc), dtype=np.float64)
    if not enc:
        return out
    device = _model_device(model)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    # sort by length so batches pad little; results go back to their original slots
    order = sorted(range(len(enc)), key=lambda i: len(enc[i][0]))
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                idx = order[start : start + batch_size]
                width = max(len(enc[i][0]) for i in idx)
                ids = torch.full((len(idx), width), pad, dtype=torch.long)
                mask = torch.zeros((len(idx), width), dtype=torch.long)
                resp = torch.zeros((len(idx), width), dtype=torch.bool)
                for row, i in enumerate(idx):
                    seq, plen = enc[i]
                    ids[row, : len(seq)] = torch.tensor(seq)
                    mask[row, : len(seq)] = 1
                    resp[row, plen : len(seq)] = True
                ids, mask, resp = ids.to(device), mask.to(device), resp.to(device)
                logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
                if temperature != 1.0:
                    logits = logits / temperature
                logp = torch.log_softmax(logits, dim=-1).gather(-1, ids[:, 1:, None]).squeeze(-1)
                tot = (logp * resp[:, 1:]).sum(-1).double().cpu().numpy()
                out[idx] = tot
    finally:
        if was_training:
            model.train()
    return out


def sample_candidates(
    model: Any,
    tokenizer: Any,
    prompts: list[str],
    n: int,
    *,
    seed: int,
    max_new_tokens: int = 64,
    batch_size: int = 64,
    temperature: float = 1.0,
    base_model: Any | None = None,
) -> list[list[Candidate]]:
    """``n`` candidates per prompt, sampled in batches of ``batch_size`` rows from ``model`` (pure ancestral
    sampling: no top-k / top-p, so the proposal is ``model`` at ``temperature``). Deterministic in ``seed`` for the
    same arguments and hardware.

    When ``model`` is the base model, leave ``base_model`` out. When the proposal is another model (sharing the
    tokenizer), pass the base as ``base_model``. ``proposal_logprob`` is filled only when the proposal is not the
    base (another model, or ``temperature != 1``)."""
    texts, finished = generate_texts(
        model,
        tokenizer,
        prompts,
        n,
        seed=seed,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        temperature=temperature,
    )
    flat_prompts = [p for p in prompts for _ in range(n)]
    base = sequence_logprobs(
        base_model if base_model is not None else model, tokenizer, flat_prompts, texts, batch_size
    )
    proposal_is_base = base_model is None and temperature == 1.0
    prop = (
        None
        if proposal_is_base
        else sequence_logprobs(model, tokenizer, flat_prompts, texts, batch_size, temperature=temperature)
    )
    counts = [len(ids) - plen for ids, plen in encode_pairs(tokenizer, flat_prompts, texts, True)]
    out: list[list[Candidate]] = []
    for i in range(len(prompts)):
        row = []
        for j in range(n):
            k = i * n + j
            row.append(
                Candidate(
                    text=texts[k],
                    base_logprob=float(base[k]),
                    proposal_logprob=None if prop is None else float(prop[k]),
                    num_tokens=counts[k],
                    finished=finished[k],
                )
            )
        out.append(row)
    return out


def generate_texts(
    model: Any,
    tokenizer: Any,
    prompts: list[str],
    n: int,
    *,
    seed: int,
    max_new_tokens: int = 64,
    batch_size: int = 64,
    temperature: float = 1.0,
) -> tuple[list[str], list[bool]]:
    """Raw batched sampling: ``n`` texts per prompt, flattened prompt-major; plus whether each ended with eos."""
    # torch: kept out of Django start-up
    import torch

    device = _model_device(model)
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    old_side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    rows = [p for p in prompts for _ in range(n)]
    texts: list[str] = []
    finished: list[bool] = []
    gen = torch.Generator(device="cpu").manual_seed(seed)
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(rows), batch_size):
            chunk = rows[start : start + batch_size]
            enc = tokenizer(chunk, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
            # each batch gets its own seed from one stream: batches are reproducible and independent
            torch.manual_seed(int(torch.randint(0, 2**62, (1,), generator=gen)))
            with torch.inference_mode():
                out = model.generate(
                    **enc,
                    do_sample=True,
                    temperature=temperature,
                    top_k=0,
                    top_p=1.0,
                    max_new_tokens=max_new_tokens,
                    pad_token_id=pad,
                    eos_token_id=eos,
                )
            new = out[:, enc["input_ids"].shape[1] :].cpu().tolist()
            for toks in new:
                done = eos in toks
                if done:
                    toks = toks[: toks.index(eos)]
                texts.append(tokenizer.decode(toks, skip_special_tokens=True).strip())
                finished.append(done)
    finally:
        tokenizer.padding_side = old_side
        if was_training:
            model.train()
    return texts, finished


def sample_serial(
    model: Any, tokenizer: Any, prompts: list[str], n: int, *, seed: int, max_new_tokens: int = 64
) -> list[str]:
    """One ``generate`` call per sample: the baseline the benchmark compares batched sampling against."""
    texts: list[str] = []
    for i, p in enumerate(prompts):
        for j in range(n):
            t, _ = generate_texts(
                model, tokenizer, [p], 1, seed=seed * 1_000_003 + i * n + j, max_new_tokens=max_new_tokens, batch_size=1
            )
            texts.extend(t)
    return texts


def base_logweights(candidates: Sequence[Sequence[Candidate]], proposal_is_base: bool) -> list[list[float]]:
    """``log q0(y_k|x)`` up to a per-prompt constant: 0 for samples of the base model itself (the empirical
    distribution; using ``log pi0`` here would count the base model twice), ``log pi0 - log g`` for another proposal."""
    if proposal_is_base:
        return [[0.0] * len(row) for row in candidates]
    out = []
    for row in candidates:
        proposal = [c.proposal_logprob for c in row]
        if any(g is None for g in proposal):
            raise ValueError("candidates from a proposal other than the base need proposal_logprob")
        out.append([c.base_logprob - float(g) for c, g in zip(row, proposal, strict=True) if g is not None])
    return out
