"""`{% published_contract round as contract %}`: the round's pay-for-performance contract once staff published it."""

from __future__ import annotations

from django import template

from marketplace.deals.selectors import round_contract_of, round_contract_published

register = template.Library()


@register.simple_tag
def published_contract(round):
    return round_contract_published(round=round)


@register.simple_tag
def round_contract(round):
    """The round's contract whatever its status (staff pages)."""
    return round_contract_of(round=round)
