"""A group's sealed bid in a round: admins see and change the amount; members only see whether the group bid."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from marketplace.errors import AppError, NotFound
from marketplace.forms import add_app_error
from marketplace.forms.bids import BidForm, cents_to_amount
from marketplace.selectors.rounds import bid_of_group, round_group_for_member
from marketplace.services import bids as bid_services
from marketplace.services.rounds import round_is_accepting_bids


def _access(request, slug: str, group_slug: str):
    try:
        return round_group_for_member(user=request.user, round_slug=slug, group_slug=group_slug)
    except NotFound as exc:
        raise Http404(exc.message) from None


@login_required
def bid_edit(request, slug: str, group_slug: str):
    access = _access(request, slug, group_slug)
    round, group = access.round, access.group
    bid = bid_of_group(group=group, round=round)
    form = None
    if access.is_admin:
        initial = {"amount": cents_to_amount(bid.amount_cents)} if bid else None
        form = BidForm(request.POST or None, initial=initial)
        if request.method == "POST" and form.is_valid():
            try:
                placed = bid_services.bid_place(
                    user=request.user, group=group, round=round, amount_cents=form.cleaned_data["amount"]
                )
            except AppError as exc:
                add_app_error(form, exc)
            else:
                messages.success(request, f"Your group's bid is now {cents_to_amount(placed.amount_cents)} {placed.currency.upper()}.")
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
            "form": form,
            "accepting": round_is_accepting_bids(round=round),
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
