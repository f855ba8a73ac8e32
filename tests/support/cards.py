"""Stripe test card ids, each a different card (and fingerprint): one card backs one group's bid per round."""

from __future__ import annotations

import itertools

TEST_CARDS = (
    "pm_card_mastercard", "pm_card_visa_debit", "pm_card_mastercard_debit", "pm_card_discover",
    "pm_card_jcb", "pm_card_unionpay",
)
_cycle = itertools.cycle(TEST_CARDS)


def another_card() -> str:
    """A test card id other than pm_card_visa (the shared fixtures' card), cycling through Stripe's test cards."""
    return next(_cycle)
