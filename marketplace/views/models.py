"""The delivered model's pages: its card and downloads, the playground, and a group's usage.

Every view resolves the model through ``model_get_usable`` (the one access rule), so anyone else gets the site's 404.
"""

from __future__ import annotations

from pathlib import Path

from django.contrib.auth.decorators import login_required
from django.http import FileResponse
from django.shortcuts import render
from django.utils.safestring import mark_safe
from markdown_it import MarkdownIt

from marketplace.core.errors import AppError, NotFound
from marketplace.delivery import inference
from marketplace.delivery.selectors import (
    model_evaluation,
    model_get_owned,
    model_get_usable,
    model_is_owned,
    models_usable,
    usage_for_group,
)
from marketplace.groups.models import Membership
from marketplace.groups.selectors import group_for_member, membership_of
from training.lib.corpus import format_prompt

PLAYGROUND_HISTORY = 5
# The card is our own markdown; raw HTML stays off anyway.
_md = MarkdownIt("commonmark", {"html": False}).enable("table")


def _downloads(model) -> list[dict]:
    return [
        {"format": "adapter", "label": "peft adapter", "size": model.adapter_zip_size, "sha256": model.adapter_zip_sha256,
         "ready": bool(model.adapter_zip)},
        {"format": "merged", "label": "Merged weights", "size": model.merged_zip_size, "sha256": model.merged_zip_sha256,
         "ready": bool(model.merged_zip)},
    ]


@login_required
def model_list(request):
    return render(request, "delivery/model_list.html", {"models": models_usable(user=request.user)})


@login_required
def model_detail(request, model_id: str):
    model = model_get_usable(user=request.user, model_id=model_id)
    owned = model_is_owned(user=request.user, model=model)
    return render(
        request,
        "delivery/model_detail.html",
        {
            "model": model,
            "owned": owned,  # False for a resale buyer: /v1/ only, no downloads, no playground
            "card_html": mark_safe(_md.render(model.card)),  # noqa: S308 - html disabled in the renderer
            "evaluation": model_evaluation(model=model),
            "downloads": _downloads(model),
            "site_url": request.build_absolute_uri("/v1"),
        },
    )


@login_required
def model_download(request, model_id: str, format: str):
    model = model_get_owned(user=request.user, model_id=model_id)
    return download_response(model=model, format=format)


def download_response(*, model, format: str) -> FileResponse:
    """The zip, streamed from disk (FileResponse reads it in blocks)."""
    path = {"adapter": model.adapter_zip, "merged": model.merged_zip}.get(format)
    if path is None:
        raise AppError("format must be adapter or merged.", field="format")
    if not path or not Path(path).exists():
        raise NotFound("That download is still being built; try again in a minute.")
    name = f"{model.round.slug}-{format}.zip"
    response = FileResponse(open(path, "rb"), as_attachment=True, filename=name, content_type="application/zip")  # noqa: SIM115
    response["X-Content-SHA256"] = model.adapter_zip_sha256 if format == "adapter" else model.merged_zip_sha256
    return response


@login_required
def model_playground(request, model_id: str):
    model = model_get_owned(user=request.user, model_id=model_id)
    history_key = f"playground:{model.model_id}"
    history = request.session.get(history_key, [])
    result, error, question = None, None, ""
    if request.method == "POST":
        question = (request.POST.get("prompt") or "").strip()[:500]
        if not question:
            error = "Write a question first."
        else:
            target = inference.target_resolve(user=request.user, requested=model.model_id,
                                              organization=request.POST.get("group") or None)
            try:
                result = inference.playground_run(target=target, prompt=format_prompt(question))
            except AppError as exc:
                error = exc.message
            history = [question, *[h for h in history if h != question]][:PLAYGROUND_HISTORY]
            request.session[history_key] = history
    return render(
        request,
        "delivery/playground.html",
        {"model": model, "result": result, "error": error, "question": question, "history": history},
    )


@login_required
def group_usage(request, slug: str):
    group = group_for_member(user=request.user, slug=slug)
    membership = membership_of(user=request.user, group=group)
    return render(
        request,
        "delivery/group_usage.html",
        {"group": group, "membership": membership, "is_admin": membership.role == Membership.Role.ADMIN,
         "tab": "usage", "rows": usage_for_group(group=group)},
    )
