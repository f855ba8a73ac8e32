"""Validation shared by the advertising mechanisms: report vectors, ids, and the decoded JSON of the command line.

Every failure is a :class:`auctions.mechanism.MechanismError` whose message starts with the field at fault, in the
command line's own spelling (``ads[2].bid: must be a finite number >= 0, got -1.0``), so the library and the
command line tell a person the same thing. Indices count from 0.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any, TypeVar

import numpy as np

from auctions.mechanism import MechanismError
from auctions.schema import describe, json_field, json_list, json_number, json_object

T = TypeVar("T")


def readonly(arr: np.ndarray) -> np.ndarray:
    """Mark an array read-only (flags only, no copy): results and auctions are frozen all the way down."""
    arr.setflags(write=False)
    return arr


def vector(values: Any, *, owner: str, field: str, n: int | None = None) -> np.ndarray:
    """A fresh float64 copy of one number per ad, named ``owner[i].field`` in errors."""
    try:
        arr = np.array(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise MechanismError(f"{owner}[].{field}: expected one number per entry") from None
    if arr.ndim != 1:
        raise MechanismError(f"{owner}[].{field}: expected one number per entry, got shape {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise MechanismError(f"{owner}[].{field}: expected {n} numbers (one per entry), got {arr.shape[0]}")
    return arr


def check_range(arr: np.ndarray, *, owner: str, field: str, low: float = 0.0, high: float | None = None) -> None:
    """Every entry finite, >= low and (when given) <= high; the first offender is named."""
    for i, value in enumerate(arr):
        x = float(value)
        if not math.isfinite(x) or x < low or (high is not None and x > high):
            bound = f"in [{low:g}, {high:g}]" if high is not None else f">= {low:g}"
            raise MechanismError(f"{owner}[{i}].{field}: must be a finite number {bound}, got {x!r}")


def check_ids(ids: Sequence[Any], *, owner: str, n: int) -> tuple[str, ...]:
    """Non-empty, unique string ids, one per entry."""
    out = tuple(ids)
    if len(out) != n:
        raise MechanismError(f"{owner}: {len(out)} ids for {n} entries")
    seen: set[str] = set()
    for i, ident in enumerate(out):
        if not isinstance(ident, str) or not ident:
            raise MechanismError(f"{owner}[{i}].id: expected a non-empty string, got {describe(ident)}")
        if ident in seen:
            raise MechanismError(f"{owner}[{i}].id: {ident!r} appears twice (ids must be unique)")
        seen.add(ident)
    return out


def default_ids(prefix: str, n: int) -> tuple[str, ...]:
    return tuple(f"{prefix}{i}" for i in range(n))


def index_of(ids: Sequence[str], ident: str, *, owner: str) -> int:
    try:
        return list(ids).index(ident)
    except ValueError:
        raise MechanismError(f"{owner}: no entry with id {ident!r}") from None


def with_bid(auction: T, index: int, bid: float) -> T:
    """The same auction with entry ``index`` bidding ``bid`` (validated again: a sweep cannot build a bad one)."""
    current: Any = auction  # every ads auction is a frozen dataclass with a ``bids`` vector
    bids = np.array(current.bids, dtype=np.float64)
    bids[index] = bid
    return dataclasses.replace(auction, bids=bids)  # type: ignore[type-var]


def with_bids(auction: T, bids: np.ndarray) -> T:
    return dataclasses.replace(auction, bids=np.array(bids, dtype=np.float64))  # type: ignore[type-var]


# Decoded JSON: the readers shared with the fine-tuning schema (auctions.schema), plus integers for ads.


def json_integer(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise MechanismError(f"{where}: expected an integer, got {describe(value)}")
    return value


def json_string(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise MechanismError(f"{where}: expected a string, got {describe(value)}")
    return value


def json_entries(root: Any, name: str, fields: Sequence[str]) -> tuple[list[str], dict[str, list[float]]]:
    """The ``name`` list of ``{"id": str, <field>: number, ...}`` objects: ids and one number list per field.

    Only types are checked here; the mechanism's own constructor checks ranges and duplicate ids, so the
    library and the command line reject the same reports with the same message.
    """
    top = json_object(root, "input")
    entries = json_list(json_field(top, name, "input"), name)
    ids: list[str] = []
    columns: dict[str, list[float]] = {f: [] for f in fields}
    for i, raw in enumerate(entries):
        entry = json_object(raw, f"{name}[{i}]")
        ident = json_field(entry, "id", f"{name}[{i}]")
        if not isinstance(ident, str) or not ident:
            raise MechanismError(f"{name}[{i}].id: expected a non-empty string, got {describe(ident)}")
        ids.append(ident)
        for f in fields:
            columns[f].append(json_number(json_field(entry, f, f"{name}[{i}]"), f"{name}[{i}].{f}"))
    return ids, columns
