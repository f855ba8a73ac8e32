"""Published models and their usage in the admin: read-only, since only services write them (publishing builds the
downloads and the card; /v1/ meters usage with F() increments)."""

from __future__ import annotations

from django.contrib import admin

from marketplace.delivery.models import FineTunedModel, UsageDaily


class _ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(FineTunedModel)
class FineTunedModelAdmin(_ReadOnly):
    list_display = ["model_id", "round", "base_model", "kl_weight", "adapter_zip_size", "merged_zip_size", "created_at"]
    search_fields = ["model_id", "round__slug", "round__title"]
    list_select_related = ["round"]
    readonly_fields = [f.name for f in FineTunedModel._meta.fields]


@admin.register(UsageDaily)
class UsageDailyAdmin(_ReadOnly):
    list_display = ["day", "model", "group", "prompt_tokens", "completion_tokens", "requests"]
    list_filter = ["day"]
    search_fields = ["model__model_id", "group__slug", "group__name"]
    list_select_related = ["model", "group"]
    date_hierarchy = "day"
    readonly_fields = [f.name for f in UsageDaily._meta.fields]
