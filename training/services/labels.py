"""Pairwise labels made in the browser: every answer stores a new, immutable version of the group's preferences.

A labels version holds every pair the group has labelled so far, so the newest version is complete on its own and,
like any other submission, becomes the group's current preferences (it replaces an uploaded file or a rubric).
"""

from __future__ import annotations

from typing import Any

from marketplace.core.errors import AppError, Conflict
from marketplace.groups.models import PreferenceGroup
from marketplace.rounds.models import PreferenceSubmission, Round
from marketplace.rounds.preferences import Version, preference_version_store
from training.models import Candidate

# The reward model needs two pairs to fit at all; a few dozen make it say something useful.
MIN_LABELS = 2
SUGGESTED_LABELS = 20
SOURCE_NAME = "Labelled in the browser"
CLOSED_MESSAGE = "“{title}” is not open for preferences; labels can only be added while bidding is open."


def labels_pairs(*, group: PreferenceGroup, round: Round) -> list[dict[str, Any]]:
    """Every pair the group has labelled in the round: those of its newest labels version (each holds them all)."""
    latest = (
        PreferenceSubmission.objects.filter(round=round, group=group, kind=PreferenceSubmission.Kind.LABELS)
        .order_by("-version")
        .only("payload")
        .first()
    )
    if latest is None or not isinstance(latest.payload, dict):
        return []
    return list(latest.payload.get("pairs") or [])


def labelled_keys(pairs: list[dict[str, Any]]) -> set[tuple[int, int, int]]:
    """Unordered identity of each labelled pair: (prompt index, lower candidate index, higher candidate index)."""
    keys = set()
    for pair in pairs:
        try:
            p, a, b = int(pair["prompt_index"]), int(pair["chosen_index"]), int(pair["rejected_index"])
        except (KeyError, TypeError, ValueError):
            continue
        keys.add((p, min(a, b), max(a, b)))
    return keys


def labels_add(
    *, user, group: PreferenceGroup, round: Round, prompt_index: int, chosen_index: int, rejected_index: int
) -> PreferenceSubmission:
    """Append one labelled pair to the group's labels and store the result as a new submission version.

    The pair is appended under the round lock of preference_version_store (the one place versions are numbered), so
    two members labelling at once both land (one after the other, neither losing the other's pair) and nothing lands
    after the close.
    """

    def build(locked: Round) -> Version:
        # Checked here, after membership (preference_version_store checks it first): an outsider learns nothing.
        for name, value in (("prompt_index", prompt_index), ("chosen_index", chosen_index), ("rejected_index", rejected_index)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise AppError("Choose one of the two responses shown.", code="bad_index", field=name)
        if chosen_index == rejected_index:
            raise AppError("A response cannot be compared with itself.", code="bad_index", field="rejected_index")
        if prompt_index >= len(locked.prompts or []):
            raise AppError("That prompt is not part of this round.", code="bad_index", field="prompt_index")
        texts = dict(
            Candidate.objects.filter(round=locked, prompt_index=prompt_index, index__in=[chosen_index, rejected_index])
            .values_list("index", "text")
        )
        if chosen_index not in texts or rejected_index not in texts:
            raise AppError("That response is not one of this prompt's candidates.", code="bad_index", field="chosen_index")
        pairs = labels_pairs(group=group, round=locked)
        key = (prompt_index, min(chosen_index, rejected_index), max(chosen_index, rejected_index))
        if key in labelled_keys(pairs):
            raise Conflict("Your group has already labelled this pair; here is another one.", code="already_labelled")
        pairs.append(
            {
                "prompt": locked.prompts[prompt_index],
                "chosen": texts[chosen_index],
                "rejected": texts[rejected_index],
                # Indices let the page avoid showing a pair twice; the reward model reads only the three texts.
                "prompt_index": prompt_index,
                "chosen_index": chosen_index,
                "rejected_index": rejected_index,
                "labelled_by": user.pk,
            }
        )
        return Version(kind=PreferenceSubmission.Kind.LABELS, payload={"pairs": pairs}, row_count=len(pairs),
                       source_name=SOURCE_NAME)

    return preference_version_store(user=user, group=group, round=round, build=build, closed_message=CLOSED_MESSAGE)
