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

from marketplace.core.errors import Conflict
from marketplace.delivery.models import FineTunedModel, UsageDaily
from marketplace.delivery.selectors import model_evaluation, model_groups
from marketplace.groups.models import PreferenceGroup
from marketplace.rounds.models import Round
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
        "| group | base | promised | delivered |",
        "| --- | --- | --- | --- |",
    ]
    for g in evaluation["groups"]:
        lines.append(f"| {g['name']} | {_fmt(g['base'])} | {_fmt(g['promised'])} | {_fmt(g['delivered'])} |")
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
