"""Parsing and validation of preference uploads, rubrics and prompt files: each bad input gets its own message."""

from __future__ import annotations

import io
import json

import pytest

from marketplace.rounds.preference_files import (
    MAX_ERRORS,
    UploadInvalid,
    parse_preference_pairs,
    parse_prompt_jsonl,
    parse_rubric_text,
    read_limited,
    validate_rubric,
)

LIMIT = 10_000


def jsonl(*rows) -> bytes:
    return "\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows).encode()


def errors_of(data: bytes, filename: str = "pairs.jsonl", max_bytes: int = LIMIT) -> list[str]:
    with pytest.raises(UploadInvalid) as caught:
        parse_preference_pairs(data, filename=filename, max_bytes=max_bytes)
    return caught.value.errors


GOOD = {"prompt": "Is shipping free?", "chosen": "Yes, over $20.", "rejected": "Maybe."}


def test_it_accepts_trl_jsonl_pairs():
    payload = parse_preference_pairs(jsonl(GOOD, {**GOOD, "chosen": "Yes."}) + b"\n", filename="p.jsonl", max_bytes=LIMIT)
    assert payload["format"] == "jsonl"
    assert payload["pairs"][1] == {**GOOD, "chosen": "Yes."}


def test_it_accepts_csv_with_the_same_header_and_quoted_newlines():
    data = b'prompt,chosen,rejected\n"Q1","line one\nline two",B\nQ2,A,B\n'
    payload = parse_preference_pairs(data, filename="p.csv", max_bytes=LIMIT)
    assert payload["format"] == "csv"
    assert payload["pairs"] == [
        {"prompt": "Q1", "chosen": "line one\nline two", "rejected": "B"},
        {"prompt": "Q2", "chosen": "A", "rejected": "B"},
    ]


def test_it_accepts_a_byte_order_mark():
    payload = parse_preference_pairs(b"\xef\xbb\xbfprompt,chosen,rejected\nQ,A,B\n", filename="p.csv", max_bytes=LIMIT)
    assert payload["pairs"] == [{"prompt": "Q", "chosen": "A", "rejected": "B"}]


def test_it_names_the_missing_field_and_its_line():
    assert errors_of(jsonl(GOOD, GOOD, {"prompt": "Q", "chosen": "A"})) == ["line 3: missing field 'rejected'"]


def test_it_refuses_identical_chosen_and_rejected():
    rows = [GOOD] * 4 + [{"prompt": "Q", "chosen": "same", "rejected": "same"}]
    assert errors_of(jsonl(*rows)) == ["line 5: 'chosen' and 'rejected' are identical"]


def test_it_refuses_extra_fields():
    assert errors_of(jsonl({**GOOD, "score": 1})) == [
        "line 1: unexpected field 'score' (only prompt, chosen and rejected are allowed)"
    ]


def test_it_refuses_non_string_values():
    assert errors_of(jsonl({**GOOD, "chosen": 3}, {**GOOD, "prompt": None})) == [
        "line 1: 'chosen' must be a string, not number",
        "line 2: 'prompt' must be a string, not null",
    ]


def test_it_refuses_lines_that_are_not_json_objects():
    errs = errors_of(jsonl(GOOD, "{not json", '["a", "b"]'))
    assert errs[0].startswith("line 2: not valid JSON")
    assert errs[1].startswith("line 3: expected a JSON object")


def test_it_refuses_empty_values():
    assert errors_of(jsonl({**GOOD, "prompt": "   "})) == ["line 1: 'prompt' is empty"]


def test_it_refuses_non_utf8_and_says_which_byte():
    data = b"prompt,chosen,rejected\nQ,caf" + b"\xe9,B\n"
    errs = errors_of(data, filename="p.csv")
    assert len(errs) == 1
    offset = data.index(b"\xe9")
    assert "not UTF-8" in errs[0] and f"byte {offset} " in errs[0]


@pytest.mark.parametrize("data", [b"", b"   \n\n", b"\xef\xbb\xbf"])
def test_it_refuses_empty_files(data):
    assert errors_of(data) == ["The file is empty."]


def test_it_refuses_a_csv_with_a_missing_column():
    assert errors_of(b"prompt,chosen\nQ,A\n", filename="p.csv") == ["line 1: missing column 'rejected'"]


def test_it_refuses_a_csv_with_an_extra_column():
    errs = errors_of(b"prompt,chosen,rejected,note\nQ,A,B,x\n", filename="p.csv")
    assert errs == ["line 1: unexpected column 'note' (the header must be prompt,chosen,rejected)"]


def test_it_refuses_csv_rows_with_the_wrong_number_of_values():
    assert errors_of(b"prompt,chosen,rejected\nQ,A,B\nQ,A\n", filename="p.csv") == ["line 3: expected 3 values, found 2"]


def test_it_counts_csv_lines_across_quoted_newlines():
    data = b'prompt,chosen,rejected\n"Q\nstill Q",A,B\nQ,same,same\n'
    assert errors_of(data, filename="p.csv") == ["line 4: 'chosen' and 'rejected' are identical"]


def test_it_refuses_a_header_without_rows():
    assert errors_of(b"prompt,chosen,rejected\n", filename="p.csv") == ["The file has a header but no preference pairs."]


def test_it_refuses_files_over_the_limit():
    data = jsonl(*[GOOD] * 50)
    assert "larger than the limit" in errors_of(data, max_bytes=len(data) - 1)[0]


def test_it_checks_the_declared_size_before_reading():
    class Upload(io.BytesIO):
        size = 10_000_000

        def read(self, *args):  # reading at all would be the bug
            raise AssertionError("read before the size check")

    with pytest.raises(UploadInvalid, match="larger than the limit"):
        read_limited(Upload(b"x"), max_bytes=100)


def test_it_reads_no_more_than_the_limit_plus_one_byte():
    stream = io.BytesIO(b"x" * 1000)
    with pytest.raises(UploadInvalid):
        read_limited(stream, max_bytes=100)
    assert stream.tell() == 101


def test_it_lists_at_most_twenty_errors_and_counts_the_rest():
    rows = [{"prompt": "Q", "chosen": "same", "rejected": "same"}] * (MAX_ERRORS + 5)
    errs = errors_of(jsonl(*rows))
    assert len(errs) == MAX_ERRORS + 1
    assert errs[-1] == "… and 5 more problems."


def test_it_reports_every_bad_line_not_only_the_first():
    errs = errors_of(jsonl({"prompt": "Q", "chosen": "A"}, GOOD, {"prompt": "Q", "rejected": "B"}))
    assert errs == ["line 1: missing field 'rejected'", "line 3: missing field 'chosen'"]


def test_the_rubric_text_parses_phrases_with_commas_and_negative_weights():
    phrases = parse_rubric_text("step by step, 2\nwell, actually, -1.5\n\n")
    assert validate_rubric(phrases=phrases, target_length_words=120) == {
        "phrases": [{"phrase": "step by step", "weight": 2.0}, {"phrase": "well, actually", "weight": -1.5}],
        "target_length_words": 120,
    }


def test_the_rubric_refuses_lines_without_a_number():
    with pytest.raises(UploadInvalid) as caught:
        parse_rubric_text("polite, 1\nno weight here\nshort, lots")
    assert caught.value.errors == [
        'line 2: expected "phrase, weight" (for example "step by step, 2")',
        "line 3: weight 'lots' is not a number",
    ]


def test_the_rubric_refuses_zero_weights_duplicates_and_empty_phrases_with_line_numbers():
    with pytest.raises(UploadInvalid) as caught:
        validate_rubric(phrases=parse_rubric_text("a, 0\nb, 1\nB, 2\n , 3"))
    errs = caught.value.errors
    assert errs[0].startswith("line 1: weight 0 has no effect")
    assert errs[1] == "line 3: 'B' is listed twice"
    assert errs[2] == "line 4: the phrase is empty"


def test_the_rubric_needs_a_phrase_or_a_target_length():
    with pytest.raises(UploadInvalid, match="at least one phrase"):
        validate_rubric(phrases=[], target_length_words=None)
    assert validate_rubric(phrases=[], target_length_words=50)["target_length_words"] == 50


@pytest.mark.parametrize("bad", [0, -3, 10_001, 2.5, True, "50"])
def test_the_rubric_refuses_a_bad_target_length(bad):
    with pytest.raises(UploadInvalid) as caught:
        validate_rubric(phrases=[{"phrase": "x", "weight": 1}], target_length_words=bad)
    assert caught.value.field == "target_length_words"


def test_the_rubric_refuses_non_numeric_weights_from_json():
    with pytest.raises(UploadInvalid) as caught:
        validate_rubric(phrases=[{"phrase": "x", "weight": "2"}, {"phrase": 5, "weight": 1}])
    assert caught.value.errors == ["phrase 1: 'weight' must be a number, not str", "phrase 2: 'phrase' must be a string, not number"]


def test_prompt_files_give_prompts_and_optional_weights():
    assert parse_prompt_jsonl(jsonl({"prompt": "a\nb"}, {"prompt": "c"}), max_bytes=LIMIT) == (["a\nb", "c"], None)
    assert parse_prompt_jsonl(jsonl({"prompt": "a", "weight": 2}, {"prompt": "c", "weight": 0.5}), max_bytes=LIMIT) == (
        ["a", "c"],
        [2.0, 0.5],
    )


def test_prompt_files_refuse_bad_lines_with_line_numbers():
    with pytest.raises(UploadInvalid) as caught:
        parse_prompt_jsonl(jsonl({"prompt": "a"}, {"text": "b"}, {"prompt": "c", "weight": -1}), max_bytes=LIMIT)
    assert caught.value.errors == [
        "line 2: unexpected field 'text' (only prompt and weight are allowed)",
        "line 2: missing field 'prompt'",
        "line 3: 'weight' must be a positive number",
    ]


def test_prompt_files_refuse_weights_on_only_some_lines():
    with pytest.raises(UploadInvalid, match="every line or on none"):
        parse_prompt_jsonl(jsonl({"prompt": "a", "weight": 1}, {"prompt": "b"}), max_bytes=LIMIT)


# ---------- inputs that used to get past validation ----------

HARDENING_LIMIT = 1 << 20  # room for the deeply nested file below


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
        parse_preference_pairs(data, filename="p.jsonl" if data[:1] in (b"{", b"[") else "p.csv", max_bytes=HARDENING_LIMIT)
    assert message in caught.value.errors[0]


def test_a_rubric_phrase_with_a_nul_character_is_refused():
    with pytest.raises(UploadInvalid, match="NUL"):
        validate_rubric(phrases=[{"phrase": "kind\x00words", "weight": 1}])
