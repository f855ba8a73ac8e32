from __future__ import annotations

from django.apps import AppConfig


class SponsoredConfig(AppConfig):
    name = "marketplace.sponsored"
    label = "sponsored"
    verbose_name = "Sponsored answers"
