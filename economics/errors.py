"""The one error type of the economics package."""

from __future__ import annotations


class EconomicsError(ValueError):
    """Input a model cannot run on, or a problem with no solution; the message names the field or action at fault."""
