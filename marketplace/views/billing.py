"""Billing pages: a group's card on file, a group's receipt for a round, and the staff billing overview of a round."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from marketplace.billing.selectors import group_billing_page, receipt_for
from marketplace.billing.services import billing_card_attach_from_setup, billing_setup_start
from marketplace.core.errors import AppError, NotFound
from marketplace.orchestration.reports import round_money_overview
from marketplace.rounds.selectors import round_get_for_staff


def _page(request, slug: str):
    return group_billing_page(user=request.user, slug=slug)


@login_required
def group_billing(request, slug: str):
    page = _page(request, slug)
    return render(request, "billing/group_billing.html", {"page": page, "group": page.group})


@login_required
@require_http_methods(["GET", "POST"])
def group_billing_setup(request, slug: str):
    """Start adding or replacing the card: a SetupIntent whose client secret the card form confirms with Stripe.js.

    GET does the same, so reloading the card page (or opening it from the address bar) shows a fresh form; an
    unconfirmed SetupIntent charges nothing and expires on Stripe's side."""
    page = _page(request, slug)
    if not page.is_admin:
        raise PermissionDenied("Only the group's admins can change its card.")
    try:
        setup = billing_setup_start(group=page.group, by=request.user)
    except AppError as exc:
        messages.error(request, exc.message)
        return redirect("group_billing", slug=page.group.slug)
    return render(
        request,
        "billing/card_form.html",
        {
            "page": page,
            "group": page.group,
            "client_secret": setup.client_secret,
            "publishable_key": settings.STRIPE_PUBLISHABLE_KEY,
            "stripe_js_url": settings.STRIPE_JS_URL,
            "test_mode": settings.STRIPE_PUBLISHABLE_KEY.startswith("pk_test_"),
        },
    )


@login_required
@require_POST
def group_billing_card(request, slug: str):
    """The browser confirmed the SetupIntent; save its card as the group's card on file."""
    page = _page(request, slug)
    if not page.is_admin:
        raise PermissionDenied("Only the group's admins can change its card.")
    try:
        customer = billing_card_attach_from_setup(
            group=page.group, by=request.user, setup_intent_id=request.POST.get("setup_intent_id", "")
        )
    except AppError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Card saved: {customer.card_brand.title()} ending in {customer.card_last4}.")
    return redirect("group_billing", slug=page.group.slug)


@login_required
def receipt(request, slug: str, group_slug: str):
    data = receipt_for(user=request.user, round_slug=slug, group_slug=group_slug)
    return render(request, "billing/receipt.html", {"receipt": data, "round": data.round, "group": data.group})


@login_required
def staff_round_billing(request, slug: str):
    if not request.user.is_staff:
        raise NotFound("Page not found.")
    round = round_get_for_staff(slug=slug)
    overview = round_money_overview(round=round)
    return render(
        request,
        "billing/staff_round_billing.html",
        {"overview": overview, "round": round, "rate_cents": settings.BILLING_GPU_COST_PER_HOUR_CENTS},
    )
