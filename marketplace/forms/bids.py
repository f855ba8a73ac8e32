"""The bid form: an amount typed in currency units, turned into integer cents exactly (never through a float)."""

from __future__ import annotations

from decimal import Decimal

from django import forms

from marketplace.core.currency import exponent as currency_exponent
from marketplace.core.currency import format_amount, parse_amount

MAX_BID_UNITS = Decimal("1000000")
MAX_BID_CENTS = int(MAX_BID_UNITS * 100)  # the ceiling in a two-decimal currency; see max_bid_minor


def max_bid_minor(currency: str) -> int:
    """One million in major units, in the currency's minor units."""
    return int(MAX_BID_UNITS.scaleb(currency_exponent(currency)))


def amount_to_cents(text: str, currency: str = "usd") -> int:
    """ "25.00" -> 2500 (usd), "3000" -> 3000 (jpy). Exactly, never through a float. Refuses more decimals than the
    currency has, exponents, signs, non-ASCII digits, zero and amounts over 1,000,000 major units."""
    try:
        minor = parse_amount(text, currency)
    except ValueError as exc:
        raise forms.ValidationError(str(exc)) from None
    if minor == 0:
        raise forms.ValidationError("A bid must be more than zero; to take part without paying, withdraw instead.")
    if minor > max_bid_minor(currency):
        raise forms.ValidationError("That is more than the largest bid accepted here (1,000,000).")
    return minor


def cents_to_amount(cents: int, currency: str = "usd") -> str:
    return format_amount(cents, currency)


class BidForm(forms.Form):
    amount = forms.CharField(
        label="Your group's bid",
        max_length=32,
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off", "placeholder": "25.00"}),
    )

    def __init__(self, *args, currency: str = "usd", **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.currency = currency
        example = format_amount(2500 * 10 ** currency_exponent(currency) // 100, currency)
        self.fields["amount"].widget.attrs["placeholder"] = example

    def clean_amount(self) -> int:
        return amount_to_cents(self.cleaned_data["amount"], self.currency)
