"""Reading published models and their usage, always through the one access rule (FineTunedModel.objects.usable_by)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet

from marketplace.core.errors import NotAllowed, NotFound
from marketplace.delivery.models import EXACT_SUFFIX, FineTunedModel, ResaleListing, UsageDaily
from marketplace.groups.models import Membership, PreferenceGroup
from marketplace.rounds.models import Round
from marketplace.rounds.outcomes import AuctionOutcome, GroupOutcome
from marketplace.rounds.selectors import round_rows_for_member
from training.models import RewardModel, TrainingJob
from training.selectors import round_progress


def models_usable(*, user) -> QuerySet[FineTunedModel]:
    return FineTunedModel.objects.usable_by(user).select_related("round")


def model_get_usable(*, user, model_id: str) -> FineTunedModel:
    """The model if `user` may use it; a model they may not use is as missing as one that does not exist."""
    model = models_usable(user=user).filter(model_id=model_id).first()
    if model is None:
        raise NotFound(f"The model {model_id!r} does not exist or you do not have access to it.", code="model_not_found")
    return model


def model_is_owned(*, user, model: FineTunedModel) -> bool:
    return FineTunedModel.objects.owned_by(user).filter(pk=model.pk).exists()


def model_get_owned(*, user, model_id: str) -> FineTunedModel:
    """The model if `user`'s group paid for it (or staff): downloads and the playground. A resale buyer is told why
    (NotAllowed); anyone who may not use the model at all gets the same NotFound as for a missing one."""
    model = model_get_usable(user=user, model_id=model_id)
    if not model_is_owned(user=user, model=model):
        raise NotAllowed(
            "Resale buyers use this model through the API (/v1/); its downloads and playground are for the groups "
            "that bought it.",
            code="resale_api_only",
        )
    return model


@dataclass(frozen=True)
class RequestedModel:
    model: FineTunedModel
    exact: bool


def model_for_request(*, user, requested: str) -> RequestedModel:
    """``ft:<round>`` or ``ft:<round>:exact`` (exact delivery), checked against the access rule."""
    exact = requested.endswith(EXACT_SUFFIX)
    model_id = requested[: -len(EXACT_SUFFIX)] if exact else requested
    return RequestedModel(model=model_get_usable(user=user, model_id=model_id), exact=exact)


def model_groups(*, model: FineTunedModel) -> list[GroupOutcome]:
    """The round's participating groups with their promised, base and delivered rewards (no bids, no prices)."""
    return list(
        GroupOutcome.objects.filter(outcome__round_id=model.round_id).select_related("group").order_by("group__name")
    )


EXACT_KS = (4, 16, 64)


def _exact_by_k(rows: Any) -> dict[int, dict[str, float]]:
    """The evaluation's stored exact-delivery rows (``training.lib.evaluation``) as {K: {group slug: reward}}."""
    out: dict[int, dict[str, float]] = {}
    for row in rows if isinstance(rows, list) else []:
        try:
            out[int(row["k"])] = {str(g): float(v) for g, v in dict(row.get("reward") or {}).items()}
        except (AttributeError, KeyError, TypeError, ValueError):
            continue  # a row this reader does not understand is left out, never a 500
    return out


def _ess_by_k(rows: Any) -> dict[int, float]:
    out: dict[int, float] = {}
    for row in rows if isinstance(rows, list) else []:
        try:
            out[int(row["k"])] = float(row["ess"])
        except (AttributeError, KeyError, TypeError, ValueError):
            continue
    return out


def model_evaluation(*, model: FineTunedModel) -> dict[str, Any]:
    """Per group (normalised reward, 0-1 on the group's scale): on fresh answers to the round's prompts, base,
    promised, delivered (the adapter alone) and exact delivery at K = 4, 16, 64; on held-out prompts, base, the
    adapter and exact delivery. With the mean effective sample size per K and the adapter's KL to the base."""
    job = TrainingJob.objects.filter(round_id=model.round_id, status=TrainingJob.Status.SUCCEEDED).order_by("-pk").first()
    evaluation = getattr(job, "evaluation", None) if job is not None else None
    details = evaluation.details if evaluation is not None and isinstance(evaluation.details, dict) else {}
    exact = _exact_by_k(details.get("exact_round"))
    exact_heldout = _exact_by_k(details.get("exact_heldout"))
    stored_base = details.get("base_heldout_reward")
    base_heldout: dict[str, Any] = stored_base if isinstance(stored_base, dict) else {}
    heldout: dict[str, Any] = (
        evaluation.heldout if evaluation is not None and isinstance(evaluation.heldout, dict) else {}
    )
    groups = []
    for g in model_groups(model=model):
        slug = g.group.slug
        groups.append(
            {
                "group": slug,
                "name": g.group.name,
                "base": g.base_reward,
                "promised": g.expected_reward,
                "delivered": g.delivered_reward,
                "exact": {str(k): exact.get(k, {}).get(slug) for k in EXACT_KS},
                "heldout": {
                    "base": base_heldout.get(slug),
                    "delivered": heldout.get(slug),
                    "exact": {str(k): exact_heldout.get(k, {}).get(slug) for k in EXACT_KS},
                },
            }
        )
    return {
        "groups": groups,
        "exact_ks": list(EXACT_KS),
        "exact_draws": details.get("exact_draws") or None,
        "exact_ess": {str(k): v for k, v in sorted(_ess_by_k(details.get("exact_round")).items()) if k in EXACT_KS},
        "exact_ess_heldout": {
            str(k): v for k, v in sorted(_ess_by_k(details.get("exact_heldout")).items()) if k in EXACT_KS
        },
        "kl_estimate": evaluation.kl_estimate if evaluation is not None else None,
        "tv_before": evaluation.tv_before if evaluation is not None else None,
        "tv_after": evaluation.tv_after if evaluation is not None else None,
    }


def model_for_round(*, user, round_id: int) -> FineTunedModel | None:
    """The round's published model if ``user`` may use it (the one access rule), else None."""
    return models_usable(user=user).filter(round_id=round_id).first()


def usage_group_for(*, user, model: FineTunedModel, organization: str | None) -> PreferenceGroup | None:
    """Which group a request is metered to: the ``OpenAI-Organization`` slug if the user is a member of that bidding
    group, else the user's first bidding group by name; None for staff outside every bidding group."""
    bidders = PreferenceGroup.objects.filter(
        outcomes__outcome__round_id=model.round_id, memberships__user=user
    ).order_by("name", "pk")
    if organization:
        chosen = bidders.filter(slug=organization).first()
        if chosen is not None:
            return chosen
    return bidders.first()


def resale_listing_for(*, user, model: FineTunedModel, organization: str | None) -> ResaleListing | None:
    """The other half of whose usage a request is: a caller in none of the round's bidding groups (so
    ``usage_group_for`` gave None) who is not staff uses the model as a resale buyer, metered to a listing. The
    ``OpenAI-Organization`` slug picks the seller when it names a group listing the model; else the cheapest listing
    (then the group's name). None when nothing is listed or the caller is a bidder or staff."""
    if user.is_staff or is_member_of_bidder(user=user, model=model):
        return None
    listings = ResaleListing.objects.filter(model=model, listed=True).select_related("group")
    if organization:
        chosen = listings.filter(group__slug=organization).first()
        if chosen is not None:
            return chosen
    return listings.order_by("price_per_mtok_cents", "group__name", "pk").first()


def resale_listing_of(*, model: FineTunedModel, group: PreferenceGroup) -> ResaleListing | None:
    return ResaleListing.objects.filter(model=model, group=group).first()


def usage_for_group(*, group: PreferenceGroup, limit: int = 60) -> list[UsageDaily]:
    return list(UsageDaily.objects.filter(group=group).select_related("model").order_by("-day", "model__model_id")[:limit])


def exact_delivery_groups(*, model: FineTunedModel) -> list[dict[str, Any]]:
    """What the engine needs to resample toward pi*: per bidding group, its bid (currency units, as in the auction
    instance), its stored reward model and the normaliser the auction used."""
    instance = model.round.outcome.instance
    bids = {g["id"]: float(g["bid"]) for g in instance.get("groups", [])}
    rows = RewardModel.objects.filter(round_id=model.round_id).select_related("group")
    out: list[dict[str, Any]] = []
    for rm in rows:
        if rm.group.slug not in bids:
            continue
        out.append(
            {
                "bid": bids[rm.group.slug],
                "group": rm.group.slug,
                "reward_model": {**rm.params, "kind": rm.params.get("kind", rm.kind)},  # older rows may lack "kind"
                "normaliser": {"lo": rm.norm_min, "hi": rm.norm_max},
            }
        )
    out.sort(key=lambda g: str(g["group"]))
    return out


def is_member_of_bidder(*, user, model: FineTunedModel) -> bool:
    return Membership.objects.filter(user=user, group__outcomes__outcome__round_id=model.round_id).exists()


def round_results_for(*, user, round: Round) -> dict[str, Any]:
    """A round's results for someone who may see the round (the caller checked that): the public figures (the
    evaluation, the target's KL, the delivered model's id); per group rewards only for the caller's own groups (as the
    reward model pages), and the price only for their admins (as the receipt). Nobody's bid."""
    outcome = AuctionOutcome.objects.filter(round=round).first()
    model = FineTunedModel.objects.filter(round=round).first() if round.status == Round.Status.DELIVERED else None
    rows = round_rows_for_member(user=user, round=round)
    outcomes = {go.group_id: go for go in GroupOutcome.objects.filter(outcome__round=round, group__in=[r.group for r in rows])}
    groups = []
    for row in rows:
        go = outcomes.get(row.group.pk)
        entry: dict[str, Any] = {"group_slug": row.group.slug, "role": row.role, "in_outcome": go is not None}
        if go is not None:
            entry.update(promised_reward=go.expected_reward, delivered_reward=go.delivered_reward, base_reward=go.base_reward)
            if row.role == Membership.Role.ADMIN:
                entry.update(price_cents=go.payment_cents, currency=round.currency)
        groups.append(entry)
    return {
        "round": round.slug,
        "status": round.status,
        "evaluation": round_progress(round=round)["evaluation"],
        "target_kl_to_base": outcome.kl_to_base if outcome else None,
        "model_id": model.model_id if model else None,
        "my_groups": groups,
    }
