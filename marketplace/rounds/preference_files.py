"""Parsing and validation of uploaded preference data and prompt sets. Pure: bytes and plain values in, plain data out.

Every check runs before anything is stored. Problems are collected row by row with line numbers, up to `MAX_ERRORS` of
them, and raised together as one `UploadInvalid` so a person can fix the whole file in one go.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO

from marketplace.core.errors import AppError

MAX_ERRORS = 20
PAIR_FIELDS = ("prompt", "chosen", "rejected")
BOM = b"\xef\xbb\xbf"
RUBRIC_MAX_PHRASES = 200
RUBRIC_MAX_ABS_WEIGHT = 1000.0
RUBRIC_MAX_TARGET_WORDS = 10_000


class UploadInvalid(AppError):
    """A file or rubric that failed validation; `errors` lists each problem, line-numbered where there is a line."""

    def __init__(self, errors: list[str], *, field: str | None = None, total: int | None = None) -> None:
        total = len(errors) if total is None else total
        shown = errors[:MAX_ERRORS]
        if total > len(shown):
            shown = [*shown, f"… and {total - len(shown)} more problems."]
        message = shown[0] if len(shown) == 1 else f"{total} problems found: " + "; ".join(shown)
        super().__init__(message, code="invalid_upload", field=field)
        self.errors = shown


class _Collector:
    """Keeps the first MAX_ERRORS messages and counts the rest."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.total = 0

    def add(self, message: str) -> None:
        self.total += 1
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(message)

    def raise_if_any(self, *, field: str | None = None) -> None:
        if self.total:
            raise UploadInvalid(self.errors, field=field, total=self.total)


# ---------- bytes in ----------


def read_limited(source: bytes | BinaryIO, *, max_bytes: int, field: str | None = "file") -> bytes:
    """The upload's bytes, refusing anything over `max_bytes` without reading more than max_bytes + 1 of it."""
    too_big = UploadInvalid([f"The file is larger than the limit of {_human_size(max_bytes)}."], field=field)
    if isinstance(source, bytes | bytearray):
        if len(source) > max_bytes:
            raise too_big
        return bytes(source)
    declared = getattr(source, "size", None)
    if isinstance(declared, int) and declared > max_bytes:
        raise too_big
    data = source.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise too_big
    return data


def decode_text(data: bytes, *, field: str | None = "file") -> str:
    """UTF-8 text with an optional byte-order mark removed; refuses other encodings, naming the first bad byte."""
    if data.startswith(BOM):
        data = data[len(BOM) :]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UploadInvalid(
            [f"The file is not UTF-8 text: byte {exc.start} (0x{data[exc.start]:02x}) cannot be decoded. Save it as UTF-8 and upload again."],
            field=field,
        ) from None
    if not text.strip():
        raise UploadInvalid(["The file is empty."], field=field)
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise UploadInvalid([f"line {line}: the file contains a NUL character; save it as plain UTF-8 text."], field=field)
    return text


def _human_size(n: int) -> str:
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):.1f} MB"
    if n >= 1024:
        return f"{n / 1024:.0f} KB"
    return f"{n} bytes"


_SURROGATE = re.compile("[\ud800-\udfff]")


def _has_surrogate(text: str) -> bool:
    """A lone UTF-16 surrogate (JSON's "\\ud800"): valid in a Python string, refused by PostgreSQL and by UTF-8."""
    return _SURROGATE.search(text) is not None


def finite_number(value: Any) -> float | None:
    """The value as a finite float, or None for anything else: booleans, strings, NaN, infinities, and integers
    too large for a float (JSON allows 1e309 written out as an integer; float() of it overflows)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


# ---------- preference pairs ----------


def detect_format(*, filename: str, text: str) -> str:
    """'jsonl' or 'csv', from the file's extension, else from its first character."""
    lower = filename.lower()
    if lower.endswith((".jsonl", ".json", ".ndjson")):
        return "jsonl"
    if lower.endswith(".csv"):
        return "csv"
    return "jsonl" if text.lstrip().startswith("{") else "csv"


def _check_pair(line: int, row: dict[str, Any], errors: _Collector) -> dict[str, str] | None:
    """Check one pair's values; the clean row, or None after recording why not."""
    ok = True
    for name in PAIR_FIELDS:
        value = row[name]
        if not isinstance(value, str):
            errors.add(f"line {line}: '{name}' must be a string, not {_type_name(value)}")
            ok = False
        elif not value.strip():
            errors.add(f"line {line}: '{name}' is empty")
            ok = False
        elif "\x00" in value:
            errors.add(f"line {line}: '{name}' contains a NUL character")
            ok = False
        elif _has_surrogate(value):
            errors.add(f"line {line}: '{name}' contains a lone surrogate (\\ud800-\\udfff), which is not text")
            ok = False
    if ok and row["chosen"] == row["rejected"]:
        errors.add(f"line {line}: 'chosen' and 'rejected' are identical")
        ok = False
    return {name: row[name] for name in PAIR_FIELDS} if ok else None


def _json_objects(text: str, errors: _Collector, *, expected: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank JSONL line that holds a JSON object; every other line is reported."""
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue  # blank lines (a trailing newline, a spacer) carry nothing
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            errors.add(f"line {line_no}: not valid JSON ({exc.msg} at column {exc.colno})")
            continue
        except RecursionError:
            errors.add(f"line {line_no}: the JSON is nested too deeply")
            continue
        except ValueError as exc:  # e.g. an integer over Python's 4,300-digit limit for int()
            errors.add(f"line {line_no}: not valid JSON here ({str(exc)[:120]})")
            continue
        if not isinstance(row, dict):
            errors.add(f"line {line_no}: expected a JSON object with {expected}, found {_type_name(row)}")
            continue
        yield line_no, row


def _pairs_from_jsonl(text: str, errors: _Collector) -> list[dict[str, str]]:
    pairs: list[dict[str, str]] = []
    for line_no, row in _json_objects(text, errors, expected="'prompt', 'chosen' and 'rejected'"):
        missing = [name for name in PAIR_FIELDS if name not in row]
        extra = [name for name in row if name not in PAIR_FIELDS]
        for name in missing:
            errors.add(f"line {line_no}: missing field '{name}'")
        for name in extra:
            errors.add(f"line {line_no}: unexpected field '{name}' (only prompt, chosen and rejected are allowed)")
        if missing or extra:
            continue
        pair = _check_pair(line_no, row, errors)
        if pair is not None:
            pairs.append(pair)
    return pairs


def _pairs_from_csv(text: str, errors: _Collector) -> list[dict[str, str]]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader)
    except csv.Error as exc:
        errors.add(f"line 1: cannot read the CSV header ({exc})")
        return []
    names = [h.strip() for h in header]
    header_ok = True
    seen: set[str] = set()
    for name in names:
        if name in seen:
            errors.add(f"line 1: column '{name}' appears twice")
            header_ok = False
        seen.add(name)
    for name in PAIR_FIELDS:
        if name not in seen:
            errors.add(f"line 1: missing column '{name}'")
            header_ok = False
    for name in names:
        if name not in PAIR_FIELDS:
            errors.add(f"line 1: unexpected column '{name or '(blank)'}' (the header must be prompt,chosen,rejected)")
            header_ok = False
    if not header_ok:
        return []

    pairs: list[dict[str, str]] = []
    start = reader.line_num + 1
    while True:
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            errors.add(f"line {start}: cannot read this row ({exc})")
            break  # the reader cannot resynchronise after a broken quote
        line_no, start = start, reader.line_num + 1
        if not values or all(not v.strip() for v in values):
            continue
        if len(values) != len(names):
            errors.add(f"line {line_no}: expected {len(names)} values, found {len(values)}")
            continue
        pair = _check_pair(line_no, dict(zip(names, values, strict=True)), errors)
        if pair is not None:
            pairs.append(pair)
    return pairs


def parse_preference_pairs(data: bytes, *, filename: str = "", max_bytes: int) -> dict[str, Any]:
    """Validate an upload of (prompt, chosen, rejected) pairs in TRL's JSONL format or as CSV with the same header.

    Returns the payload to store: {"format": "jsonl"|"csv", "pairs": [{"prompt", "chosen", "rejected"}, ...]}.
    Raises UploadInvalid listing every problem found (up to MAX_ERRORS).
    """
    data = read_limited(data, max_bytes=max_bytes)
    text = decode_text(data)
    fmt = detect_format(filename=filename, text=text)
    errors = _Collector()
    pairs = _pairs_from_jsonl(text, errors) if fmt == "jsonl" else _pairs_from_csv(text, errors)
    errors.raise_if_any(field="file")
    if not pairs:
        raise UploadInvalid(["The file has a header but no preference pairs."], field="file")
    return {"format": fmt, "pairs": pairs}


# ---------- rubric ----------


def parse_rubric_text(text: str) -> list[dict[str, Any]]:
    """Lines of "phrase, weight" (the last comma separates; phrases may contain commas) into [{"phrase", "weight"}]."""
    errors = _Collector()
    phrases: list[dict[str, Any]] = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        phrase, sep, weight_text = line.rpartition(",")
        if not sep:
            errors.add(f"line {line_no}: expected \"phrase, weight\" (for example \"step by step, 2\")")
            continue
        try:
            weight = float(weight_text.strip())
        except ValueError:
            errors.add(f"line {line_no}: weight '{weight_text.strip()}' is not a number")
            continue
        phrases.append({"phrase": phrase.strip(), "weight": weight, "line": line_no})
    errors.raise_if_any(field="phrases")
    return phrases


def validate_rubric(*, phrases: Iterable[Any], target_length_words: Any = None) -> dict[str, Any]:
    """Check a rubric's phrases (strings, non-zero finite weights, no duplicates) and its optional target length.

    Returns the payload to store: {"phrases": [{"phrase", "weight"}], "target_length_words": int | None}.
    """
    errors = _Collector()
    clean: list[dict[str, Any]] = []
    seen: set[str] = set()
    items = list(phrases) if isinstance(phrases, list | tuple) else None
    if items is None:
        raise UploadInvalid(["'phrases' must be a list of {\"phrase\": ..., \"weight\": ...} objects."], field="phrases")
    for index, item in enumerate(items, start=1):
        where = f"line {item['line']}" if isinstance(item, dict) and isinstance(item.get("line"), int) else f"phrase {index}"
        if not isinstance(item, dict) or set(item) - {"phrase", "weight", "line"}:
            errors.add(f"{where}: expected an object with 'phrase' and 'weight'")
            continue
        phrase, weight = item.get("phrase"), item.get("weight")
        if isinstance(phrase, str) and "\x00" in phrase:
            errors.add(f"{where}: the phrase contains a NUL character")
            continue
        if isinstance(phrase, str) and _has_surrogate(phrase):
            errors.add(f"{where}: the phrase contains a lone surrogate (\\ud800-\\udfff), which is not text")
            continue
        if not isinstance(phrase, str) or not phrase.strip():
            errors.add(f"{where}: the phrase is empty" if isinstance(phrase, str) else f"{where}: 'phrase' must be a string, not {_type_name(phrase)}")
            continue
        number = finite_number(weight)
        if number is None:
            errors.add(f"{where}: 'weight' must be a number, not {_type_name(weight)}")
            continue
        weight = number
        if weight == 0:
            errors.add(f"{where}: weight 0 has no effect; use a positive weight to reward the phrase or a negative one to penalise it")
            continue
        if abs(weight) > RUBRIC_MAX_ABS_WEIGHT:
            errors.add(f"{where}: weight {weight:g} is outside -{RUBRIC_MAX_ABS_WEIGHT:g}..{RUBRIC_MAX_ABS_WEIGHT:g}")
            continue
        key = phrase.strip().casefold()
        if key in seen:
            errors.add(f"{where}: '{phrase.strip()}' is listed twice")
            continue
        seen.add(key)
        clean.append({"phrase": phrase.strip(), "weight": float(weight)})
    if len(clean) > RUBRIC_MAX_PHRASES:
        errors.add(f"A rubric may list at most {RUBRIC_MAX_PHRASES} phrases; this one has {len(clean)}.")
    errors.raise_if_any(field="phrases")

    target: int | None = None
    if target_length_words not in (None, ""):
        if isinstance(target_length_words, bool) or not isinstance(target_length_words, int):
            raise UploadInvalid(["The target length must be a whole number of words."], field="target_length_words")
        if not 1 <= target_length_words <= RUBRIC_MAX_TARGET_WORDS:
            raise UploadInvalid(
                [f"The target length must be between 1 and {RUBRIC_MAX_TARGET_WORDS} words."], field="target_length_words"
            )
        target = target_length_words
    if not clean and target is None:
        raise UploadInvalid(["Give at least one phrase with a weight, or a target length."], field="phrases")
    return {"phrases": clean, "target_length_words": target}


# ---------- round prompt sets ----------


def parse_prompt_jsonl(data: bytes, *, max_bytes: int) -> tuple[list[str], list[float] | None]:
    """A prompt set uploaded as JSONL, one {"prompt": "...", "weight": optional positive number} per line.

    Returns (prompts, weights); weights is None when no line gives one, and then every line must omit it.
    """
    data = read_limited(data, max_bytes=max_bytes, field="prompts_file")
    text = decode_text(data, field="prompts_file")
    errors = _Collector()
    prompts: list[str] = []
    weights: list[float | None] = []
    for line_no, row in _json_objects(text, errors, expected="'prompt'"):
        extra = [k for k in row if k not in ("prompt", "weight")]
        for name in extra:
            errors.add(f"line {line_no}: unexpected field '{name}' (only prompt and weight are allowed)")
        if "prompt" not in row:
            errors.add(f"line {line_no}: missing field 'prompt'")
            continue
        prompt, weight = row["prompt"], row.get("weight")
        if not isinstance(prompt, str):
            errors.add(f"line {line_no}: 'prompt' must be a string, not {_type_name(prompt)}")
            continue
        if not prompt.strip():
            errors.add(f"line {line_no}: 'prompt' is empty")
            continue
        if _has_surrogate(prompt):
            errors.add(f"line {line_no}: 'prompt' contains a lone surrogate (\\ud800-\\udfff), which is not text")
            continue
        if weight is not None and ((finite_number(weight) or 0) <= 0):
            errors.add(f"line {line_no}: 'weight' must be a positive number")
            continue
        if extra:
            continue
        prompts.append(prompt)
        weights.append(None if weight is None else float(weight))
    given = [w for w in weights if w is not None]
    if given and len(given) != len(weights):
        errors.add("Give a weight on every line or on none (weights are relative, so a missing one is ambiguous).")
    errors.raise_if_any(field="prompts_file")
    if not prompts:
        raise UploadInvalid(["The file has no prompts."], field="prompts_file")
    return prompts, ([float(w) for w in given] if given else None)


# Direct scores on the round's candidates -------------------------------------------------------------------------

SCORES_MAX_ITEMS = 100_000
_SCORE_KEY = re.compile(r"^[0-9]{1,6}:[0-9]{1,6}$")


def validate_direct_scores(scores: Any) -> dict[str, Any]:
    """Check {"<prompt index>:<candidate index>": number}; returns {"scores": {...}} with floats."""
    if not isinstance(scores, dict) or not scores:
        raise UploadInvalid(["'scores' must be a non-empty object mapping \"<prompt>:<candidate>\" to a number."], field="scores")
    errors = _Collector()
    clean: dict[str, float] = {}
    for key, value in scores.items():
        if not isinstance(key, str) or not _SCORE_KEY.match(key):
            errors.add(f"candidate {key!r}: use \"<prompt index>:<candidate index>\", e.g. \"0:3\".")
            continue
        number = finite_number(value)
        if number is None:
            errors.add(f"candidate {key}: the score must be a finite number, not {_type_name(value)}.")
            continue
        clean[key] = number
    if len(scores) > SCORES_MAX_ITEMS:
        errors.add(f"At most {SCORES_MAX_ITEMS} scores; this has {len(scores)}.")
    errors.raise_if_any(field="scores")
    return {"scores": clean}


def parse_direct_scores_csv(data: bytes) -> dict[str, Any]:
    """CSV with the header prompt_index,candidate_index,score into the {"p:k": score} mapping, line-numbered errors."""
    text = decode_text(data)
    try:
        # strict: an unterminated quote is an error, not a field running to the end of the file. A field over the
        # csv module's limit (128 KiB) is an error too.
        rows = list(csv.reader(io.StringIO(text, newline=""), strict=True))
    except csv.Error as exc:
        raise UploadInvalid([f"The CSV cannot be read: {str(exc)[:200]}. Check the quotes and the row lengths."], field="file") from None
    if not rows:
        raise UploadInvalid(["The file is empty."], field="file")
    header = [h.strip() for h in rows[0]]
    if header[:3] != ["prompt_index", "candidate_index", "score"] or not set(header[3:]) <= {"prompt", "response"}:
        raise UploadInvalid(
            ["line 1: the header must be prompt_index,candidate_index,score (optionally followed by prompt,response)."],
            field="file",
        )
    errors = _Collector()
    scores: dict[str, Any] = {}
    for line, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != len(header):
            errors.add(f"line {line}: expected {len(header)} columns, found {len(row)}.")
            continue
        if not row[2].strip():
            continue  # a candidate left unscored
        key = f"{row[0].strip()}:{row[1].strip()}"
        try:
            if not _SCORE_KEY.match(key):
                raise ValueError(key)
            p, k, v = int(row[0]), int(row[1]), float(row[2])
        except ValueError:
            errors.add(f"line {line}: indices must be whole numbers (0-9) and the score a number.")
            continue
        if p < 0 or k < 0 or not math.isfinite(v):
            errors.add(f"line {line}: indices must be 0 or more and the score finite.")
            continue
        scores[f"{p}:{k}"] = v
    errors.raise_if_any(field="file")
    if not scores:
        raise UploadInvalid(["No candidate has a score; fill in the score column."], field="file")
    return scores
