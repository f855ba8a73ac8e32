"""Training pages. Each view checks who may look, calls one selector or service, and renders."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.safestring import SafeString
from django.views.decorators.http import require_GET, require_POST

from marketplace.core.errors import AppError, NotFound
from marketplace.forms import add_app_error
from marketplace.models import Round
from marketplace.views.staff import staff_required
from marketplace.web.charts import Chart, Series, render_svg
from marketplace.web.errors import app_error_json, http_status
from training import selectors
from training.forms import LabelForm
from training.models import TrainingJob
from training.services import job_cancel
from training.services.labels import MIN_LABELS, SUGGESTED_LABELS, labels_add


def _visible_round(request, slug: str) -> Round:
    return selectors.round_get_visible(slug=slug, user=request.user)


@require_GET
def round_progress_json(request, slug: str):
    try:
        round = selectors.round_get_visible(slug=slug, user=request.user)
    except NotFound as exc:
        return app_error_json(exc)
    response = JsonResponse(selectors.round_progress(round=round))
    # Polled every few seconds: never let a cache answer with an old status.
    response["Cache-Control"] = "no-store"
    return response


# A job records its architecture-dependent settings when it is created (`base_model_type`); for a hub id that is only
# known once the worker loads the model, so until the job finishes the row holds placeholders (model_type None,
# fan_in_fan_out false) and the page says so instead of showing a value that
# would change between running and finished.
ARCHITECTURE_KEYS = ("model_type", "fan_in_fan_out")
NOT_YET = "from the base model's architecture; recorded when the job finishes"


def _hyperparameter_rows(hyperparameters: dict | None) -> list[tuple[str, object, bool]]:
    """(key, value, known) for the job page, `objective` first: the loss in words, then the rest alphabetically."""
    if not hyperparameters:
        return []
    pending = hyperparameters.get("model_type") is None
    keys = sorted(hyperparameters, key=lambda k: (k != "objective", k))
    rows = []
    for key in keys:
        value = hyperparameters[key]
        unknown = pending and (key in ARCHITECTURE_KEYS or (key == "target_modules" and not value))
        rows.append((key, NOT_YET if unknown else value, not unknown))
    return rows


def _metric_series(checkpoints, key: str) -> list[tuple[float, float]]:
    points = []
    for ckpt in checkpoints:
        value = (ckpt.metrics or {}).get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            points.append((float(ckpt.step), float(value)))
    return points


def _job_charts(page) -> dict[str, SafeString]:
    """The loss and fidelity curves over the checkpoints, as server-rendered SVG (the CSP allows no chart script)."""
    if page is None:
        return {}
    charts = {}
    loss = _metric_series(page.checkpoints, "loss")
    nll = _metric_series(page.checkpoints, "weighted_nll")
    if loss:
        series = [Series("training loss (mean since the previous checkpoint)", loss)]
        if nll:
            series.append(Series("target-weighted NLL per token, all candidates", nll))
        charts["loss"] = render_svg(Chart(title="Loss by step", x_label="step", y_label="loss", series=series))
    tv = _metric_series(page.checkpoints, "tv_to_target")
    if tv:
        if page.evaluation is not None:
            tv = [(0.0, float(page.evaluation.tv_before)), *tv]  # where the base model started
        charts["fidelity"] = render_svg(
            Chart(
                title="Distance to the auction's target by step",
                x_label="step",
                y_label="TV distance (0 = reached)",
                series=[Series("distance to target", tv)],
            )
        )
    return charts


def _job_context(request, round: Round) -> dict:
    page = selectors.job_page(round=round, for_staff=request.user.is_staff)
    last = page.checkpoints[-1] if page and page.checkpoints else None
    return {
        "round": round,
        "page": page,
        "charts": _job_charts(page),
        # The headline loss is the latest checkpoint's (the same number as the table and the chart), not one noisy step.
        "last_checkpoint": last,
        "hyperparameter_rows": _hyperparameter_rows(page.hyperparameters if page else None),
        "can_cancel": bool(
            page
            and request.user.is_staff
            and page.job.status in (TrainingJob.Status.VALIDATING_FILES, TrainingJob.Status.QUEUED, TrainingJob.Status.RUNNING)
        ),
    }


@require_GET
def round_job(request, slug: str):
    round = _visible_round(request, slug)
    return render(request, "training/job.html", _job_context(request, round))


@require_GET
def round_job_live(request, slug: str):
    """The job page's charts and event list as an HTML fragment: progress.js swaps them in when the poll shows a new
    checkpoint or event, so they move with the numbers above them."""
    try:
        round = _visible_round(request, slug)
    except NotFound as exc:
        return app_error_json(exc)
    response = render(request, "training/_job_live.html", _job_context(request, round))
    response["Cache-Control"] = "no-store"
    return response


@staff_required
@require_POST
def round_job_cancel(request, slug: str):
    round = _visible_round(request, slug)
    job = selectors.round_current_job(round=round)
    if job is None:
        messages.error(request, "This round has no training job to cancel.")
        return redirect("round_job", slug=round.slug)
    status = job_cancel(job=job)
    if status == TrainingJob.Status.CANCELLED:
        messages.success(request, "The job was cancelled before it started.")
    elif status == TrainingJob.Status.CANCELLING:
        messages.success(request, "The job will stop at its next step.")
    else:
        messages.info(request, f"The job is already {TrainingJob.Status(status).label.lower()}; nothing to cancel.")
    return redirect("round_job", slug=round.slug)


def _group_view(request, slug: str, group_slug: str, *, allow_staff: bool) -> selectors.GroupRoundView:
    return selectors.group_round_for_viewer(
        user=request.user, round_slug=slug, group_slug=group_slug, allow_staff=allow_staff
    )


@login_required
@require_GET
def group_reward_model(request, slug: str, group_slug: str):
    view = _group_view(request, slug, group_slug, allow_staff=True)
    page = selectors.reward_model_page(round=view.round, group=view.group)
    return render(
        request,
        "training/reward_model.html",
        {"round": view.round, "group": view.group, "membership": view.membership, "page": page},
    )


def _counter(raw) -> int:
    try:
        return max(0, min(int(raw), 1_000_000))
    except (TypeError, ValueError):
        return 0


@login_required
def group_label(request, slug: str, group_slug: str):
    view = _group_view(request, slug, group_slug, allow_staff=False)
    round, group = view.round, view.group
    counter = _counter(request.GET.get("n"))
    form = None
    status = 200
    if request.method == "POST":
        form = LabelForm(request.POST)
        if form.is_valid():
            counter = (form.cleaned_data.get("counter") or 0) + 1
            next_url = f"{reverse('group_label', kwargs={'slug': round.slug, 'group_slug': group.slug})}?n={counter}"
            if form.cleaned_data["choice"] == "skip":
                return redirect(next_url)
            chosen, rejected = form.chosen_rejected()
            try:
                submission = labels_add(
                    user=request.user,
                    group=group,
                    round=round,
                    prompt_index=form.cleaned_data["prompt_index"],
                    chosen_index=chosen,
                    rejected_index=rejected,
                )
            except AppError as exc:
                add_app_error(form, exc)
                messages.error(request, exc.message)
                status = http_status(exc)
            else:
                messages.success(
                    request, f"Saved. Your group has labelled {submission.row_count} pair{'s' if submission.row_count != 1 else ''}."
                )
                return redirect(next_url)
        else:
            status = 400
    open_for_labels = round.window_open()
    pair = (
        selectors.label_pair_next(user=request.user, group=group, round=round, counter=counter)
        if open_for_labels
        else None
    )
    return render(
        request,
        "training/label.html",
        {
            "round": round,
            "group": group,
            "pair": pair,
            "counter": counter,
            "form": form,
            "open_for_labels": open_for_labels,
            "has_candidates": selectors.round_has_candidates(round=round),
            "labelled": selectors.labels_count(group=group, round=round),
            "current": selectors.group_preferences_current(group=group, round=round),
            "min_labels": MIN_LABELS,
            "suggested_labels": SUGGESTED_LABELS,
        },
        status=status,
    )
