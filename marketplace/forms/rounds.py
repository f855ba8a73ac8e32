"""The staff form for a round. It parses what was typed or uploaded; the rules live in services.round_admin."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings

from marketplace.core.errors import AppError
from marketplace.models import Round
from marketplace.rounds import preference_files
from marketplace.rounds.editing import DRAFT_ONLY_FIELDS, MAX_CANDIDATES

DATETIME_FORMAT = "%Y-%m-%dT%H:%M"


def prompts_to_text(prompts: list[str]) -> str:
    """One prompt per line; a newline inside a prompt is written \\n and a backslash \\\\, so editing round-trips."""
    return "\n".join(p.replace("\\", "\\\\").replace("\n", "\\n") for p in prompts)


def prompts_from_text(text: str) -> list[str]:
    prompts = []
    for line in text.splitlines():
        if not line.strip():
            continue
        out, i = [], 0
        while i < len(line):
            pair = line[i : i + 2]
            if pair == "\\n":
                out.append("\n")
                i += 2
            elif pair == "\\\\":
                out.append("\\")
                i += 2
            else:
                out.append(line[i])
                i += 1
        prompts.append("".join(out))
    return prompts


class RoundForm(forms.Form):
    title = forms.CharField(max_length=160)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), required=False)
    base_model = forms.CharField(
        max_length=300, initial="tiny", help_text="A registered name such as “tiny”, a local path or a model id."
    )
    prompts_text = forms.CharField(
        label="Prompts",
        required=False,
        widget=forms.Textarea(attrs={"rows": 8, "spellcheck": "false"}),
        help_text="One prompt per line. Write a line break inside a prompt as \\n. Or upload a JSONL file below.",
    )
    prompts_file = forms.FileField(
        label="Or upload prompts (JSONL)",
        required=False,
        help_text='One JSON object per line: {"prompt": "...", "weight": 2.0} (weight optional). Replaces the list above.',
    )
    kl_weight = forms.FloatField(
        label="KL weight λ",
        min_value=0,
        initial=4.0,
        help_text="The price of moving the model away from the base model, in the round's currency per nat of KL "
        "divergence; greater than 0. The target weights each candidate by exp(bids × reward / λ), so what counts is the "
        "total of the bids over λ: with bids totalling $80 and λ = 4 (the default, as in the demo) the ratio is 20 and "
        "the model moves far toward the bidders' favourite answers; a λ near the bids' total keeps it close to the base. "
        "Whatever λ, no group pays more than its bid.",
    )
    candidates_per_prompt = forms.IntegerField(min_value=1, max_value=MAX_CANDIDATES, initial=8)
    currency = forms.CharField(
        min_length=3, max_length=3, initial="USD",
        help_text="ISO 4217 code of a currency Stripe charges, e.g. USD, EUR, JPY (upper or lower case).",
    )
    participation_fee_cents = forms.IntegerField(
        label="Participation fee (minor units)", min_value=0, initial=0, required=False,
        help_text="Charged to every bidding group with its price, held with its bid; known before bidding. "
        "It changes no group's best report and makes splitting into fake groups cost a fee each.",
    )
    min_bid_cents = forms.IntegerField(
        label="Minimum bid (minor units)", min_value=1, initial=1, required=False,
        help_text="The smallest bid accepted, in minor units of the currency (cents).",
    )
    opens_at = forms.DateTimeField(
        label="Bidding opens (UTC)",
        input_formats=[DATETIME_FORMAT, "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S"],
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format=DATETIME_FORMAT),
    )
    closes_at = forms.DateTimeField(
        label="Bidding closes (UTC)",
        input_formats=[DATETIME_FORMAT, "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S"],
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format=DATETIME_FORMAT),
    )

    def __init__(self, *args: Any, round: Round | None = None, **kwargs: Any) -> None:
        self.round = round
        if round is not None and "initial" not in kwargs:
            kwargs["initial"] = {
                "title": round.title,
                "description": round.description,
                "base_model": round.base_model,
                "prompts_text": prompts_to_text(round.prompts or []),
                "kl_weight": round.kl_weight,
                "candidates_per_prompt": round.candidates_per_prompt,
                "currency": round.currency.upper(),
                "participation_fee_cents": round.participation_fee_cents,
                "min_bid_cents": round.min_bid_cents,
                "opens_at": round.opens_at,
                "closes_at": round.closes_at,
            }
        super().__init__(*args, **kwargs)
        if round is not None and round.status != Round.Status.DRAFT:
            # Frozen outside draft: shown, not submitted, so an edit of the title cannot touch them.
            for name in ("base_model", "prompts_text", "prompts_file", "kl_weight", "candidates_per_prompt", "currency",
                         "participation_fee_cents", "min_bid_cents"):
                self.fields[name].disabled = True
                self.fields[name].help_text = "Fixed once the round leaves draft."
        if round is not None and round.status not in (Round.Status.DRAFT, Round.Status.OPEN):
            for name in ("opens_at", "closes_at"):
                self.fields[name].disabled = True
                self.fields[name].help_text = "Fixed once bidding has closed."

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if self.fields["prompts_text"].disabled:
            return data
        upload = data.get("prompts_file")
        if upload:
            try:
                data["prompts"], data["prompt_weights"] = preference_files.parse_prompt_jsonl(
                    upload, max_bytes=settings.PREFERENCE_UPLOAD_MAX_BYTES
                )
            except preference_files.UploadInvalid as exc:
                for message in exc.errors:
                    self.add_error("prompts_file", message)
        else:
            prompts = prompts_from_text(data.get("prompts_text") or "")
            if not prompts:
                self.add_error("prompts_text", "Give at least one prompt, one per line, or upload a JSONL file.")
            data["prompts"] = prompts
            keep_weights = self.round is not None and prompts == self.round.prompts
            data["prompt_weights"] = self.round.prompt_weights if keep_weights else None
        return data

    def service_fields(self) -> dict[str, Any]:
        """The cleaned values under the names round_create/round_update take, without the frozen ones."""
        data = self.cleaned_data
        fields: dict[str, Any] = {"title": data["title"], "description": data["description"]}
        for name in ("opens_at", "closes_at"):
            if not self.fields[name].disabled:
                fields[name] = self._same_minute_as_stored(name, data[name])
        if not self.fields["prompts_text"].disabled:
            fields.update(
                base_model=data["base_model"],
                prompts=data["prompts"],
                prompt_weights=data["prompt_weights"],
                kl_weight=data["kl_weight"],
                candidates_per_prompt=data["candidates_per_prompt"],
                currency=data["currency"],
                participation_fee_cents=data.get("participation_fee_cents") or 0,
                min_bid_cents=data.get("min_bid_cents") or 1,
            )
        return fields

    def _same_minute_as_stored(self, name: str, value):
        # The form shows times to the minute; an untouched field must not move the stored time by its seconds.
        stored = getattr(self.round, name, None)
        if stored is not None and value is not None and stored.replace(second=0, microsecond=0) == value:
            return stored
        return value

    def add_app_error(self, exc: AppError) -> None:
        """Show a service's error beside the field it names (the prompt fields share one)."""
        field = exc.field
        if field in ("prompts", "prompt_weights"):
            field = "prompts_file" if self.cleaned_data.get("prompts_file") else "prompts_text"
        if field in DRAFT_ONLY_FIELDS and field not in self.fields:
            field = None
        self.add_error(field if field in self.fields else None, exc.message)
