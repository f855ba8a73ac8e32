"""The endpoints. Each parses input, calls the same selector or service as the pages, and returns a schema."""

from __future__ import annotations

import json

from django.conf import settings
from django.http import HttpResponse
from ninja import Router

from marketplace.api.schemas import (
    BidIn,
    BidOut,
    ErrorOut,
    GroupOut,
    MyGroupInRound,
    PreferencesOut,
    PreferenceSubmissionOut,
    RoundDetailOut,
    RoundOut,
)
from marketplace.billing.bids import bid_place, bid_withdraw
from marketplace.billing.selectors import receipt_for
from marketplace.core.errors import AppError, NotAllowed, UnsupportedMedia
from marketplace.delivery.selectors import round_results_for
from marketplace.groups.selectors import user_groups
from marketplace.models import PreferenceSubmission, Round
from marketplace.rounds.preference_files import (
    RUBRIC_MAX_ABS_WEIGHT,
    RUBRIC_MAX_PHRASES,
    RUBRIC_MAX_TARGET_WORDS,
    SCORES_MAX_ITEMS,
)
from marketplace.rounds.selectors import (
    bid_of_group,
    preference_versions,
    preferences_current,
    round_get_public,
    round_group_for_member,
    round_participating_group_count,
    round_rows_for_member,
    rounds_public_listed,
)
from training.selectors import group_round_for_viewer, job_page, reward_model_page, round_progress
from training.services.submissions import preferences_submit

router = Router()
ERRORS = {400: ErrorOut, 401: ErrorOut, 403: ErrorOut, 404: ErrorOut, 409: ErrorOut}



def _round_out(round: Round) -> dict:
    return {
        "slug": round.slug,
        "title": round.title,
        "description": round.description,
        "status": round.status,
        "base_model": round.base_model,
        "kl_weight": round.kl_weight,
        "candidates_per_prompt": round.candidates_per_prompt,
        "currency": round.currency,
        "opens_at": round.opens_at,
        "closes_at": round.closes_at,
        "prompt_count": len(round.prompts or []),
        "participating_groups": round_participating_group_count(round=round),
    }


def _submission_out(submission: PreferenceSubmission) -> dict:
    return {
        "version": submission.version,
        "kind": submission.kind,
        "row_count": submission.row_count,
        "source_name": submission.source_name,
        "submitted_by": submission.submitted_by.email,
        "created_at": submission.created_at,
    }


@router.get("/rounds", response={200: list[RoundOut], **ERRORS}, tags=["rounds"], summary="List rounds past draft")
def list_rounds(request):
    return [_round_out(r) for r in rounds_public_listed()]


@router.get("/rounds/{slug}", response={200: RoundDetailOut, **ERRORS}, tags=["rounds"], summary="One round, with your groups in it")
def get_round(request, slug: str):
    round = round_get_public(slug=slug, user=request.auth)
    rows = round_rows_for_member(user=request.auth, round=round)
    return {
        **_round_out(round),
        "prompts": round.prompts or [],
        "my_groups": [
            MyGroupInRound(
                group_slug=row.group.slug,
                group_name=row.group.name,
                role=row.role,
                has_bid=row.has_bid,
                preferences_version=row.submission.version if row.submission else None,
            )
            for row in rows
        ],
    }


@router.get(
    "/rounds/{slug}/progress",
    response={200: dict, **ERRORS},
    tags=["rounds"],
    summary="Where the round is: its stage, the training job's progress, checkpoints and latest events, the evaluation",
)
def get_round_progress(request, slug: str):
    """The same JSON the round and job pages poll, with the same rule: whoever may see the round sees its progress."""
    return round_progress(round=round_get_public(slug=slug, user=request.auth))


@router.get("/groups", response={200: list[GroupOut], **ERRORS}, tags=["groups"], summary="Your groups and your role in each")
def list_my_groups(request):
    return [{"slug": g.slug, "name": g.name, "role": g.my_role} for g in user_groups(user=request.auth)]


# The limits the preference validators enforce (marketplace.rounds.preference_files), stated in the schema. A text
# field holds at least one non-space character and no NUL; rules no JSON Schema can state (a score's key must name one
# of the round's candidates, a phrase may appear once) are in the descriptions.
TEXT_PATTERN = r"^[^\x00]*[^\s\x00\x1c-\x1f\x85][^\x00]*$"  # one character Python's str.strip() keeps
SCORE_KEY_PATTERN = r"^[0-9]{1,6}:[0-9]{1,6}$"
PREFERENCES_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "maxLength": settings.PREFERENCE_UPLOAD_MAX_BYTES,
                            "description": (
                                "Preference pairs: JSONL (prompt, chosen, rejected per line) or CSV with that header; "
                                "or, with kind=scores, a CSV prompt_index,candidate_index,score."
                            ),
                        },
                        "kind": {"type": "string", "enum": ["pairs", "scores"], "default": "pairs"},
                    },
                }
            },
            "application/json": {
                "schema": {
                    "oneOf": [
                        {
                            "type": "object",
                            "title": "Rubric",
                            "description": "Phrases are compared without case and surrounding spaces: each at most once.",
                            "required": ["kind", "phrases"],
                            "additionalProperties": False,
                            "properties": {
                                "kind": {"const": "rubric"},
                                "phrases": {
                                    "type": "array",
                                    "maxItems": RUBRIC_MAX_PHRASES,
                                    "items": {
                                        "type": "object",
                                        "required": ["phrase", "weight"],
                                        "additionalProperties": False,
                                        "properties": {
                                            "phrase": {"type": "string", "pattern": TEXT_PATTERN},
                                            "weight": {
                                                "type": "number", "minimum": -RUBRIC_MAX_ABS_WEIGHT,
                                                "maximum": RUBRIC_MAX_ABS_WEIGHT, "not": {"const": 0},
                                            },
                                        },
                                    },
                                },
                                "target_length_words": {
                                    "type": "integer", "minimum": 1, "maximum": RUBRIC_MAX_TARGET_WORDS,
                                },
                            },
                        },
                        {
                            "type": "object",
                            "title": "Pairs",
                            "description": "'chosen' and 'rejected' differ in each pair.",
                            "required": ["kind", "pairs"],
                            "additionalProperties": False,
                            "properties": {
                                "kind": {"const": "pairs"},
                                "pairs": {
                                    "type": "array",
                                    "minItems": 1,
                                    "items": {
                                        "type": "object",
                                        "required": ["prompt", "chosen", "rejected"],
                                        "additionalProperties": False,
                                        "properties": {
                                            "prompt": {"type": "string", "pattern": TEXT_PATTERN},
                                            "chosen": {"type": "string", "pattern": TEXT_PATTERN},
                                            "rejected": {"type": "string", "pattern": TEXT_PATTERN},
                                        },
                                    },
                                },
                            },
                        },
                        {
                            "type": "object",
                            "title": "Scores",
                            "description": "Direct scores on the round's candidates, keyed \"<prompt index>:<candidate index>\".",
                            "required": ["kind", "scores"],
                            "additionalProperties": False,
                            "properties": {
                                "kind": {"const": "scores"},
                                "scores": {
                                    "type": "object",
                                    "minProperties": 1,
                                    "maxProperties": SCORES_MAX_ITEMS,
                                    "propertyNames": {"pattern": SCORE_KEY_PATTERN},
                                    "additionalProperties": {"type": "number"},
                                },
                            },
                        },
                    ]
                }
            },
        },
    }
}


def _parse_preferences_request(request) -> tuple[str, object, str]:
    """(kind, payload, source_name) from a multipart upload or a JSON body; the service validates the content."""
    if request.content_type == "multipart/form-data":
        upload = request.FILES.get("file")
        if upload is None:
            raise AppError("Attach the file as the multipart field 'file'.", field="file")
        kind = request.POST.get("kind") or PreferenceSubmission.Kind.PAIRS
        if kind not in (PreferenceSubmission.Kind.PAIRS, PreferenceSubmission.Kind.SCORES):
            raise AppError("A file upload's 'kind' is 'pairs' (the default) or 'scores'.", field="kind")
        return kind, upload, upload.name
    if request.content_type != "application/json":
        raise UnsupportedMedia("Send multipart/form-data with a 'file', or an application/json body.", code="unsupported_media_type")
    try:
        body = json.loads(request.body or b"")
    except (ValueError, RecursionError):  # JSONDecodeError, UnicodeDecodeError, an integer over 4,300 digits
        raise AppError("The body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise AppError("The body must be a JSON object with 'kind'.")
    kind = body.get("kind")
    if kind == PreferenceSubmission.Kind.RUBRIC:
        return kind, {k: v for k, v in body.items() if k != "kind"}, ""
    if kind == PreferenceSubmission.Kind.PAIRS:
        pairs = body.get("pairs")
        extra = set(body) - {"kind", "pairs"}
        if extra:
            raise AppError(f"Unexpected field '{sorted(extra)[0]}'.", field=sorted(extra)[0])
        if not isinstance(pairs, list):
            raise AppError("'pairs' must be a list of {prompt, chosen, rejected} objects.", field="pairs")
        # The same line-by-line validation as an uploaded file: one JSONL line per pair.
        # ASCII escapes keep a lone surrogate encodable; the line parser then refuses it like one in a file.
        data = "\n".join(json.dumps(p) for p in pairs).encode()
        return kind, data, "api.jsonl"
    if kind == PreferenceSubmission.Kind.SCORES:
        extra = set(body) - {"kind", "scores"}
        if extra:
            raise AppError(f"Unexpected field '{sorted(extra)[0]}'.", field=sorted(extra)[0])
        return kind, {"scores": body.get("scores")}, ""
    raise AppError("'kind' must be 'rubric', 'pairs' or 'scores' (or upload a file as multipart).", field="kind")


@router.post(
    "/rounds/{slug}/groups/{group_slug}/preferences",
    response={201: PreferenceSubmissionOut, **ERRORS, 415: ErrorOut},
    tags=["preferences"],
    summary="Submit a new version of your group's preferences",
    openapi_extra=PREFERENCES_BODY,
)
def submit_preferences(request, slug: str, group_slug: str):
    access = round_group_for_member(user=request.auth, round_slug=slug, group_slug=group_slug)
    kind, payload, source_name = _parse_preferences_request(request)
    submission = preferences_submit(
        user=request.auth, group=access.group, round=access.round, kind=kind, payload=payload, source_name=source_name
    )
    return 201, _submission_out(submission)


@router.get(
    "/rounds/{slug}/groups/{group_slug}/preferences",
    response={200: PreferencesOut, **ERRORS},
    tags=["preferences"],
    summary="The version of your group's preferences that counts",
)
def get_preferences(request, slug: str, group_slug: str):
    access = round_group_for_member(user=request.auth, round_slug=slug, group_slug=group_slug)
    current = preferences_current(group=access.group, round=access.round)
    return {
        "current": _submission_out(current) if current else None,
        "version_count": preference_versions(group=access.group, round=access.round).count(),
    }


def _bid_out(access) -> dict:
    bid = bid_of_group(group=access.group, round=access.round)
    if bid is None:
        return {"has_bid": False}
    if not access.round.bid_amount_visible(is_group_admin=access.is_admin):
        return {"has_bid": True}
    return {"has_bid": True, "amount_cents": bid.amount_cents, "currency": bid.currency}


@router.get(
    "/rounds/{slug}/groups/{group_slug}/bid",
    response={200: BidOut, **ERRORS},
    tags=["bids"],
    summary="Whether your group bid; the amount for admins only",
    exclude_none=True,
)
def get_bid(request, slug: str, group_slug: str):
    return _bid_out(round_group_for_member(user=request.auth, round_slug=slug, group_slug=group_slug))


@router.put(
    "/rounds/{slug}/groups/{group_slug}/bid",
    response={200: BidOut, **ERRORS, 422: ErrorOut},
    tags=["bids"],
    summary="Place or change your group's bid (admins); holds the card for the amount",
    exclude_none=True,
)
def put_bid(request, slug: str, group_slug: str, payload: BidIn):
    access = round_group_for_member(user=request.auth, round_slug=slug, group_slug=group_slug)
    if not access.is_admin:
        raise NotAllowed("Only the group's admins can bid.")
    # 1 <= amount_cents <= MAX_BID_CENTS is BidIn's (and the schema's); the round's own limits are bid_place's.
    try:
        bid_place(user=request.auth, group=access.group, round=access.round, amount_cents=payload.amount_cents)
    except AppError as exc:
        if exc.field == "amount":  # the page's field name; here the body's
            exc.field = "amount_cents"
        raise
    return _bid_out(access)


@router.delete(
    "/rounds/{slug}/groups/{group_slug}/bid",
    response={204: None, **ERRORS},
    tags=["bids"],
    summary="Withdraw your group's bid (admins); releases the hold",
)
def delete_bid(request, slug: str, group_slug: str):
    access = round_group_for_member(user=request.auth, round_slug=slug, group_slug=group_slug)
    if not access.is_admin:
        raise NotAllowed("Only the group's admins can withdraw the bid.")
    bid_withdraw(user=request.auth, group=access.group, round=access.round)
    return HttpResponse(status=204)


# ---------- results: the job, the round's outcome, a group's receipt and reward model (the pages' rules) ----------


def _iso(value) -> str | None:
    return value.isoformat() if value else None


@router.get(
    "/rounds/{slug}/job",
    response={200: dict, **ERRORS},
    tags=["rounds"],
    summary="The training job: its progress, checkpoints' metrics, hyperparameters and every event",
)
def get_round_job(request, slug: str):
    """What the job page shows, to whoever may see the round (staff also get the bid-derived settings and raw errors)."""
    round = round_get_public(slug=slug, user=request.auth)
    page = job_page(round=round, for_staff=request.auth.is_staff)
    if page is None:
        return {"round": round.slug, "job": None, "events": []}
    job = page.job
    return {
        "round": round.slug,
        "job": {
            "status": job.status,
            "method": job.method,
            "steps_done": job.steps_done,
            "total_steps": job.total_steps,
            "tokens_seen": job.tokens_seen,
            "attempt": job.attempt,
            "started_at": _iso(job.started_at),
            "finished_at": _iso(job.finished_at),
            "error_message": job.error_message if request.auth.is_staff else page.public_error,
            "hyperparameters": page.hyperparameters or {},
            "checkpoints": [{"step": c.step, "metrics": c.metrics or {}, "is_best": c.is_best} for c in page.checkpoints],
        },
        "events": [{"type": e.type, "message": e.message, "created_at": _iso(e.created_at)} for e in page.events],
    }


@router.get(
    "/rounds/{slug}/results",
    response={200: dict, **ERRORS},
    tags=["rounds"],
    summary="The round's results: the evaluation, the delivered model, and your groups' promised and delivered rewards",
)
def get_round_results(request, slug: str):
    return round_results_for(user=request.auth, round=round_get_public(slug=slug, user=request.auth))


@router.get(
    "/rounds/{slug}/groups/{group_slug}/receipt",
    response={200: dict, **ERRORS},
    tags=["billing"],
    summary="Your group's receipt for a round: the price and the payment (amounts beyond the price for admins only)",
)
def get_receipt(request, slug: str, group_slug: str):
    r = receipt_for(user=request.auth, round_slug=slug, group_slug=group_slug)
    o, p = r.outcome, r.payment
    body: dict = {"number": r.number, "round": r.round.slug, "currency": r.currency, "delivered": r.delivered,
                  "price_cents": r.price_cents, "payment": None}
    if o is not None:
        body.update(charge_cents=o.charge_cents, fee_cents=o.fee_cents,
                    promised_reward=o.expected_reward, delivered_reward=o.delivered_reward)
        # The pay-for-performance contract's outcome and payment, where a published one was applied at delivery.
        body["contract"] = None if o.contract_outcome is None else {
            "outcome": o.contract_outcome, "label": r.contract_outcome_label, "payment_cents": o.contract_payment_cents}
    if p is not None:
        body["payment"] = {"status": p.status, "charged_cents": r.charged_cents}
        if r.is_admin:
            body["payment"].update(held_cents=p.amount_held_cents, released_cents=r.released_cents, card=r.card or None)
    if r.is_admin and o is not None:
        # The basis with the charge and the rewards would give the bid away (the guarantee is bid x (D - C)).
        body.update(bid_cents=o.bid_cents, price_bound_cents=r.price_bound_cents, charge_basis=o.charge_basis or None,
                    guarantee_cents=o.guarantee_cents,
                    promised_value_cents=r.promised_value_cents, delivered_value_cents=r.delivered_value_cents)
    return body


@router.get(
    "/rounds/{slug}/groups/{group_slug}/reward-model",
    response={200: dict, **ERRORS},
    tags=["preferences"],
    summary="Your group's reward model: its kind, held-out accuracy, extremes and, after delivery, promised vs delivered",
)
def get_reward_model(request, slug: str, group_slug: str):
    view = group_round_for_viewer(user=request.auth, round_slug=slug, group_slug=group_slug, allow_staff=True)
    page = reward_model_page(round=view.round, group=view.group)
    rm = page.reward_model

    def scored(rows) -> list[dict]:
        return [{"prompt_index": c.prompt_index, "candidate_index": c.index, "score": c.score, "text": c.text} for c in rows]

    return {
        "round": view.round.slug,
        "group_slug": view.group.slug,
        "fitted": rm is not None,
        "kind": rm.kind if rm else None,
        "accuracy": rm.accuracy if rm else None,
        "fitted_at": _iso(rm.created_at) if rm else None,
        "top": scored(page.top),
        "bottom": scored(page.bottom),
        "promised_reward": page.promised,
        "delivered_reward": page.delivered,
        "base_reward": page.base,
    }
