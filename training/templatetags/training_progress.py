"""`{% load training_progress %}`: the round's public progress for the progress card, and a duration filter."""

from __future__ import annotations

import json

from django import template

from training.selectors import round_progress as _round_progress

register = template.Library()


@register.simple_tag
def round_progress(round):
    """`{% round_progress round as progress %}`: the same data progress.json serves, for the card's first render."""
    return _round_progress(round=round)


@register.filter
def duration(seconds) -> str:
    """Seconds to a short human duration: 0 -> "0 s", 200 -> "3 min 20 s", 7260 -> "2 h 1 min"."""
    if seconds is None or seconds == "":
        return "—"
    try:
        total = max(0, int(round(float(seconds))))
    except (TypeError, ValueError):
        return "—"
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"


@register.filter
def as_json(value) -> str:
    """Plain values as they are; lists and dicts (a LoRA config) as compact JSON instead of Python's repr."""
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, sort_keys=True, default=str)
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    return str(value)
