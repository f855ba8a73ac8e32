"""Reward preferences: each submission is a new, never-edited version; the last one before the round closes counts."""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Max

from marketplace.core.errors import AppError, Conflict, NotFound
from marketplace.groups.models import Membership, PreferenceGroup
from marketplace.rounds import preference_files
from marketplace.rounds.models import PreferenceSubmission, Round
from marketplace.rounds.services import round_lock_exclusive
from marketplace.verification.services import require_verified_email

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
            # Only a missing or null 'phrases' means "none"; 5, true or {} are refused by validate_rubric.
            phrases=[] if payload.get("phrases") is None else payload["phrases"],
            target_length_words=payload.get("target_length_words"),
        )
        return clean, len(clean["phrases"])
    if kind == Kind.SCORES:
        if not isinstance(payload, dict):
            data = preference_files.read_limited(payload, max_bytes=settings.PREFERENCE_UPLOAD_MAX_BYTES)
            payload = {"scores": preference_files.parse_direct_scores_csv(data)}
        clean = preference_files.validate_direct_scores(payload.get("scores"))
        return clean, len(clean["scores"])
    raise AppError(f"Preferences of kind '{kind}' cannot be submitted here; use pairs, rubric or scores.", field="kind")


@dataclass(frozen=True)
class Version:
    """What a new preferences version holds; built inside the round lock by the caller's function."""

    kind: str
    payload: dict[str, Any]
    row_count: int
    source_name: str = ""


def preference_version_store(
    *, user, group: PreferenceGroup, round: Round, build: Callable[[Round], Version], closed_message: str | None = None
) -> PreferenceSubmission:
    """Store a new version of the group's preferences for the round: the one place versions are numbered.

    Inside one transaction the round row is locked (FOR NO KEY UPDATE), which serialises version numbering with other
    submissions of any kind and with the close: a version either lands while the bidding window is open
    (Round.window_open, the one rule), or sees it closed and is refused. ``build`` runs under that lock and returns
    the version's contents (labels read the group's previous pairs there); it may raise AppError to refuse.
    """
    if not Membership.objects.filter(group=group, user=user).exists():
        raise NotFound("Group not found.")
    require_verified_email(user=user)
    with transaction.atomic():
        locked = round_lock_exclusive(round_id=round.pk, no_key=True)
        _check_accepting(locked, closed_message=closed_message)
        version = build(locked)
        last = PreferenceSubmission.objects.filter(round=locked, group=group).aggregate(v=Max("version"))["v"] or 0
        return PreferenceSubmission.objects.create(
            round=locked,
            group=group,
            version=last + 1,
            kind=version.kind,
            payload=version.payload,
            source_name=version.source_name[:255],
            row_count=version.row_count,
            submitted_by=user,
        )


def preferences_submit(
    *, user, group: PreferenceGroup, round: Round, kind: str, payload: Any, source_name: str = "",
    candidate_keys: Collection[str] | None = None,
) -> PreferenceSubmission:
    """Validate an upload (pairs, rubric or scores) and store it as the group's newest version.

    Everything is validated before the transaction starts, so a bad file stores nothing. Scores name candidates as
    "<prompt index>:<candidate index>"; the caller passes the round's ``candidate_keys`` (training owns the candidate
    set: see training.services.submissions, the entry point for pages and the API) and unknown ones are refused.
    """
    if not Membership.objects.filter(group=group, user=user).exists():
        raise NotFound()
    clean, row_count = preferences_validate(kind=kind, payload=payload, source_name=source_name)
    if kind == Kind.SCORES:
        if candidate_keys is None:
            raise ValueError("scores are checked against the round's candidate keys; pass candidate_keys")
        _check_scored_candidates_exist(keys=clean["scores"], known=candidate_keys)
    version = Version(kind=kind, payload=clean, row_count=row_count, source_name=source_name)
    return preference_version_store(user=user, group=group, round=round, build=lambda _locked: version)


def _check_scored_candidates_exist(*, keys: Collection[str], known: Collection[str]) -> None:
    unknown = sorted(set(keys) - set(known))
    if unknown:
        shown = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        raise preference_files.UploadInvalid(
            [f"No such candidate in this round: {shown}. Download the candidates and score those rows."], field="scores"
        )


def _check_accepting(round: Round, *, closed_message: str | None = None) -> None:
    if round.window_open():
        return
    if closed_message:
        raise Conflict(closed_message.format(title=round.title), code="round_not_open")
    if round.status == Round.Status.DRAFT or round.window_state() == "before":
        raise Conflict(f"“{round.title}” is not open yet; preferences can be submitted once it opens.", code="round_not_open")
    raise Conflict(
        f"“{round.title}” has closed; preferences can no longer be changed. The last version submitted before the close counts.",
        code="round_closed",
    )
