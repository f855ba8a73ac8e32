"""Sponsored answers' pages: the advertiser group's campaigns (its admins only), a campaign's numbers per day, staff's
per-deployment switch, and the signed click redirect. Thin: parse, call one service or selector, render."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponseRedirect
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from marketplace.core.errors import AppError
from marketplace.forms import add_app_error
from marketplace.groups.selectors import membership_of
from marketplace.sponsored import selectors, services
from marketplace.sponsored.forms import CampaignForm, DeploymentForm


def _context(request, group, **extra):
    return {"group": group, "membership": membership_of(user=request.user, group=group), "tab": "ads", **extra}


@login_required
def campaign_list(request, slug: str):
    group = selectors.advertiser_group(user=request.user, slug=slug)
    return render(request, "sponsored/campaign_list.html", _context(
        request, group, campaigns=selectors.group_campaigns(group=group),
        invoices=selectors.group_ad_invoices(group=group)))


@login_required
@require_http_methods(["GET", "POST"])
def campaign_create(request, slug: str):
    group = selectors.advertiser_group(user=request.user, slug=slug)
    form = CampaignForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            campaign = services.campaign_create(group=group, by=request.user, data=form.to_input())
        except AppError as exc:
            add_app_error(form, exc)
        else:
            messages.success(request, "Campaign saved as a draft. Start it when the group has a card on file.")
            return redirect("campaign_detail", slug=group.slug, campaign_id=campaign.pk)
    return render(request, "sponsored/campaign_form.html", _context(request, group, form=form, campaign=None))


@login_required
@require_http_methods(["GET", "POST"])
def campaign_edit(request, slug: str, campaign_id: int):
    group = selectors.advertiser_group(user=request.user, slug=slug)
    campaign = selectors.campaign_of(group=group, campaign_id=campaign_id)
    form = CampaignForm(request.POST, currency=campaign.currency) if request.method == "POST" else CampaignForm.for_campaign(campaign)
    if request.method == "POST" and form.is_valid():
        try:
            services.campaign_update(campaign=campaign, by=request.user, data=form.to_input())
        except AppError as exc:
            add_app_error(form, exc)
        else:
            messages.success(request, "Campaign updated.")
            return redirect("campaign_detail", slug=group.slug, campaign_id=campaign.pk)
    return render(request, "sponsored/campaign_form.html", _context(request, group, form=form, campaign=campaign))


@login_required
@require_GET
def campaign_detail(request, slug: str, campaign_id: int):
    group = selectors.advertiser_group(user=request.user, slug=slug)
    campaign = selectors.campaign_of(group=group, campaign_id=campaign_id)
    return render(request, "sponsored/campaign_detail.html",
                  _context(request, group, report=selectors.campaign_report(campaign=campaign), campaign=campaign))


@login_required
@require_POST
def campaign_status(request, slug: str, campaign_id: int):
    group = selectors.advertiser_group(user=request.user, slug=slug)
    campaign = selectors.campaign_of(group=group, campaign_id=campaign_id)
    try:
        campaign = services.campaign_set_status(campaign=campaign, by=request.user, action=request.POST.get("action", ""))
    except AppError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Campaign {campaign.get_status_display().lower()}.")
    return redirect("campaign_detail", slug=group.slug, campaign_id=campaign.pk)


@require_GET
def sponsored_click(request, token: str):
    """Anyone with the link (the API user's own reader): no login. Forged links 404, expired ones 410."""
    return HttpResponseRedirect(services.click_record(token=token))


@login_required
@require_http_methods(["GET", "POST"])
def staff_deployments(request):
    rows = selectors.deployments_for_staff(user=request.user)
    if request.method == "POST":
        model = selectors.deployment_for_staff(user=request.user, model_id=request.POST.get("model_id", ""))
        form = DeploymentForm(request.POST)
        if form.is_valid():
            d = form.cleaned_data
            try:
                services.sponsored_settings_set(model=model, by=request.user, mode=d["mode"],
                                                users_may_opt_out=d["users_may_opt_out"],
                                                mosaic_candidates=d.get("mosaic_candidates"), mosaic_tau=d.get("mosaic_tau"),
                                                reserve_cents=d.get("reserve_cents"))
            except AppError as exc:
                messages.error(request, exc.message)
            else:
                messages.success(request, f"Ads on {model.model_id}: {d['mode']}.")
        else:
            messages.error(request, "Choose a mode; M is 2 to 64, τ is 0.001 to 1000 and the reserve 0 to 100000.")
        return redirect("staff_sponsored")
    return render(request, "sponsored/staff_deployments.html", {"rows": rows, "modes": DeploymentForm().fields["mode"].choices})
