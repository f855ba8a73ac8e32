"""The API's error handlers: the site's one error shape and status mapping (marketplace.web.errors); never a trace."""

from __future__ import annotations

import logging

from django.http import Http404
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError

from marketplace.core.errors import AppError
from marketplace.web.errors import app_error_body, error_body, http_status

log = logging.getLogger(__name__)


def install_error_handlers(api: NinjaAPI) -> None:
    def app_error(request, exc: AppError):
        return api.create_response(request, app_error_body(exc), status=http_status(exc))

    def not_found(request, exc: Http404):
        return api.create_response(request, error_body("not_found", "Not found."), status=404)

    def unauthenticated(request, exc: AuthenticationError):
        response = api.create_response(
            request,
            error_body("unauthenticated", "Send a valid API token: Authorization: Bearer <token>."),
            status=401,
        )
        response["WWW-Authenticate"] = "Bearer"
        return response

    def http_error(request, exc: HttpError):
        return api.create_response(request, error_body("http_error", str(exc)), status=exc.status_code)

    def invalid(request, exc: ValidationError):
        first = exc.errors[0] if exc.errors else {}
        loc = [str(p) for p in first.get("loc", []) if p not in ("body", "payload", "query", "path", "form", "file")]
        field = loc[-1] if loc else None
        message = first.get("msg", "Invalid input.")
        return api.create_response(
            request, error_body("invalid", f"{field}: {message}" if field else message, field), status=422
        )

    def unexpected(request, exc: Exception):
        log.exception("API error on %s %s", request.method, request.path)
        return api.create_response(request, error_body("server_error", "Something went wrong on our side."), status=500)

    api.add_exception_handler(AppError, app_error)
    api.add_exception_handler(Http404, not_found)
    api.add_exception_handler(AuthenticationError, unauthenticated)
    api.add_exception_handler(HttpError, http_error)
    api.add_exception_handler(ValidationError, invalid)
    api.add_exception_handler(Exception, unexpected)
