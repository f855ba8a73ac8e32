"""The one mapping from application errors to HTTP: a status per kind of error, one JSON shape, one page.

Services raise the domain errors of marketplace.core.errors and never choose a status. Pages get them turned into
responses by ``AppErrorMiddleware`` (a view still catches an error itself when it shows it on a form); the JSON API
installs ``api_error_response`` as its handler. Both use ``http_status`` and ``error_body``, so a given error reads
the same everywhere.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views import defaults

from marketplace.core.errors import (
    AppError,
    Conflict,
    Gone,
    NotAllowed,
    NotFound,
    PaymentRefused,
    Unavailable,
    UnsupportedMedia,
)

HTTP_STATUS: dict[type[AppError], int] = {
    NotFound: 404,
    NotAllowed: 403,
    Conflict: 409,
    Gone: 410,
    PaymentRefused: 402,
    Unavailable: 503,
    UnsupportedMedia: 415,
    AppError: 400,
}


def http_status(exc: AppError) -> int:
    for kind in type(exc).__mro__:
        if kind in HTTP_STATUS:
            return HTTP_STATUS[kind]
    return 400


def error_body(code: str, message: str, field: str | None = None, **extra: Any) -> dict[str, Any]:
    """The JSON error shape of the whole site: {"error": {"code", "message", "field", ...}}."""
    return {"error": {"code": code, "message": message, "field": field, **extra}}


def app_error_body(exc: AppError) -> dict[str, Any]:
    extra = {"errors": exc.errors} if hasattr(exc, "errors") else {}
    return error_body(exc.code, exc.message, exc.field, **extra)


def app_error_json(exc: AppError) -> JsonResponse:
    return JsonResponse(app_error_body(exc), status=http_status(exc))


# Refusals about the viewer's own standing, whose page says why and what to do (templates/errors/app_error.html): an
# unconfirmed e-mail (with a link to the resend page), a resale buyer asking for what only the buying groups get.
SAY_WHY = frozenset({"email_unverified", "resale_api_only"})


def app_error_page(request: HttpRequest, exc: AppError) -> HttpResponse:
    status = http_status(exc)
    if status == 404:
        # The same page as any missing URL: an outsider cannot tell "not yours" from "does not exist".
        return defaults.page_not_found(request, exc)
    if status == 403 and exc.code not in SAY_WHY:
        return defaults.permission_denied(request, exc)
    return render(request, "errors/app_error.html", {"error": exc, "status": status}, status=status)


class AppErrorMiddleware:
    """Turn an application error that a view did not handle into its page (or JSON for a JSON request)."""

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exc: Exception) -> HttpResponse | None:
        if not isinstance(exc, AppError):
            return None
        if request.headers.get("Accept", "").startswith("application/json"):
            return app_error_json(exc)
        return app_error_page(request, exc)
