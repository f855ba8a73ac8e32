"""The entry point for a group's uploaded preferences (pairs, rubric, direct scores), for pages and the API.

Direct scores name the round's candidates, which belong to training; this layer supplies their keys to the rounds
domain's versioned store, so marketplace.rounds never reads training's tables.
"""

from __future__ import annotations

from typing import Any

from marketplace.groups.models import PreferenceGroup
from marketplace.rounds import preferences
from marketplace.rounds.models import PreferenceSubmission, Round
from training.models import Candidate


def candidate_keys(*, round: Round) -> frozenset[str]:
    """Every candidate of the round as "<prompt index>:<candidate index>", the key direct scores use."""
    return frozenset(f"{p}:{k}" for p, k in Candidate.objects.filter(round=round).values_list("prompt_index", "index"))


def preferences_submit(
    *, user, group: PreferenceGroup, round: Round, kind: str, payload: Any, source_name: str = ""
) -> PreferenceSubmission:
    """Validate and store a new version of the group's preferences (see marketplace.rounds.preferences)."""
    keys = candidate_keys(round=round) if kind == PreferenceSubmission.Kind.SCORES else None
    return preferences.preferences_submit(
        user=user, group=group, round=round, kind=kind, payload=payload, source_name=source_name, candidate_keys=keys
    )
