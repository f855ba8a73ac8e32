"""The JSON API under /api/: token auth on every endpoint, OpenAPI at /api/openapi.json, docs at /api/docs."""

from __future__ import annotations

from django.urls import path

from marketplace.api.auth import TokenAuth
from marketplace.api.delivery import router as delivery_router
from marketplace.api.economics import router as economics_router
from marketplace.api.endpoints import router
from marketplace.api.errors import install_error_handlers
from marketplace.api.openapi import DocumentedAPI

api = DocumentedAPI(
    title="Tunemarket API",
    version="1",
    description=(
        "The marketplace's actions for scripts. Authenticate with `Authorization: Bearer <token>` "
        "(create a token on your profile page). Errors look like `{\"error\": {\"code\", \"message\", \"field\"}}`."
    ),
    urls_namespace="api",
    auth=TokenAuth(),
)
install_error_handlers(api)
api.add_router("", router)
api.add_router("", delivery_router)
api.add_router("", economics_router)

urlpatterns = [path("", api.urls)]
