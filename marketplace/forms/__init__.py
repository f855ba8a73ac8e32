"""Forms parse input only; the rules live in services. `add_app_error` puts a service's AppError beside its field."""

from __future__ import annotations

from django import forms

from marketplace.core.errors import AppError


def add_app_error(form: forms.Form, error: AppError) -> None:
    field = error.field if error.field in form.fields else None
    form.add_error(field, error.message)
