"""Forms of the economics pages: they parse numbers (finite, within sane bounds) and leave the models to economics/."""

from __future__ import annotations

import math
import re

from django import forms

from marketplace.core import currency
from marketplace.core.errors import AppError
from marketplace.deals import settlement

MAX_TASKS = 8
MAX_GENERATORS = 4
MAX_OUTCOMES = 20
# Bounds that keep every formula far from overflow; the models themselves need no more than "positive".
LIMIT = 1e6


def _number(label: str, *, required: bool = True, minimum: float = -LIMIT, initial=None) -> forms.FloatField:
    return forms.FloatField(
        label=label, required=required, min_value=minimum, max_value=LIMIT, initial=initial,
        widget=forms.NumberInput(attrs={"step": "any"}),
    )


def _positive(cleaned: dict, form: forms.Form, name: str) -> None:
    value = cleaned.get(name)
    if value is not None and value <= 0:
        form.add_error(name, "Must be greater than 0.")


class PricingForm(forms.Form):
    """The demand slope b and up to eight tasks (demand scale a_t, the latecomer's relative performance κ_t)."""

    demand_slope = _number("Demand slope b", minimum=0, initial=0.5)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for t in range(MAX_TASKS):
            self.fields[f"a_{t}"] = _number(f"Task {t + 1}: demand scale a", required=False, minimum=0)
            self.fields[f"k_{t}"] = _number(f"Task {t + 1}: relative performance κ", required=False, minimum=0)

    def rows(self):
        """(label, a field, κ field) per task row, for the template's table."""
        return [(t + 1, self[f"a_{t}"], self[f"k_{t}"]) for t in range(MAX_TASKS)]

    def clean(self):
        cleaned = super().clean()
        _positive(cleaned, self, "demand_slope")
        scales, kappas = [], []
        for t in range(MAX_TASKS):
            a, k = cleaned.get(f"a_{t}"), cleaned.get(f"k_{t}")
            if f"a_{t}" in self.errors or f"k_{t}" in self.errors:
                continue
            if a is None and k is None:
                continue
            if a is None:
                self.add_error(f"a_{t}", "Give the demand scale, or clear the row.")
                continue
            if k is None:
                self.add_error(f"k_{t}", "Give the relative performance, or clear the row.")
                continue
            _positive(cleaned, self, f"a_{t}")
            _positive(cleaned, self, f"k_{t}")
            scales.append(a)
            kappas.append(k)
        if not scales and not self.errors:
            raise forms.ValidationError("Enter at least one task.")
        cleaned["demand_scales"], cleaned["relative_performances"] = scales, kappas
        return cleaned


def parse_numbers(raw: str, *, limit: int = MAX_OUTCOMES) -> list[float]:
    """Numbers separated by spaces, commas or semicolons; raises ValidationError on anything else."""
    parts = [p for p in re.split(r"[\s,;]+", raw.strip()) if p]
    if len(parts) > limit:
        raise forms.ValidationError(f"At most {limit} numbers.")
    values = []
    for p in parts:
        try:
            v = float(p)
        except ValueError:
            raise forms.ValidationError(f"“{p[:20]}” is not a number.") from None
        if not math.isfinite(v) or abs(v) > LIMIT:
            raise forms.ValidationError(f"“{p[:20]}” is not a usable number.")
        values.append(v)
    return values


class ContractForm(forms.Form):
    """Up to four generators (the last one filled in is the target), the objective and the variants."""

    outcomes = forms.CharField(
        label="Outcome labels", required=False, max_length=500,
        help_text="Optional, separated by commas (for example score bins); default 1, 2, 3, …",
    )
    objective = forms.ChoiceField(
        label="Objective", choices=[("min_pay", "Least expected payment"), ("min_budget", "Least budget (largest payment)")]
    )
    monotone = forms.BooleanField(label="Monotone (pay never falls as the outcome improves)", required=False)
    robust = forms.BooleanField(label="Cost-robust (only the cost gap between the cheapest and the target is known)", required=False)
    outcome_edges = forms.CharField(
        label="Outcome bins on the delivered reward (0–1)", required=False, max_length=1000,
        help_text="At delivery each group's outcome is the bin its delivered reward falls in: one more edge than "
        "outcomes, increasing, worst first. Empty: equal-width bins over [0, 1].",
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for i in range(MAX_GENERATORS):
            self.fields[f"name_{i}"] = forms.CharField(label=f"Generator {i + 1}: name", required=False, max_length=60)
            self.fields[f"cost_{i}"] = _number(f"Generator {i + 1}: cost", required=False, minimum=0)
            self.fields[f"dist_{i}"] = forms.CharField(
                label=f"Generator {i + 1}: outcome distribution", required=False, max_length=2000,
                help_text="Probabilities of each outcome, worst first, summing to 1.",
            )

    def generators(self):
        return [(i + 1, self[f"name_{i}"], self[f"cost_{i}"], self[f"dist_{i}"]) for i in range(MAX_GENERATORS)]

    def clean(self):
        cleaned = super().clean()
        names, costs, dists = [], [], []
        for i in range(MAX_GENERATORS):
            name, cost, raw = cleaned.get(f"name_{i}") or "", cleaned.get(f"cost_{i}"), cleaned.get(f"dist_{i}") or ""
            if f"cost_{i}" in self.errors:
                continue
            if not name.strip() and cost is None and not raw.strip():
                continue
            if not name.strip():
                self.add_error(f"name_{i}", "Name the generator, or clear the row.")
                continue
            if cost is None:
                self.add_error(f"cost_{i}", "Give the generator's cost.")
                continue
            try:
                dist = parse_numbers(raw)
            except forms.ValidationError as exc:
                self.add_error(f"dist_{i}", exc)
                continue
            if not dist:
                self.add_error(f"dist_{i}", "Give the probability of each outcome.")
                continue
            names.append(name.strip())
            costs.append(cost)
            dists.append(dist)
        if len(names) < 2 and not self.errors:
            raise forms.ValidationError("Enter at least two generators: the cheaper ones and, last, the target.")
        labels = [p.strip() for p in (cleaned.get("outcomes") or "").split(",") if p.strip()]
        if labels and dists and len(labels) != len(dists[0]):
            self.add_error("outcomes", f"{len(labels)} labels for {len(dists[0])} outcomes.")
        cleaned["edges"] = self._edges(cleaned.get("outcome_edges") or "", len(dists[0]) if dists else 0)
        cleaned["names"], cleaned["costs"], cleaned["distributions"], cleaned["labels"] = names, costs, dists, labels
        return cleaned


    def _edges(self, raw: str, outcomes: int) -> list[float]:
        """The bin edges: as typed (validated: outcomes + 1 numbers, strictly increasing), else equal-width."""
        if outcomes < 1:
            return []
        try:
            edges = parse_numbers(raw, limit=MAX_OUTCOMES + 1)
        except forms.ValidationError as exc:
            self.add_error("outcome_edges", exc)
            return []
        try:
            return settlement.edges_check(edges, outcomes) if edges else settlement.equal_width_edges(outcomes)
        except AppError as exc:
            self.add_error("outcome_edges", exc.message)
            return []


class RevenueShareForm(forms.Form):
    """Declared costs (c0 the platform's, c1 the group's), the revenue estimate r and a proposed share δ."""

    c0 = _number("Platform's cost coefficient c0", minimum=0)
    c1 = _number("Your group's cost coefficient c1", minimum=0)
    r = _number("Revenue estimate r (per unit of performance)", minimum=0)
    delta = forms.FloatField(
        label="Proposed platform share δ", required=False, min_value=0, max_value=1,
        widget=forms.NumberInput(attrs={"step": "any"}),
        help_text="The platform keeps δ of the resale revenue and the group 1 − δ.",
    )

    def __init__(self, *args, c0_editable: bool = True, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if not c0_editable:
            self.fields["c0"].disabled = True
            self.fields["c0"].help_text = "Set by the platform."

    def clean(self):
        cleaned = super().clean()
        for name in ("c0", "c1", "r"):
            _positive(cleaned, self, name)
        return cleaned


class ResaleListingForm(forms.Form):
    """On/off and a price per 1M tokens typed in the round's currency (``currency.parse_amount``: exact minor units)."""

    listed = forms.BooleanField(label="Offer the model to others through the platform's API", required=False)
    price = forms.CharField(label="Price per 1M tokens", max_length=32, required=False)

    def __init__(self, *args, currency_code: str, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.currency_code = currency_code
        self.fields["price"].label = f"Price per 1M tokens ({currency_code.upper()})"
        self.fields["price"].help_text = "Prompt and completion tokens alike; outside buyers' usage is billed at it."

    def clean_price(self) -> int:
        raw = (self.cleaned_data.get("price") or "").strip()
        if not raw:
            return 0
        try:
            return currency.parse_amount(raw, self.currency_code)
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None
