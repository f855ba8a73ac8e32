"""Inputs that used to get past validation: NUL characters, absurdly nested JSON, decimal commas in bids."""

from __future__ import annotations

import pytest
from django import forms

from marketplace.forms.bids import amount_to_cents
from marketplace.preference_files import UploadInvalid, parse_preference_pairs, validate_rubric

LIMIT = 1 << 20


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'{"prompt": "Q", "chosen": "A\\u0000", "rejected": "B"}\n', "line 1: 'chosen' contains a NUL character"),
        (b"prompt,chosen,rejected\nQ,A\x00,B\n", "line 2: the file contains a NUL character"),
        (b"[" * 200_000 + b"]" * 200_000 + b"\n", "line 1: the JSON is nested too deeply"),
    ],
)
def test_uploads_with_nul_characters_or_runaway_nesting_get_a_line_numbered_message(data, message):
    with pytest.raises(UploadInvalid) as caught:
        parse_preference_pairs(data, filename="p.jsonl" if data[:1] in (b"{", b"[") else "p.csv", max_bytes=LIMIT)
    assert message in caught.value.errors[0]


def test_a_rubric_phrase_with_a_nul_character_is_refused():
    with pytest.raises(UploadInvalid, match="NUL"):
        validate_rubric(phrases=[{"phrase": "kind\x00words", "weight": 1}])


@pytest.mark.parametrize(("text", "cents"), [("1,250.00", 125_000), ("$12,345", 1_234_500), ("25.5", 2_550)])
def test_bid_amounts_accept_thousands_separators(text, cents):
    assert amount_to_cents(text) == cents


@pytest.mark.parametrize("text", ["1,5", "12,34", "1,2345.00"])
def test_a_decimal_comma_in_a_bid_is_refused_rather_than_read_as_ten_times_the_amount(text):
    with pytest.raises(forms.ValidationError, match="decimal point"):
        amount_to_cents(text)
