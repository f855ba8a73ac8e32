"""Currencies by ISO 4217 minor units: forms, display, the auction's units and Stripe amounts agree."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from marketplace.core import currency


@pytest.mark.parametrize(
    ("code", "typed", "minor", "shown"),
    [("usd", "25.00", 2500, "$25.00"), ("eur", "1,250.5", 125050, "€1,250.50"), ("jpy", "3000", 3000, "¥3,000"),
     ("kwd", "1.250", 1250, "1.250 KWD")],
)
def test_an_amount_typed_in_major_units_becomes_exact_minor_units_and_reads_back(code, typed, minor, shown):
    assert currency.parse_amount(typed, code) == minor
    assert currency.format_money(minor, code) == shown


@pytest.mark.parametrize(("code", "typed"), [("usd", "1.001"), ("jpy", "30.5"), ("kwd", "1.0001")])
def test_more_decimals_than_the_currency_has_are_refused(code, typed):
    with pytest.raises(ValueError, match="amounts use"):
        currency.parse_amount(typed, code)


@pytest.mark.parametrize("typed", ["1e2", "1e-2", "１２", "١٢", "-5", "+5", "1,5", "12,34.00", "", "NaN", "inf", "0x10"])
def test_exponents_signs_and_non_ascii_digits_are_refused(typed):
    with pytest.raises(ValueError):
        currency.parse_amount(typed, "usd")


def test_the_mechanism_prices_in_major_units_by_the_currencys_exponent():
    assert currency.to_major(2500, "usd") == 25.0
    assert currency.to_major(2500, "jpy") == 2500.0
    assert currency.to_major(2500, "kwd") == 2.5


def test_three_decimal_currencies_charge_multiples_of_ten_rounded_down():
    assert currency.charge_floor(1259, "kwd") == 1250
    assert currency.charge_floor(1259, "usd") == 1259


@pytest.mark.parametrize("code", ["xyz", "US", "usdd", "", "btc"])
def test_codes_stripe_does_not_take_are_refused(code):
    with pytest.raises(currency.UnknownCurrency):
        currency.normalise(code)


@given(minor=st.integers(min_value=0, max_value=10**12), code=st.sampled_from(sorted(currency.SUPPORTED)))
def test_format_amount_and_parse_amount_are_inverse(minor, code):
    assert currency.parse_amount(currency.format_amount(minor, code), code) == minor


@given(major=st.floats(min_value=0, max_value=1e6, allow_nan=False), code=st.sampled_from(["usd", "jpy", "kwd"]))
def test_a_price_is_never_rounded_up(major, code):
    assert currency.to_major(currency.major_to_minor_floor(major, code), code) <= major + 1e-9
