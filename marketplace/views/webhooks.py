"""Stripe's webhook endpoint. CSRF does not apply (Stripe signs the raw body instead, and the service checks it)."""

from __future__ import annotations

import logging

from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from marketplace.billing.services import billing_webhook_receive
from marketplace.billing.stripe_gateway import GatewayError, GatewayUnavailable, WebhookSignatureInvalid

log = logging.getLogger(__name__)


@csrf_exempt
@require_POST
def stripe_webhook(request):
    try:
        result = billing_webhook_receive(payload=request.body, signature=request.headers.get("Stripe-Signature", ""))
    except WebhookSignatureInvalid as exc:
        return JsonResponse({"error": {"code": exc.code, "message": exc.message}}, status=400)
    except GatewayUnavailable as exc:
        # Not stored as seen: Stripe delivers the event again later.
        return JsonResponse({"error": {"code": "unavailable", "message": exc.message}}, status=503)
    except GatewayError as exc:
        log.warning("Webhook could not be handled: %s", exc)
        return JsonResponse({"error": {"code": exc.code or "gateway_error", "message": exc.message}}, status=500)
    return JsonResponse({"status": result})
