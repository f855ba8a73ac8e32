"""The Celery app. Auctions, sampling, reward fitting and billing run on the default queue; LoRA jobs on `training`."""

from __future__ import annotations

import os

from celery import Celery

from marketplace.core import tasknames

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "marketplace.settings")

app = Celery("marketplace")
app.config_from_object("django.conf:settings", namespace="CELERY")


@app.on_after_configure.connect
def _configure(sender: Celery, **_: object) -> None:
    from django.conf import settings

    conf = sender.conf
    if settings.CELERY_BROKER_URL.startswith("filesystem://"):
        folder = settings.CELERY_BROKER_FOLDER
        (folder / "queue").mkdir(parents=True, exist_ok=True)
        (folder / "processed").mkdir(parents=True, exist_ok=True)
        conf.broker_transport_options = {
            "data_folder_in": str(folder / "queue"),
            "data_folder_out": str(folder / "queue"),
            "processed_folder": str(folder / "processed"),
            "control_folder": str(folder / "control"),
            "store_processed": False,
        }
    else:
        conf.broker_transport_options = {"visibility_timeout": settings.CELERY_VISIBILITY_TIMEOUT_S}
    conf.task_default_queue = "default"
    conf.task_routes = {tasknames.JOB_RUN: {"queue": "training"}}
    conf.task_acks_late = True
    conf.task_reject_on_worker_lost = True
    conf.worker_prefetch_multiplier = 1
    conf.task_ignore_result = True
    conf.broker_connection_retry_on_startup = True
    conf.beat_schedule = {
        "rounds-advance-on-schedule": {"task": tasknames.ROUNDS_TICK, "schedule": 30.0},
        "training-reap-stale-jobs": {"task": tasknames.JOBS_REAP, "schedule": 60.0},
    }


app.autodiscover_tasks(["marketplace", "training"])
# Billing tasks live in their own module beside the Stripe wrapper.
app.autodiscover_tasks(["marketplace"], related_name="tasks_billing")
