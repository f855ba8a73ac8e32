"""Resale revenue and its split by the agreed revenue share, in integer minor units (docs/economics.md, "On the site").

The one rounding rule: a day's revenue at one price is ``floor(tokens x price_per_1M / 1,000,000)``, the tokens of
every outside buyer of that day and price added first; the platform's part is ``floor(revenue x delta)`` and the
group keeps the rest, so the two parts always add up to the revenue and only the platform's part is ever rounded.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal

TOKENS_PER_PRICE_UNIT = 1_000_000


def resale_revenue_cents(*, tokens: int, price_per_mtok_cents: int) -> int:
    """Tokens at a price per million tokens, rounded down to whole minor units."""
    return max(0, int(tokens)) * max(0, int(price_per_mtok_cents)) // TOKENS_PER_PRICE_UNIT


def platform_part_cents(*, revenue_cents: int, delta: float) -> int:
    """The platform's part, floor(revenue x delta), with delta taken at its decimal value (0.29 is 0.29, not the
    binary float just below it)."""
    if not 0.0 <= delta <= 1.0:
        raise ValueError(f"delta={delta} is outside [0, 1]")
    part = (Decimal(int(revenue_cents)) * Decimal(repr(float(delta)))).to_integral_value(rounding=ROUND_FLOOR)
    return int(part)


@dataclass(frozen=True)
class StatementDay:
    day: object  # datetime.date
    tokens: int
    requests: int
    revenue_cents: int
    platform_cents: int
    group_cents: int


def statement_days(rows: list[tuple[object, int, int, int]], *, delta: float) -> list[StatementDay]:
    """Per day, newest first, from (day, price per 1M tokens, tokens, requests) rows already summed over buyers."""
    by_day: dict[object, list[int]] = {}
    for day, price, tokens, requests in rows:
        acc = by_day.setdefault(day, [0, 0, 0])
        acc[0] += int(tokens)
        acc[1] += int(requests)
        acc[2] += resale_revenue_cents(tokens=tokens, price_per_mtok_cents=price)
    out = []
    for day in sorted(by_day, reverse=True):  # type: ignore[type-var]
        tokens, requests, revenue = by_day[day]
        platform = platform_part_cents(revenue_cents=revenue, delta=delta)
        out.append(StatementDay(day, tokens, requests, revenue, platform, revenue - platform))
    return out
