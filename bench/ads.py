"""Ads benchmark: what a sponsored answer costs per answer, for each served mode, against an answer without ads.

    .venv/bin/python bench/ads.py            # tiny model, CPU, a few minutes
    .venv/bin/python bench/ads.py --quick    # fewer answers per mode

In one run, on loopback, against a real engine process (``python -m inference serve --base tiny``, one torch
thread), one answer at a time, every answer exactly 32 completion tokens (``ignore_eos``) at temperature 1:

- ``none``: one ``/v1/completions`` call, the answer alone;
- ``segment``: the answer, then what ``marketplace.sponsored.serving.ad_serve`` adds: one ``/v1/embeddings`` call
  for the query and the campaigns' ad texts (cosine relevance) and one Gumbel draw of the segment auction
  (``auctions.ads.segment``). The site's two row writes (impression, day count) are not included;
- ``mosaic M`` (M = 4, 16, 64): MOSAIC per query (``auctions.ads.mosaic``): M candidate answers from the reference
  model (requests of n <= 8 sent together, so the engine batches them), each
  advertiser's reward per candidate = max(0, cos(candidate, ad text)) from one ``/v1/embeddings`` call, then
  ``mosaic_solve`` (the fine-tuning mechanism's ``solve`` on one prompt) and ``mosaic_draw``: what
  ``marketplace.sponsored.mosaic`` does per answer, without the site's row writes (M > 8 is several engine requests
  sent together here; the site sends them one after another).

The campaigns are the same in every mode (``CAMPAIGNS`` ads with bids). The encoder is warmed up first on the ad
texts and an unrelated sentence (its one-off load is not an answer's cost): the engine memoises a text's vector, so
ad texts are cache hits, as on the site, while every query (at most 8 answers per mode, 8 distinct questions) and
every candidate is encoded afresh. Prints a table, and last one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from aiohttp import ClientSession, ClientTimeout  # noqa: E402

from auctions.ads.mosaic import mosaic_draw, mosaic_solve  # noqa: E402
from auctions.ads.segment import segment_auction, segment_draw  # noqa: E402
from bench.serving import log, start_engine  # noqa: E402

TOKENS = 32
ENGINE_MAX_N = 8
ENCODER = "all-MiniLM-L6-v2"
MOSAIC_M = [4, 16, 64]
TAU = 0.5
QUESTIONS = [
    "How do I reset my laptop?",
    "Can I return the tablet?",
    "Is the smart watch waterproof?",
    "How long does the battery of the desk lamp last?",
    "Which kettle boils water fastest?",
    "Are these headphones good for running?",
    "Does the car seat fit a small hatchback?",
    "What hose length do I need for a small garden?",
]
CAMPAIGNS = [
    ("Acme laptops: a reset button on every keyboard.", 0.60),
    ("Returns within 90 days at TabletWorld, no questions asked.", 0.45),
    ("Diving watches tested to 200 m.", 0.80),
    ("Desk lamps that run a week on one charge.", 0.30),
    ("Kettles that boil a litre in a minute.", 0.50),
    ("Running headphones that never fall out.", 0.70),
    ("Cheap car insurance for young drivers.", 0.90),
    ("Garden hoses that never kink.", 0.25),
]


def prompt_of(question: str) -> str:
    return f"Question: {question}\nAnswer: "


async def post(session: ClientSession, url: str, body: dict[str, Any]) -> dict[str, Any]:
    async with session.post(url, json=body) as r:
        data = await r.json()
        if r.status != 200:
            raise RuntimeError(f"{url}: {r.status} {data}")
        return data


async def complete(session: ClientSession, url: str, question: str, n: int, seed: int, logprobs: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "tiny", "prompt": prompt_of(question), "max_tokens": TOKENS, "temperature": 1.0,
                            "n": n, "seed": seed, "ignore_eos": True}
    if logprobs:
        body["logprobs"] = 0
    return await post(session, f"{url}/v1/completions", body)


async def embed(session: ClientSession, url: str, texts: list[str]) -> np.ndarray:
    data = await post(session, f"{url}/v1/embeddings", {"model": ENCODER, "input": texts, "encoding_format": "float"})
    vectors = np.array([row["embedding"] for row in sorted(data["data"], key=lambda r: r["index"])])
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


async def answer_none(session: ClientSession, url: str, q: str, seed: int, rng: np.random.Generator) -> dict[str, float]:
    t0 = time.perf_counter()
    await complete(session, url, q, 1, seed, logprobs=False)
    return {"total": time.perf_counter() - t0, "generate": time.perf_counter() - t0, "embed": 0.0, "auction": 0.0}


async def answer_segment(session: ClientSession, url: str, q: str, seed: int, rng: np.random.Generator) -> dict[str, float]:
    t0 = time.perf_counter()
    await complete(session, url, q, 1, seed, logprobs=False)
    t1 = time.perf_counter()
    vectors = await embed(session, url, [q] + [text for text, _ in CAMPAIGNS])
    t2 = time.perf_counter()
    relevance = np.clip(vectors[1:] @ vectors[0], 0.0, 1.0)
    auction = segment_auction(bids=[b for _, b in CAMPAIGNS], relevance=relevance)
    draw = segment_draw(auction, rng=rng)
    assert draw.winners[0]
    t3 = time.perf_counter()
    return {"total": t3 - t0, "generate": t1 - t0, "embed": t2 - t1, "auction": t3 - t2}


def mosaic_answer(m: int):
    async def run(session: ClientSession, url: str, q: str, seed: int, rng: np.random.Generator) -> dict[str, float]:
        t0 = time.perf_counter()
        sizes = [min(ENGINE_MAX_N, m - i) for i in range(0, m, ENGINE_MAX_N)]
        parts = await asyncio.gather(*[complete(session, url, q, n, seed * 1000 + j, logprobs=False)
                                       for j, n in enumerate(sizes)])
        texts = [c["text"] for part in parts for c in part["choices"]]
        # The candidates come from the reference model itself: uniform importance weights (auctions.ads.mosaic).
        log_ref = np.zeros(len(texts))
        t1 = time.perf_counter()
        vectors = await embed(session, url, texts + [text for text, _ in CAMPAIGNS])
        t2 = time.perf_counter()
        rewards = np.clip(vectors[m:] @ vectors[:m].T, 0.0, 1.0)  # (advertisers, candidates)
        result = mosaic_solve(bids=[b for _, b in CAMPAIGNS], rewards=rewards, log_ref=log_ref, tau=TAU)
        mosaic_draw(result, rng=rng)
        t3 = time.perf_counter()
        return {"total": t3 - t0, "generate": t1 - t0, "embed": t2 - t1, "auction": t3 - t2}

    return run


def summarise(rows: list[dict[str, float]]) -> dict[str, float]:
    total = np.array([r["total"] for r in rows])
    return {
        "answers": len(rows),
        "mean_s": float(total.mean()),
        "p50_s": float(np.percentile(total, 50)),
        "p90_s": float(np.percentile(total, 90)),
        "generate_s": float(np.mean([r["generate"] for r in rows])),
        "embed_s": float(np.mean([r["embed"] for r in rows])),
        "auction_s": float(np.mean([r["auction"] for r in rows])),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from training.lib.basemodels import resolve_base

    model_cache = Path(args.model_cache)
    resolve_base("tiny", cache_dir=model_cache)  # built once into the cache before the engine needs it
    proc, url = start_engine(model_cache)
    answers = 3 if args.quick else 8
    modes: list[tuple[str, Any]] = [("none", answer_none), ("segment", answer_segment)]
    modes += [(f"mosaic M={m}", mosaic_answer(m)) for m in MOSAIC_M]
    try:
        async with ClientSession(timeout=ClientTimeout(total=600)) as session:
            log("warming up: the encoder's load and the engine's first batch")
            await embed(session, url, ["A sentence to load the encoder."] + [text for text, _ in CAMPAIGNS])
            await complete(session, url, QUESTIONS[0], 1, 0, logprobs=True)
            results = {}
            for name, fn in modes:
                rng = np.random.default_rng(0)
                rows = []
                for i in range(answers):
                    rows.append(await fn(session, url, QUESTIONS[i % len(QUESTIONS)], i + 1, rng))
                results[name] = summarise(rows)
                log(f"{name}: {results[name]['mean_s']:.3f} s/answer")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 answers per mode instead of 8")
    parser.add_argument("--model-cache", default=str(ROOT / "var" / "models"))
    args = parser.parse_args()
    started = time.perf_counter()
    results = asyncio.run(run(args))
    base = results["none"]["mean_s"]
    print(f"{'mode':<14}{'answers':>8}{'s/answer':>10}{'p50 s':>8}{'p90 s':>8}{'x none':>8}"
          f"{'generate':>10}{'embed':>8}{'auction':>9}")
    for name, r in results.items():
        ratio = r["mean_s"] / base if base > 0 else math.nan
        print(f"{name:<14}{r['answers']:>8}{r['mean_s']:>10.3f}{r['p50_s']:>8.3f}{r['p90_s']:>8.3f}{ratio:>8.2f}"
              f"{r['generate_s']:>10.3f}{r['embed_s']:>8.3f}{r['auction_s']:>9.4f}")
    summary = {
        "bench": "ads",
        "tokens_per_answer": TOKENS,
        "campaigns": len(CAMPAIGNS),
        "modes": {name: {k: round(v, 5) if isinstance(v, float) else v for k, v in r.items()} for name, r in results.items()},
        "overhead_vs_none": {name: round(r["mean_s"] / base, 3) for name, r in results.items()} if base > 0 else {},
        "wall_s": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
