"""Django admin for training: jobs are read-mostly (status moves only through the job services), with events and
checkpoints inline; candidates, reward models and evaluations are for looking, not editing."""

from __future__ import annotations

from django.contrib import admin

from training.models import Candidate, Checkpoint, Evaluation, JobEvent, RewardModel, TrainingJob


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class JobEventInline(ReadOnlyInline):
    model = JobEvent
    fields = ("created_at", "type", "message", "data")
    readonly_fields = fields
    ordering = ("-created_at", "-pk")


class CheckpointInline(ReadOnlyInline):
    model = Checkpoint
    fields = ("step", "is_best", "metrics", "path", "created_at")
    readonly_fields = fields


@admin.register(TrainingJob)
class TrainingJobAdmin(admin.ModelAdmin):
    list_display = ("id", "round", "method", "status", "steps", "attempt", "heartbeat_at", "created_at")
    list_filter = ("status", "method", "fault")
    search_fields = ("round__title", "round__slug", "worker", "error_code")
    list_select_related = ("round",)
    date_hierarchy = "created_at"
    inlines = [CheckpointInline, JobEventInline]
    # Status, progress and results are written by workers through compare-and-set; editing them here would race them.
    readonly_fields = (
        "round", "method", "hyperparameters", "status", "attempt", "worker", "steps_done", "total_steps", "tokens_seen",
        "loss", "eta_seconds", "heartbeat_at", "started_at", "finished_at", "output_dir", "adapter_dir",
        "best_checkpoint", "error_code", "error_message", "fault", "created_at",
    )

    @admin.display(description="Steps")
    def steps(self, obj: TrainingJob) -> str:
        return f"{obj.steps_done} / {obj.total_steps}"

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # rows a running round depends on; removing one mid-round would break settling

    def has_add_permission(self, request) -> bool:
        return False  # jobs are created by the round's settle step, never by hand


@admin.register(Candidate)
class CandidateAdmin(admin.ModelAdmin):
    list_display = ("round", "prompt_index", "index", "num_tokens", "base_logprob", "base_logweight")
    list_filter = ("round",)
    search_fields = ("text", "round__slug")
    list_select_related = ("round",)
    readonly_fields = ("round", "prompt_index", "index", "text", "num_tokens", "base_logprob", "proposal_logprob", "base_logweight")

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # rows a running round depends on; removing one mid-round would break settling

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(RewardModel)
class RewardModelAdmin(admin.ModelAdmin):
    list_display = ("round", "group", "kind", "accuracy", "created_at")
    list_filter = ("kind", "round")
    search_fields = ("group__name", "group__slug", "round__slug")
    list_select_related = ("round", "group")
    readonly_fields = (
        "round", "group", "submission", "kind", "params", "accuracy", "raw_scores", "normalised_scores",
        "norm_min", "norm_max", "created_at",
    )

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # rows a running round depends on; removing one mid-round would break settling

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(Evaluation)
class EvaluationAdmin(admin.ModelAdmin):
    list_display = ("job", "tv_before", "tv_after", "kl_estimate", "created_at")
    list_select_related = ("job", "job__round")
    readonly_fields = ("job", "tv_before", "tv_after", "kl_estimate", "delivered", "base", "heldout", "details", "created_at")

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # rows a running round depends on; removing one mid-round would break settling

    def has_add_permission(self, request) -> bool:
        return False
