"""Public round pages. Bids never appear here; how many groups took part appears only after the close."""

from __future__ import annotations

from django.shortcuts import render

from marketplace.billing.selectors import billing_mode_for_round
from marketplace.rounds.selectors import (
    round_get_public,
    round_participating_group_count,
    round_rows_for_member,
    rounds_public,
)


def round_list(request):
    return render(request, "rounds/list.html", {"rounds": rounds_public()})


def round_detail(request, slug: str):
    round = round_get_public(slug=slug, user=request.user)
    return render(
        request,
        "rounds/detail.html",
        {
            "round": round,
            "participating_groups": round_participating_group_count(round=round),
            "my_rows": round_rows_for_member(user=request.user, round=round),
            "prompts": round.prompts or [],
            "billing_mode": billing_mode_for_round(round=round),
        },
    )
