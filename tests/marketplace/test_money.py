"""Money is shown from integer cents without ever going through a float."""

from __future__ import annotations

import pytest
from django.template import Context, Template

from marketplace.templatetags.money import format_money


@pytest.mark.parametrize(
    "cents, currency, shown",
    [
        (0, "usd", "$0.00"),
        (5, "usd", "$0.05"),
        (123_456, "USD", "$1,234.56"),
        (-250, "eur", "-€2.50"),
        (1_000, "jpy", "¥1,000"),
        (9_999_999_999_999_999, "usd", "$99,999,999,999,999.99"),
        (1_050, "sek", "10.50 SEK"),
        (None, "usd", "—"),
    ],
)
def test_it_formats_minor_units_exactly(cents, currency, shown):
    assert format_money(cents, currency) == shown


def test_the_template_filters_render_money_and_badges():
    html = Template("{% load money %}{{ c|money:cur }} {{ s|badge }}").render(
        Context({"c": 4200, "cur": "gbp", "s": "training"})
    )
    assert html == '£42.00 <span class="badge badge-training">Training</span>'
