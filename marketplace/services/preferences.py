"""Reward preferences: each submission is a new, never-edited version; the last one before the round closes counts."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from marketplace import preference_files
from marketplace.errors import AppError, NotFound
from marketplace.models import Membership, PreferenceGroup, PreferenceSubmission, Round

Kind = PreferenceSubmission.Kind
SUBMITTABLE_KINDS = (Kind.PAIRS, Kind.RUBRIC, Kind.SCORES)
MIN_PAIRS = 2


def preferences_validate(*, kind: str, payload: Any, source_name: str = "") -> tuple[dict[str, Any], int]:
    """The payload to store and its row count, or UploadInvalid naming every problem. Touches no database.

    `payload` is the raw upload (bytes or a file) for pairs, {"phrases": [...], "target_length_words": n} for a rubric,
    and {"scores": {"<prompt index>:<candidate index>": number}} (or a CSV upload with the columns
    prompt_index,candidate_index,score) for direct scores on the round's candidates.
    """
    if kind == Kind.PAIRS:
        data = preference_files.read_limited(payload, max_bytes=settings.PREFERENCE_UPLOAD_MAX_BYTES)
        clean = preference_files.parse_preference_pairs(
            data, filename=source_name, max_bytes=settings.PREFERENCE_UPLOAD_MAX_BYTES
        )
        if len(clean["pairs"]) < MIN_PAIRS:
            raise preference_files.UploadInvalid(
                [f"The file has {len(clean['pairs'])} pair; at least {MIN_PAIRS} are needed to fit a reward model."],
                field="file",
            )
        return clean, len(clean["pairs"])
    if kind == Kind.RUBRIC:
        if not isinstance(payload, dict):
            raise AppError("A rubric is an object with 'phrases' and optionally 'target_length_words'.", field="phrases")
        unknown = set(payload) - {"phrases", "target_length_words"}
        if unknown:
            raise AppError(f"Unexpected field '{sorted(unknown)[0]}' in the rubric.", field=sorted(unknown)[0])
        clean = preference_files.validate_rubric(
            phrases=payload.get("phrases") or [], target_length_words=payload.get("target_length_words")
        )
        return clean, len(clean["phrases"])
    if kind == Kind.SCORES:
        if not isinstance(payload, dict):
            data = preference_files.read_limited(payload, max_bytes=settings.PREFERENCE_UPLOAD_MAX_BYTES)
            payload = {"scores": preference_files.parse_direct_scores_csv(data)}
        clean = preference_files.validate_direct_scores(payload.get("scores"))
        return clean, len(clean["scores"])
    raise AppError(f"Preferences of kind '{kind}' cannot be submitted here; use pairs, rubric or scores.", field="kind")


def preferences_submit(
    *, user, group: PreferenceGroup, round: Round, kind: str, payload: Any, source_name: str = ""
) -> PreferenceSubmission:
    """Store a new version of the group's preferences for the round.

    Everything is validated before the transaction starts, so a bad file stores nothing. Inside it the round row is
    locked (FOR NO KEY UPDATE), which serialises version numbering with other submissions and with the close: a
    submission either lands while the round is open, or sees it closed and is refused.
    """
    if not Membership.objects.filter(group=group, user=user).exists():
        raise NotFound()
    clean, row_count = preferences_validate(kind=kind, payload=payload, source_name=source_name)
    if kind == Kind.SCORES:
        _check_scored_candidates_exist(round=round, keys=clean["scores"])
    with transaction.atomic():
        locked = Round.objects.select_for_update(no_key=True).get(pk=round.pk)
        _check_accepting(locked)
        last = PreferenceSubmission.objects.filter(round=locked, group=group).aggregate(v=Max("version"))["v"] or 0
        return PreferenceSubmission.objects.create(
            round=locked,
            group=group,
            version=last + 1,
            kind=kind,
            payload=clean,
            source_name=source_name[:255],
            row_count=row_count,
            submitted_by=user,
        )


def _check_scored_candidates_exist(*, round: Round, keys) -> None:
    from training.models import Candidate

    known = {f"{p}:{k}" for p, k in Candidate.objects.filter(round=round).values_list("prompt_index", "index")}
    unknown = sorted(set(keys) - known)
    if unknown:
        shown = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        raise preference_files.UploadInvalid(
            [f"No such candidate in this round: {shown}. Download the candidates and score those rows."], field="scores"
        )


def _check_accepting(round: Round) -> None:
    if round.status == Round.Status.DRAFT:
        raise AppError(f"“{round.title}” is not open yet; preferences can be submitted once it opens.", code="round_not_open", status=409)
    if round.status != Round.Status.OPEN or timezone.now() >= round.closes_at:
        raise AppError(
            f"“{round.title}” has closed; preferences can no longer be changed. The last version submitted before the close counts.",
            code="round_closed",
            status=409,
        )
