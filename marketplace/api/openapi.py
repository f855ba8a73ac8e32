"""The OpenAPI document states what the server answers, including the answers that come from the error handlers
(marketplace.api.errors) rather than from an endpoint's own ``response=`` map, so a client or schemathesis reading
/api/openapi.json is told every status it can get:

- 422 (``invalid``) on every operation with parameters or a body: django-ninja's validation, before the endpoint runs;
- 413 (``too_large``) and 400 (``bad_request``) on every operation with a body: Django refused to read it;
- 401 everywhere (the token).

503 (overload, with ``Retry-After``) is left out on purpose: it is the server being busy, not part of the contract.
"""

from __future__ import annotations

from typing import Any

from ninja import NinjaAPI

ERROR_REF = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}}}
WHY = {
    "400": "The request could not be read, or a value breaks a rule the server checks.",
    "401": "No valid API token (send Authorization: Bearer <token>).",
    "413": "The body is larger than the server accepts.",
    "422": "A parameter or the body does not match this schema.",
}


class DocumentedAPI(NinjaAPI):
    def get_openapi_schema(self, *args: Any, **kwargs: Any):  # type: ignore[override]
        schema = super().get_openapi_schema(*args, **kwargs)
        if "ErrorOut" not in schema.get("components", {}).get("schemas", {}):
            return schema
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                if not isinstance(operation, dict) or "responses" not in operation:
                    continue
                statuses = ["401"]
                if operation.get("parameters") or operation.get("requestBody"):
                    statuses.append("422")
                if operation.get("requestBody"):
                    statuses += ["400", "413"]
                responses = operation["responses"]
                # django-ninja keys an endpoint's own ``response=`` codes by int: one already there is kept, never
                # written again under the string (two keys that read the same in JSON break YAML-based Swagger UI).
                for status in statuses:
                    if status not in responses and int(status) not in responses:
                        responses[status] = {"description": WHY[status], **ERROR_REF}
        return schema
