"""The outbox: a task message written in the same transaction as the status it follows, sent after commit.

A status change and the message for its next step commit together or not at all. Sending is a second step: right
after commit, and again by the relay (marketplace.core.enqueue.outbox_relay, on a short beat and when a worker
starts) for any row the broker did not take. Rows are sent at least once; every task is safe to run twice
(compare-and-set), so a repeat is harmless.
"""

from __future__ import annotations

from django.db import models


class OutboxMessage(models.Model):
    task_name = models.CharField(max_length=200)
    args = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=500, blank=True, default="")

    class Meta:
        indexes = [
            models.Index(fields=["id"], name="outbox_pending_idx", condition=models.Q(sent_at__isnull=True)),
        ]

    def __str__(self) -> str:
        return f"{self.task_name}{tuple(self.args)}"
