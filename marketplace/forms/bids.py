"""The bid form: an amount typed in currency units, turned into integer cents exactly (never through a float)."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from django import forms

MAX_BID_UNITS = Decimal("1000000")
THOUSANDS = re.compile(r"^\d{1,3}(,\d{3})+(\.\d+)?$")
MAX_BID_CENTS = int(MAX_BID_UNITS * 100)


def amount_to_cents(text: str) -> int:
    """ "25.00" -> 2500. Refuses more than two decimals, zero, negatives and amounts over 1,000,000."""
    cleaned = (text or "").strip().replace("_", "")
    for symbol in ("$", "€", "£"):
        cleaned = cleaned.removeprefix(symbol)
    if "," in cleaned:
        # Only as a thousands separator ("1,250.00"); "1,5" is a decimal comma and would bid ten times too much.
        if not THOUSANDS.match(cleaned):
            raise forms.ValidationError("Write the amount with a decimal point, such as 1.50 (commas only between thousands).")
        cleaned = cleaned.replace(",", "")
    try:
        amount = Decimal(cleaned)
    except InvalidOperation:
        raise forms.ValidationError("Enter an amount such as 25.00.") from None
    if not amount.is_finite():
        raise forms.ValidationError("Enter an amount such as 25.00.")
    if amount.as_tuple().exponent < -2 and amount != amount.quantize(Decimal("0.01")):
        raise forms.ValidationError("Use at most two decimal places (whole cents).")
    if amount < 0:
        raise forms.ValidationError("A bid cannot be negative.")
    if amount == 0:
        raise forms.ValidationError("A bid must be more than zero; to take part without paying, withdraw instead.")
    if amount > MAX_BID_UNITS:
        raise forms.ValidationError("That is more than the largest bid accepted here (1,000,000).")
    return int(amount * 100)


def cents_to_amount(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


class BidForm(forms.Form):
    amount = forms.CharField(
        label="Your group's bid",
        max_length=32,
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off", "placeholder": "25.00"}),
    )

    def clean_amount(self) -> int:
        return amount_to_cents(self.cleaned_data["amount"])
