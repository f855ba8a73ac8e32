"""The resend-confirmation form: one address, parsed only (the rules are in marketplace.verification.services)."""

from __future__ import annotations

from django import forms


class VerificationResendForm(forms.Form):
    email = forms.EmailField(
        label="E-mail", max_length=254, widget=forms.EmailInput(attrs={"autocomplete": "email", "autofocus": True})
    )
