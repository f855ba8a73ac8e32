"""The only module that talks to the inference engine (``python -m inference serve``, or vLLM's OpenAI server with LoRA
enabled: the same protocol). HTTP on loopback through httpx2, the HTTP client the pinned openai SDK ships with
(``import httpx2``; plain ``httpx`` is not installed).

    GET  /health, GET /v1/models
    POST /v1/load_lora_adapter {"lora_name", "lora_path"}     registers an adapter under the model id
    POST /v1/completions                                       OpenAI-shaped, incl. stream, n, seed, stop, logprobs,
                                                               and the "exact_delivery" extension
    POST /v1/embeddings {"model", "input": [str, ...]}        OpenAI-shaped; the MiniLM sentence encoder (sponsored ads)

An engine that cannot be reached, times out, or drops the connection becomes ``Unavailable`` (503 to the caller); an
engine that answers 400 becomes ``EngineRejected`` with the engine's message (400 to the caller).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx2
from django.conf import settings

from marketplace.core.errors import AppError, Unavailable

ENGINE_DOWN = "The inference engine is not reachable; try again shortly."


class EngineRejected(AppError):
    """The engine refused the request as malformed (for example a prompt over the context length)."""

    default_code = "invalid_request"


class AdapterMissing(AppError):
    """The engine does not know the adapter (it restarted): register it again."""

    default_code = "adapter_missing"


def _url(path: str) -> str:
    return settings.INFERENCE_URL.rstrip("/") + path


def _timeout() -> httpx2.Timeout:
    return httpx2.Timeout(settings.INFERENCE_TIMEOUT_S, connect=3.0)


def _raise_for(response: httpx2.Response) -> None:
    if response.status_code < 400:
        return
    try:
        body = response.json()
        message = (body.get("error") or {}).get("message") or body.get("message") or response.text
        param = (body.get("error") or {}).get("param")
    except (ValueError, AttributeError):
        message, param = response.text, None
    if response.status_code in (400, 422):
        raise EngineRejected(str(message)[:500], field=param)
    if response.status_code == 404:
        # The engine forgot the adapter (it restarted): the caller registers it again.
        raise AdapterMissing(str(message)[:500])
    raise Unavailable(ENGINE_DOWN, code="engine_unavailable")


def health() -> bool:
    try:
        return httpx2.get(_url("/health"), timeout=2.0).status_code == 200
    except httpx2.HTTPError:
        return False


def adapter_ensure(*, name: str, path: str) -> None:
    """Register the adapter under ``name`` unless the engine already lists it."""
    try:
        with httpx2.Client(timeout=_timeout()) as client:
            listed = client.get(_url("/v1/models"))
            _raise_for(listed)
            if any(m.get("id") == name for m in listed.json().get("data", [])):
                return
            loaded = client.post(_url("/v1/load_lora_adapter"), json={"lora_name": name, "lora_path": path})
            # vLLM answers 400 "already loaded" when another request registered it first: that is success.
            if loaded.status_code == 400 and "already" in loaded.text.lower():
                return
            _raise_for(loaded)
    except httpx2.HTTPError as exc:
        raise Unavailable(ENGINE_DOWN, code="engine_unavailable") from exc


def completion(payload: dict[str, Any]) -> dict[str, Any]:
    """One non-streaming ``/v1/completions`` call; the engine's JSON body."""
    try:
        with httpx2.Client(timeout=_timeout()) as client:
            response = client.post(_url("/v1/completions"), json={**payload, "stream": False})
            _raise_for(response)
            return response.json()
    except httpx2.HTTPError as exc:
        raise Unavailable(ENGINE_DOWN, code="engine_unavailable") from exc
    except ValueError as exc:
        raise Unavailable(ENGINE_DOWN, code="engine_unavailable") from exc


async def completion_stream(payload: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    """A streaming ``/v1/completions`` call: each server-sent event's JSON chunk, until ``[DONE]``.

    Closing this generator (the client went away) closes the connection, which tells the engine to stop."""
    body = {**payload, "stream": True, "stream_options": {"include_usage": True}}
    try:
        async with httpx2.AsyncClient(timeout=_timeout()) as client:
            async with client.stream("POST", _url("/v1/completions"), json=body) as response:
                if response.status_code >= 400:
                    await response.aread()
                    _raise_for(response)
                async for line in response.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[len("data:"):].strip()
                    if data == "[DONE]":
                        return
                    yield json.loads(data)
    except httpx2.HTTPError as exc:
        raise Unavailable(ENGINE_DOWN, code="engine_unavailable") from exc
    except ValueError as exc:
        raise Unavailable(ENGINE_DOWN, code="engine_unavailable") from exc


def embeddings(*, model: str, texts: list[str]) -> list[list[float]]:
    """One ``/v1/embeddings`` call: a vector per text, in order (the web process never loads the encoder itself)."""
    if not texts:
        return []
    try:
        with httpx2.Client(timeout=_timeout()) as client:
            body = {"model": model, "input": list(texts), "encoding_format": "float"}
            response = client.post(_url("/v1/embeddings"), json=body)
            _raise_for(response)
            rows = sorted(response.json()["data"], key=lambda row: int(row["index"]))
            vectors = [[float(x) for x in row["embedding"]] for row in rows]
    except httpx2.HTTPError as exc:
        raise Unavailable(ENGINE_DOWN, code="engine_unavailable") from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise Unavailable(ENGINE_DOWN, code="engine_unavailable") from exc
    if len(vectors) != len(texts):
        raise Unavailable(ENGINE_DOWN, code="engine_unavailable")
    return vectors
