"""Billing: a group's card, receipts, the staff billing overview and Stripe's webhook."""

from __future__ import annotations

from django.urls import path

from marketplace.views import billing, webhooks

urlpatterns = [
    path("groups/<slug:slug>/billing/", billing.group_billing, name="group_billing"),
    path("groups/<slug:slug>/billing/setup/", billing.group_billing_setup, name="group_billing_setup"),
    path("groups/<slug:slug>/billing/card/", billing.group_billing_card, name="group_billing_card"),
    path("rounds/<slug:slug>/groups/<slug:group_slug>/receipt/", billing.receipt, name="receipt"),
    path("staff/rounds/<slug:slug>/billing/", billing.staff_round_billing, name="staff_round_billing"),
    path("stripe/webhook/", webhooks.stripe_webhook, name="stripe_webhook"),
]
