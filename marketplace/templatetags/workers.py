"""`{% worker_warning %}`: tells staff, on the round pages, that no Celery worker is alive (nothing would move)."""

from __future__ import annotations

from django import template

from marketplace.core.workers import workers_alive

register = template.Library()

WAITING_STATUSES = ("draft", "open", "closed", "training")


@register.inclusion_tag("includes/worker_warning.html", takes_context=True)
def worker_warning(context, round=None) -> dict:
    request = context.get("request")
    user = getattr(request, "user", None)
    if not (user and user.is_staff) or (round is not None and round.status not in WAITING_STATUSES):
        return {"show": False}
    status = workers_alive()
    if status is None:
        return {"show": False}
    return {"show": bool(status.missing()), "status": status, "missing": status.missing()}
