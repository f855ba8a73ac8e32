"""Stripe's webhook endpoint. CSRF does not apply (Stripe signs the raw body instead, and the service checks it)."""

from __future__ import annotations

import logging

from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from marketplace.billing.services import billing_webhook_receive
from marketplace.billing.stripe_gateway import GatewayError, GatewayUnavailable, WebhookSignatureInvalid
from marketplace.web.errors import error_body

log = logging.getLogger(__name__)


@csrf_exempt
@require_POST
def stripe_webhook(request):
    try:
        result = billing_webhook_receive(payload=request.body, signature=request.headers.get("Stripe-Signature", ""))
    except WebhookSignatureInvalid as exc:
        return JsonResponse(error_body(exc.code, exc.message), status=400)
    except GatewayUnavailable as exc:
        # Not stored as seen: Stripe delivers the event again later.
        return JsonResponse(error_body("unavailable", exc.message), status=503)
    except GatewayError as exc:
        # Stripe refused a call for this event for a reason a retry will not fix: answered in the error shape, never
        # a 500 that Stripe would retry for days.
        log.warning("Webhook could not be handled: %s", exc)
        return JsonResponse(error_body(exc.code or "gateway_error", exc.message), status=400)
    return JsonResponse({"status": result})
