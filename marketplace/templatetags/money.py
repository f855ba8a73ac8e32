"""Template filters for money and statuses: `{% load money %}` then `{{ cents|money:currency }}` and `{{ status|badge }}`."""

from __future__ import annotations

from django import template
from django.utils.html import format_html

register = template.Library()

_SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£", "jpy": "¥", "cad": "CA$", "aud": "A$", "chf": "CHF "}
# Currencies Stripe treats as having no minor unit: an amount in "cents" is already whole units.
_ZERO_DECIMAL = {"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf"}


def format_money(cents: int | None, currency: str = "usd") -> str:
    """Integer minor units to a readable amount: 123456, "usd" -> "$1,234.56". Never goes through a float."""
    if cents is None or cents == "":
        return "—"
    cents = int(cents)
    code = (currency or "usd").lower()
    sign = "-" if cents < 0 else ""
    cents = abs(cents)
    if code in _ZERO_DECIMAL:
        number = f"{cents:,}"
    else:
        number = f"{cents // 100:,}.{cents % 100:02d}"
    symbol = _SYMBOLS.get(code)
    if symbol:
        return f"{sign}{symbol}{number}"
    return f"{sign}{number} {code.upper()}"


@register.filter(name="money")
def money(cents, currency="usd"):
    try:
        return format_money(cents, currency)
    except (TypeError, ValueError):
        return "—"


@register.filter(name="badge")
def badge(status, label=None):
    """`{{ round.status|badge:round.get_status_display }}` -> <span class="badge badge-open">Open for bids</span>."""
    text = label or str(status).replace("_", " ").capitalize()
    return format_html('<span class="badge badge-{}">{}</span>', str(status), text)
