from __future__ import annotations

from django.apps import AppConfig


class VerificationConfig(AppConfig):
    name = "marketplace.verification"
    label = "verification"
    verbose_name = "E-mail verification"
    default_auto_field = "django.db.models.BigAutoField"
