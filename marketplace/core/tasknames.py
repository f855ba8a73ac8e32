"""The name of every Celery task, in one place.

Services enqueue by these constants (they cannot import the task objects: the task modules import the services),
the task declarations use them as ``@shared_task(name=...)``, and the Celery routes and beat schedule name them too.
``tests/marketplace/core/test_tasknames.py`` checks that each one is registered with the Celery app.
"""

from __future__ import annotations

ROUND_SAMPLE = "marketplace.tasks.round_sample_task"
ROUND_SETTLE = "marketplace.tasks.round_settle_task"
ROUND_AFTER_JOB = "marketplace.tasks.round_after_job_task"
ROUNDS_TICK = "marketplace.tasks.rounds_tick_task"
BILLING_CAPTURE_ROUND = "marketplace.tasks_billing.billing_capture_round_task"
BILLING_RELEASE_ROUND = "marketplace.tasks_billing.billing_release_round_task"
JOB_RUN = "training.tasks.job_run_task"
JOBS_REAP = "training.tasks.jobs_reap_task"
OUTBOX_RELAY = "marketplace.tasks.outbox_relay_task"
BILLING_RELEASE_SWEEP = "marketplace.tasks_billing.billing_release_sweep_task"
INVITATION_SEND = "marketplace.tasks.invitation_send_task"
SPONSORED_BILLING_RUN = "marketplace.sponsored.tasks.sponsored_billing_run_task"
SPONSORED_BILL_GROUP = "marketplace.sponsored.tasks.sponsored_bill_group_task"

ALL = frozenset(
    {ROUND_SAMPLE, ROUND_SETTLE, ROUND_AFTER_JOB, ROUNDS_TICK, BILLING_CAPTURE_ROUND, BILLING_RELEASE_ROUND, JOB_RUN, JOBS_REAP,
     OUTBOX_RELAY, BILLING_RELEASE_SWEEP, INVITATION_SEND, SPONSORED_BILLING_RUN, SPONSORED_BILL_GROUP}
)
