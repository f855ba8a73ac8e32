"""A bid amount as typed on the page becomes exact integer cents, or a message saying what to type instead."""

from __future__ import annotations

import pytest
from django import forms

from marketplace.forms.bids import amount_to_cents


@pytest.mark.parametrize(
    "text,cents",
    [("25.00", 2500), ("25", 2500), ("0.01", 1), ("1,000,000", 100_000_000), ("$19.99", 1999), ("0.1", 10), ("7.500", 750)],
)
def test_amounts_become_exact_cents(text, cents):
    assert amount_to_cents(text) == cents


@pytest.mark.parametrize(
    "text,message",
    [
        ("25.001", "two decimal places"),
        ("-5", "cannot be negative"),
        ("0", "more than zero"),
        ("0.00", "more than zero"),
        ("1000000.01", "largest bid"),
        ("1e9", "plain digits"),
        ("abc", "such as 25.00"),
        ("NaN", "such as 25.00"),
        ("", "such as 25.00"),
    ],
)
def test_it_refuses_bad_amounts(text, message):
    with pytest.raises(forms.ValidationError, match=message):
        amount_to_cents(text)


# Inputs that used to get past validation.


@pytest.mark.parametrize(("text", "cents"), [("1,250.00", 125_000), ("$12,345", 1_234_500), ("25.5", 2_550)])
def test_bid_amounts_accept_thousands_separators(text, cents):
    assert amount_to_cents(text) == cents


@pytest.mark.parametrize("text", ["1,5", "12,34", "1,2345.00"])
def test_a_decimal_comma_in_a_bid_is_refused_rather_than_read_as_ten_times_the_amount(text):
    with pytest.raises(forms.ValidationError, match="decimal point"):
        amount_to_cents(text)


@pytest.mark.parametrize("text", ["1e2", "1e-2", "１００", "١٠٠", "+100", "0x64"])
def test_a_bid_is_plain_ascii_digits_only(text):
    with pytest.raises(forms.ValidationError):
        amount_to_cents(text)


@pytest.mark.parametrize(("text", "code", "minor"), [("3000", "jpy", 3000), ("25.50", "eur", 2550), ("1.250", "kwd", 1250)])
def test_a_bid_is_read_in_the_rounds_currency(text, code, minor):
    assert amount_to_cents(text, code) == minor


def test_a_yen_bid_with_decimals_is_refused_rather_than_charged_a_hundred_times():
    with pytest.raises(forms.ValidationError, match="whole units"):
        amount_to_cents("30.5", "jpy")
