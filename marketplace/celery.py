"""The Celery app. Auctions, sampling, reward fitting and billing run on the default queue; LoRA jobs on `training`."""

from __future__ import annotations

import os

from celery import Celery
from celery.signals import worker_ready, worker_shutdown

from marketplace.core import tasknames
from marketplace.core.workers import heartbeat_clear, heartbeat_start

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
    conf.broker_connection_timeout = settings.CELERY_BROKER_CONNECTION_TIMEOUT_S
    conf.beat_schedule = {
        "rounds-advance-on-schedule": {"task": tasknames.ROUNDS_TICK, "schedule": 30.0},
        "training-reap-stale-jobs": {"task": tasknames.JOBS_REAP, "schedule": 60.0},
        # Holds whose release Stripe refused at the time (a withdrawn or replaced bid) are let go soon after.
        "billing-release-sweep": {
            "task": tasknames.BILLING_RELEASE_SWEEP,
            "schedule": float(settings.BILLING_RELEASE_SWEEP_S),
            "options": {"expires": float(settings.BILLING_RELEASE_SWEEP_S)},
        },
        # A message the broker refused at commit goes out within seconds of the broker's return, not at the next tick.
        "outbox-relay": {
            "task": tasknames.OUTBOX_RELAY,
            "schedule": float(settings.OUTBOX_RELAY_INTERVAL_S),
            "options": {"expires": float(settings.OUTBOX_RELAY_INTERVAL_S) * 2},
        },
        # Click spend of finished days, charged per advertiser group (idempotent per group, day and currency).
        "sponsored-billing-run": {
            "task": tasknames.SPONSORED_BILLING_RUN,
            "schedule": float(settings.SPONSORED_BILLING_INTERVAL_S),
            "options": {"expires": float(settings.SPONSORED_BILLING_INTERVAL_S)},
        },
    }


app.autodiscover_tasks(["marketplace", "training"])
# Billing tasks live in their own module beside the Stripe wrapper.
app.autodiscover_tasks(["marketplace"], related_name="tasks_billing")
# Sponsored answers keep their tasks in their own app.
app.autodiscover_tasks(["marketplace.sponsored"])


@worker_ready.connect
def _heartbeat_start(sender: object, **_: object) -> None:
    """Tell the site this worker is alive (marketplace.core.workers explains why a heartbeat and not a ping)."""
    queues = sorted(sender.app.amqp.queues.consume_from or {})  # type: ignore[attr-defined]
    heartbeat_start(hostname=sender.hostname, queues=queues)  # type: ignore[attr-defined]


@worker_shutdown.connect
def _heartbeat_stop(sender: object, **_: object) -> None:
    hostname = getattr(sender, "hostname", None)
    if hostname:
        try:
            heartbeat_clear(hostname=hostname)
        except Exception:  # the broker may already be gone at shutdown; the heartbeat then expires on its own
            pass
