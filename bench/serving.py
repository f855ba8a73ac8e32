"""Serving benchmark: the engine's dynamic mixed-adapter batching against serving one request at a time.

    .venv/bin/python bench/serving.py            # tiny model, CPU, about 2-3 minutes
    .venv/bin/python bench/serving.py --quick    # fewer requests

In one run, on loopback, with three LoRA adapters (random LoRA weights on the tiny model) and requests spread
round-robin over them, every request asking for exactly 32 completion tokens (``ignore_eos``), sampled at
temperature 1, closed-loop clients at concurrency 1, 8 and 32:

(a) ``engine``: ``python -m inference serve`` in its own process, over real HTTP (aiohttp client);
(b) ``switching``: an aiohttp handler in this process (real HTTP as well) that serves one request at a time on one
    worker thread: ``set_adapter(name)`` then one ``generate`` call (the peft model holds all three adapters);
(c) ``reload``: the same handler, but each request loads the base model and its adapter from disk first.

Throughput is requests/s and completion tokens/s over the level's wall time; latency is per request (p50, p99).
Then exact delivery's cost against K (1, 4, 16, 64) on the engine, one request at a time. The same torch thread
count (1) everywhere. Prints a table, and last one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from aiohttp import ClientSession, ClientTimeout, web  # noqa: E402

CONCURRENCY = [1, 8, 32]
TOKENS = 32
ADAPTERS = {"alpha": (4, ["c_attn"], 1), "beta": (8, ["c_attn", "c_proj"], 2), "gamma": (2, ["c_attn"], 3)}
PROMPTS = [
    "Question: How do I reset my laptop?\nAnswer: ",
    "Question: Can I return the tablet?\nAnswer: ",
    "Question: Is the smart watch waterproof?\nAnswer: ",
    "Question: How long does the battery of the desk lamp last?\nAnswer: ",
]
RUBRIC = {"kind": "rubric", "phrases": {"seconds": 1.0, "power": 0.5}, "target_length": 8}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def build_adapters(base_path: Path, root: Path) -> dict[str, Path]:
    import torch
    from peft import LoraConfig, get_peft_model

    from training.lib.basemodels import load_base

    out = {}
    for name, (r, targets, seed) in ADAPTERS.items():
        torch.manual_seed(seed)
        base, tok = load_base(base_path)
        cfg = LoraConfig(r=r, lora_alpha=2 * r, target_modules=targets, fan_in_fan_out=True, init_lora_weights=False,
                         task_type="CAUSAL_LM")
        model = get_peft_model(base, cfg)
        with torch.no_grad():
            for pname, p in model.named_parameters():
                if "lora_B" in pname:
                    p.mul_(0.5)
        model.save_pretrained(root / name)
        tok.save_pretrained(root / name)
        out[name] = root / name
    return out


def request_body(i: int) -> dict[str, Any]:
    names = list(ADAPTERS)
    return {
        "model": names[i % len(names)],
        "prompt": PROMPTS[i % len(PROMPTS)],
        "max_tokens": TOKENS,
        "temperature": 1.0,
        "ignore_eos": True,
        "seed": i,
    }


async def closed_loop(url: str, concurrency: int, total: int, body: Callable[[int], dict[str, Any]]) -> dict[str, Any]:
    """``concurrency`` clients each sending its next request when the last one is answered, ``total`` in all."""
    latencies: list[float] = []
    tokens = 0
    next_i = 0
    async with ClientSession(timeout=ClientTimeout(total=600)) as session:

        async def client() -> None:
            nonlocal next_i, tokens
            while next_i < total:
                i = next_i
                next_i += 1
                t0 = time.perf_counter()
                async with session.post(f"{url}/v1/completions", json=body(i)) as r:
                    data = await r.json()
                    if r.status != 200:
                        raise RuntimeError(f"{r.status}: {data}")
                latencies.append(time.perf_counter() - t0)
                tokens += int(data["usage"]["completion_tokens"])

        start = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        wall = time.perf_counter() - start
    lat = np.array(latencies)
    return {
        "rps": total / wall,
        "tokens_per_s": tokens / wall,
        "p50": float(np.percentile(lat, 50)),
        "p99": float(np.percentile(lat, 99)),
        "requests": total,
        "tokens": tokens,
    }


# --- the serial baselines: one request at a time behind an aiohttp handler ----------------------------------------


class Serial:
    """(b) one peft model with every adapter, ``set_adapter`` + ``generate`` per request; (c) ``reload``: a fresh
    base model and adapter from disk per request. One worker thread, so requests are served one at a time."""

    def __init__(self, base_path: Path, adapters: dict[str, Path], reload: bool) -> None:
        import torch
        from peft import PeftModel

        from training.lib.basemodels import load_base

        self.torch = torch
        self.base_path, self.adapters, self.reload = base_path, adapters, reload
        self.pool = ThreadPoolExecutor(1)
        base, self.tokenizer = load_base(base_path)
        names = list(adapters)
        self.model = PeftModel.from_pretrained(base, str(adapters[names[0]]), adapter_name=names[0])
        for n in names[1:]:
            self.model.load_adapter(str(adapters[n]), adapter_name=n)
        self.model.eval()

    def generate(self, body: dict[str, Any]) -> dict[str, Any]:
        torch = self.torch
        if self.reload:
            from training.lib.adapters import load_adapter

            model, tok = load_adapter(self.base_path, self.adapters[body["model"]])
        else:
            model, tok = self.model, self.tokenizer
            model.set_adapter(body["model"])
        enc = tok(body["prompt"], return_tensors="pt", add_special_tokens=False)
        torch.manual_seed(int(body["seed"]))
        with torch.inference_mode():
            out = model.generate(
                **enc,
                do_sample=True,
                temperature=1.0,
                top_k=0,
                max_new_tokens=body["max_tokens"],
                min_new_tokens=body["max_tokens"],
                pad_token_id=tok.pad_token_id,
            )
        new = out[0, enc["input_ids"].shape[1] :]
        n_prompt = int(enc["input_ids"].shape[1])
        return {
            "choices": [{"index": 0, "text": tok.decode(new, skip_special_tokens=True), "finish_reason": "length"}],
            "usage": {"prompt_tokens": n_prompt, "completion_tokens": int(new.numel()),
                      "total_tokens": n_prompt + int(new.numel())},
        }

    async def handler(self, request: web.Request) -> web.Response:
        body = await request.json()
        out = await asyncio.get_running_loop().run_in_executor(self.pool, self.generate, body)
        return web.json_response(out)


async def serve_serial(serial: Serial) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_post("/v1/completions", serial.handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}"


def start_engine(
    model_cache: Path, adapters: dict[str, Path] | None = None, max_batch: int | None = None
) -> tuple[subprocess.Popen[str], str]:
    """The engine on the tiny base model and a free port, one thread, with `adapters` loaded (bench/ads.py too)."""
    import urllib.request

    port = free_port()
    batch = ["--max-batch", str(max_batch)] if max_batch is not None else []
    proc = subprocess.Popen(
        [sys.executable, "-m", "inference", "serve", "--base", "tiny", "--model-cache", str(model_cache),
         "--port", str(port), "--threads", "1", *batch],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 300
    while "inference: ready on" not in (line := proc.stdout.readline()):
        if (not line and proc.poll() is not None) or time.monotonic() > deadline:
            raise RuntimeError("the engine did not start")
    url = f"http://127.0.0.1:{port}"
    for name, path in (adapters or {}).items():
        req = urllib.request.Request(
            f"{url}/v1/load_lora_adapter",
            data=json.dumps({"lora_name": name, "lora_path": str(path)}).encode(),
            headers={"Content-Type": "application/json"},
        )
        urllib.request.urlopen(req).read()
    threading.Thread(target=proc.stdout.read, daemon=True).start()  # keep its pipe drained
    return proc, url


def totals(quick: bool) -> dict[str, dict[int, int]]:
    if quick:
        return {"engine": {1: 4, 8: 16, 32: 64}, "switching": {1: 4, 8: 8, 32: 32}, "reload": {1: 2, 8: 8, 32: 32}}
    return {"engine": {1: 8, 8: 48, 32: 160}, "switching": {1: 8, 8: 24, 32: 64}, "reload": {1: 4, 8: 8, 32: 32}}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from training.lib.basemodels import resolve_base

    model_cache = Path(args.model_cache)
    base_path = resolve_base("tiny", cache_dir=model_cache)
    import torch

    torch.set_num_threads(1)
    tmp = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    adapters = build_adapters(base_path, tmp)
    n = totals(args.quick)
    results: dict[str, dict[int, dict[str, Any]]] = {"engine": {}, "switching": {}, "reload": {}}

    proc, url = start_engine(model_cache, adapters, args.max_batch)
    try:
        await closed_loop(url, 4, 8, request_body)  # warm-up: adapters into memory, first-call costs
        for c in CONCURRENCY:
            results["engine"][c] = r = await closed_loop(url, c, n["engine"][c], request_body)
            log(f"engine     c={c:>2}: {r['rps']:7.2f} req/s  {r['tokens_per_s']:8.1f} tok/s  p50 {r['p50']:.3f}s  p99 {r['p99']:.3f}s")
        exact = {}
        for k in (1, 4, 16, 64):
            def body(i: int, k: int = k) -> dict[str, Any]:
                b = request_body(i)
                b["exact_delivery"] = {"k": k, "kl_weight": 0.5, "groups": [
                    {"bid": 1.0, "reward_model": RUBRIC, "normaliser": {"lo": -1.0, "hi": 2.0}}]}
                return b

            reps = 2 if args.quick else 4
            r = await closed_loop(url, 1, reps, body)
            exact[k] = {"latency_s": 1.0 / r["rps"], "draft_tokens_per_s": r["tokens_per_s"]}
            log(f"exact      K={k:>2}: {exact[k]['latency_s']:.3f} s/request  {r['tokens_per_s']:8.1f} draft tok/s")
    finally:
        proc.terminate()
        proc.wait(timeout=30)

    for kind in ("switching", "reload"):
        serial = Serial(base_path, adapters, reload=kind == "reload")
        runner, surl = await serve_serial(serial)
        try:
            await closed_loop(surl, 1, 3, request_body)
            for c in CONCURRENCY:
                results[kind][c] = r = await closed_loop(surl, c, n[kind][c], request_body)
                log(f"{kind:<10} c={c:>2}: {r['rps']:7.2f} req/s  {r['tokens_per_s']:8.1f} tok/s  p50 {r['p50']:.3f}s  p99 {r['p99']:.3f}s")
        finally:
            await runner.cleanup()
            serial.pool.shutdown()
    return {"results": results, "exact": exact}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests per level")
    parser.add_argument("--model-cache", default=str(ROOT / "var" / "models"))
    parser.add_argument("--max-batch", type=int, default=32)
    args = parser.parse_args()
    started = time.perf_counter()
    out = asyncio.run(run(args))
    res, exact = out["results"], out["exact"]

    def col(kind: str, key: str) -> list[float]:
        return [round(res[kind][c][key], 4) for c in CONCURRENCY]

    print(f"{'mode':<11}{'conc':>5}{'req/s':>10}{'tok/s':>10}{'p50 s':>9}{'p99 s':>9}{'requests':>10}")
    for kind in ("engine", "switching", "reload"):
        for c in CONCURRENCY:
            r = res[kind][c]
            print(f"{kind:<11}{c:>5}{r['rps']:>10.2f}{r['tokens_per_s']:>10.1f}{r['p50']:>9.3f}{r['p99']:>9.3f}{r['requests']:>10}")
    print(f"\n{'exact K':<11}{'s/request':>10}{'draft tok/s':>13}")
    for k, e in exact.items():
        print(f"{k:<11}{e['latency_s']:>10.3f}{e['draft_tokens_per_s']:>13.1f}")
    speedup = res["engine"][32]["rps"] / res["switching"][32]["rps"]
    p99_8 = res["engine"][8]["p99"]
    print(f"\nengine / switching at concurrency 32: {speedup:.1f}x (target >= 5x); engine p99 at concurrency 8: "
          f"{p99_8:.3f} s (target < 1 s); {time.perf_counter() - started:.0f} s in all")
    summary = {
        "concurrency": CONCURRENCY,
        "engine_rps": col("engine", "rps"),
        "switching_rps": col("switching", "rps"),
        "reload_rps": col("reload", "rps"),
        "engine_p50_s": col("engine", "p50"),
        "engine_p99_s": col("engine", "p99"),
        "engine_tokens_per_s": col("engine", "tokens_per_s"),
        "switching_tokens_per_s": col("switching", "tokens_per_s"),
        "reload_tokens_per_s": col("reload", "tokens_per_s"),
        "switching_p50_s": col("switching", "p50"),
        "switching_p99_s": col("switching", "p99"),
        "reload_p50_s": col("reload", "p50"),
        "reload_p99_s": col("reload", "p99"),
        "exact_k": list(exact),
        "exact_latency_s": [round(e["latency_s"], 4) for e in exact.values()],
        "speedup_at_32": round(speedup, 2),
        "completion_tokens": TOKENS,
        "torch_threads": 1,
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
