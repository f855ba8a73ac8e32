"""``POST /v1/embeddings``: OpenAI's embeddings protocol (vLLM serves the same) over the bundled MiniLM encoder.

The site ranks sponsored answers by the cosine similarity of a query and each ad; the encoder (sentence-transformers,
hence torch) lives in this process so the web process never imports it. The encoder is the one the reward models use
(``training.lib.rewards.embed_texts``: unit-norm, each text encoded alone, memoised), so a text's vector depends on
the text only.
"""

from __future__ import annotations

import base64
import struct
from typing import Any

from inference.protocol import ProtocolError

ENCODER_NAME = "all-MiniLM-L6-v2"  # training.lib.rewards.ENCODER_NAME; not imported here: that module loads scipy
MAX_INPUTS = 256
MAX_INPUT_CHARS = 8_000


def parse_embeddings(body: Any) -> tuple[str, list[str], str]:
    """The model name, the texts and the encoding ("float" or "base64"); a ProtocolError naming the parameter."""
    if not isinstance(body, dict):
        raise ProtocolError("the request body must be a JSON object", code="invalid_json")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ProtocolError("model: required", param="model")
    if model != ENCODER_NAME:
        raise ProtocolError(f"model: this engine embeds with {ENCODER_NAME!r} only, not {model!r}", status=404,
                            param="model", code="model_not_found")
    raw = body.get("input")
    texts = [raw] if isinstance(raw, str) else raw
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise ProtocolError("input: a string or a non-empty list of strings", param="input")
    if len(texts) > MAX_INPUTS:
        raise ProtocolError(f"input: at most {MAX_INPUTS} texts per request, got {len(texts)}", param="input")
    if any(len(t) > MAX_INPUT_CHARS for t in texts):
        raise ProtocolError(f"input: each text may have at most {MAX_INPUT_CHARS} characters", param="input")
    fmt = body.get("encoding_format") or "float"
    if fmt not in ("float", "base64"):
        raise ProtocolError("encoding_format: 'float' or 'base64'", param="encoding_format")
    return model, texts, fmt


def embed(texts: list[str]) -> list[list[float]]:
    """Unit-norm vectors (runs the encoder: call it off the event loop)."""
    from training.lib.rewards import embed_texts  # sentence-transformers and torch, loaded on first use

    return [[float(x) for x in row] for row in embed_texts(texts)]


def _encoded(vector: list[float], fmt: str) -> list[float] | str:
    """base64 is what the openai SDK asks for by default: little-endian float32 bytes, as OpenAI and vLLM send."""
    if fmt == "float":
        return vector
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


def embeddings_body(model: str, vectors: list[list[float]], texts: list[str], fmt: str = "float") -> dict[str, Any]:
    # The encoder's word pieces are not counted here; characters / 4 is the usual estimate OpenAI documents.
    tokens = sum(max(1, len(t) // 4) for t in texts)
    return {
        "object": "list",
        "data": [{"object": "embedding", "index": i, "embedding": _encoded(v, fmt)} for i, v in enumerate(vectors)],
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
