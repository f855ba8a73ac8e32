"""The economics pages: launch pricing (staff), a round's pay-for-performance contract (staff) and a group's revenue
share for its resold model (the group's admins and staff). Each parses a form, calls ``marketplace.deals`` and
renders; the charts are server-rendered SVG (``marketplace.web.charts``)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render

from marketplace.core import currency
from marketplace.core.errors import AppError
from marketplace.deals import analysis
from marketplace.deals.selectors import (
    past_evaluation_outcomes,
    resale_statement,
    revenue_share_access,
    revenue_share_of,
    round_contract_of,
)
from marketplace.deals.services import (
    CONTRACT_EDITABLE,
    revenue_share_record,
    round_contract_publish,
    round_contract_save,
)
from marketplace.delivery.services import resale_listing_set
from marketplace.forms import add_app_error
from marketplace.forms.economics import ContractForm, PricingForm, ResaleListingForm, RevenueShareForm
from marketplace.rounds.selectors import round_get_for_staff
from marketplace.views.staff import staff_required
from marketplace.web.charts import Chart, Marker, Series, render_svg

# The platform's cost coefficient when staff have not entered one for a group (docs/economics.md, "On the site").
PLATFORM_COST_DEFAULT = 1.0
DERIVED_BINS = 5

PRICING_EXAMPLE = {"demand_slope": 0.5, "a_0": 1, "k_0": 1.0, "a_1": 1, "k_1": 0.3}


@staff_required
def staff_pricing(request):
    bound = "demand_slope" in request.GET
    form = PricingForm(request.GET if bound else None, initial=PRICING_EXAMPLE)
    result = chart = None
    if bound and form.is_valid():
        try:
            result = analysis.pricing_analyse(
                demand_slope=form.cleaned_data["demand_slope"],
                demand_scales=form.cleaned_data["demand_scales"],
                relative_performances=form.cleaned_data["relative_performances"],
            )
        except AppError as exc:
            add_app_error(form, exc)
    if result is not None:
        markers = [Marker(result.monopoly_price, "monopoly price 1/b")]
        if result.max_price is not None:
            markers.append(Marker(result.max_price, "first mover's bound p̄", dashed=False))
        chart = render_svg(
            Chart(
                title="First mover's revenue against its price (latecomer best-responding)",
                x_label="first mover's price p_A",
                y_label="first mover's revenue",
                series=[Series("revenue of A", result.curve)],
                markers=markers,
            )
        )
    return render(
        request,
        "economics/pricing.html",
        {"form": form, "result": result, "chart": chart},
        status=400 if form.errors else 200,
    )


def _contract_initial(contract, derived):
    if derived is not None:
        return derived
    if contract is None:
        return {"objective": "min_pay", "monotone": True}
    inputs = contract.inputs
    initial = {
        "objective": inputs.get("objective", "min_pay"),
        "monotone": inputs.get("monotone", False),
        "robust": inputs.get("robust", False),
        "outcomes": ", ".join(inputs.get("outcomes") or []),
        "outcome_edges": " ".join(f"{e:g}" for e in inputs.get("outcome_edges") or []),
    }
    for i, action in enumerate(inputs.get("actions", [])):
        initial[f"name_{i}"] = action["name"]
        initial[f"cost_{i}"] = action["cost"]
        initial[f"dist_{i}"] = " ".join(f"{p:g}" for p in action["distribution"])
    return initial


def _derive(round):
    """Distributions from past rounds' evaluations: per-group rewards of the base model and of the delivered model,
    binned into equal-width reward ranges (worst first). None when no past round was evaluated."""
    past = past_evaluation_outcomes(exclude_round=round)
    values = past.base + past.delivered
    if not values:
        return None, None
    lo, hi = min(values), max(values)
    if hi <= lo:
        hi = lo + 1.0
    edges = [lo + (hi - lo) * j / DERIVED_BINS for j in range(DERIVED_BINS + 1)]
    base = analysis.distribution_from_values(past.base, edges)
    delivered = analysis.distribution_from_values(past.delivered, edges)
    labels = [f"{edges[j]:.3g}–{edges[j + 1]:.3g}" for j in range(DERIVED_BINS)]
    initial = {
        "objective": "min_pay",
        "monotone": True,
        "outcomes": ", ".join(labels),
        "outcome_edges": " ".join(f"{e:.6g}" for e in edges),
        "name_0": "Base model",
        "cost_0": 0,
        "dist_0": " ".join(f"{p:.6g}" for p in base),
        "name_1": "Fine-tuned model",
        "cost_1": 1,
        "dist_1": " ".join(f"{p:.6g}" for p in delivered),
    }
    source = {"rounds": past.rounds, "samples": len(past.delivered), "edges": edges}
    return initial, source


@staff_required
def staff_round_contract(request, slug: str):
    round = round_get_for_staff(slug=slug)
    contract = round_contract_of(round=round)
    editable = round.status in CONTRACT_EDITABLE and (contract is None or contract.status == contract.Status.DRAFT)
    derived, source = (None, None)
    if request.GET.get("derive"):
        derived, source = _derive(round)
        if derived is None:
            messages.info(request, "No past round has an evaluation yet; enter the distributions by hand.")
    form = ContractForm(request.POST or None, initial=_contract_initial(contract, derived))
    status = 200
    if request.method == "POST" and request.POST.get("action") == "publish":
        try:
            if round_contract_publish(round=round, by=request.user):
                messages.success(request, "Contract published: groups see it on the round page.")
            else:
                messages.info(request, "The contract was already published.")
        except AppError as exc:
            messages.error(request, exc.message)
        return redirect("staff_round_contract", slug=round.slug)
    if request.method == "POST":
        if form.is_valid():
            data = form.cleaned_data
            try:
                result = analysis.contract_design(
                    names=data["names"], costs=data["costs"], distributions=data["distributions"],
                    objective=data["objective"], monotone=data["monotone"], robust=data["robust"],
                )
                inputs = {
                    "actions": [
                        {"name": n, "cost": c, "distribution": d}
                        for n, c, d in zip(data["names"], data["costs"], data["distributions"], strict=True)
                    ],
                    "objective": data["objective"],
                    "monotone": data["monotone"],
                    "robust": data["robust"],
                    "outcomes": data["labels"],
                    "binding": result.binding,
                    "robustness_bound": result.robustness_bound,
                    "source": request.POST.get("source", "entered by hand")[:200],
                    # The bins of the delivered reward that pick the outcome at delivery (deals.settlement).
                    "outcome_edges": data["edges"],
                }
                round_contract_save(round=round, by=request.user, inputs=inputs, result=result)
            except AppError as exc:
                add_app_error(form, exc)
            else:
                messages.success(request, "Contract computed and saved as a draft.")
                return redirect("staff_round_contract", slug=round.slug)
        status = 400
    return render(
        request,
        "economics/contract.html",
        {"round": round, "contract": contract, "form": form, "editable": editable, "source": source},
        status=status,
    )


def _share_charts(result: analysis.BargainAnalysis) -> tuple[str, str]:
    markers = [Marker(s["delta"], s["label"]) for s in result.solutions]
    if result.proposed is not None:
        markers.append(Marker(result.proposed["delta"], "proposed", dashed=False))
    common = {"x_label": "platform share δ", "markers": markers, "band": result.pareto, "band_label": "Pareto set"}
    investments = render_svg(
        Chart(
            title="Equilibrium investments over δ",
            y_label="performance",
            series=[Series("α0 (platform's base)", result.curves["alpha0"]), Series("α1 (group's model)", result.curves["alpha1"])],
            **common,
        )
    )
    utilities = render_svg(
        Chart(
            title="Equilibrium utilities over δ",
            y_label="utility",
            series=[Series("U_G (platform)", result.curves["u_generalist"]), Series("U_D (group)", result.curves["u_specialist"])],
            **common,
        )
    )
    return investments, utilities


def _listing_initial(statement) -> dict:
    listing = statement.listing
    if listing is None:
        return {"listed": False, "price": ""}
    return {"listed": listing.listed, "price": currency.format_amount(listing.price_per_mtok_cents, statement.currency)}


@login_required
def revenue_share(request, slug: str, group_slug: str):
    access = revenue_share_access(user=request.user, round_slug=slug, group_slug=group_slug)
    round, group = access.round, access.group
    statement = resale_statement(round=round, group=group)
    listing_form = ResaleListingForm(
        request.POST if request.POST.get("action") == "listing" else None,
        initial=_listing_initial(statement), currency_code=round.currency,
    )
    if request.method == "POST" and request.POST.get("action") == "listing":
        if listing_form.is_valid() and statement.model is not None:
            try:
                resale_listing_set(
                    user=request.user, model=statement.model, group=group,
                    listed=listing_form.cleaned_data["listed"], price_per_mtok_cents=listing_form.cleaned_data["price"],
                )
            except AppError as exc:
                add_app_error(listing_form, exc)
            else:
                messages.success(request, "Resale listing saved.")
                return redirect("revenue_share", slug=round.slug, group_slug=group.slug)
        elif statement.model is None:
            listing_form.add_error(None, "The model is not published yet; list it once the round is delivered.")
    share = revenue_share_of(round=round, group=group)
    saved = share.inputs if share else {}
    initial = {
        "c0": saved.get("c0", PLATFORM_COST_DEFAULT),
        "c1": saved.get("c1", 1.0),
        "r": saved.get("r", 1.0),
        "delta": share.delta if share else None,
    }
    share_post = request.method == "POST" and request.POST.get("action") != "listing"
    form = RevenueShareForm(request.POST if share_post else None, initial=initial, c0_editable=access.is_staff)
    result = None
    status = 400 if listing_form.errors else 200
    if share_post and not form.is_valid():
        status = 400
    else:
        data = form.cleaned_data if share_post else initial
        try:
            result = analysis.bargain_analyse(c0=data["c0"], c1=data["c1"], r=data["r"], proposed=data.get("delta"))
        except AppError as exc:
            if share_post:
                add_app_error(form, exc)
                status = 400
        if result is not None and share_post and request.POST.get("action") == "agree":
            if data.get("delta") is None:
                form.add_error("delta", "Enter the share you agreed.")
                status = 400
            else:
                try:
                    revenue_share_record(
                        round=round, group=group, by=request.user,
                        delta=data["delta"], c0=data["c0"], c1=data["c1"], r=data["r"],
                    )
                except AppError as exc:
                    add_app_error(form, exc)
                    status = 400
                else:
                    messages.success(request, f"Agreed share recorded: the platform keeps {data['delta']:.4g} of resale revenue.")
                    return redirect("revenue_share", slug=round.slug, group_slug=group.slug)
    charts = _share_charts(result) if result is not None else (None, None)
    return render(
        request,
        "economics/revenue_share.html",
        {
            "round": round,
            "group": group,
            "share": share,
            "form": form,
            "result": result,
            "investments_chart": charts[0],
            "utilities_chart": charts[1],
            "is_staff": access.is_staff,
            "statement": statement,
            "listing_form": listing_form,
        },
        status=status,
    )
