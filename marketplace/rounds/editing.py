"""Staff creating and editing rounds. Status changes are not here: they go through services.lifecycle / round_transition."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.utils.text import slugify

from marketplace.core import currency
from marketplace.core.errors import AppError, Conflict, NotAllowed
from marketplace.rounds.models import Round
from marketplace.rounds.services import round_lock_exclusive

S = Round.Status
MAX_PROMPTS = 10_000
MAX_PROMPT_CHARS = 4_000
MAX_CANDIDATES = 64
# Fields that define what is sampled and what bidders bid on: frozen once the round leaves draft.
DRAFT_ONLY_FIELDS = (
    "prompts", "prompt_weights", "base_model", "candidates_per_prompt", "kl_weight", "currency",
    "participation_fee_cents", "min_bid_cents",
)
MAX_FEE_MINOR = 10**10
EDITABLE_FIELDS = ("title", "description", "opens_at", "closes_at", *DRAFT_ONLY_FIELDS)


def _check_staff(by) -> None:
    if not getattr(by, "is_staff", False):
        raise NotAllowed("Only staff can create or edit rounds.")


def _clean(fields: dict[str, Any]) -> dict[str, Any]:
    """Check and normalise round fields; raises AppError naming the field at fault."""
    out = dict(fields)
    if "title" in out:
        out["title"] = (out["title"] or "").strip()
        if not out["title"]:
            raise AppError("Give the round a title.", field="title")
        if len(out["title"]) > 160:
            raise AppError("Keep the title under 160 characters.", field="title")
    if "description" in out:
        out["description"] = (out["description"] or "").strip()
    if "base_model" in out:
        out["base_model"] = (out["base_model"] or "").strip() or "tiny"
        if len(out["base_model"]) > 300:
            raise AppError("The base model reference is too long (300 characters at most).", field="base_model")
    if "kl_weight" in out:
        value = out["kl_weight"]
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
            raise AppError("The KL weight λ must be a number greater than 0 (currency units per nat).", field="kl_weight")
        out["kl_weight"] = float(value)
    if "candidates_per_prompt" in out:
        value = out["candidates_per_prompt"]
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_CANDIDATES:
            raise AppError(f"Candidates per prompt must be a whole number from 1 to {MAX_CANDIDATES}.", field="candidates_per_prompt")
    if "currency" in out:
        try:
            out["currency"] = currency.normalise(out["currency"])
        except currency.UnknownCurrency:
            raise AppError(
                "Use the ISO 4217 code of a currency Stripe can charge, such as USD, EUR or JPY.", field="currency"
            ) from None
    for name in ("participation_fee_cents", "min_bid_cents"):
        if name in out:
            value = out[name]
            if value is None:
                out[name] = 0 if name == "participation_fee_cents" else 1
                continue
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_FEE_MINOR:
                raise AppError("Give a whole number of minor units (cents), 0 or more.", field=name)
    if out.get("min_bid_cents") == 0:
        out["min_bid_cents"] = 1
    if "prompts" in out:
        prompts = out["prompts"]
        if not isinstance(prompts, list) or not prompts:
            raise AppError("Give at least one prompt.", field="prompts")
        if len(prompts) > MAX_PROMPTS:
            raise AppError(f"A round may have at most {MAX_PROMPTS} prompts.", field="prompts")
        for i, prompt in enumerate(prompts, start=1):
            if not isinstance(prompt, str) or not prompt.strip():
                raise AppError(f"Prompt {i} is empty.", field="prompts")
            if len(prompt) > MAX_PROMPT_CHARS:
                raise AppError(f"Prompt {i} is longer than {MAX_PROMPT_CHARS} characters.", field="prompts")
        if len(set(prompts)) != len(prompts):
            dup = next(p for i, p in enumerate(prompts) if p in prompts[:i])
            raise AppError(f"The prompt “{dup[:60]}” appears twice.", field="prompts")
    if out.get("prompt_weights") is not None:
        weights = out["prompt_weights"]
        if not isinstance(weights, list) or any(
            isinstance(w, bool) or not isinstance(w, int | float) or not math.isfinite(w) or w <= 0 for w in weights
        ):
            raise AppError("Prompt weights must be positive numbers.", field="prompts")
    return out


def _check_window(opens_at: datetime, closes_at: datetime) -> None:
    if opens_at is None or closes_at is None:
        raise AppError("Give both the opening and the closing time of bidding.", field="opens_at" if opens_at is None else "closes_at")
    if closes_at <= opens_at:
        raise AppError("Bidding must close after it opens.", field="closes_at")


def _check_weights_match(prompts: list[str], weights: list[float] | None) -> None:
    if weights is not None and len(weights) != len(prompts):
        raise AppError(f"There are {len(prompts)} prompts but {len(weights)} weights.", field="prompts")


def _unique_slug(title: str) -> str:
    base = slugify(title)[:160] or "round"
    slug, n = base, 2
    while Round.objects.filter(slug=slug).exists():
        slug, n = f"{base}-{n}", n + 1
    return slug


def round_create(
    *,
    by,
    title: str,
    opens_at: datetime,
    closes_at: datetime,
    prompts: list[str],
    kl_weight: float,
    description: str = "",
    base_model: str = "tiny",
    prompt_weights: list[float] | None = None,
    candidates_per_prompt: int = 8,
    currency: str = "usd",
    participation_fee_cents: int = 0,
    min_bid_cents: int = 1,
) -> Round:
    """A new round in draft. The slug comes from the title and is made unique."""
    _check_staff(by)
    fields = _clean(
        dict(
            title=title,
            description=description,
            base_model=base_model,
            prompts=prompts,
            prompt_weights=prompt_weights,
            kl_weight=kl_weight,
            candidates_per_prompt=candidates_per_prompt,
            currency=currency,
            participation_fee_cents=participation_fee_cents,
            min_bid_cents=min_bid_cents,
        )
    )
    _check_window(opens_at, closes_at)
    _check_weights_match(fields["prompts"], fields["prompt_weights"])
    for attempt in range(3):
        try:
            with transaction.atomic():
                return Round.objects.create(
                    slug=_unique_slug(fields["title"]), opens_at=opens_at, closes_at=closes_at, created_by=by, **fields
                )
        except IntegrityError:
            # Two rounds with one title created at the same moment: pick the next free slug.
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def round_update(*, round: Round, by, **changes: Any) -> Round:
    """Change a round's details. Only fields that really change are checked against the status rules:

    the prompt set, base model, candidates, λ and currency only in draft (they fix what is sampled and what bids mean);
    the window only while draft or open; title and description always.
    """
    _check_staff(by)
    unknown = set(changes) - set(EDITABLE_FIELDS)
    if unknown:
        raise AppError(f"'{sorted(unknown)[0]}' cannot be edited.", field=sorted(unknown)[0])
    with transaction.atomic():
        locked = round_lock_exclusive(round_id=round.pk)
        cleaned = _clean(changes)
        changed = {k: v for k, v in cleaned.items() if getattr(locked, k) != v}
        if locked.status != S.DRAFT:
            frozen = [k for k in changed if k in DRAFT_ONLY_FIELDS]
            if frozen:
                label = frozen[0].replace("_", " ")
                raise Conflict(
                    f"The {label} can only be changed while the round is a draft (it is {locked.get_status_display().lower()}).",
                    code="round_not_draft",
                    field="prompts" if frozen[0] == "prompt_weights" else frozen[0],
                )
            if ("opens_at" in changed or "closes_at" in changed) and locked.status != S.OPEN:
                raise Conflict(
                    f"The bidding window can no longer be changed (the round is {locked.get_status_display().lower()}).",
                    code="round_not_draft",
                    field="closes_at",
                )
        _check_window(changed.get("opens_at", locked.opens_at), changed.get("closes_at", locked.closes_at))
        _check_weights_match(changed.get("prompts", locked.prompts), changed.get("prompt_weights", locked.prompt_weights))
        for name, value in changed.items():
            setattr(locked, name, value)
        if changed:
            locked.save(update_fields=[*changed, "updated_at"])
    return locked
