"""GET /v1/models, POST /v1/completions, POST /v1/chat/completions: the OpenAI API over the site's published models.

Each view authenticates the bearer token (the site's API tokens), applies the per-token rate limit, checks every
parameter (400 naming it), resolves the model through the one access rule (404 for unknown and forbidden alike) and
calls marketplace.delivery.inference. Views are synchronous; a streamed answer is an async generator, so under ASGI
(``make serve`` runs uvicorn) the chunks go out as the engine makes them. CSRF-exempt: token auth, no cookies.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from functools import wraps
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt

from marketplace.accounts.tokens import api_token_authenticate, hash_token
from marketplace.core.errors import AppError
from marketplace.delivery import inference
from marketplace.delivery.selectors import models_usable
from marketplace.openai_api.errors import ApiError, bad_param, error_body, error_response, from_app_error
from marketplace.sponsored import mosaic as sponsored_mosaic
from marketplace.sponsored import serving as sponsored
from training.lib.corpus import format_prompt

MAX_PROMPTS = 8
MAX_STOP = 4


def openai_endpoint(method: str) -> Callable:
    """Token auth, the rate limit, the method check and the error shape around a view ``view(request, user)``."""

    def decorate(view: Callable) -> Callable:
        @csrf_exempt
        @wraps(view)
        def wrapper(request: HttpRequest) -> HttpResponse:
            headers: dict[str, str] = {}
            try:
                user, key = _authenticate(request)
                headers = _rate_limit(key)
                if request.method != method:
                    raise ApiError(405, f"Use {method} for this endpoint.", code="method_not_allowed")
                response = view(request, user)
            except ApiError as exc:
                return error_response(exc, headers=exc.headers or headers or None)
            except AppError as exc:
                return error_response(from_app_error(exc))
            for name, value in headers.items():
                if name != "Retry-After":
                    response[name] = value
            return response

        return wrapper

    return decorate


def _authenticate(request: HttpRequest) -> tuple[Any, str]:
    auth = request.headers.get("Authorization", "")
    scheme, _, key = auth.partition(" ")
    key = key.strip()
    user = api_token_authenticate(key=key) if scheme.lower() == "bearer" else None
    if user is None:
        raise ApiError(401, "Incorrect API key provided. Create a token on your profile page and send it as "
                            "'Authorization: Bearer <token>'.", code="invalid_api_key")
    return user, hash_token(key)


def _rate_limit(key: str) -> dict[str, str]:
    """A fixed window per token in Django's cache: OPENAI_API_RATE_LIMIT requests per OPENAI_API_RATE_WINDOW_S."""
    window = settings.OPENAI_API_RATE_WINDOW_S
    limit = settings.OPENAI_API_RATE_LIMIT
    now = time.time()
    index = int(now // window)
    cache_key = f"v1-rate:{key}:{index}"
    cache.add(cache_key, 0, timeout=window + 1)
    try:
        count = cache.incr(cache_key)
    except ValueError:  # expired between add and incr
        cache.add(cache_key, 1, timeout=window + 1)
        count = 1
    reset = int((index + 1) * window - now) + 1
    headers = {"x-ratelimit-limit-requests": str(limit), "x-ratelimit-remaining-requests": str(max(limit - count, 0))}
    if count > limit:
        raise ApiError(429, f"Rate limit reached: {limit} requests per {window} s for this token; retry in {reset} s.",
                       code="rate_limit_exceeded", headers={**headers, "Retry-After": str(reset)})
    return headers


def _body(request: HttpRequest) -> dict[str, Any]:
    try:
        body = json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "The request body is not valid JSON.", code="invalid_json") from None
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object.", code="invalid_json")
    return body


def _int(body: dict, name: str, default: int | None, lo: int, hi: int) -> int | None:
    value = body.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad_param(name, f"{name} must be an integer.")
    if not lo <= value <= hi:
        raise bad_param(name, f"{name} must be between {lo} and {hi}; got {value}.")
    return value


def _float(body: dict, name: str, default: float, lo: float, hi: float) -> float:
    value = body.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise bad_param(name, f"{name} must be a number.")
    if not lo <= float(value) <= hi:
        raise bad_param(name, f"{name} must be between {lo:g} and {hi:g}; got {value}.")
    return float(value)


def _generation(body: dict, *, chat: bool) -> inference.Generation:
    max_tokens_name = "max_completion_tokens" if chat and "max_completion_tokens" in body else "max_tokens"
    max_tokens = _int(body, max_tokens_name, 64, 1, settings.OPENAI_API_MAX_TOKENS)
    n = _int(body, "n", 1, 1, settings.OPENAI_API_MAX_N)
    seed = _int(body, "seed", None, -(2**63), 2**63 - 1)
    stop = body.get("stop")
    if stop is None:
        stops: list[str] = []
    elif isinstance(stop, str):
        stops = [stop]
    elif isinstance(stop, list) and all(isinstance(s, str) for s in stop) and len(stop) <= MAX_STOP:
        stops = list(stop)
    else:
        raise bad_param("stop", f"stop must be a string or a list of at most {MAX_STOP} strings.")
    if any(not s for s in stops):
        raise bad_param("stop", "stop sequences must not be empty.")
    logprobs: int | None = None
    if chat:
        if body.get("logprobs"):
            raise bad_param("logprobs", "logprobs is offered on /v1/completions only.")
    else:
        logprobs = _int(body, "logprobs", None, 0, 5)
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise bad_param("stream", "stream must be true or false.")
    exact = body.get("exact_delivery")
    exact_k: int | None = None
    if exact is None or exact is False:
        pass
    elif exact is True:
        exact_k = inference.DEFAULT_EXACT_K
    elif isinstance(exact, dict):
        exact_k = _int(exact, "k", inference.DEFAULT_EXACT_K, 1, settings.OPENAI_API_MAX_K)
    else:
        raise bad_param("exact_delivery", 'exact_delivery must be true or {"k": <answers to resample from>}.')
    if exact_k is not None and stream:
        raise bad_param("stream", "exact delivery chooses among K finished answers, so it cannot stream.")
    return inference.Generation(
        max_tokens=max_tokens or 64,
        temperature=_float(body, "temperature", 1.0, 0.0, 2.0),
        top_p=_float(body, "top_p", 1.0, 0.0, 1.0),
        n=n or 1,
        seed=seed,
        stop=stops,
        logprobs=logprobs,
        exact_k=exact_k,
    )


def _model(body: dict) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise bad_param("model", "model is required: one of the ids GET /v1/models lists.")
    return model


def _target(request: HttpRequest, user, body: dict) -> inference.Target:
    """The model first: an unknown or forbidden model is a 404 whatever else the request says."""
    return inference.target_resolve(user=user, requested=_model(body),
                                    organization=request.headers.get("OpenAI-Organization") or None,
                                    exact=body.get("exact_delivery") not in (None, False))


def _exact_gen(target: inference.Target, gen: inference.Generation, body: dict) -> inference.Generation:
    if target.exact and body.get("stream"):
        raise bad_param("stream", "exact delivery chooses among K finished answers, so it cannot stream.")
    if target.exact and gen.exact_k is None:
        return inference.Generation(**{**gen.__dict__, "exact_k": inference.DEFAULT_EXACT_K})
    return gen


def _sse(chunks: AsyncIterator[dict[str, Any]]) -> AsyncIterator[str]:
    async def events() -> AsyncIterator[str]:
        try:
            async for chunk in chunks:
                yield f"data: {json.dumps(chunk)}\n\n"
        except AppError as exc:
            # The status line went out with the first byte, so a refusal now is an error event in OpenAI's shape (the
            # SDK raises on it), and nothing is metered: the engine refusing the request (a prompt over the context
            # length) says why, the engine going away mid-stream says that.
            yield f"data: {json.dumps(error_body(from_app_error(exc)))}\n\n"
            return
        yield "data: [DONE]\n\n"

    return events()


def _stream_response(events: AsyncIterator[str]) -> StreamingHttpResponse:
    response = StreamingHttpResponse(events, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response


@openai_endpoint("GET")
def models_list(request: HttpRequest, user) -> HttpResponse:
    data = []
    for model in models_usable(user=user):
        created = int(model.created_at.timestamp())
        data.append({"id": model.model_id, "object": "model", "created": created, "owned_by": "tunemarket"})
        data.append({"id": model.model_id + ":exact", "object": "model", "created": created, "owned_by": "tunemarket"})
    return JsonResponse({"object": "list", "data": data})


def _prompt(body: dict) -> str | list[str]:
    prompt = body.get("prompt")
    if isinstance(prompt, str) and prompt:
        return prompt
    if (isinstance(prompt, list) and 0 < len(prompt) <= MAX_PROMPTS
            and all(isinstance(p, str) and p for p in prompt)):
        return prompt if len(prompt) > 1 else prompt[0]
    raise bad_param("prompt", f"prompt must be a non-empty string or a list of at most {MAX_PROMPTS} strings.")


@openai_endpoint("POST")
def completions(request: HttpRequest, user) -> HttpResponse:
    body = _body(request)
    target = _target(request, user, body)
    gen = _exact_gen(target, _generation(body, chat=False), body)
    prompt = _prompt(body)
    requested = body["model"]
    if body.get("stream"):
        payload = inference.stream_prepare(target=target, prompt=prompt, gen=gen)

        async def chunks() -> AsyncIterator[dict[str, Any]]:
            async for chunk in inference.stream_run(target=target, payload=payload):
                yield {**chunk, "model": requested}

        return _stream_response(_sse(chunks()))
    answer = inference.complete(target=target, prompt=prompt, gen=gen)
    return JsonResponse({**answer, "model": requested})


def _question(body: dict) -> str:
    """The last user message's text: the models know one format, ``Question: ...\\nAnswer: ``."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad_param("messages", "messages must be a non-empty list of {role, content} objects.")
    question = None
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("system", "developer", "user", "assistant", "tool"):
            raise bad_param("messages", f"messages[{i}] needs a role of system, user or assistant.")
        content = message.get("content")
        if isinstance(content, list):
            parts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text"]
            if len(parts) != len(content) or not all(isinstance(p, str) for p in parts):
                raise bad_param("messages", f"messages[{i}].content may hold text parts only.")
            content = "".join(parts)
        if content is not None and not isinstance(content, str):
            raise bad_param("messages", f"messages[{i}].content must be a string.")
        if message["role"] == "user":
            question = content
    if not question or not question.strip():
        raise bad_param("messages", "messages must include a user message with text; the last one is the question.")
    return question.strip()


def _chat_id() -> str:
    return "chatcmpl-" + uuid.uuid4().hex[:24]


def _labelled(request: HttpRequest, ads: list[sponsored.SponsoredAd]) -> tuple[str, list[dict[str, Any]]] | None:
    """The answer's sponsored line (the first ad's) and the structured entries of all, or None without ads."""
    if not ads:
        return None
    urls = [request.build_absolute_uri(ad.click_path) for ad in ads]
    return ads[0].label(urls[0]), [ad.as_json(url) for ad, url in zip(ads, urls, strict=True)]


def _sponsored(request: HttpRequest, target: inference.Target, question: str,
               user=None) -> tuple[str, list[dict[str, Any]]] | None:
    """The segment auction's ad for this answer (marketplace.sponsored.serving); ``user`` is the token's, for the
    per-user cap on billed clicks."""
    ad = sponsored.ad_serve(model=target.model, query=question, user=user)
    return _labelled(request, [ad] if ad else [])


def _mosaic_checks(body: dict, target: inference.Target, gen: inference.Generation) -> None:
    """MOSAIC chooses one answer among M finished ones: no streaming, one choice, no exact delivery on top."""
    if body.get("stream"):
        raise bad_param("stream", 'This deployment chooses its answer among finished ones (MOSAIC ads), so it cannot '
                                  'stream; send "stream": false, or "ads": false where allowed.')
    if gen.n != 1:
        raise bad_param("n", "This deployment chooses one answer per request (MOSAIC ads); n must be 1.")
    if target.exact:
        raise bad_param("model", "Exact delivery and MOSAIC ads both choose the answer; use the model id without "
                                 "':exact'.")


@openai_endpoint("POST")
def chat_completions(request: HttpRequest, user) -> HttpResponse:
    body = _body(request)
    target = _target(request, user, body)
    gen = _exact_gen(target, _generation(body, chat=True), body)
    question = _question(body)
    prompt = format_prompt(question)
    # Sponsored answers: where the deployment opts in, unless the request sends "ads": false (docs/advertising.md).
    ads = sponsored.ads_mode(model=target.model, ads=body.get("ads"))
    if ads is not None and ads.mode == ads.Mode.MOSAIC:
        _mosaic_checks(body, target, gen)
    requested = body["model"]
    chat_id, created = _chat_id(), int(time.time())
    if body.get("stream"):
        payload = inference.stream_prepare(target=target, prompt=prompt, gen=gen)

        async def chunks() -> AsyncIterator[dict[str, Any]]:
            started: set[int] = set()
            usage: dict[str, Any] | None = None
            base = {"id": chat_id, "object": "chat.completion.chunk", "created": created, "model": requested}
            async for chunk in inference.stream_run(target=target, payload=payload):
                choices = []
                for choice in chunk.get("choices") or []:
                    index = int(choice.get("index", 0))
                    delta: dict[str, Any] = {"content": choice.get("text") or ""}
                    if index not in started:
                        started.add(index)
                        delta["role"] = "assistant"
                    choices.append({"index": index, "delta": delta, "finish_reason": choice.get("finish_reason"),
                                    "logprobs": None})
                if choices:
                    yield {**base, "choices": choices}
                if chunk.get("usage"):
                    usage = chunk["usage"]
            # The sponsored line comes after the answer's text, once the answer is complete.
            line = await sync_to_async(_sponsored)(request, target, question, user) if ads else None
            if line is not None:
                yield {**base, "choices": [{"index": i, "delta": {"content": line[0]}, "finish_reason": None,
                                            "logprobs": None} for i in sorted(started)], "sponsored": line[1]}
            if usage is not None:
                yield {**base, "choices": [], "usage": usage}

        return _stream_response(_sse(chunks()))
    if ads is not None and ads.mode == ads.Mode.MOSAIC:
        chosen = sponsored_mosaic.mosaic_answer(target=target, prompt=prompt, gen=gen, row=ads)
        answer, line = chosen.body, _labelled(request, chosen.ads)
    else:
        answer = inference.complete(target=target, prompt=prompt, gen=gen)
        line = _sponsored(request, target, question, user) if ads else None
    choices = []
    for choice in answer.get("choices") or []:
        out = {
            "index": choice.get("index", 0),
            "message": {"role": "assistant", "content": (choice.get("text") or "") + (line[0] if line else "")},
            "finish_reason": choice.get("finish_reason") or "stop",
            "logprobs": None,
        }
        if "exact_delivery" in choice:
            out["exact_delivery"] = choice["exact_delivery"]
        choices.append(out)
    sponsored_field = {"sponsored": line[1]} if line else {}
    return JsonResponse({"id": chat_id, "object": "chat.completion", "created": created, "model": requested,
                         "choices": choices, "usage": answer.get("usage"), **sponsored_field})
