"""The API's error handlers: the site's one error shape and status mapping (marketplace.web.errors); never a trace."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.exceptions import BadRequest, RequestDataTooBig, SuspiciousOperation
from django.http import Http404
from django.http.multipartparser import MultiPartParserError
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError

from marketplace.core.errors import AppError
from marketplace.web.errors import app_error_body, error_body, http_status
from marketplace.web.overload import is_overload, overload_body

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

    def too_large(request, exc: RequestDataTooBig):
        return api.create_response(
            request,
            error_body("too_large", "The request body is larger than the server accepts; send a smaller file."),
            status=413,
        )

    def bad_request(request, exc: Exception):
        # Django refused the request itself (a multipart part with oversized headers, too many fields, a bad
        # header): its own 400, which the catch-all below would otherwise turn into a 500.
        return api.create_response(request, error_body("bad_request", "The request could not be read."), status=400)

    def unexpected(request, exc: Exception):
        if is_overload(exc):  # no database connection in time: busy, not broken
            response = api.create_response(request, overload_body(), status=503)
            response["Retry-After"] = str(settings.OVERLOAD_RETRY_AFTER_S)
            return response
        log.exception("API error on %s %s", request.method, request.path)
        return api.create_response(request, error_body("server_error", "Something went wrong on our side."), status=500)

    api.add_exception_handler(AppError, app_error)
    api.add_exception_handler(Http404, not_found)
    api.add_exception_handler(AuthenticationError, unauthenticated)
    api.add_exception_handler(HttpError, http_error)
    api.add_exception_handler(ValidationError, invalid)
    api.add_exception_handler(RequestDataTooBig, too_large)
    api.add_exception_handler(SuspiciousOperation, bad_request)
    api.add_exception_handler(MultiPartParserError, bad_request)
    api.add_exception_handler(BadRequest, bad_request)
    api.add_exception_handler(Exception, unexpected)
