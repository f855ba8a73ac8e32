"""Staff pages for rounds: list, create, edit, lifecycle buttons, the bids once bidding is over, and the truthfulness
lab on a closed round's real auction."""

from __future__ import annotations

from functools import wraps

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from marketplace.core.errors import AppError, NotFound
from marketplace.forms.rounds import RoundForm
from marketplace.models import Round
from marketplace.orchestration import lifecycle
from marketplace.orchestration.truthfulness import FamilySweep, round_truthfulness_lab
from marketplace.rounds.editing import round_create, round_update
from marketplace.rounds.selectors import (
    round_bids_for_staff,
    round_get_for_staff,
    round_participating_group_count,
    rounds_for_staff,
)
from marketplace.web.charts import Chart, Marker, Series, render_svg

S = Round.Status


def staff_required(view):
    """Anonymous visitors go to the login page; signed-in non-staff get a 404, as if the page did not exist."""

    @login_required
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_staff:
            raise NotFound("Page not found.")
        return view(request, *args, **kwargs)

    return wrapper


def _round(slug: str) -> Round:
    return round_get_for_staff(slug=slug)


@staff_required
def staff_round_list(request):
    return render(request, "staff/round_list.html", {"rounds": rounds_for_staff()})


@staff_required
def staff_round_new(request):
    form = RoundForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        try:
            round = round_create(by=request.user, **form.service_fields())
        except AppError as exc:
            form.add_app_error(exc)
        else:
            messages.success(request, f"Round “{round.title}” created as a draft.")
            return redirect("staff_round_detail", slug=round.slug)
    return render(request, "staff/round_form.html", {"form": form, "round": None}, status=400 if form.errors else 200)


@staff_required
def staff_round_edit(request, slug: str):
    round = _round(slug)
    form = RoundForm(request.POST or None, request.FILES or None, round=round)
    if request.method == "POST" and form.is_valid():
        try:
            round = round_update(round=round, by=request.user, **form.service_fields())
        except AppError as exc:
            form.add_app_error(exc)
        else:
            messages.success(request, "Round saved.")
            return redirect("staff_round_detail", slug=round.slug)
    return render(request, "staff/round_form.html", {"form": form, "round": round}, status=400 if form.errors else 200)


@staff_required
def staff_round_detail(request, slug: str):
    round = _round(slug)
    return render(
        request,
        "staff/round_detail.html",
        {
            "round": round,
            "bids": round_bids_for_staff(round=round),
            "participating_groups": round_participating_group_count(round=round),
            "can_open": round.status == S.DRAFT,
            "can_close": round.status == S.OPEN,
            "can_cancel": round.can_cancel,
            "can_resume": round.status in (S.OPEN, S.CLOSED, S.TRAINING) or round.billing_pending,
        },
    )


_ACTIONS = {
    "open": (lifecycle.round_open_request, "Round opened; candidates are being sampled."),
    "close": (lifecycle.round_close_request, "Bidding closed; the auction will run next."),
    "cancel": (lifecycle.round_cancel_request, "Round cancelled; any card holds will be released."),
    "resume": (lifecycle.round_resume_request, "The step this round waits on was sent to the workers again."),
}


@staff_required
@require_POST
def staff_round_action(request, slug: str, action: str):
    if action not in _ACTIONS:
        raise NotFound("Page not found.")
    round = _round(slug)
    service, done = _ACTIONS[action]
    extra = {"reason": request.POST.get("reason", "")} if action == "cancel" else {}
    try:
        moved = service(round=round, by=request.user, **extra)
    except AppError as exc:
        messages.error(request, exc.message)
    else:
        if moved:
            messages.success(request, done)
        else:
            messages.info(request, f"Nothing changed: the round is {round.get_status_display().lower()} and this step does not apply now.")
    return redirect("staff_round_detail", slug=round.slug)


def _lab_chart(s: FamilySweep, currency: str):
    """Utility against the report, with the truthful report and the best misreport marked."""
    points = list(zip(s.parameters, s.utility_with, strict=True))
    markers = [Marker(s.truthful_parameter, f"truthful {s.symbol} = {s.truthful_parameter:g}", dashed=False)]
    if s.best_parameter != s.truthful_parameter:
        markers.append(Marker(s.best_parameter, f"best report {s.symbol} = {s.best_parameter:g}"))
    return render_svg(
        Chart(
            title=s.title,
            x_label=f"{s.symbol} (truthful = {s.truthful_parameter:g})",
            y_label=f"{currency.upper()}",
            series=[
                Series("utility with payments", points),
                Series("utility without payments (= value)", list(zip(s.parameters, s.value, strict=True))),
                Series("payment", list(zip(s.parameters, s.payment, strict=True))),
            ],
            markers=markers,
        )
    )


@staff_required
def staff_round_lab(request, slug: str):
    round = _round(slug)
    lab = round_truthfulness_lab(round=round, group_slug=request.GET.get("group") or None)
    groups = [{"lab": g, "sweeps": [(s, _lab_chart(s, lab.currency)) for s in g.sweeps]} for g in lab.groups]
    return render(request, "staff/round_lab.html", {"round": round, "lab": lab, "groups": groups})
