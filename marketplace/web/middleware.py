"""Response middleware of the pages: the security headers Django does not set, and a styled 405 page.

Django 5.2 has neither a Content-Security-Policy setting nor a ``handler405``, so both live here, beside the one error
mapping in ``errors.py``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.template.loader import render_to_string

# Stripe's documented needs when Stripe.js is the real one (https://docs.stripe.com/security/guide#content-security-policy).
REAL_STRIPE = {
    "script-src": ["https://js.stripe.com", "https://*.js.stripe.com"],
    "frame-src": ["https://js.stripe.com", "https://*.js.stripe.com", "https://hooks.stripe.com"],
    "connect-src": ["https://api.stripe.com"],
}

PERMISSIONS_POLICY = ", ".join(
    f"{feature}=()"
    for feature in (
        "accelerometer",
        "camera",
        "geolocation",
        "gyroscope",
        "magnetometer",
        "microphone",
        "usb",
    )
) + ", payment=(self)"


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


def content_security_policy() -> str:
    """The policy of every page: scripts and styles only from our static files and Stripe.js's origin.

    Read per request because tests and the demo point ``STRIPE_JS_URL`` at a localstripe on a port of their own.
    Inline ``style=""`` attributes stay allowed (``style-src-attr``); inline ``<script>``, event-handler attributes and
    ``<style>`` elements do not.
    """
    stripe = _origin(settings.STRIPE_JS_URL)
    extra: dict[str, list[str]]
    if stripe == "https://js.stripe.com":
        extra = REAL_STRIPE
    elif stripe:
        extra = {"script-src": [stripe], "frame-src": [stripe], "connect-src": [stripe]}
    else:
        extra = {}
    directives: dict[str, list[str]] = {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "style-src-attr": ["'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "frame-src": ["'none'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
    for name, sources in extra.items():
        directives[name] = [s for s in directives[name] if s != "'none'"] + sources
    return "; ".join(f"{name} {' '.join(sources)}" for name, sources in directives.items())


class SecurityHeadersMiddleware:
    """Content-Security-Policy and Permissions-Policy on every response that does not set its own."""

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = content_security_policy()
        if "Permissions-Policy" not in response:
            response["Permissions-Policy"] = PERMISSIONS_POLICY
        return response


class NotAllowedPageMiddleware:
    """Give a page's bare 405 (``require_POST`` and friends) the site's 405 page; JSON and the API keep theirs."""

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if not isinstance(response, HttpResponseNotAllowed) or response.content:
            return response
        if request.path.startswith("/api/") or request.headers.get("Accept", "").startswith("application/json"):
            return response
        page = HttpResponse(
            render_to_string("405.html", {"method": request.method, "allowed": response["Allow"]}, request=request),
            status=405,
        )
        page["Allow"] = response["Allow"]
        return page
