"""Pure economic models of the fine-tuning market (numpy and scipy only, no Django).

* :mod:`economics.bargaining`: how a generalist and specialists split fine-tuning revenue (Laufer, Kleinberg,
  Heidari 2024).
* :mod:`economics.contracts`: pay-for-performance contracts that make a provider use the model it was paid for
  (Saig, Einav, Talgam-Cohen 2024).
* :mod:`economics.pricing`: per-prompt pricing of a first mover against a latecomer (Mahmood 2024).

``python -m economics`` runs them from JSON files; the models and their formulas are in ``docs/economics.md``.
"""

from __future__ import annotations

from economics.errors import EconomicsError

__all__ = ["EconomicsError"]
