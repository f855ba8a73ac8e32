"""``python -m inference serve --base PATH_OR_NAME [--host 127.0.0.1] [--port 8100] [--max-adapters 8]
[--max-batch 32] [--device cpu] [--threads N] [--model-cache var/models] [--window-ms 5]``."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m inference", description="The marketplace's inference engine.")
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="serve a base model and its LoRA adapters over the OpenAI protocol")
    s.add_argument("--base", required=True, help="'tiny' (the project's tiny model), a local folder or a model id")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8100, help="0 picks a free port (printed on the ready line)")
    s.add_argument("--max-adapters", type=int, default=8, help="adapters kept in memory (LRU)")
    s.add_argument("--max-batch", type=int, default=32, help="rows decoded together")
    s.add_argument("--window-ms", type=float, default=5.0, help="how long a first request waits for company")
    s.add_argument("--device", default="cpu")
    s.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default 1)")
    s.add_argument("--model-cache", default="var/models", help="where the tiny model is built and cached")
    args = parser.parse_args(argv)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from inference.batcher import Batcher
    from inference.engine import Engine
    from inference.server import serve

    engine = Engine(
        args.base,
        model_cache=args.model_cache,
        device=args.device,
        max_adapters=args.max_adapters,
        threads=args.threads,
    )
    batcher = Batcher(engine, max_batch=args.max_batch, window_s=args.window_ms / 1000.0)
    batcher.start()
    asyncio.run(serve(engine, batcher, host=args.host, port=args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
