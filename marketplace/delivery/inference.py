"""Serving a published model: the engine request for a checked caller, the answer, and the usage it meters.

The interface (marketplace.openai_api, the playground) parses the request and checks parameters; this module decides
which engine model answers (the adapter, or the adapter resampled toward pi* for exact delivery), fills in what exact
delivery needs from the round (each group's stored reward model, normaliser and bid, as in the auction), and meters
the tokens of successful requests only, to the group chosen by ``usage_group_for`` or, for a resale buyer, to the
listing chosen by ``resale_listing_for``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from asgiref.sync import sync_to_async

from marketplace.delivery import engine_client
from marketplace.delivery.models import FineTunedModel, ResaleListing
from marketplace.delivery.selectors import exact_delivery_groups, model_for_request, resale_listing_for, usage_group_for
from marketplace.delivery.services import resale_usage_record, usage_record
from marketplace.groups.models import PreferenceGroup
from training.lib.rewards import AffineNormaliser, reward_model_from_dict
from training.models import RewardModel

DEFAULT_EXACT_K = 16


@dataclass(frozen=True)
class Generation:
    max_tokens: int = 64
    temperature: float = 1.0
    top_p: float = 1.0
    n: int = 1
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    logprobs: int | None = None
    exact_k: int | None = None  # None: the adapter alone


@dataclass(frozen=True)
class Target:
    """A checked caller's model: what the engine should run and whom to meter."""

    model: FineTunedModel
    exact: bool
    group: PreferenceGroup | None
    # A resale buyer's request (no bidding group): the listing it is bought through, and the buyer.
    resale: ResaleListing | None = None
    buyer: Any = None


def target_resolve(*, user, requested: str, organization: str | None = None, exact: bool = False) -> Target:
    """Access check (NotFound for a model the user may not use) and the group the request is metered to."""
    found = model_for_request(user=user, requested=requested)
    group = usage_group_for(user=user, model=found.model, organization=organization)
    resale = None if group is not None else resale_listing_for(user=user, model=found.model, organization=organization)
    return Target(model=found.model, exact=found.exact or exact, group=group, resale=resale,
                  buyer=user if resale is not None else None)


def engine_payload(*, target: Target, prompt: str | list[str], gen: Generation, engine_model: str | None = None) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "model": engine_model or target.model.model_id,
        "prompt": prompt,
        "max_tokens": gen.max_tokens,
        "temperature": gen.temperature,
        "top_p": gen.top_p,
        "n": gen.n,
    }
    if gen.seed is not None:
        payload["seed"] = gen.seed
    if gen.stop:
        payload["stop"] = gen.stop
    if gen.logprobs is not None:
        payload["logprobs"] = gen.logprobs
    if target.exact and engine_model is None:
        payload["exact_delivery"] = {
            "k": gen.exact_k or DEFAULT_EXACT_K,
            "kl_weight": target.model.kl_weight,
            "groups": [
                {"bid": g["bid"], "reward_model": g["reward_model"], "normaliser": g["normaliser"]}
                for g in exact_delivery_groups(model=target.model)
            ],
        }
    return payload


def _ensure_adapter(target: Target) -> None:
    engine_client.adapter_ensure(name=target.model.model_id, path=target.model.adapter_dir)


def _usage_of(body: dict[str, Any]) -> tuple[int, int]:
    usage = body.get("usage") or {}
    return int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)


def _meter(target: Target, prompt_tokens: int, completion_tokens: int) -> None:
    if target.group is not None:
        usage_record(group=target.group, model=target.model, prompt_tokens=prompt_tokens,
                     completion_tokens=completion_tokens)
    elif target.resale is not None:
        resale_usage_record(listing=target.resale, buyer=target.buyer, prompt_tokens=prompt_tokens,
                            completion_tokens=completion_tokens)


def complete(*, target: Target, prompt: str | list[str], gen: Generation, base: bool = False, meter: bool = True) -> dict[str, Any]:
    """One answer from the engine (the base model when ``base``). Metered only when it succeeded."""
    payload = engine_payload(target=target, prompt=prompt, gen=gen, engine_model=target.model.base_model if base else None)
    if not base:
        _ensure_adapter(target)
    try:
        body = engine_client.completion(payload)
    except engine_client.AdapterMissing:
        # The engine restarted and forgot the adapter: register it again, once.
        _ensure_adapter(target)
        body = engine_client.completion(payload)
    if meter:
        _meter(target, *_usage_of(body))
    return _sealed(body)


# What a caller learns of exact delivery's choice. The drafts' weights and aggregate rewards are in the bids' money
# units (R = sum of bid x normalised reward), so with a member's own reward model, or the weights and the downloaded
# adapter, they would give away a group's bid: the site passes on only K, the effective sample size and the index.
EXACT_PUBLIC = ("k", "ess", "index")


def _sealed(body: dict[str, Any]) -> dict[str, Any]:
    for choice in body.get("choices") or []:
        exact = choice.get("exact_delivery")
        if isinstance(exact, dict):
            choice["exact_delivery"] = {key: exact[key] for key in EXACT_PUBLIC if key in exact}
    return body


def stream_prepare(*, target: Target, prompt: str | list[str], gen: Generation) -> dict[str, Any]:
    """Before a stream starts (synchronously, so an engine that is down is a plain 503): register the adapter and
    build the engine request."""
    _ensure_adapter(target)
    return engine_payload(target=target, prompt=prompt, gen=gen)


async def stream_run(*, target: Target, payload: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    """The engine's chunks; the usage is metered after the last one, so a stream cut short meters nothing."""
    usage: tuple[int, int] | None = None
    async for chunk in engine_client.completion_stream(payload):
        if chunk.get("usage"):
            usage = _usage_of(chunk)
        yield chunk
    if usage is not None:
        await sync_to_async(_meter)(target, *usage)


# --- the playground ----------------------------------------------------------------------------------------------

PLAYGROUND_SAMPLES = 3
PLAYGROUND_K = 16


def _score_rubric(target: Target, prompt: str, texts: list[str]) -> list[float | None]:
    """The viewer's group's score on its normalised scale, where that needs no encoder.

    Rubric reward models are string matching and are scored here; Bradley-Terry and direct-score models need the
    MiniLM encoder (torch), which never enters the web process, so their answers show no score (the engine's exact
    delivery still uses every group's model)."""
    if target.group is None:
        return [None] * len(texts)
    rm = RewardModel.objects.filter(round_id=target.model.round_id, group=target.group).first()
    if rm is None or rm.params.get("kind") != "rubric":
        return [None] * len(texts)
    raw = reward_model_from_dict(rm.params).score([prompt] * len(texts), texts)
    return [float(x) for x in AffineNormaliser(lo=rm.norm_min, hi=rm.norm_max).apply(raw)]


def playground_run(*, target: Target, prompt: str, samples: int = PLAYGROUND_SAMPLES, seed: int | None = None) -> dict[str, Any]:
    """Answers of the base model, the adapter and exact delivery (K = PLAYGROUND_K), side by side, each scored by the
    viewer's group's reward model where the web process can (see _score_rubric). Playground calls are not metered."""
    gen = Generation(max_tokens=48, temperature=1.0, n=samples, seed=seed)
    columns = []
    for label, kwargs, g in (
        ("Base model", {"base": True}, gen),
        ("Fine-tuned (adapter)", {}, gen),
        (f"Exact delivery (K = {PLAYGROUND_K})", {}, Generation(**{**gen.__dict__, "exact_k": PLAYGROUND_K})),
    ):
        t = Target(model=target.model, exact=g.exact_k is not None, group=target.group)
        body = complete(target=t, prompt=prompt, gen=g, meter=False, **kwargs)
        texts = [c.get("text") or "" for c in body.get("choices") or []]
        scores = _score_rubric(target, prompt, texts)
        answers = []
        for choice, text, score in zip(body.get("choices") or [], texts, scores, strict=True):
            exact = choice.get("exact_delivery") or {}
            answers.append({"text": text, "score": score, "ess": exact.get("ess")})
        columns.append({"label": label, "answers": answers})
    return {"prompt": prompt, "columns": columns}
