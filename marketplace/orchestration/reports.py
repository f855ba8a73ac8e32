"""Read-side views that need both billing and training: the one place that reads them together."""

from __future__ import annotations

from marketplace.billing.selectors import RoundBillingOverview, round_billing_overview
from marketplace.rounds.models import Round
from training.selectors import round_job_seconds


def round_money_overview(*, round: Round) -> RoundBillingOverview:
    """The staff billing overview of a round: held, captured and released money against the training job's cost."""
    return round_billing_overview(round=round, job_seconds=round_job_seconds(round=round))
