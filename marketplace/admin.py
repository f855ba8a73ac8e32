"""The Django admin for staff. It writes only through services: statuses move by admin actions that call the round
life-cycle services (and so round_transition), never by editing a status field; bids stay sealed until the close."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.db.models import Count

from marketplace.core.errors import AppError
from marketplace.models import (
    ApiToken,
    AuctionOutcome,
    Bid,
    BillingCustomer,
    GroupOutcome,
    Invitation,
    Membership,
    Payment,
    PreferenceGroup,
    PreferenceSubmission,
    Round,
    WebhookEvent,
)
from marketplace.orchestration.lifecycle import round_cancel_request, round_close_request, round_open_request
from marketplace.rounds.editing import round_create, round_update
from marketplace.templatetags.money import format_money

# What staff may type into a round; everything else (slug, status, history) is set by the services.
EDITABLE_FIELDS = (
    "title", "description", "opens_at", "closes_at",
    "prompts", "prompt_weights", "base_model", "candidates_per_prompt", "kl_weight", "currency",
)  # fmt: skip
SEALED = "sealed until the round closes"


def bid_is_sealed(round: Round) -> bool:
    return round.bids_sealed


class SealedWhileOpenAdmin:
    """Bids and holds of rounds still taking bids are left out of the admin entirely, and their amounts cannot be
    probed through URL filters (Django admin accepts a lookup on any field of the model in the query string)."""

    sealed_fields = ("amount_cents", "amount_held_cents", "amount_captured_cents")

    def get_queryset(self, request):
        return super().get_queryset(request).exclude(round__status__in=Round.SEALED_STATUSES)

    def lookup_allowed(self, lookup, value, request=None):
        if lookup.split("__")[0] in self.sealed_fields:
            return False
        return super().lookup_allowed(lookup, value, request)


class ReadOnlyAdmin(admin.ModelAdmin):
    """For records that only services write (money, outcomes, events): staff may look, not touch."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


# ---------- Rounds ----------


class _DryRun(Exception):
    """Raised inside a savepoint to undo a validation-only service call."""


class RoundAdminForm(forms.ModelForm):
    """Validates by running the round service in a savepoint that is then rolled back, so the admin shows the same
    field errors as the staff pages; `save_model` then makes the real call."""

    request_user = None

    class Meta:
        model = Round
        fields = list(EDITABLE_FIELDS)

    def service_fields(self) -> dict:
        return {name: self.cleaned_data.get(name) for name in EDITABLE_FIELDS if name in self.fields}

    def apply(self) -> Round:
        fields = self.service_fields()
        if self.instance.pk:
            return round_update(round=self.instance, by=self.request_user, **fields)
        return round_create(by=self.request_user, **fields)

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        try:
            with transaction.atomic():
                self.apply()
                raise _DryRun
        except _DryRun:
            pass
        except AppError as error:
            self.add_error(error.field if error.field in self.fields else None, error.message)
        return data


@admin.action(description="Open bidding for the selected draft rounds")
def open_rounds(modeladmin, request, queryset):
    _run_action(request, queryset, round_open_request, "opened")


@admin.action(description="Close bidding for the selected open rounds (runs the auction)")
def close_rounds(modeladmin, request, queryset):
    _run_action(request, queryset, round_close_request, "closed")


@admin.action(description="Cancel the selected rounds (releases every hold)")
def cancel_rounds(modeladmin, request, queryset):
    _run_action(request, queryset, round_cancel_request, "cancelled")


def _run_action(request, queryset, service, verb: str) -> None:
    moved, skipped = [], []
    for round in queryset:
        try:
            (moved if service(round=round, by=request.user) else skipped).append(round.title)
        except AppError as error:
            skipped.append(f"{round.title} ({error.message})")
    if moved:
        messages.success(request, f"{len(moved)} round(s) {verb}: {', '.join(moved)}.")
    if skipped:
        messages.warning(request, f"Not {verb} (status did not allow it): {'; '.join(skipped)}.")


@admin.register(Round)
class RoundAdmin(admin.ModelAdmin):
    form = RoundAdminForm
    list_display = ["title", "slug", "status", "opens_at", "closes_at", "kl_weight", "candidates_per_prompt", "currency"]
    list_filter = ["status", "currency"]
    search_fields = ["title", "slug"]
    date_hierarchy = "opens_at"
    actions = [open_rounds, close_rounds, cancel_rounds]
    readonly_fields = [
        "slug",
        "status",
        "status_changed_at",
        "status_detail",
        "billing_pending",
        "seed",
        "created_by",
        "created_at",
        "updated_at",
    ]
    fieldsets = [
        (None, {"fields": ["title", "slug", "description", "status", "status_detail"]}),
        ("Market", {"fields": ["base_model", "prompts", "prompt_weights", "kl_weight", "candidates_per_prompt", "currency"]}),
        ("Bidding window (UTC)", {"fields": ["opens_at", "closes_at"]}),
        ("Record", {"fields": ["status_changed_at", "billing_pending", "seed", "created_by", "created_at", "updated_at"]}),
    ]

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            # A new round has no slug, status or history yet; the service sets them.
            return [(name, {"fields": [f for f in opts["fields"] if f in EDITABLE_FIELDS]}) for name, opts in self.fieldsets]
        return self.fieldsets

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        form.request_user = request.user  # a fresh class per request, so this never leaks across requests
        return form

    def save_model(self, request, obj, form, change):
        saved = form.apply()
        obj.__dict__.update({k: v for k, v in saved.__dict__.items() if k != "_state"})
        obj._state.adding = False

    def has_delete_permission(self, request, obj=None):
        # Rounds carry money and outcomes; cancel them instead.
        return False


# ---------- Groups ----------


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    fields = ["user", "role", "joined_at"]
    readonly_fields = ["user", "role", "joined_at"]
    can_delete = False

    def has_add_permission(self, request, obj=None):
        # Roles change through the group's members page, which keeps the last-admin rule.
        return False


@admin.register(PreferenceGroup)
class PreferenceGroupAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "created_by", "member_count", "created_at"]
    search_fields = ["name", "slug", "memberships__user__email"]
    readonly_fields = ["slug", "created_by", "created_at"]
    fields = ["name", "slug", "description", "created_by", "created_at"]
    inlines = [MembershipInline]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_members=Count("memberships", distinct=True))

    @admin.display(description="Members", ordering="_members")
    def member_count(self, obj):
        return obj._members

    def has_add_permission(self, request):
        return False  # groups are created by their first admin, in the site


@admin.register(Membership)
class MembershipAdmin(ReadOnlyAdmin):
    list_display = ["user", "group", "role", "joined_at"]
    list_filter = ["role"]
    search_fields = ["user__email", "group__name"]
    list_select_related = ["user", "group"]


@admin.register(Invitation)
class InvitationAdmin(ReadOnlyAdmin):
    list_display = ["group", "email_or_link", "role", "status", "invited_by", "created_at", "expires_at"]
    list_filter = ["status", "role"]
    search_fields = ["email", "group__name"]
    exclude = ["token_hash"]
    list_select_related = ["group", "invited_by"]

    @admin.display(description="For")
    def email_or_link(self, obj):
        return obj.email or "shareable link"


# ---------- Preferences, bids and money (sealed while bidding is open) ----------


@admin.register(PreferenceSubmission)
class PreferenceSubmissionAdmin(ReadOnlyAdmin):
    list_display = ["round", "group", "version", "kind", "row_count", "submitted_by", "created_at"]
    list_filter = ["kind"]
    search_fields = ["round__title", "group__name"]
    list_select_related = ["round", "group", "submitted_by"]


@admin.register(Bid)
class BidAdmin(SealedWhileOpenAdmin, ReadOnlyAdmin):
    list_display = ["round", "group", "amount", "status", "created_at", "updated_at"]
    list_filter = ["status"]
    search_fields = ["round__title", "group__name"]
    fields = ["round", "group", "amount", "status", "placed_by", "created_at", "updated_at"]
    readonly_fields = fields
    list_select_related = ["round", "group"]

    @admin.display(description="Amount")  # not sortable: the order of amounts would leak them
    def amount(self, obj):
        return SEALED if bid_is_sealed(obj.round) else format_money(obj.amount_cents, obj.currency)


@admin.register(Payment)
class PaymentAdmin(SealedWhileOpenAdmin, ReadOnlyAdmin):
    list_display = ["round", "group", "status", "held", "captured", "attempt", "updated_at"]
    list_filter = ["status"]
    search_fields = ["round__title", "group__name", "stripe_payment_intent_id"]
    fields = [
        "round", "group", "bid", "attempt", "status", "held", "captured", "stripe_payment_intent_id",
        "idempotency_key", "failure_message", "created_at", "updated_at",
    ]  # fmt: skip
    readonly_fields = fields
    list_select_related = ["round", "group"]

    # A hold equals the bid, so it is sealed exactly like the bid.
    @admin.display(description="Held")
    def held(self, obj):
        return SEALED if bid_is_sealed(obj.round) else format_money(obj.amount_held_cents, obj.currency)

    @admin.display(description="Captured")
    def captured(self, obj):
        return SEALED if bid_is_sealed(obj.round) else format_money(obj.amount_captured_cents, obj.currency)


@admin.register(BillingCustomer)
class BillingCustomerAdmin(ReadOnlyAdmin):
    list_display = ["group", "stripe_customer_id", "card_brand", "card_last4", "updated_at"]
    search_fields = ["group__name", "stripe_customer_id"]


@admin.register(WebhookEvent)
class WebhookEventAdmin(ReadOnlyAdmin):
    list_display = ["event_id", "type", "received_at"]
    search_fields = ["event_id", "type"]


class GroupOutcomeInline(admin.TabularInline):
    model = GroupOutcome
    extra = 0
    can_delete = False
    fields = ["group", "bid_cents", "expected_reward", "promised_value", "payment_cents", "utility", "delivered_reward"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(AuctionOutcome)
class AuctionOutcomeAdmin(ReadOnlyAdmin):
    list_display = ["round", "welfare", "kl_to_base", "revenue", "inputs_hash", "created_at"]
    exclude = ["instance", "result"]
    readonly_fields = ["round", "inputs_hash", "welfare", "kl_to_base", "revenue_cents", "created_at"]
    inlines = [GroupOutcomeInline]

    @admin.display(description="Revenue", ordering="revenue_cents")
    def revenue(self, obj):
        return format_money(obj.revenue_cents, obj.round.currency)


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "user", "prefix", "created_at", "last_used_at"]
    search_fields = ["user__email", "name", "prefix"]
    exclude = ["key_hash"]
    readonly_fields = ["user", "name", "prefix", "created_at", "last_used_at"]

    def has_add_permission(self, request):
        return False  # a token's plain value is shown once, to its owner, on the profile page

    def has_change_permission(self, request, obj=None):
        return False
    # Deleting stays allowed: it is how staff revoke a leaked token.


admin.site.site_header = "Tunemarket staff"
admin.site.site_title = "Tunemarket staff"
