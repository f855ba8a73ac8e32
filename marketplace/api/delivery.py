"""The delivered models and their usage in the JSON API: list, one model (card and evaluation), the downloads, and a
group's metered use of /v1/. Every model goes through the one access rule, so outsiders get 404."""

from __future__ import annotations

from datetime import date, datetime

from ninja import Router, Schema

from marketplace.api.schemas import ErrorOut
from marketplace.delivery.selectors import (
    model_evaluation,
    model_get_owned,
    model_get_usable,
    models_usable,
    usage_for_group,
)
from marketplace.groups.selectors import group_for_member
from marketplace.views.models import download_response

router = Router()
ERRORS = {400: ErrorOut, 401: ErrorOut, 404: ErrorOut}


class DownloadOut(Schema):
    format: str
    size: int
    sha256: str
    ready: bool


class GroupEvaluationOut(Schema):
    group: str
    name: str
    base: float | None
    promised: float | None
    delivered: float | None


class EvaluationOut(Schema):
    groups: list[GroupEvaluationOut]
    kl_estimate: float | None
    tv_before: float | None
    tv_after: float | None


class ModelOut(Schema):
    id: str
    round: str
    base_model: str
    kl_weight: float
    adapter_sha256: str
    created_at: datetime
    downloads: list[DownloadOut]


class ModelDetailOut(ModelOut):
    card: str
    evaluation: EvaluationOut


class UsageOut(Schema):
    day: date
    model: str
    requests: int
    prompt_tokens: int
    completion_tokens: int


def _model_out(m) -> dict:
    return {
        "id": m.model_id,
        "round": m.round.slug,
        "base_model": m.base_model,
        "kl_weight": m.kl_weight,
        "adapter_sha256": m.adapter_sha256,
        "created_at": m.created_at,
        "downloads": [
            {"format": "adapter", "size": m.adapter_zip_size, "sha256": m.adapter_zip_sha256, "ready": bool(m.adapter_zip)},
            {"format": "merged", "size": m.merged_zip_size, "sha256": m.merged_zip_sha256, "ready": bool(m.merged_zip)},
        ],
    }


@router.get("/models", response={200: list[ModelOut], **ERRORS}, tags=["models"], summary="Delivered models you may use")
def list_models(request):
    return [_model_out(m) for m in models_usable(user=request.auth)]


@router.get("/models/{model_id}", response={200: ModelDetailOut, **ERRORS}, tags=["models"], summary="One model: card and evaluation")
def get_model(request, model_id: str):
    m = model_get_usable(user=request.auth, model_id=model_id)
    return {**_model_out(m), "card": m.card, "evaluation": model_evaluation(model=m)}


@router.get("/models/{model_id}/download", response={**ERRORS}, tags=["models"], summary="Download the adapter or the merged weights (zip, streamed)")
def download_model(request, model_id: str, format: str = "adapter"):
    m = model_get_owned(user=request.auth, model_id=model_id)
    return download_response(model=m, format=format)


@router.get("/groups/{slug}/usage", response={200: list[UsageOut], **ERRORS}, tags=["groups"], summary="Your group's /v1/ usage per model and day")
def group_usage(request, slug: str):
    group = group_for_member(user=request.auth, slug=slug)
    return [
        {"day": r.day, "model": r.model.model_id, "requests": r.requests, "prompt_tokens": r.prompt_tokens,
         "completion_tokens": r.completion_tokens}
        for r in usage_for_group(group=group)
    ]
