"""The engine's HTTP protocol: request validation and OpenAI-shaped responses.

The protocol is that of vLLM's OpenAI-compatible server (``/v1/completions``, ``/v1/models``, the runtime LoRA
endpoints ``/v1/load_lora_adapter`` and ``/v1/unload_lora_adapter``), so vLLM can stand in for this engine behind
the site's client. One extension: ``exact_delivery`` on a completion request (see ``inference.exact``).

Pure Python (no torch): every check that can be made before the model is reached is made here, and each failure is
a ``ProtocolError`` naming the parameter, rendered as OpenAI's ``{"error": {message, type, param, code}}``.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

MAX_N = 8
MAX_STOP = 4
MAX_LOGPROBS = 5
MAX_EXACT_K = 64
BASE_ADAPTER = "__base__"  # peft's name for "no adapter" in a mixed batch


class ProtocolError(Exception):
    """A request the engine refuses; ``status`` is the HTTP status (400, 404, 503)."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        param: str | None = None,
        code: str | None = None,
        type: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.param = param
        self.code = code
        self.type = type or {
            400: "invalid_request_error",
            404: "NotFoundError",
            503: "ServiceUnavailableError",
        }.get(status, "server_error")

    def body(self) -> dict[str, Any]:
        return error_body(self.message, type=self.type, param=self.param, code=self.code)


def error_body(message: str, *, type: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


@dataclass(frozen=True)
class ExactGroup:
    bid: float
    reward_model: dict[str, Any]
    lo: float
    hi: float


@dataclass(frozen=True)
class ExactSpec:
    k: int
    kl_weight: float
    groups: tuple[ExactGroup, ...]


@dataclass(frozen=True)
class CompletionRequest:
    model: str
    prompt: str
    max_tokens: int = 16
    temperature: float = 1.0
    top_p: float = 1.0
    n: int = 1
    seed: int | None = None
    stop: tuple[str, ...] = ()
    stream: bool = False
    include_usage: bool = True
    logprobs: int | None = None
    ignore_eos: bool = False
    exact: ExactSpec | None = None
    request_id: str = field(default_factory=lambda: f"cmpl-{uuid.uuid4().hex}")
    created: int = field(default_factory=lambda: int(time.time()))


def _bad(param: str, message: str) -> ProtocolError:
    return ProtocolError(f"{param}: {message}", param=param, code="invalid_value")


def _number(body: dict[str, Any], name: str, default: float) -> float:
    v = body.get(name, default)
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise _bad(name, f"expected a number, got {type(v).__name__}")
    if v != v or v in (float("inf"), float("-inf")):
        raise _bad(name, "must be finite")
    return float(v)


def _integer(body: dict[str, Any], name: str, default: int | None) -> int | None:
    v = body.get(name, default)
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, int):
        if isinstance(v, float) and v.is_integer():
            return int(v)
        raise _bad(name, f"expected an integer, got {type(v).__name__}")
    return v


def _flag(body: dict[str, Any], name: str, default: bool) -> bool:
    v = body.get(name, default)
    if v is None:
        return default
    if not isinstance(v, bool):
        raise _bad(name, "expected true or false")
    return v


def parse_completion(body: Any, *, max_tokens_limit: int) -> CompletionRequest:
    """Validate a ``/v1/completions`` body (everything but the model's existence and the prompt's length)."""
    if not isinstance(body, dict):
        raise ProtocolError("the request body must be a JSON object", code="invalid_json")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _bad("model", "a model id is required")
    prompt = body.get("prompt")
    if isinstance(prompt, list):
        if len(prompt) != 1 or not isinstance(prompt[0], str):
            raise _bad("prompt", "expected a string or a list of exactly one string")
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise _bad("prompt", "expected a string")
    max_tokens = _integer(body, "max_tokens", 16)
    assert max_tokens is not None
    if max_tokens < 1:
        raise _bad("max_tokens", "must be at least 1")
    if max_tokens > max_tokens_limit:
        raise ProtocolError(
            f"max_tokens: {max_tokens} is over this engine's limit of {max_tokens_limit}",
            param="max_tokens",
            code="max_tokens_over_limit",
        )
    temperature = _number(body, "temperature", 1.0)
    if not 0.0 <= temperature <= 2.0:
        raise _bad("temperature", "must be between 0 and 2")
    top_p = _number(body, "top_p", 1.0)
    if not 0.0 < top_p <= 1.0:
        raise _bad("top_p", "must be greater than 0 and at most 1")
    n = _integer(body, "n", 1)
    assert n is not None
    if not 1 <= n <= MAX_N:
        raise ProtocolError(f"n: must be between 1 and {MAX_N}", param="n", code="n_over_limit")
    seed = _integer(body, "seed", None)
    stop_raw = body.get("stop")
    if stop_raw is None:
        stop: tuple[str, ...] = ()
    elif isinstance(stop_raw, str):
        stop = (stop_raw,) if stop_raw else ()
    elif isinstance(stop_raw, list) and all(isinstance(s, str) for s in stop_raw):
        if len(stop_raw) > MAX_STOP:
            raise _bad("stop", f"at most {MAX_STOP} stop sequences")
        stop = tuple(s for s in stop_raw if s)
    else:
        raise _bad("stop", "expected a string or a list of strings")
    stream = _flag(body, "stream", False)
    include_usage = True
    opts = body.get("stream_options")
    if opts is not None:
        if not isinstance(opts, dict):
            raise _bad("stream_options", "expected an object")
        include_usage = _flag(opts, "include_usage", True)
    logprobs = _integer(body, "logprobs", None)
    if logprobs is not None and not 0 <= logprobs <= MAX_LOGPROBS:
        raise _bad("logprobs", f"must be between 0 and {MAX_LOGPROBS}")
    ignore_eos = _flag(body, "ignore_eos", False)  # vLLM's extension: generate max_tokens whatever the model says
    unsupported = {
        "echo": body.get("echo") not in (None, False) or body.get("echo") is True,
        "best_of": body.get("best_of") not in (None, 1) or isinstance(body.get("best_of"), bool),
        "suffix": body.get("suffix") not in (None, ""),
    }
    for name, bad in unsupported.items():
        if bad:
            raise _bad(name, "is not supported by this engine")
    exact = parse_exact(body.get("exact_delivery"))
    if exact is not None and stream:
        raise _bad("stream", "exact_delivery chooses among finished drafts, so it cannot stream")
    return CompletionRequest(
        model=model,
        prompt=prompt,
        max_tokens=max_tokens,
        temperature=temperature,
        top_p=top_p,
        n=n,
        seed=seed,
        stop=stop,
        stream=stream,
        include_usage=include_usage,
        logprobs=logprobs,
        ignore_eos=ignore_eos,
        exact=exact,
    )


def parse_exact(raw: Any) -> ExactSpec | None:
    if raw is None:
        return None
    p = "exact_delivery"
    if not isinstance(raw, dict):
        raise _bad(p, "expected an object {k, kl_weight, groups}")
    k = _integer(raw, "k", None)
    if k is None or not 1 <= k <= MAX_EXACT_K:
        raise _bad(f"{p}.k", f"must be an integer between 1 and {MAX_EXACT_K}")
    lam = raw.get("kl_weight")
    if isinstance(lam, bool) or not isinstance(lam, int | float) or not (0 < float(lam) < float("inf")):
        raise _bad(f"{p}.kl_weight", "must be a finite number > 0")
    groups_raw = raw.get("groups")
    if not isinstance(groups_raw, list) or not groups_raw:
        raise _bad(f"{p}.groups", "expected a non-empty list of {bid, reward_model, normaliser}")
    groups = []
    for i, g in enumerate(groups_raw):
        gp = f"{p}.groups[{i}]"
        if not isinstance(g, dict):
            raise _bad(gp, "expected an object")
        bid = g.get("bid")
        if isinstance(bid, bool) or not isinstance(bid, int | float) or not (0 <= float(bid) < float("inf")):
            raise _bad(f"{gp}.bid", "must be a finite number >= 0")
        rm = g.get("reward_model")
        if not isinstance(rm, dict) or not isinstance(rm.get("kind"), str):
            raise _bad(f"{gp}.reward_model", "expected a stored reward model (an object with a kind)")
        norm = g.get("normaliser")
        if not isinstance(norm, dict):
            raise _bad(f"{gp}.normaliser", "expected {lo, hi}")
        lo, hi = norm.get("lo"), norm.get("hi")
        if any(isinstance(v, bool) or not isinstance(v, int | float) for v in (lo, hi)):
            raise _bad(f"{gp}.normaliser", "lo and hi must be numbers")
        assert isinstance(lo, int | float) and isinstance(hi, int | float)
        groups.append(ExactGroup(bid=float(bid), reward_model=rm, lo=float(lo), hi=float(hi)))
    return ExactSpec(k=k, kl_weight=float(lam), groups=tuple(groups))


def parse_lora(body: Any, *, need_path: bool) -> tuple[str, str | None]:
    if not isinstance(body, dict):
        raise ProtocolError("the request body must be a JSON object", code="invalid_json")
    name = body.get("lora_name")
    if not isinstance(name, str) or not name or name == BASE_ADAPTER:
        raise _bad("lora_name", "a non-empty adapter name is required")
    path = body.get("lora_path")
    if need_path and (not isinstance(path, str) or not path):
        raise _bad("lora_path", "a folder holding adapter_config.json is required")
    return name, path if isinstance(path, str) else None


# --- responses ---------------------------------------------------------------------------------------------------


@dataclass
class ChoiceResult:
    index: int
    text: str
    finish_reason: str
    tokens: list[str]
    token_logprobs: list[float]
    text_offset: list[int]
    top_logprobs: list[dict[str, float]] | None = None
    exact: dict[str, Any] | None = None


def logprobs_body(c: ChoiceResult) -> dict[str, Any]:
    return {
        "tokens": c.tokens,
        "token_logprobs": c.token_logprobs,
        "text_offset": c.text_offset,
        "top_logprobs": c.top_logprobs,
        "sum": float(sum(c.token_logprobs)),
    }


def usage_body(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def completion_body(
    req: CompletionRequest, choices: list[ChoiceResult], prompt_tokens: int, completion_tokens: int
) -> dict[str, Any]:
    out = []
    for c in sorted(choices, key=lambda c: c.index):
        d: dict[str, Any] = {
            "index": c.index,
            "text": c.text,
            "finish_reason": c.finish_reason,
            "logprobs": logprobs_body(c) if req.logprobs is not None else None,
        }
        if c.exact is not None:
            d["exact_delivery"] = c.exact
        out.append(d)
    return {
        "id": req.request_id,
        "object": "text_completion",
        "created": req.created,
        "model": req.model,
        "choices": out,
        "usage": usage_body(prompt_tokens, completion_tokens),
    }


def chunk_body(
    req: CompletionRequest,
    *,
    index: int | None = None,
    text: str = "",
    finish_reason: str | None = None,
    logprobs: dict[str, Any] | None = None,
    usage: dict[str, int] | None = None,
) -> dict[str, Any]:
    choices = (
        []
        if index is None
        else [{"index": index, "text": text, "finish_reason": finish_reason, "logprobs": logprobs}]
    )
    return {
        "id": req.request_id,
        "object": "text_completion",
        "created": req.created,
        "model": req.model,
        "choices": choices,
        "usage": usage,
    }


def models_body(base_id: str, adapters: list[str], created: int) -> dict[str, Any]:
    data = [{"id": base_id, "object": "model", "created": created, "owned_by": "inference", "root": base_id, "parent": None}]
    data += [
        {"id": a, "object": "model", "created": created, "owned_by": "inference", "root": a, "parent": base_id}
        for a in adapters
    ]
    return {"object": "list", "data": data}
