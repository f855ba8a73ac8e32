"""Template filters for money and statuses: `{% load money %}` then `{{ cents|money:currency }}` and `{{ status|badge }}`."""

from __future__ import annotations

from django import template
from django.utils.html import format_html

from marketplace.core.currency import format_money

register = template.Library()

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
