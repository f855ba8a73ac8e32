"""Hand a Celery task its ids once the current transaction commits: a task never sees rows that may still roll back."""

from __future__ import annotations

from django.db import transaction


def enqueue_after_commit(task_name: str, *args: object) -> None:
    """Send the task by name (tasks take ids only) when the surrounding transaction commits, or now outside one."""

    def send() -> None:
        from marketplace.celery import app

        app.send_task(task_name, args=list(args))

    transaction.on_commit(send)
