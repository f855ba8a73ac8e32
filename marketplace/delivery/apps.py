from __future__ import annotations

from django.apps import AppConfig


class DeliveryConfig(AppConfig):
    name = "marketplace.delivery"
    label = "delivery"
    verbose_name = "Delivery"
