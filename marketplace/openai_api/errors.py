"""OpenAI's error shape, ``{"error": {"message", "type", "param", "code"}}``, for every refusal under /v1/."""

from __future__ import annotations

from django.http import JsonResponse

from marketplace.core.errors import AppError, NotFound, Unavailable
from marketplace.delivery.engine_client import ENGINE_DOWN

TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "invalid_request_error",
         405: "invalid_request_error", 429: "rate_limit_error", 503: "service_unavailable"}


class ApiError(Exception):
    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code
        self.headers = headers or {}


def bad_param(param: str, message: str) -> ApiError:
    return ApiError(400, message, param=param, code="invalid_value")


def from_app_error(exc: AppError) -> ApiError:
    if isinstance(exc, NotFound):
        return ApiError(404, exc.message, param="model", code="model_not_found")
    if isinstance(exc, Unavailable):
        return ApiError(503, ENGINE_DOWN, code="engine_unavailable")
    return ApiError(400, exc.message, param=exc.field, code=exc.code)


def error_body(exc: ApiError) -> dict:
    return {"error": {"message": exc.message, "type": TYPES.get(exc.status, "invalid_request_error"),
                      "param": exc.param, "code": exc.code}}


def error_response(exc: ApiError, headers: dict[str, str] | None = None) -> JsonResponse:
    return JsonResponse(error_body(exc), status=exc.status, headers=headers)
