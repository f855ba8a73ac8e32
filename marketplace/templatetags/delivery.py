"""`{% delivery_results evaluation %}` (the model page) and `{% round_delivery_results round %}` (the round page):
what the delivered model gave each group, as a table and two server-rendered bar charts.

The round page shows it only to those who may use the round's model (``delivery.selectors.model_for_round``, the one
access rule): per-group results name the groups that bid.
"""

from __future__ import annotations

from typing import Any

from django import template

from marketplace.delivery.selectors import model_evaluation, model_for_round
from marketplace.web.charts import delivery_charts

register = template.Library()


def _context(model: Any, evaluation: dict[str, Any]) -> dict[str, Any]:
    return {"model": model, "evaluation": evaluation, "charts": delivery_charts(evaluation)}


@register.inclusion_tag("delivery/_delivery_results.html")
def delivery_results(model, evaluation):
    return _context(model, evaluation)


@register.inclusion_tag("delivery/_delivery_results.html", takes_context=True)
def round_delivery_results(context, round):
    request = context.get("request")
    user = getattr(request, "user", None)
    model = model_for_round(user=user, round_id=round.pk) if user is not None else None
    if model is None:
        return {"model": None}
    return {**_context(model, model_evaluation(model=model)), "show_link": True}
