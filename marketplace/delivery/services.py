"""Publishing a delivered round's model and metering its use.

model_publish runs in the worker (orchestration's round_after_job), never in the web process: building the merged
weights loads torch. It is idempotent: the row is created once (get_or_create on the round, unique), and each download
is built only while its field is empty, so a redelivered task finishes what a crashed one started.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from marketplace.core import currency
from marketplace.core.errors import AppError, Conflict, NotAllowed, NotFound
from marketplace.delivery.models import FineTunedModel, ResaleListing, ResaleUsageDaily, UsageDaily
from marketplace.delivery.selectors import model_evaluation, model_groups
from marketplace.groups.models import Membership, PreferenceGroup
from marketplace.rounds.models import Round
from marketplace.rounds.outcomes import GroupOutcome
from training.lib import export
from training.lib.basemodels import resolve_base
from training.models import TrainingJob

log = logging.getLogger(__name__)


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def model_card(*, model: FineTunedModel) -> str:
    """The README.md shipped in both zips and shown on the model page: base, lambda, groups, evaluation, usage."""
    round = model.round
    evaluation = model_evaluation(model=model)
    lines = [
        f"# {model.model_id}",
        "",
        f"Fine-tuned for the round **{round.title}** (`{round.slug}`) of the fine-tuning marketplace.",
        "",
        f"- Base model: `{model.base_model}`",
        f"- KL weight lambda: {round.kl_weight:g}",
        f"- Groups that bid: {', '.join(g.group.name for g in model_groups(model=model)) or 'none'}",
        "- Training: LoRA (peft) toward the auction's target distribution",
        "  pi*(y|x) proportional to pi0(y|x) exp(R(x,y)/lambda), R the bid-weighted sum of the groups' normalised rewards.",
        "",
        "## Evaluation (normalised reward, fresh samples of the round's prompts)",
        "",
        "| group | base | promised | delivered (adapter) | exact K=4 | exact K=16 | exact K=64 |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for g in evaluation["groups"]:
        exact = " | ".join(_fmt(g["exact"].get(str(k))) for k in evaluation["exact_ks"])
        lines.append(f"| {g['name']} | {_fmt(g['base'])} | {_fmt(g['promised'])} | {_fmt(g['delivered'])} | {exact} |")
    lines += ["", "Exact delivery at K: one of K adapter answers drawn with probability proportional to",
              "exp(R/lambda) pi0/pi_theta (self-normalised importance resampling toward pi*)."]
    if evaluation["kl_estimate"] is not None:
        lines += ["", f"KL to the base model (estimate): {evaluation['kl_estimate']:.4f} nats."]
    lines += [
        "",
        "## Use",
        "",
        f"Through the site's OpenAI-compatible API: `model=\"{model.model_id}\"` (or `\"{model.model_id}:exact\"` for exact",
        "delivery, which resamples K answers of the adapter toward pi*). Prompts use the format `Question: ...\\nAnswer: `.",
        "",
    ]
    return "\n".join(lines)


def _artifact_dir() -> Path:
    path = Path(settings.ARTIFACT_DIR) / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


def model_publish(*, round: Round) -> FineTunedModel:
    """Publish the delivered round's model: the row, its card, and the adapter and merged zips (content-addressed).

    1. Find the round's succeeded job; without one there is nothing to publish (Conflict).
    2. get_or_create the row on the round (one-to-one, so two workers end with one row).
    3. Write the card; build each zip whose field is still empty, in a scratch folder, and store path, size and hash
       with a plain update (re-running rebuilds the same bytes, so a race writes the same values).
    """
    job = TrainingJob.objects.filter(round=round, status=TrainingJob.Status.SUCCEEDED).order_by("-pk").first()
    if job is None or not job.adapter_dir:
        raise Conflict("The round has no trained adapter to publish.", code="no_adapter")
    adapter_dir = Path(job.adapter_dir)
    with transaction.atomic():
        model, _ = FineTunedModel.objects.get_or_create(
            round=round,
            defaults={
                "model_id": FineTunedModel.id_for(round),
                "base_model": round.base_model,
                "kl_weight": round.kl_weight,
                "adapter_dir": str(adapter_dir),
            },
        )
    card = model_card(model=model)
    fields: dict[str, object] = {"card": card, "adapter_sha256": export.adapter_weights_sha256(adapter_dir)}
    base_path = resolve_base(round.base_model, cache_dir=Path(settings.MODEL_CACHE_DIR))
    dest = _artifact_dir()
    if not model.adapter_zip or not Path(model.adapter_zip).exists():
        with tempfile.TemporaryDirectory() as tmp:
            folder = export.export_adapter(adapter_dir=adapter_dir, base_path=base_path, out_dir=Path(tmp), card=card)
            art = export.zip_folder(folder, dest_dir=dest, prefix="adapter")
        fields.update(adapter_zip=str(art.path), adapter_zip_size=art.size, adapter_zip_sha256=art.sha256)
    if not model.merged_zip or not Path(model.merged_zip).exists():
        merged_dir = dest / f"merged-{round.slug}-{fields['adapter_sha256']}"
        if not (merged_dir / "config.json").exists():
            with tempfile.TemporaryDirectory(dir=dest) as tmp:
                export.export_merged(adapter_dir=adapter_dir, base_path=base_path, out_dir=Path(tmp) / "m", card=card)
                if not merged_dir.exists():
                    (Path(tmp) / "m").rename(merged_dir)
        art = export.zip_folder(merged_dir, dest_dir=dest, prefix="merged")
        fields.update(merged_dir=str(merged_dir), merged_zip=str(art.path), merged_zip_size=art.size,
                      merged_zip_sha256=art.sha256)
    FineTunedModel.objects.filter(pk=model.pk).update(**fields)
    model.refresh_from_db()
    log.info("published %s", model.model_id)
    return model


def usage_record(*, group: PreferenceGroup, model: FineTunedModel, prompt_tokens: int, completion_tokens: int) -> None:
    """Add one successful request's tokens to the group's row for today (created on first use, then F() increments,
    so concurrent requests never lose a count)."""
    day = timezone.localdate()
    row, _ = UsageDaily.objects.get_or_create(group=group, model=model, day=day)
    UsageDaily.objects.filter(pk=row.pk).update(
        prompt_tokens=F("prompt_tokens") + int(prompt_tokens),
        completion_tokens=F("completion_tokens") + int(completion_tokens),
        requests=F("requests") + 1,
    )


# A typo guard: one million major units per million tokens.
RESALE_PRICE_MAX_MAJOR = 1_000_000


def resale_listing_set(
    *, user, model: FineTunedModel, group: PreferenceGroup, listed: bool, price_per_mtok_cents: int
) -> ResaleListing:
    """List (or withdraw) the group's delivered model for resale at a price per 1M tokens, in minor units of the
    round's currency. Only the admins of a group that bid in the round, and staff, may (NotFound for anyone who
    cannot see the group's business, NotAllowed for its other members)."""
    if not GroupOutcome.objects.filter(outcome__round_id=model.round_id, group=group).exists():
        raise NotFound("Group not found.")
    if not user.is_staff:
        role = Membership.objects.filter(group=group, user=user).values_list("role", flat=True).first()
        if role is None:
            raise NotFound("Group not found.")
        if role != Membership.Role.ADMIN:
            raise NotAllowed("Only the group's admins can list its model for resale.")
    if isinstance(price_per_mtok_cents, bool) or not isinstance(price_per_mtok_cents, int) or price_per_mtok_cents < 0:
        raise AppError("Enter the price as a whole number of minor units.", field="price")
    code = model.round.currency
    if price_per_mtok_cents > RESALE_PRICE_MAX_MAJOR * 10 ** currency.exponent(code):
        raise AppError(f"A price can be at most {RESALE_PRICE_MAX_MAJOR:,} {code.upper()} per 1M tokens.", field="price")
    if listed and price_per_mtok_cents == 0:
        raise AppError("Set a price above zero to list the model.", field="price")
    listing, _ = ResaleListing.objects.update_or_create(
        model=model, group=group,
        defaults={"listed": listed, "price_per_mtok_cents": price_per_mtok_cents, "updated_by": user},
    )
    return listing


def resale_usage_record(*, listing: ResaleListing, buyer, prompt_tokens: int, completion_tokens: int) -> None:
    """Add a resale buyer's successful request to today's row at the listing's current price (read from the
    database, so a price changed while a stream ran bills the new price from then on). F() increments, as
    ``usage_record``."""
    price = ResaleListing.objects.filter(pk=listing.pk).values_list("price_per_mtok_cents", flat=True).first()
    if price is None:
        return
    row, _ = ResaleUsageDaily.objects.get_or_create(
        listing_id=listing.pk, buyer=buyer, day=timezone.localdate(), price_per_mtok_cents=price
    )
    ResaleUsageDaily.objects.filter(pk=row.pk).update(
        prompt_tokens=F("prompt_tokens") + int(prompt_tokens),
        completion_tokens=F("completion_tokens") + int(completion_tokens),
        requests=F("requests") + 1,
    )
