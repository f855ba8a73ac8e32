"""What was delivered, on the model page and the round page: base, promised, the adapter alone and exact delivery at
K = 4, 16, 64 per group, as a table and server-rendered bar charts, for round and held-out prompts."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse
from django.utils import timezone

from marketplace.delivery.selectors import model_evaluation
from marketplace.models import GroupOutcome
from marketplace.web.charts import BarChart, BarSeries, render_bar_svg
from tests.marketplace.openai_api.conftest import publish_for
from training.models import Evaluation, TrainingJob

pytestmark = pytest.mark.django_db


def _exact_rows(values: dict[int, float], slug: str) -> list[dict]:
    return [{"k": k, "reward": {slug: v}, "ess": k / 2, "subsets": 64 // k} for k, v in values.items()]


@pytest.fixture
def evaluated(cast):
    """The cast's group's model, evaluated: promised 0.5, base 0.25, adapter 0.35, exact 0.41 / 0.47 / 0.52."""
    model = publish_for(groups=[cast.group])
    GroupOutcome.objects.filter(outcome__round=model.round).update(base_reward=0.25, delivered_reward=0.35)
    job = TrainingJob.objects.create(round=model.round, status=TrainingJob.Status.SUCCEEDED, finished_at=timezone.now())
    slug = cast.group.slug
    Evaluation.objects.create(
        job=job, tv_before=0.4, tv_after=0.1, kl_estimate=0.2, delivered={slug: 0.35}, base={slug: 0.25},
        heldout={slug: 0.31},
        details={
            "exact_draws": 64,
            "exact_round": _exact_rows({1: 0.35, 4: 0.41, 16: 0.47, 64: 0.52}, slug),
            "exact_heldout": _exact_rows({1: 0.31, 4: 0.36, 16: 0.39, 64: 0.43}, slug),
            "base_heldout_reward": {slug: 0.22},
        },
    )
    return model


def _bars(html: str, chart: int = 0) -> dict[tuple[str, str], float]:
    """The bars of the page's ``chart``-th chart (0: the round's prompts, 1: held-out prompts)."""
    html = html.split('<svg class="chart"')[1 + chart].split("</svg>")[0]
    return {
        (m["series"], m["category"]): float(m["value"])
        for m in re.finditer(r'data-series="(?P<series>[^"]+)" data-category="(?P<category>[^"]+)" data-value="(?P<value>[^"]+)"', html)
    }


def test_the_evaluation_reports_exact_delivery_per_group_for_round_and_heldout_prompts(cast, evaluated):
    ev = model_evaluation(model=evaluated)
    (g,) = ev["groups"]
    assert (g["base"], g["promised"], g["delivered"]) == (0.25, 0.5, 0.35)
    assert g["exact"] == {"4": 0.41, "16": 0.47, "64": 0.52}
    assert g["heldout"] == {"base": 0.22, "delivered": 0.31, "exact": {"4": 0.36, "16": 0.39, "64": 0.43}}
    assert ev["exact_ess"] == {"4": 2.0, "16": 8.0, "64": 32.0} and ev["exact_draws"] == 64


def test_the_model_page_charts_what_was_delivered(client, cast, evaluated):
    client.force_login(cast.bob)
    html = client.get(reverse("model_detail", kwargs={"model_id": evaluated.model_id})).content.decode()
    bars = _bars(html)
    name = cast.group.name
    assert bars[("promised", name)] == 0.5 and bars[("adapter alone", name)] == 0.35
    assert bars[("exact K=64", name)] == 0.52 and bars[("exact K=4", name)] == 0.41
    assert html.count('<svg class="chart"') == 2  # round prompts and held-out prompts
    held = _bars(html, 1)
    assert held[("adapter alone", name)] == 0.31 and held[("exact K=64", name)] == 0.43 and ("promised", name) not in held
    assert "Held-out prompts" in html and "effective sample size" in html
    assert "<script" not in html.split('data-testid="delivery-results"')[1].split("</section>")[0]


def test_the_round_page_shows_the_results_to_those_who_may_use_the_model_only(client, cast, evaluated):
    url = reverse("round_detail", kwargs={"slug": evaluated.round.slug})
    client.force_login(cast.alice)
    html = client.get(url).content.decode()
    assert 'data-testid="delivery-results"' in html and _bars(html)[("exact K=16", cast.group.name)] == 0.47
    for outsider in (cast.carol, cast.dave):
        client.force_login(outsider)
        page = client.get(url)
        assert page.status_code == 200
        assert 'data-testid="delivery-results"' not in page.content.decode()
        assert cast.group.name not in page.content.decode()
    client.logout()
    assert 'data-testid="delivery-results"' not in client.get(url).content.decode()


def test_a_model_evaluated_before_exact_delivery_shows_dashes_not_an_error(client, cast):
    model = publish_for(groups=[cast.group])
    job = TrainingJob.objects.create(round=model.round, status=TrainingJob.Status.SUCCEEDED, finished_at=timezone.now())
    Evaluation.objects.create(job=job, tv_before=0.4, tv_after=0.1, kl_estimate=0.2, delivered={}, base={},
                              details={"exact_round": [{"k": "x"}, "junk"], "exact_heldout": None})
    client.force_login(cast.bob)
    page = client.get(reverse("model_detail", kwargs={"model_id": model.model_id}))
    assert page.status_code == 200
    assert "Exact delivery was not measured" in page.content.decode()
    assert model_evaluation(model=model)["groups"][0]["exact"] == {"4": None, "16": None, "64": None}


def test_bar_charts_escape_labels_and_skip_missing_values():
    svg = str(render_bar_svg(BarChart(title="<t>", y_label="y", categories=["a&b", "c"],
                                      series=[BarSeries('s"1', [0.5, None])], y_max=1.0)))
    assert "<t>" not in svg and "&lt;t&gt;" in svg and "a&amp;b" in svg
    assert svg.count("data-value=") == 1 and "style" not in svg and "<script" not in svg
    assert render_bar_svg(BarChart(title="t", y_label="y", categories=["a"], series=[BarSeries("s", [None])])) == ""


def test_staff_see_published_models_and_usage_in_the_admin_read_only(client, cast, evaluated):
    from marketplace.delivery.services import usage_record

    usage_record(group=cast.group, model=evaluated, prompt_tokens=3, completion_tokens=5)
    client.force_login(cast.staff)
    listing = client.get("/admin/delivery/finetunedmodel/")
    assert listing.status_code == 200 and evaluated.model_id in listing.content.decode()
    assert client.get("/admin/delivery/usagedaily/").status_code == 200
    assert client.get("/admin/delivery/finetunedmodel/add/").status_code == 403
    page = client.get(f"/admin/delivery/finetunedmodel/{evaluated.pk}/change/")
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
