"""Forms for a group's reward preferences: an uploaded file of pairs, or a rubric typed as "phrase, weight" lines."""

from __future__ import annotations

from typing import Any

from django import forms

from marketplace.rounds import preference_files


class PairsUploadForm(forms.Form):
    file = forms.FileField(
        label="Preference pairs (JSONL or CSV)",
        allow_empty_file=True,  # the parser says "The file is empty." like it does for the API
        help_text=(
            'JSONL: one {"prompt": "...", "chosen": "...", "rejected": "..."} per line (TRL\'s format). '
            "CSV: a header row prompt,chosen,rejected, then one pair per row. UTF-8."
        ),
    )


class RubricForm(forms.Form):
    phrases = forms.CharField(
        label="Phrases and weights",
        required=False,
        widget=forms.Textarea(attrs={"rows": 8, "spellcheck": "false", "placeholder": "step by step, 2\nas an AI, -3"}),
        help_text="One “phrase, weight” per line. Positive weights reward answers that contain the phrase; negative ones penalise it.",
    )
    target_length_words = forms.IntegerField(
        label="Target length (words)", required=False, min_value=1, max_value=preference_files.RUBRIC_MAX_TARGET_WORDS,
        help_text="Optional: answers close to this many words score higher.",
    )

    def clean_phrases(self) -> list[dict[str, Any]]:
        try:
            return preference_files.parse_rubric_text(self.cleaned_data.get("phrases") or "")
        except preference_files.UploadInvalid as exc:
            raise forms.ValidationError(exc.errors) from None

    def payload(self) -> dict[str, Any]:
        return {"phrases": self.cleaned_data["phrases"], "target_length_words": self.cleaned_data.get("target_length_words")}

    @staticmethod
    def initial_from(payload: dict[str, Any]) -> dict[str, Any]:
        """A stored rubric back in the form's own "phrase, weight" lines."""
        lines = [f"{p['phrase']}, {p['weight']:g}" for p in payload.get("phrases") or []]
        return {"phrases": "\n".join(lines), "target_length_words": payload.get("target_length_words")}


class ScoresUploadForm(forms.Form):
    file = forms.FileField(
        label="Scores on the round's candidates (CSV)",
        allow_empty_file=True,
        help_text=(
            "Download the candidates, fill in the score column (any numbers: higher is better), upload the file. "
            "Columns: prompt_index, candidate_index, score (prompt and response columns may stay)."
        ),
    )
