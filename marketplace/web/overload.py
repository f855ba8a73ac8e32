"""Overload is a 503 with Retry-After, never a 500: the pool had no connection in time, or PostgreSQL refused one.

``is_overload`` recognises the two: psycopg_pool's PoolTimeout (Django wraps it in its OperationalError) and
PostgreSQL's "too many clients" / "remaining connection slots are reserved". The middleware answers them for pages
(and for anything below it in the stack); the API's handler (marketplace.api.errors) uses the same test.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.db import OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse

from marketplace.web.errors import error_body

log = logging.getLogger(__name__)
REFUSALS = ("too many clients", "remaining connection slots", "couldn't get a connection", "pool timeout")
MESSAGE = "The site is busy right now. Please try again in a moment."


def is_overload(exc: BaseException) -> bool:
    from psycopg_pool import PoolTimeout  # the pool's own error, whether or not Django wrapped it

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, PoolTimeout):
            return True
        if isinstance(seen, OperationalError) or type(seen).__module__.startswith("psycopg"):
            if any(text in str(seen).lower() for text in REFUSALS):
                return True
        seen = seen.__cause__ or seen.__context__
    return False


def overload_body() -> dict[str, Any]:
    return error_body("overloaded", MESSAGE)


def overload_response(request: HttpRequest) -> HttpResponse:
    wants_json = request.path.startswith("/api/") or request.headers.get("Accept", "").startswith("application/json")
    if wants_json:
        response: HttpResponse = JsonResponse(overload_body(), status=503)
    else:
        response = HttpResponse(MESSAGE, status=503, content_type="text/plain; charset=utf-8")
    response["Retry-After"] = str(settings.OVERLOAD_RETRY_AFTER_S)
    return response


class OverloadMiddleware:
    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            return self.get_response(request)
        except Exception as exc:
            if not is_overload(exc):
                raise
            log.warning("overloaded: %s %s answered 503 (%s)", request.method, request.path, exc)
            return overload_response(request)

    def process_exception(self, request: HttpRequest, exc: Exception) -> HttpResponse | None:
        if is_overload(exc):
            log.warning("overloaded: %s %s answered 503 (%s)", request.method, request.path, exc)
            return overload_response(request)
        return None
