"""The page that mails a new confirmation link (linked from every refusal of an unconfirmed account)."""

from __future__ import annotations

from axes.helpers import get_client_ip_address
from django.conf import settings
from django.contrib import messages
from django.shortcuts import redirect, render

from marketplace.forms.verification import VerificationResendForm
from marketplace.verification.services import RESENT, email_is_verified, verification_resend


def verification_resend_page(request):
    """GET: the form (a signed-in account's own address filled in). POST: ``RESENT``, whatever the address, so the
    page tells nobody which addresses have accounts; the service rate-limits per address and per client."""
    signed_in = request.user.is_authenticated
    if signed_in and email_is_verified(user=request.user):
        messages.info(request, "Your e-mail address is already confirmed.")
        return redirect("dashboard")
    form = VerificationResendForm(request.POST or None, initial={"email": request.user.email} if signed_in else None)
    if request.method == "POST" and form.is_valid():
        verification_resend(email=form.cleaned_data["email"], client=get_client_ip_address(request) or "")
        minutes = max(1, settings.EMAIL_VERIFICATION_RESEND_INTERVAL_S // 60)
        messages.success(request, RESENT.format(minutes=minutes))
        return redirect("verification_resend")
    return render(request, "registration/verification_resend.html", {"form": form})
