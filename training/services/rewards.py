from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction

from marketplace.core.errors import AppError
from marketplace.rounds.models import Bid, PreferenceSubmission, Round
from training.lib import rewards
from training.lib.rewards import AffineNormaliser
from training.models import RewardModel
from training.services.candidates import candidates_by_prompt

log = logging.getLogger(__name__)


def _pairs(payload: Any) -> list[tuple[str, str, str]]:
    rows = payload.get("pairs", []) if isinstance(payload, dict) else payload
    return [(str(r["prompt"]), str(r["chosen"]), str(r["rejected"])) for r in rows]


def _rubric(payload: dict[str, Any]) -> tuple[dict[str, float], int | None]:
    phrases = payload.get("phrases", {})
    if isinstance(phrases, list):
        phrases = {str(p["phrase"]): float(p["weight"]) for p in phrases}
    target = payload.get("target_length_words", payload.get("target_length"))
    return {str(k): float(v) for k, v in phrases.items()}, (int(target) if target else None)


def reward_model_build(*, kind: str, payload: Any, seed: int = 0, candidate_texts: dict[str, tuple[str, str]] | None = None) -> Any:
    """Turn a stored preference submission into a scorer with `.score(prompts, responses)` and `.to_dict()`.

    Direct scores name candidates as "<prompt index>:<candidate index>"; `candidate_texts` maps those keys to the
    (prompt, response) texts the scorer is keyed by.
    """

    if kind in (PreferenceSubmission.Kind.PAIRS, PreferenceSubmission.Kind.LABELS):
        pairs = _pairs(payload)
        if len(pairs) < 2:
            raise AppError("At least two preference pairs are needed to fit a reward model.", code="too_few_pairs")
        return rewards.fit_bradley_terry(pairs, seed=seed)
    if kind == PreferenceSubmission.Kind.RUBRIC:
        phrases, target = _rubric(payload)
        return rewards.RubricRewardModel(phrases=phrases, target_length=target)
    if kind == PreferenceSubmission.Kind.SCORES:
        texts = candidate_texts or {}
        scores = {}
        for key, value in payload.get("scores", {}).items():
            if str(key) not in texts:
                raise AppError(f"Score for unknown candidate {key!r}.", code="bad_preferences")
            scores[texts[str(key)]] = float(value)
        if not scores:
            raise AppError("No candidate was scored.", code="too_few_scores")
        return rewards.DirectScoresRewardModel(scores=scores)
    raise AppError(f"Unknown preference kind {kind!r}.", code="bad_preferences")


def reward_model_restore(*, reward_model: RewardModel) -> Any:

    return rewards.reward_model_from_dict(reward_model.params)


def counted_submission(*, round: Round, group) -> PreferenceSubmission | None:
    """The submission that counts: the group's last version saved strictly before the round's close.

    Versions are numbered under the round's lock (``rounds.preferences``), so the highest version before the close is
    the last one saved before it. Nothing saved at or after the close ever counts, whatever the order the versions
    were written in; a group with none before the close has no preferences in the round.
    """
    return (
        PreferenceSubmission.objects.filter(round=round, group=group, created_at__lt=round.closes_at)
        .order_by("-version")
        .first()
    )


def _tell_admins_left_out(*, round: Round, group, reason: str) -> None:
    emails = list(
        group.memberships.filter(role="admin").exclude(user__email="").values_list("user__email", flat=True)
    )
    if not emails:
        return
    send_mail(
        f"Your group is not in the auction of {round.title}",
        f"When bidding closed, {group.name} was left out of the auction because {reason}. The round goes ahead "
        "without your group; its card hold is released and nothing is charged.",
        settings.DEFAULT_FROM_EMAIL,
        emails,
        fail_silently=True,
    )


def reward_models_fit(*, round: Round) -> list[RewardModel]:
    """Fit each bidding group's reward model on its counted submission and score every candidate.

    The counted submission is the last one saved strictly before the close (``counted_submission``). A group that bid
    without one, or whose preferences cannot be used, is left out of the auction (not scored as indifferent: an
    indifferent report would change nothing and pay no price, but it would still be charged the participation fee),
    its hold is released when the round is billed, and its admins are told why by e-mail on the first fit of the
    round (a retried settle finds the fitted models and tells nobody twice).

    Scores are normalised per group with the auction's min-max helper (a fixed function of the report, so the
    auction stays truthful on the normalised scale). Direct scores are read by candidate key
    ("<prompt index>:<candidate index>"), so two candidates with the same text keep their own scores. Groups are
    fitted in slug order, and each text is embedded on its own, so no group's scores depend on another's or on the
    order anything was saved in. Idempotent per (round, group).
    """

    cands = candidates_by_prompt(round=round)
    prompts = [round.prompts[p] for p, row in enumerate(cands) for _ in row]
    texts = [c.text for row in cands for c in row]
    keys = [f"{c.prompt_index}:{c.index}" for row in cands for c in row]
    first_fit = not RewardModel.objects.filter(round=round).exists()
    fitted: list[RewardModel] = []
    bids = Bid.objects.filter(round=round, status=Bid.Status.ACTIVE).select_related("group").order_by("group__slug")
    for bid in bids:
        existing = RewardModel.objects.filter(round=round, group=bid.group).first()
        if existing is not None:
            fitted.append(existing)
            continue
        submission = counted_submission(round=round, group=bid.group)
        if submission is None:
            log.info("round %s: group %s left out, no preferences saved before the close", round.pk, bid.group_id)
            if first_fit:
                _tell_admins_left_out(round=round, group=bid.group, reason="it had saved no preferences before the close")
            continue
        try:
            model = reward_model_build(kind=submission.kind, payload=submission.payload, seed=round.seed,
                                       candidate_texts=dict(zip(keys, zip(prompts, texts, strict=True), strict=True)))
            raw = [float(x) for x in model.score(prompts, texts)]
            if submission.kind == PreferenceSubmission.Kind.SCORES:
                # The scorer is keyed by text (it also scores fresh samples after training); the candidates themselves
                # take the score given to their own key.
                given = {str(k): float(v) for k, v in submission.payload.get("scores", {}).items()}
                raw = [given.get(key, r) for key, r in zip(keys, raw, strict=True)]
        except (AppError, ValueError) as exc:
            # One group's unusable preferences must not sink the round for everyone: the group is left out of the
            # auction like a group without preferences, and its hold is released when the round is billed.
            message = exc.message if isinstance(exc, AppError) else str(exc)
            log.warning("round %s: group %s left out, its preferences cannot be used: %s", round.pk, bid.group_id, message)
            if first_fit:
                _tell_admins_left_out(round=round, group=bid.group, reason=f"its preferences could not be used ({message})")
            continue
        normaliser = AffineNormaliser.fit(raw)
        normalised = [float(x) for x in normaliser(raw)]
        raw_rows, norm_rows, i = [], [], 0
        for row in cands:
            raw_rows.append(raw[i : i + len(row)])
            norm_rows.append(normalised[i : i + len(row)])
            i += len(row)
        with transaction.atomic():
            rm, _ = RewardModel.objects.get_or_create(
                round=round,
                group=bid.group,
                defaults=dict(
                    submission=submission,
                    kind=submission.kind,
                    params=model.to_dict(),
                    accuracy=getattr(model, "accuracy", None),
                    raw_scores=raw_rows,
                    normalised_scores=norm_rows,
                    norm_min=float(normaliser.lo),
                    norm_max=float(normaliser.hi),
                ),
            )
        fitted.append(rm)
    return fitted
