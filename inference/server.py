"""The engine's HTTP server (aiohttp): vLLM's OpenAI-compatible protocol on one base model and its LoRA adapters.

Endpoints: ``GET /health``, ``GET /v1/models``, ``POST /v1/load_lora_adapter``, ``POST /v1/unload_lora_adapter``,
``POST /v1/completions`` (``stream`` as server-sent events; the extension ``exact_delivery``, see
``inference.exact``), ``POST /v1/embeddings`` (the MiniLM encoder, see ``inference.embeddings``). The model runs on
the batcher's worker thread; this event loop only parses, submits slots and relays their events, so it stays
responsive while a batch decodes.

Cancellation: a request's slots are cancelled in a ``finally`` whatever ends the handler: a client that
disconnects mid-stream (the write fails), or one that goes away while waiting for a non-streamed answer (aiohttp's
``handler_cancellation`` cancels the handler). The batcher drops cancelled rows at its next step; the other rows of
the same batch continue.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from aiohttp import web

from inference.batcher import Batcher, Event, Slot, TokenInfo
from inference.embeddings import embed, embeddings_body, parse_embeddings
from inference.engine import Engine
from inference.exact import aggregate_reward, choose, exact_body, group_rewards
from inference.protocol import (
    BASE_ADAPTER,
    ChoiceResult,
    CompletionRequest,
    ProtocolError,
    chunk_body,
    completion_body,
    error_body,
    models_body,
    parse_completion,
    parse_lora,
    usage_body,
)

ENGINE_KEY: web.AppKey[Engine] = web.AppKey("engine", Engine)
BATCHER_KEY: web.AppKey[Batcher] = web.AppKey("batcher", Batcher)
STARTED_KEY: web.AppKey[int] = web.AppKey("started", int)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status)


def _error(exc: ProtocolError) -> web.Response:
    return _json(exc.body(), status=exc.status)


async def _body(request: web.Request) -> Any:
    try:
        return await request.json(loads=json.loads)
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
        raise ProtocolError("the request body is not valid JSON", code="invalid_json") from None


@web.middleware
async def errors_middleware(request: web.Request, handler: Callable[[web.Request], Any]) -> web.StreamResponse:
    """Every failure in OpenAI's error shape; an unexpected one is a 500 with its message, never a traceback."""
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except ProtocolError as exc:
        return _error(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _json(error_body(exc.reason, type="invalid_request_error", code=str(exc.status)), status=exc.status)
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception as exc:
        return _json(error_body(f"internal error: {exc}", type="server_error"), status=500)


async def health(request: web.Request) -> web.Response:
    engine, batcher = request.app[ENGINE_KEY], request.app[BATCHER_KEY]
    return _json(
        {
            "status": "ok" if batcher.alive else "down",
            "base_model": engine.base_id,
            "adapters_loaded": engine.registered(),
            "adapters_in_memory": engine.in_memory(),
            "queue_depth": batcher.queue_depth(),
            "max_batch": batcher.max_batch,
            "decode_steps": batcher.steps,
            "max_rows_seen": batcher.max_rows_seen,
            "cancelled": batcher.cancelled,
            "context_length": engine.context_length,
        },
        status=200 if batcher.alive else 503,
    )


async def models(request: web.Request) -> web.Response:
    engine = request.app[ENGINE_KEY]
    return _json(models_body(engine.base_id, engine.registered(), request.app[STARTED_KEY]))


async def load_lora(request: web.Request) -> web.Response:
    name, path = parse_lora(await _body(request), need_path=True)
    assert path is not None
    new = request.app[ENGINE_KEY].register(name, path)
    msg = f"Success: LoRA adapter '{name}' added successfully." if new else f"LoRA adapter '{name}' already loaded."
    return web.Response(text=msg)


async def unload_lora(request: web.Request) -> web.Response:
    name, _ = parse_lora(await _body(request), need_path=False)
    request.app[ENGINE_KEY].unregister(name)
    return web.Response(text=f"Success: LoRA adapter '{name}' removed successfully.")


@dataclass
class _Track:
    """What the handler has heard from one slot."""

    text: list[str] = field(default_factory=list)
    tokens: list[TokenInfo] = field(default_factory=list)
    done: Event | None = None


def _choice_seed(req: CompletionRequest, i: int) -> int | None:
    return None if req.seed is None else (req.seed * 1_000_003 + i) % (2**63)


def _logprobs_of(tokens: list[TokenInfo], want_top: bool) -> dict[str, Any]:
    return {
        "tokens": [t.token for t in tokens],
        "token_logprobs": [t.logprob for t in tokens],
        "text_offset": [t.offset for t in tokens],
        "top_logprobs": [t.top or {} for t in tokens] if want_top else None,
    }


async def completions(request: web.Request) -> web.StreamResponse:
    engine, batcher = request.app[ENGINE_KEY], request.app[BATCHER_KEY]
    req = parse_completion(await _body(request), max_tokens_limit=engine.context_length)
    key = engine.resolve(req.model)
    groups = group_rewards(req.exact) if req.exact is not None else None
    prompt_ids = list(engine.request_tokenizer(req.prompt, add_special_tokens=False)["input_ids"]) or [engine.eos]
    plen = len(prompt_ids)
    if plen >= engine.context_length:
        raise ProtocolError(
            f"prompt: {plen} tokens, but this model's context length is {engine.context_length}",
            param="prompt",
            code="context_length_exceeded",
        )
    if plen + req.max_tokens > engine.context_length:
        raise ProtocolError(
            f"max_tokens: this model's context length is {engine.context_length} tokens; the prompt has {plen}, so "
            f"max_tokens can be at most {engine.context_length - plen} (got {req.max_tokens})",
            param="max_tokens",
            code="context_length_exceeded",
        )

    queue: asyncio.Queue[tuple[int, Event]] = asyncio.Queue()
    drafts = req.exact.k if req.exact is not None else 1

    def emitter(j: int) -> Callable[[Event], None]:
        # runs on the event loop: the batcher's ``deliver`` (bound at start-up) hands events over
        return lambda ev: queue.put_nowait((j, ev))

    slots = [
        Slot(
            prompt_ids=prompt_ids,
            adapter=key,
            max_new=req.max_tokens,
            emit=emitter(j),
            temperature=req.temperature,
            top_p=req.top_p,
            seed=_choice_seed(req, j),
            stop=req.stop,
            top_logprobs=req.logprobs or 0,
            ignore_eos=req.ignore_eos,
            stream=req.stream,
            want_tokens=req.logprobs is not None,
        )
        for j in range(req.n * drafts)
    ]
    tracks = [_Track() for _ in slots]
    batcher.submit(slots)
    try:
        if req.stream:
            return await _stream(request, req, queue, tracks, plen)
        await _collect(queue, tracks)
        if req.exact is None:
            choices = [
                ChoiceResult(
                    index=j,
                    text="".join(t.text),
                    finish_reason=(t.done.finish_reason if t.done else None) or "stop",
                    **_logprob_fields(t.tokens, req),
                )
                for j, t in enumerate(tracks)
            ]
        else:
            assert groups is not None
            choices = await _exact(batcher, engine, req, groups, prompt_ids, tracks)
        completion_tokens = sum(len(t.done.token_ids) if t.done else 0 for t in tracks)
        return _json(completion_body(req, choices, plen, completion_tokens))
    finally:
        for s in slots:
            s.cancel()


def _logprob_fields(tokens: list[TokenInfo], req: CompletionRequest) -> dict[str, Any]:
    return {
        "tokens": [t.token for t in tokens],
        "token_logprobs": [t.logprob for t in tokens],
        "text_offset": [t.offset for t in tokens],
        "top_logprobs": [t.top or {} for t in tokens] if req.logprobs else None,
    }


async def _collect(queue: asyncio.Queue[tuple[int, Event]], tracks: list[_Track]) -> None:
    left = len(tracks)
    while left:
        j, ev = await queue.get()
        t = tracks[j]
        if ev.kind == "error":
            assert ev.error is not None
            raise ev.error
        if ev.kind == "done" and t.done is None:
            t.done = ev
            t.text = [ev.text]
            t.tokens = list(ev.tokens)
            left -= 1


async def _exact(
    batcher: Batcher,
    engine: Engine,
    req: CompletionRequest,
    groups: Any,
    prompt_ids: list[int],
    tracks: list[_Track],
) -> list[ChoiceResult]:
    assert req.exact is not None
    k = req.exact.k
    rows = [(prompt_ids + list(t.done.token_ids if t.done else ()), len(prompt_ids)) for t in tracks]
    # the drafts' log-probabilities under the base model: one forward pass on the worker thread
    log_pi0 = await asyncio.wrap_future(batcher.call(lambda: engine.score(rows, [BASE_ADAPTER] * len(rows))))
    texts = ["".join(t.text) for t in tracks]
    reward = await asyncio.to_thread(aggregate_reward, groups, req.prompt, texts)
    rng = np.random.default_rng(req.seed)
    choices = []
    for i in range(req.n):
        sl = slice(i * k, (i + 1) * k)
        part = tracks[sl]
        picked = choose(
            log_q=[t.done.proposal_logprob if t.done else 0.0 for t in part],
            log_pi0=log_pi0[sl],
            reward=reward[sl],
            kl_weight=req.exact.kl_weight,
            rng=rng,
        )
        t = part[picked.index]
        choices.append(
            ChoiceResult(
                index=i,
                text=texts[i * k + picked.index],
                finish_reason=(t.done.finish_reason if t.done else None) or "stop",
                exact=exact_body(picked, k),
                **_logprob_fields(t.tokens, req),
            )
        )
    return choices


async def embeddings(request: web.Request) -> web.Response:
    """The encoder runs on a thread of its own, never on the batcher's: embedding does not stall decoding."""
    model, texts, fmt = parse_embeddings(await _body(request))
    vectors = await asyncio.to_thread(embed, texts)
    return _json(embeddings_body(model, vectors, texts, fmt))


def _sse(data: Any) -> bytes:
    return f"data: {json.dumps(data)}\n\n".encode()


async def _stream(
    request: web.Request,
    req: CompletionRequest,
    queue: asyncio.Queue[tuple[int, Event]],
    tracks: list[_Track],
    plen: int,
) -> web.StreamResponse:
    response = web.StreamResponse(
        status=200, headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    await response.prepare(request)
    left = len(tracks)
    completion_tokens = 0
    while left:
        j, ev = await queue.get()
        t = tracks[j]
        if ev.kind == "error":
            assert ev.error is not None
            await response.write(_sse(ev.error.body()))
            break
        if ev.kind == "delta":
            t.tokens.extend(ev.tokens)
            lp = _logprobs_of(list(ev.tokens), bool(req.logprobs)) if req.logprobs is not None else None
            if ev.text or lp is not None:
                await response.write(_sse(chunk_body(req, index=j, text=ev.text, logprobs=lp)))
        elif ev.kind == "done" and t.done is None:
            t.done = ev
            left -= 1
            completion_tokens += len(ev.token_ids)
            await response.write(_sse(chunk_body(req, index=j, finish_reason=ev.finish_reason)))
    if req.include_usage:
        await response.write(_sse(chunk_body(req, usage=usage_body(plen, completion_tokens))))
    await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    return response


async def _bind_delivery(app: web.Application) -> None:
    """The batcher's events reach this loop in one ``call_soon_threadsafe`` per decoding step."""
    loop = asyncio.get_running_loop()

    def run_all(items: list[tuple[Callable[[Event], None], Event]]) -> None:
        for emit, ev in items:
            emit(ev)

    def deliver(items: list[tuple[Callable[[Event], None], Event]]) -> None:
        try:
            loop.call_soon_threadsafe(run_all, items)
        except RuntimeError:  # the loop has closed: nobody is listening any more
            pass

    app[BATCHER_KEY].deliver = deliver


def build_app(engine: Engine, batcher: Batcher) -> web.Application:
    app = web.Application(middlewares=[errors_middleware], client_max_size=8 * 1024 * 1024)
    app[ENGINE_KEY] = engine
    app[BATCHER_KEY] = batcher
    app[STARTED_KEY] = int(time.time())
    app.on_startup.append(_bind_delivery)
    app.router.add_get("/health", health)
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/load_lora_adapter", load_lora)
    app.router.add_post("/v1/unload_lora_adapter", unload_lora)
    app.router.add_post("/v1/completions", completions)
    app.router.add_post("/v1/embeddings", embeddings)
    return app


async def serve(engine: Engine, batcher: Batcher, *, host: str, port: int) -> None:
    """Serve until SIGINT / SIGTERM; print ``inference: ready on http://HOST:PORT`` once listening."""
    runner = web.AppRunner(build_app(engine, batcher), handler_cancellation=True, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = port
    server = getattr(site, "_server", None)
    if server is not None and server.sockets:
        bound = server.sockets[0].getsockname()[1]
    print(f"inference: ready on http://{host}:{bound}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        batcher.stop()
