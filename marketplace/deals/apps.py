from __future__ import annotations

from django.apps import AppConfig


class DealsConfig(AppConfig):
    name = "marketplace.deals"
    label = "deals"
    verbose_name = "Deals"
    default_auto_field = "django.db.models.BigAutoField"
