"""`{{ value|pretty_json }}`: a stored payload (a preferences version) as indented JSON, cut to a readable length."""

from __future__ import annotations

import json

from django import template

register = template.Library()

LIMIT = 6000


@register.filter
def pretty_json(value, limit: int = LIMIT) -> str:
    text = json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False, default=str)
    return text if len(text) <= limit else text[:limit] + "\n… (cut here; the whole version is stored)"
