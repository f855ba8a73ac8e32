"""Feeding a closed round to the mechanism (auctions/, pure) and storing its outcome once.

It reads training's candidates and reward models and the rounds' bids, so it lives in the orchestration layer.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from django.db import IntegrityError, transaction

from auctions.guarantee import delivery_guarantee
from auctions.mechanism import payments_to_cents, reference_points, solve
from auctions.schema import instance_from_json, result_to_json
from marketplace.core import currency
from marketplace.core.errors import AppError
from marketplace.deals.selectors import round_contract_terms
from marketplace.deals.settlement import contract_settle
from marketplace.rounds.models import Bid, Round
from marketplace.rounds.outcomes import AuctionOutcome, GroupOutcome
from training.models import Candidate, RewardModel


def canonical_hash(instance: dict[str, Any]) -> str:
    """SHA-256 of the instance in canonical JSON (sorted keys, no spaces): the outcome's proof of its inputs."""
    blob = json.dumps(instance, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def auction_instance_for_round(*, round: Round) -> tuple[dict[str, Any], list[Any]]:
    """Build the schema-v1 instance from the round's stored candidates, reward models and active bids.

    Returns the instance and the bids (in the instance's group order). Bids are in currency units per unit of
    normalised reward (major units of the round's currency, by its ISO 4217 exponent), the unit the mechanism's
    payments come back in.
    """
    bids = list(
        Bid.objects.filter(round=round, status=Bid.Status.ACTIVE).select_related("group").order_by("group__slug")
    )
    reward_models = {rm.group_id: rm for rm in RewardModel.objects.filter(round=round)}
    bids = [bid for bid in bids if bid.group_id in reward_models]
    if not bids:
        raise AppError("No group has both an active bid and a fitted reward model.", code="no_participants")

    candidates = list(Candidate.objects.filter(round=round).order_by("prompt_index", "index"))
    per_prompt: dict[int, list[Candidate]] = {}
    for cand in candidates:
        per_prompt.setdefault(cand.prompt_index, []).append(cand)
    weights = round.prompt_weights or [1.0] * len(round.prompts)
    prompts = []
    for p_index in range(len(round.prompts)):
        cands = per_prompt.get(p_index, [])
        if not cands:
            raise AppError(f"Prompt {p_index} has no candidates; sample them before closing.", code="no_candidates")
        rewards = {
            bid.group.slug: [float(x) for x in reward_models[bid.group_id].normalised_scores[p_index]] for bid in bids
        }
        prompts.append(
            {
                "weight": float(weights[p_index]),
                "base_logweights": [float(c.base_logweight) for c in cands],
                "rewards": rewards,
            }
        )
    instance = {
        "kl_weight": float(round.kl_weight),
        "groups": [{"id": bid.group.slug, "bid": currency.to_major(bid.amount_cents, round.currency)} for bid in bids],
        "prompts": prompts,
    }
    return instance, bids


def auction_run(*, round: Round) -> AuctionOutcome:
    """Run the mechanism on a closed round and store the outcome, once.

    Idempotent: a second call (a redelivered task) returns the stored outcome. The outcome row and its per-group
    rows are written in one transaction, so a crash leaves either all of it or nothing.
    """
    existing = AuctionOutcome.objects.filter(round=round).first()
    if existing is not None:
        return existing
    instance_json, bids = auction_instance_for_round(round=round)
    instance = instance_from_json(instance_json)
    outcome = solve(instance)
    result = result_to_json(instance, outcome)
    # Bids (and so payments) are in major units in the instance; billing works in minor units, rounded down to an
    # amount Stripe can charge.
    scale = 10 ** currency.exponent(round.currency)
    cents = [
        currency.charge_floor(c, round.currency)
        for c in payments_to_cents([p * scale for p in outcome.payment], [bid.amount_cents for bid in bids])
    ]
    refs = reference_points(instance)
    try:
        with transaction.atomic():
            record = AuctionOutcome.objects.create(
                round=round,
                inputs_hash=canonical_hash(instance_json),
                instance=instance_json,
                result=result,
                welfare=float(outcome.welfare),
                kl_to_base=float(outcome.kl_to_base),
                revenue_cents=sum(cents),
            )
            GroupOutcome.objects.bulk_create(
                GroupOutcome(
                    outcome=record,
                    group=bid.group,
                    bid_cents=bid.amount_cents,
                    expected_reward=float(outcome.expected_reward[i]),
                    promised_value=float(outcome.value[i]),
                    payment=float(outcome.payment[i]),
                    payment_cents=cents[i],
                    utility=float(outcome.utility[i]),
                    candidate_base_reward=float(refs.base[i]),
                    without_reward=float(refs.without[i]),
                    fee_cents=round.participation_fee_cents,
                )
                for i, bid in enumerate(bids)
            )
    except IntegrityError:
        return AuctionOutcome.objects.get(round=round)
    return record


def auction_delivery_settle(*, round: Round, log_q_theta: list[list[float]]) -> AuctionOutcome:
    """Fix what each group is charged for the delivered model: min(auction price, bid x max(0, D - C)).

    D is measured on the round's fixed candidates with the adapter's implied reweighting (``log_q_theta``, from the
    job's evaluation) on the auction's own normalised scores, C is the reward under the model trained without the
    group; neither depends on anything reported after the close. When training reproduces q* the charge is exactly
    the auction's price (docs/auction.md proves it). With a published contract the charge is then
    min(that, the contract's payment for the outcome bin D falls in) (``deals.settlement``; docs/economics.md).
    Idempotent: a group whose charge is set keeps it.
    """
    outcome = AuctionOutcome.objects.get(round=round)
    instance = instance_from_json(outcome.instance)
    guarantee = delivery_guarantee(instance, solve(instance), log_q_theta)
    by_slug = {g["id"]: i for i, g in enumerate(outcome.instance["groups"])}
    terms = round_contract_terms(round=round)
    with transaction.atomic():
        for go in GroupOutcome.objects.select_for_update().filter(outcome=outcome, charge_cents__isnull=True).select_related("group"):
            i = by_slug[go.group.slug]
            bound_cents = currency.charge_floor(
                min(go.bid_cents, currency.major_to_minor_floor(float(guarantee.bound[i]), round.currency)), round.currency
            )
            charge = min(go.payment_cents, bound_cents)
            GroupOutcome.objects.filter(pk=go.pk).update(
                delivered_reward_candidates=float(guarantee.delivered[i]),
                guarantee_cents=bound_cents,
                # A published pay-for-performance contract can only lower the charge (deals.settlement).
                **contract_settle(
                    terms=terms, charge_cents=charge, delivered=float(guarantee.delivered[i]), currency_code=round.currency,
                    charge_basis="auction_price" if charge == go.payment_cents else "delivery_guarantee",
                ),
            )
    return outcome
