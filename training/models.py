from __future__ import annotations

from typing import ClassVar

from django.db import models

from marketplace.groups.models import PreferenceGroup
from marketplace.rounds.models import PreferenceSubmission, Round


class Candidate(models.Model):
    """One sampled response to one of a round's prompts, fixed before any report is seen."""

    round = models.ForeignKey(Round, on_delete=models.CASCADE, related_name="candidates")
    prompt_index = models.PositiveIntegerField()
    index = models.PositiveIntegerField()
    text = models.TextField()
    num_tokens = models.PositiveIntegerField(default=0)
    base_logprob = models.FloatField()
    proposal_logprob = models.FloatField(null=True, blank=True)
    base_logweight = models.FloatField(default=0.0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["round", "prompt_index", "index"], name="one_candidate_per_slot"),
        ]
        ordering = ["prompt_index", "index"]


class RewardModel(models.Model):
    """A group's fitted reward model for a round and its scores on every candidate (raw and normalised)."""

    round = models.ForeignKey(Round, on_delete=models.CASCADE, related_name="reward_models")
    group = models.ForeignKey(PreferenceGroup, on_delete=models.CASCADE, related_name="reward_models")
    submission = models.ForeignKey(PreferenceSubmission, on_delete=models.PROTECT, null=True, blank=True)
    kind = models.CharField(max_length=10)
    params = models.JSONField(default=dict)
    accuracy = models.FloatField(null=True, blank=True, help_text="Held-out pair accuracy (preference pairs only).")
    raw_scores = models.JSONField(default=list, help_text="Per prompt, per candidate.")
    normalised_scores = models.JSONField(default=list)
    norm_min = models.FloatField(default=0.0)
    norm_max = models.FloatField(default=1.0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["round", "group"], name="one_reward_model_per_group")]


class TrainingJobQuerySet(models.QuerySet["TrainingJob"]):
    """The two meanings of "the round's job", each written once."""

    def newest_for(self, round: Round) -> TrainingJob | None:
        """The round's newest job, whatever its status (a retried round keeps its earlier, failed jobs)."""
        return self.filter(round=round).order_by("-created_at", "-pk").first()

    def live_for(self, round: Round) -> TrainingJob | None:
        """The round's job that has neither failed nor been cancelled: at most one exists (job_create keeps it so)."""
        return (
            self.filter(round=round)
            .exclude(status__in=[TrainingJob.Status.FAILED, TrainingJob.Status.CANCELLED])
            .order_by("-created_at", "-pk")
            .first()
        )


class TrainingJob(models.Model):
    class Status(models.TextChoices):
        VALIDATING_FILES = "validating_files", "Validating files"
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        CANCELLING = "cancelling", "Cancelling"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    # The job's life cycle. running -> running is a reclaim: a new worker takes over a job whose worker stopped beating.
    TRANSITIONS: ClassVar[dict[str, frozenset[str]]] = {
        Status.VALIDATING_FILES: frozenset({Status.QUEUED, Status.FAILED, Status.CANCELLED}),
        Status.QUEUED: frozenset({Status.RUNNING, Status.CANCELLED}),
        Status.RUNNING: frozenset({Status.RUNNING, Status.CANCELLING, Status.CANCELLED, Status.SUCCEEDED, Status.FAILED}),
        Status.CANCELLING: frozenset({Status.CANCELLED, Status.SUCCEEDED, Status.FAILED}),
        Status.SUCCEEDED: frozenset(),
        Status.FAILED: frozenset(),
        Status.CANCELLED: frozenset(),
    }

    class Fault(models.TextChoices):
        NONE = "", "None"
        USER = "user", "User"
        PLATFORM = "platform", "Platform"

    round = models.ForeignKey(Round, on_delete=models.CASCADE, related_name="jobs")
    method = models.CharField(max_length=20, default="weighted_sft")
    hyperparameters = models.JSONField(default=dict, help_text="Fully resolved, including the LoRA config and seed.")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.VALIDATING_FILES, db_index=True)
    attempt = models.PositiveIntegerField(default=0, help_text="How many times a worker claimed the job.")
    worker = models.CharField(max_length=200, blank=True)
    steps_done = models.PositiveIntegerField(default=0)
    total_steps = models.PositiveIntegerField(default=0)
    tokens_seen = models.PositiveBigIntegerField(default=0)
    loss = models.FloatField(null=True, blank=True)
    eta_seconds = models.FloatField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    output_dir = models.CharField(max_length=500, blank=True)
    adapter_dir = models.CharField(max_length=500, blank=True)
    best_checkpoint = models.CharField(max_length=500, blank=True)
    error_code = models.CharField(max_length=60, blank=True)
    error_message = models.TextField(blank=True)
    fault = models.CharField(max_length=10, choices=Fault.choices, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TrainingJobQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    @property
    def progress(self) -> float:
        return self.steps_done / self.total_steps if self.total_steps else 0.0


class JobEvent(models.Model):
    class Type(models.TextChoices):
        STATUS = "status", "Status change"
        PROGRESS = "progress", "Progress"
        CHECKPOINT = "checkpoint", "Checkpoint"
        METRIC = "metric", "Metric"
        ERROR = "error", "Error"
        INFO = "info", "Info"

    job = models.ForeignKey(TrainingJob, on_delete=models.CASCADE, related_name="events")
    type = models.CharField(max_length=12, choices=Type.choices)
    message = models.TextField()
    data = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "pk"]


class Checkpoint(models.Model):
    job = models.ForeignKey(TrainingJob, on_delete=models.CASCADE, related_name="checkpoints")
    step = models.PositiveIntegerField()
    path = models.CharField(max_length=500)
    metrics = models.JSONField(default=dict)
    is_best = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["job", "step"], name="one_checkpoint_per_step")]
        ordering = ["step"]


class Evaluation(models.Model):
    """What the trained adapter delivered, measured on fresh samples."""

    job = models.OneToOneField(TrainingJob, on_delete=models.CASCADE, related_name="evaluation")
    tv_before = models.FloatField()
    tv_after = models.FloatField()
    kl_estimate = models.FloatField()
    delivered = models.JSONField(help_text="Per group id: delivered expected reward on the round's prompts.")
    base = models.JSONField(help_text="Per group id: the base model's expected reward.")
    heldout = models.JSONField(default=dict, help_text="Per group id: delivered reward on held-out prompts.")
    details = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)
