"""The economics pages: launch pricing, a round's contract and a group's revenue share, through the test client."""

from __future__ import annotations

import pytest
from django.test import Client

from marketplace.deals.models import RevenueShare, RoundContract
from marketplace.rounds.models import Round
from tests.factories import make_round

pytestmark = pytest.mark.django_db

MT_BENCH = {
    "name_0": "7B", "cost_0": "0.18165",
    "dist_0": ".15625 .16875 .0375 .00625 0 .04375 .05 .1125 .1375 .2875",
    "name_1": "13B", "cost_1": "0.2415",
    "dist_1": ".16875 .1375 .0125 0 .00625 .04375 .05625 .05 .16875 .35625",
    "name_2": "70B", "cost_2": "0.6405",
    "dist_2": ".09375 .1875 .01875 .00625 .00625 .0375 .0625 .075 .11875 .39375",
    "objective": "min_pay", "monotone": "on", "action": "compute",
}


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


# --------------------------------------------------------------------------------------------- launch pricing


def test_the_pricing_page_shows_the_regions_and_the_first_movers_bound(cast):
    response = _client(cast.staff).get(
        "/staff/pricing/", {"demand_slope": "0.5", "a_0": "1", "k_0": "1", "a_1": "1", "k_1": "0.25"}
    )
    body = response.content.decode()
    assert response.status_code == 200
    assert 'data-region="loose_bound"' in body or 'data-region="tight_bound"' in body
    assert "<svg" in body and "data-series" in body
    assert 'data-winner="first mover"' in body and 'data-winner="latecomer"' in body


def test_similar_tasks_leave_the_first_mover_nothing(cast):
    body = _client(cast.staff).get(
        "/staff/pricing/", {"demand_slope": "0.5", "a_0": "1", "k_0": "1", "a_1": "1", "k_1": "0.75"}
    ).content.decode()
    assert 'data-region="latecomer_takes_all"' in body


@pytest.mark.parametrize(
    "params",
    [
        {"demand_slope": "nan", "a_0": "1", "k_0": "1"},
        {"demand_slope": "inf", "a_0": "1", "k_0": "1"},
        {"demand_slope": "1e400", "a_0": "1", "k_0": "1"},
        {"demand_slope": "-1", "a_0": "1", "k_0": "1"},
        {"demand_slope": "0", "a_0": "1", "k_0": "1"},
        {"demand_slope": "0.5", "a_0": "-3", "k_0": "1"},
        {"demand_slope": "0.5", "a_0": "1", "k_0": "NaN"},
        {"demand_slope": "0.5", "a_0": "1"},
        {"demand_slope": "0.5"},
        {"demand_slope": ""},
        {"demand_slope": "0.5", "a_0": "99999999999999999999", "k_0": "1"},
        {"demand_slope": "abc", "a_0": "x", "k_0": "1"},
    ],
)
def test_the_pricing_form_shows_errors_instead_of_failing(cast, params):
    response = _client(cast.staff).get("/staff/pricing/", params)
    assert response.status_code == 400
    assert "field-error" in response.content.decode() or "alert-error" in response.content.decode()


def test_extreme_but_valid_numbers_still_render(cast):
    response = _client(cast.staff).get(
        "/staff/pricing/", {"demand_slope": "1e-6", "a_0": "1e6", "k_0": "1e6", "a_1": "1e-6", "k_1": "1e-6"}
    )
    assert response.status_code in (200, 400)


# --------------------------------------------------------------------------------------------- contracts


def test_staff_compute_save_and_publish_a_contract_groups_then_see(cast):
    round = make_round(status=Round.Status.OPEN)
    staff = _client(cast.staff)
    response = staff.post(f"/staff/rounds/{round.slug}/contract/", MT_BENCH)
    assert response.status_code == 302
    contract = RoundContract.objects.get(round=round)
    assert contract.status == "draft"
    assert contract.payments[-1] == pytest.approx(10.64, abs=5e-3)  # the paper's monotone min-pay contract
    assert contract.payments_cents[-1] == 1063 or contract.payments_cents[-1] == 1064
    assert "Pay-for-performance" not in Client().get(f"/rounds/{round.slug}/").content.decode()

    staff.post(f"/staff/rounds/{round.slug}/contract/", {"action": "publish"})
    contract.refresh_from_db()
    assert contract.status == "published" and contract.published_at is not None
    public = _client(cast.bob).get(f"/rounds/{round.slug}/").content.decode()
    assert 'data-contract-status="published"' in public and "10.6" in public
    assert "never charged more than the hold" in public

    # Published is final.
    again = staff.post(f"/staff/rounds/{round.slug}/contract/", {**MT_BENCH, "monotone": ""})
    assert again.status_code == 400
    contract.refresh_from_db()
    assert contract.payments[-1] == pytest.approx(10.64, abs=5e-3)


def test_an_unimplementable_target_is_a_form_error(cast):
    round = make_round(status=Round.Status.DRAFT)
    data = {"name_0": "cheap", "cost_0": "0", "dist_0": "0.5 0.5", "name_1": "same", "cost_1": "1", "dist_1": "0.5 0.5",
            "objective": "min_pay", "action": "compute"}
    response = _client(cast.staff).post(f"/staff/rounds/{round.slug}/contract/", data)
    assert response.status_code == 400
    assert "alert-error" in response.content.decode()
    assert not RoundContract.objects.exists()


@pytest.mark.parametrize(
    "changes",
    [{"dist_1": "nan 1"}, {"dist_1": "0.5 0.6"}, {"dist_1": "1"}, {"cost_1": "-1"}, {"dist_1": "a b"}, {"name_1": ""},
     {"dist_1": "1e999 0"}, {"cost_0": "1e400"}],
)
def test_bad_contract_input_is_shown_on_the_form(cast, changes):
    round = make_round(status=Round.Status.DRAFT)
    data = {"name_0": "cheap", "cost_0": "0", "dist_0": "0.6 0.4", "name_1": "good", "cost_1": "1", "dist_1": "0.2 0.8",
            "objective": "min_pay", "action": "compute", **changes}
    response = _client(cast.staff).post(f"/staff/rounds/{round.slug}/contract/", data)
    assert response.status_code == 400


def test_derive_without_past_evaluations_says_so(cast):
    round = make_round(status=Round.Status.DRAFT)
    response = _client(cast.staff).get(f"/staff/rounds/{round.slug}/contract/?derive=1", follow=True)
    assert response.status_code == 200
    assert "No past round has an evaluation yet" in response.content.decode()


def test_a_contract_cannot_be_set_once_bidding_closed(cast):
    round = make_round(status=Round.Status.CLOSED)
    response = _client(cast.staff).post(f"/staff/rounds/{round.slug}/contract/", MT_BENCH)
    assert response.status_code == 400
    assert not RoundContract.objects.exists()


def test_the_hold_rule_is_stated_on_the_model():
    assert "never charge more" in RoundContract.__doc__
    assert "than the hold" in RoundContract.__doc__


# --------------------------------------------------------------------------------------------- revenue share


def test_an_admin_sees_the_analysis_and_a_warning_outside_the_pareto_set(cast):
    round = make_round(status=Round.Status.DELIVERED)
    url = f"/rounds/{round.slug}/groups/{cast.group.slug}/revenue-share/"
    response = _client(cast.alice).post(url, {"c1": "2", "r": "1", "delta": "0.1", "action": "analyse"})
    body = response.content.decode()
    assert response.status_code == 200
    assert 'data-pareto="0.3333' in body  # c0 = 1 (the platform's default), c1 = 2
    assert 'data-proposed="outside"' in body
    assert 'data-solution="nash"' in body and body.count("<svg") == 2
    assert not RevenueShare.objects.exists()


def test_an_admin_records_the_agreed_share_and_cannot_change_the_platforms_cost(cast):
    round = make_round(status=Round.Status.DELIVERED)
    url = f"/rounds/{round.slug}/groups/{cast.group.slug}/revenue-share/"
    response = _client(cast.alice).post(url, {"c0": "50", "c1": "2", "r": "1", "delta": "0.6", "action": "agree"})
    assert response.status_code == 302
    share = RevenueShare.objects.get(round=round, group=cast.group)
    assert share.delta == 0.6 and share.agreed_by == cast.alice
    assert share.inputs == {"c0": 1.0, "c1": 2.0, "r": 1.0}


def test_staff_set_the_platforms_cost(cast):
    round = make_round(status=Round.Status.DELIVERED)
    url = f"/rounds/{round.slug}/groups/{cast.group.slug}/revenue-share/"
    _client(cast.staff).post(url, {"c0": "2", "c1": "1", "r": "3", "delta": "0.4", "action": "agree"})
    assert RevenueShare.objects.get().inputs == {"c0": 2.0, "c1": 1.0, "r": 3.0}


def test_members_who_are_not_admins_and_other_groups_admins_are_refused(cast):
    round = make_round(status=Round.Status.DELIVERED)
    url = f"/rounds/{round.slug}/groups/{cast.group.slug}/revenue-share/"
    assert _client(cast.bob).get(url).status_code == 403
    assert _client(cast.carol).get(url).status_code == 404
    assert _client(cast.dave).post(url, {"c1": "1", "r": "1", "delta": "0.5", "action": "agree"}).status_code == 404
    assert not RevenueShare.objects.exists()


@pytest.mark.parametrize("changes", [{"c1": "nan"}, {"c1": "-1"}, {"c1": "0"}, {"r": "1e400"}, {"delta": "2"}, {"c1": ""},
                                     {"delta": "", "action": "agree"}])
def test_bad_share_input_is_shown_on_the_form(cast, changes):
    round = make_round(status=Round.Status.DELIVERED)
    url = f"/rounds/{round.slug}/groups/{cast.group.slug}/revenue-share/"
    data = {"c1": "1", "r": "1", "delta": "0.5", "action": "analyse", **changes}
    response = _client(cast.alice).post(url, data)
    assert response.status_code == 400
    assert not RevenueShare.objects.exists()


def test_distributions_are_derived_from_past_rounds_evaluations(cast):
    from training.models import Evaluation, TrainingJob

    past = make_round(status=Round.Status.DELIVERED)
    job = TrainingJob.objects.create(round=past, status=TrainingJob.Status.SUCCEEDED)
    Evaluation.objects.create(
        job=job, tv_before=0.5, tv_after=0.2, kl_estimate=0.1,
        delivered={"a": 0.9, "b": 0.7, "c": 0.8}, base={"a": 0.1, "b": 0.3, "c": 0.2},
    )
    round = make_round(status=Round.Status.DRAFT)
    staff = _client(cast.staff)
    body = staff.get(f"/staff/rounds/{round.slug}/contract/?derive=1").content.decode()
    assert "data-derived" in body and "Base model" in body and "Fine-tuned model" in body
    # The derived form computes as it stands: the fine-tuned model scores higher, so a contract exists.
    import re

    fields = dict(re.findall(r'name="((?:name|cost|dist)_[01]|outcomes|outcome_edges|source)"[^>]*value="([^"]*)"', body))
    data = {**fields, "objective": "min_pay", "monotone": "on", "action": "compute"}
    assert staff.post(f"/staff/rounds/{round.slug}/contract/", data).status_code == 302
    contract = RoundContract.objects.get(round=round)
    assert contract.payments[-1] > 0 and len(contract.payments) == 5
    assert contract.inputs["outcome_edges"][0] == pytest.approx(0.1) and len(contract.inputs["outcome_edges"]) == 6


def test_a_hand_entered_contract_gets_equal_width_outcome_bins_over_0_1(cast):
    round = make_round(status=Round.Status.DRAFT)
    assert _client(cast.staff).post(f"/staff/rounds/{round.slug}/contract/", MT_BENCH).status_code == 302
    edges = RoundContract.objects.get(round=round).inputs["outcome_edges"]
    assert edges == pytest.approx([j / 10 for j in range(11)])


def test_typed_outcome_bins_are_stored_and_shown(cast):
    round = make_round(status=Round.Status.DRAFT)
    edges = "0 0.2 0.3 0.4 0.5 0.6 0.7 0.8 0.9 0.95 1"
    staff = _client(cast.staff)
    assert staff.post(f"/staff/rounds/{round.slug}/contract/", {**MT_BENCH, "outcome_edges": edges}).status_code == 302
    assert RoundContract.objects.get(round=round).inputs["outcome_edges"][-2] == pytest.approx(0.95)
    assert "[0.9, 0.95)" in staff.get(f"/staff/rounds/{round.slug}/contract/").content.decode()


@pytest.mark.parametrize(
    "edges", ["0 0.5 1", "1 0.9 0.8 0.7 0.6 0.5 0.4 0.3 0.2 0.1 0", "0 0.1 0.1 0.3 0.4 0.5 0.6 0.7 0.8 0.9 1", "0 nan 1", "x"]
)
def test_outcome_bins_of_the_wrong_count_or_not_increasing_are_refused(cast, edges):
    round = make_round(status=Round.Status.DRAFT)
    response = _client(cast.staff).post(f"/staff/rounds/{round.slug}/contract/", {**MT_BENCH, "outcome_edges": edges})
    assert response.status_code == 400
    assert not RoundContract.objects.exists()
