"""A group's sealed bid in a round: admins see and change the amount; members only see whether the group bid."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from marketplace.billing import bids as bid_services
from marketplace.core.errors import AppError, PaymentRefused
from marketplace.forms import add_app_error
from marketplace.forms.bids import BidForm, cents_to_amount
from marketplace.rounds.selectors import bid_of_group, round_group_for_member


def _access(request, slug: str, group_slug: str):
    return round_group_for_member(user=request.user, round_slug=slug, group_slug=group_slug)


@login_required
def bid_edit(request, slug: str, group_slug: str):
    access = _access(request, slug, group_slug)
    round, group = access.round, access.group
    active = bid_of_group(group=group, round=round)
    # The template gets the bid row only where Round.bid_amount_visible allows its amount; others learn only has_bid.
    bid = active if active and round.bid_amount_visible(is_group_admin=access.is_admin) else None
    form = None
    card_problem = False
    if access.is_admin:
        initial = {"amount": cents_to_amount(bid.amount_cents, round.currency)} if bid else None
        form = BidForm(request.POST or None, initial=initial, currency=round.currency)
        if request.method == "POST" and form.is_valid():
            try:
                placed = bid_services.bid_place(
                    user=request.user, group=group, round=round, amount_cents=form.cleaned_data["amount"]
                )
            except AppError as exc:
                add_app_error(form, exc)
                # The page then links to the billing page: a missing or refused card is fixed there.
                card_problem = exc.code == "no_card" or isinstance(exc, PaymentRefused)
            else:
                messages.success(request, f"Your group's bid is now {cents_to_amount(placed.amount_cents, placed.currency)} {placed.currency.upper()}.")
                return redirect("bid_edit", slug=round.slug, group_slug=group.slug)
    elif request.method == "POST":
        raise PermissionDenied("Only the group's admins can bid.")
    return render(
        request,
        "bids/edit.html",
        {
            "round": round,
            "group": group,
            "access": access,
            "bid": bid,
            "has_bid": active is not None,
            "form": form,
            "accepting": round.window_open(),
            "card_problem": card_problem,
        },
        status=400 if form is not None and form.errors else 200,
    )


@login_required
@require_POST
def bid_withdraw(request, slug: str, group_slug: str):
    access = _access(request, slug, group_slug)
    if not access.is_admin:
        raise PermissionDenied("Only the group's admins can withdraw the bid.")
    try:
        bid_services.bid_withdraw(user=request.user, group=access.group, round=access.round)
    except AppError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "Your group's bid is withdrawn and the hold on the card released.")
    return redirect("bid_edit", slug=access.round.slug, group_slug=access.group.slug)
