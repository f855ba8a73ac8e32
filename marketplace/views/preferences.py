"""A group's reward preferences for a round: upload pairs or write a rubric; every submission is a new version."""

from __future__ import annotations

import csv

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render

from marketplace.core.errors import AppError
from marketplace.forms.preferences import PairsUploadForm, RubricForm, ScoresUploadForm
from marketplace.models import PreferenceSubmission
from marketplace.rounds.preference_files import UploadInvalid
from marketplace.rounds.selectors import (
    preference_versions,
    preferences_current,
    round_group_for_member,
)
from marketplace.web.spreadsheet import spreadsheet_row
from training.models import Candidate
from training.services.submissions import preferences_submit

UNITS = {"pairs": "preference pairs", "rubric": "rubric phrases", "scores": "scored candidates"}
PREVIEW_ROWS = 5


def _pairs_outside_round(payload, prompts) -> int:
    """How many stored pairs have a prompt that is not one of the round's (still used to fit the reward model, which
    scores text, but they say nothing about this round's candidates directly)."""
    known = {str(p).strip() for p in prompts or []}
    return sum(1 for pair in (payload or {}).get("pairs", []) if str(pair.get("prompt", "")).strip() not in known)


def _preview(submission, prompts) -> dict | None:
    """The first rows of the version that counts, as the page's preview table: what was parsed, not the raw file."""
    if submission is None:
        return None
    payload = submission.payload or {}
    if submission.kind == PreferenceSubmission.Kind.PAIRS:
        pairs = payload.get("pairs", [])
        head = ["Prompt", "Chosen", "Rejected"]
        rows = [[p.get("prompt", ""), p.get("chosen", ""), p.get("rejected", "")] for p in pairs[:PREVIEW_ROWS]]
        total = len(pairs)
    elif submission.kind == PreferenceSubmission.Kind.RUBRIC:
        phrases = payload.get("phrases", [])
        head = ["Phrase", "Weight"]
        rows = [[p.get("phrase", ""), p.get("weight", "")] for p in phrases[:PREVIEW_ROWS]]
        total = len(phrases)
    else:
        scores = sorted((payload.get("scores") or {}).items())
        head = ["Prompt", "Candidate", "Score"]
        rows = []
        for key, score in scores[:PREVIEW_ROWS]:
            prompt, _, candidate = str(key).partition(":")
            rows.append([prompt, candidate, score])
        total = len(scores)
    return {"head": head, "rows": rows, "total": total, "more": max(0, total - len(rows))}


def _refused(request, exc: AppError, access):
    # Refusals that are not about the input (the round closed meanwhile): say why on the page, which now shows the state.
    messages.error(request, exc.message)
    return redirect("preferences_edit", slug=access.round.slug, group_slug=access.group.slug)


def _submit_file(request, form, *, kind: str, access):
    """Submit an uploaded file of preferences; (submission, problems listed for the page). Refusals that are not
    about the file itself (the round closed meanwhile) surface as an AppError for the caller's redirect."""
    if not form.is_valid():
        return None, []
    upload = form.cleaned_data["file"]
    try:
        submission = preferences_submit(
            user=request.user, group=access.group, round=access.round, kind=kind, payload=upload, source_name=upload.name
        )
    except UploadInvalid as exc:
        form.add_error("file", "The file was not saved; fix the problems listed and upload it again.")
        return None, exc.errors
    return submission, []


@login_required
def preferences_edit(request, slug: str, group_slug: str):
    access = round_group_for_member(user=request.user, round_slug=slug, group_slug=group_slug)
    round, group = access.round, access.group
    pairs_form, rubric_form, scores_form = PairsUploadForm(), RubricForm(), ScoresUploadForm()
    upload_errors: list[str] = []

    if request.method == "POST":
        kind = request.POST.get("kind")
        submission = None
        if kind == PreferenceSubmission.Kind.PAIRS:
            pairs_form = PairsUploadForm(request.POST, request.FILES)
            try:
                submission, upload_errors = _submit_file(request, pairs_form, kind=kind, access=access)
            except AppError as exc:
                return _refused(request, exc, access)
        elif kind == PreferenceSubmission.Kind.RUBRIC:
            rubric_form = RubricForm(request.POST)
            if rubric_form.is_valid():
                try:
                    submission = preferences_submit(
                        user=request.user, group=group, round=round, kind=kind, payload=rubric_form.payload()
                    )
                except UploadInvalid as exc:
                    for message in exc.errors:
                        rubric_form.add_error(exc.field if exc.field in rubric_form.fields else None, message)
                except AppError as exc:
                    return _refused(request, exc, access)
        elif kind == PreferenceSubmission.Kind.SCORES:
            scores_form = ScoresUploadForm(request.POST, request.FILES)
            try:
                submission, upload_errors = _submit_file(request, scores_form, kind=kind, access=access)
            except AppError as exc:
                return _refused(request, exc, access)
        else:
            messages.error(request, "Choose what to submit: a file of pairs, a rubric or scores.")
        if submission is not None:
            messages.success(
                request, f"Saved as version {submission.version} ({submission.row_count} {UNITS.get(submission.kind, 'rows')})."
            )
            outside = _pairs_outside_round(submission.payload, round.prompts) if submission.kind == kind == "pairs" else 0
            if outside:
                messages.warning(
                    request,
                    f"{outside} of {submission.row_count} pairs have a prompt that is not one of this round's prompts. "
                    "They were kept and still teach your reward model what your group prefers, but pairs on the round's "
                    "own prompts (listed on the round page) say more about its candidates.",
                )
            return redirect("preferences_edit", slug=round.slug, group_slug=group.slug)

    current = preferences_current(group=group, round=round)
    if request.method != "POST" and current is not None and current.kind == PreferenceSubmission.Kind.RUBRIC:
        # The rubric box starts from the version that counts, so editing it means changing it, not retyping it.
        rubric_form = RubricForm(initial=RubricForm.initial_from(current.payload))
    return render(
        request,
        "preferences/edit.html",
        {
            "round": round,
            "group": group,
            "access": access,
            "accepting": round.window_open(),
            "current": current,
            "versions": preference_versions(group=group, round=round),
            "pairs_form": pairs_form,
            "rubric_form": rubric_form,
            "scores_form": scores_form,
            "upload_errors": upload_errors,
            "has_candidates": Candidate.objects.filter(round=round).exists(),
            "preview": _preview(current, round.prompts),
            "outside_round": _pairs_outside_round(current.payload, round.prompts)
            if current is not None and current.kind == PreferenceSubmission.Kind.PAIRS
            else 0,
        },
        status=400 if (upload_errors or pairs_form.errors or rubric_form.errors or scores_form.errors) else 200,
    )


@login_required
def candidates_csv(request, slug: str, group_slug: str):
    """The round's candidates as a CSV to score offline (group members only; the candidates carry no bids)."""
    access = round_group_for_member(user=request.user, round_slug=slug, group_slug=group_slug)
    round = access.round
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{round.slug}-candidates.csv"'
    writer = csv.writer(response)
    writer.writerow(["prompt_index", "candidate_index", "score", "prompt", "response"])
    for cand in Candidate.objects.filter(round=round).order_by("prompt_index", "index"):
        # Model output and prompts are text we did not write: never a formula in the scorer's spreadsheet.
        writer.writerow(spreadsheet_row([cand.prompt_index, cand.index, "", round.prompts[cand.prompt_index], cand.text]))
    return response
