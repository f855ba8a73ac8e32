"""Hand a Celery task its ids once the current transaction commits: a task never sees rows that may still roll back."""

from __future__ import annotations

from django.db import transaction

from marketplace.celery import app
from marketplace.core import tasknames


def enqueue_after_commit(task_name: str, *args: object) -> None:
    """Send the task by name (tasks take ids only) when the surrounding transaction commits, or now outside one.

    The name must be one of marketplace.core.tasknames: a misspelt name would otherwise sit in the broker forever.
    """
    if task_name not in tasknames.ALL:
        raise ValueError(f"unknown task name {task_name!r}; add it to marketplace.core.tasknames")

    def send() -> None:
        app.send_task(task_name, args=list(args))

    transaction.on_commit(send)
