"""Writing sponsored answers' data: campaigns (by the advertiser group's admins), deployments' ad settings (staff),
clicks through the signed link, and the billing of click spend.

Campaign statuses move only by ``compare_and_set`` against ``Campaign.TRANSITIONS``. A campaign's daily spend moves
only under its ``CampaignDaily`` row lock, so two clicks at once can never spend past the daily budget.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date

from django.conf import settings
from django.core import signing
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, Sum
from django.utils import timezone

from marketplace.billing import stripe_gateway as gateway
from marketplace.billing.models import BillingCustomer
from marketplace.core import currency as money
from marketplace.core.errors import AppError, Conflict, Gone, NotAllowed, NotFound
from marketplace.core.transitions import compare_and_set
from marketplace.delivery.models import FineTunedModel
from marketplace.groups.models import PreferenceGroup
from marketplace.groups.selectors import is_group_admin, membership_of
from marketplace.sponsored.models import (
    AD_TEXT_MAX,
    AdInvoice,
    Campaign,
    CampaignDaily,
    Impression,
    SponsoredSettings,
    landing_url_validator,
)

log = logging.getLogger(__name__)
C = Campaign.Status
CLICK_SALT = "marketplace.sponsored.click"
MAX_BID_CENTS = 100_000  # 1,000.00 per click: a typo guard, not a business rule
MAX_BUDGET_CENTS = 100_000_000


def today() -> date:
    return timezone.localdate()


# --- who may act --------------------------------------------------------------------------------------------------


def advertiser_require_admin(*, user, group: PreferenceGroup) -> None:
    """Outsiders get NotFound (the group stays hidden); members who are not admins get NotAllowed."""
    if membership_of(user=user, group=group) is None:
        raise NotFound("Group not found.")
    if not is_group_admin(user=user, group=group):
        raise NotAllowed("Only the group's admins run its ad campaigns.")


def _require_staff(user) -> None:
    if not (getattr(user, "is_authenticated", False) and user.is_staff):
        raise NotFound("Not found.")


# --- campaigns ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CampaignInput:
    name: str
    ad_text: str
    landing_url: str
    bid_cents: int
    daily_budget_cents: int
    reward_bid_cents: int = 0


def _clean(data: CampaignInput) -> CampaignInput:
    name = (data.name or "").strip()
    text = " ".join((data.ad_text or "").split())
    url = (data.landing_url or "").strip()
    if not name or len(name) > 80:
        raise AppError("Give the campaign a name of at most 80 characters.", code="bad_name", field="name")
    if not text or len(text) > AD_TEXT_MAX:
        raise AppError(f"The ad text must be 1 to {AD_TEXT_MAX} characters.", code="bad_ad_text", field="ad_text")
    try:
        landing_url_validator(url)
    except ValidationError:
        raise AppError("The landing page must be an http:// or https:// address.", code="bad_landing_url",
                       field="landing_url") from None
    if len(url) > 500:
        raise AppError("The landing page address is too long (500 characters at most).", code="bad_landing_url",
                       field="landing_url")
    if isinstance(data.bid_cents, bool) or not 1 <= int(data.bid_cents) <= MAX_BID_CENTS:
        raise AppError("The bid per click must be more than zero and at most 1,000.", code="bad_bid", field="bid")
    if isinstance(data.daily_budget_cents, bool) or not 1 <= int(data.daily_budget_cents) <= MAX_BUDGET_CENTS:
        raise AppError("The daily budget must be more than zero.", code="bad_budget", field="daily_budget")
    if int(data.daily_budget_cents) < int(data.bid_cents):
        raise AppError("The daily budget must cover at least one click at the bid.", code="bad_budget",
                       field="daily_budget")
    if isinstance(data.reward_bid_cents, bool) or not 0 <= int(data.reward_bid_cents) <= MAX_BID_CENTS:
        raise AppError("The bid per answer must be between zero (not in MOSAIC) and 1,000.", code="bad_bid",
                       field="reward_bid")
    return CampaignInput(name=name, ad_text=text, landing_url=url, bid_cents=int(data.bid_cents),
                         daily_budget_cents=int(data.daily_budget_cents), reward_bid_cents=int(data.reward_bid_cents))


def campaign_create(*, group: PreferenceGroup, by, data: CampaignInput) -> Campaign:
    """A draft campaign in the platform's ad currency (every deployment's auction compares bids in one currency)."""
    advertiser_require_admin(user=by, group=group)
    clean = _clean(data)
    return Campaign.objects.create(group=group, created_by=by, currency=money.normalise(settings.SPONSORED_CURRENCY),
                                   **clean.__dict__)


def campaign_update(*, campaign: Campaign, by, data: CampaignInput) -> Campaign:
    """Edit text, link, bid or budget; an ended campaign stays as it was. Impressions already shown keep their price."""
    advertiser_require_admin(user=by, group=campaign.group)
    clean = _clean(data)
    changed = Campaign.objects.filter(pk=campaign.pk).exclude(status=C.ENDED).update(**clean.__dict__,
                                                                                      updated_at=timezone.now())
    if not changed:
        raise Conflict("An ended campaign cannot be changed.")
    campaign.refresh_from_db()
    return campaign


def campaign_set_status(*, campaign: Campaign, by, action: str) -> Campaign:
    """activate (needs the group's card on file), pause, or end. A repeated click finds the move done and is refused
    with a message, never applied twice."""
    advertiser_require_admin(user=by, group=campaign.group)
    if action == "activate":
        customer = BillingCustomer.objects.filter(group=campaign.group).first()
        if customer is None or not customer.has_card:
            raise AppError("Add a card on the group's billing page first: clicks are charged to it.", code="no_card")
        moved = compare_and_set(Campaign, pk=campaign.pk, from_status=[C.DRAFT, C.PAUSED], to_status=C.ACTIVE,
                                status_message="")
    elif action == "pause":
        moved = compare_and_set(Campaign, pk=campaign.pk, from_status=[C.ACTIVE, C.EXHAUSTED], to_status=C.PAUSED,
                                status_message="Paused by an admin.")
    elif action == "end":
        moved = compare_and_set(Campaign, pk=campaign.pk, from_status=[C.DRAFT, C.ACTIVE, C.PAUSED, C.EXHAUSTED],
                                to_status=C.ENDED)
    else:
        raise AppError("Unknown action.", code="bad_action", field="action")
    if not moved:
        campaign.refresh_from_db()
        raise Conflict(f"The campaign is {campaign.get_status_display().lower()}; that change does not apply now.")
    campaign.refresh_from_db()
    return campaign


# --- deployments (staff) ------------------------------------------------------------------------------------------

MAX_RESERVE_CENTS = 100_000  # 1,000 currency units per click: anything above is a typo, not a price


def sponsored_settings_set(*, model: FineTunedModel, by, mode: str, users_may_opt_out: bool,
                           mosaic_candidates: int | None = None, mosaic_tau: float | None = None,
                           reserve_cents: int | None = None) -> SponsoredSettings:
    _require_staff(by)
    if mode not in SponsoredSettings.Mode.values:
        raise AppError("Choose off, segment or mosaic.", code="bad_mode", field="mode")
    defaults: dict = {"mode": mode, "users_may_opt_out": bool(users_may_opt_out)}
    if mosaic_candidates is not None:
        if not 2 <= int(mosaic_candidates) <= 64:
            raise AppError("M must be between 2 and 64.", code="bad_m", field="mosaic_candidates")
        defaults["mosaic_candidates"] = int(mosaic_candidates)
    if mosaic_tau is not None:
        if not 1e-3 <= float(mosaic_tau) <= 1e3:
            raise AppError("τ must be between 0.001 and 1000.", code="bad_tau", field="mosaic_tau")
        defaults["mosaic_tau"] = float(mosaic_tau)
    if reserve_cents is not None:
        if not 0 <= int(reserve_cents) <= MAX_RESERVE_CENTS:
            raise AppError(f"The reserve price is 0 to {MAX_RESERVE_CENTS} minor units per click.", code="bad_reserve",
                           field="reserve_cents")
        defaults["reserve_cents"] = int(reserve_cents)
    row, _ = SponsoredSettings.objects.update_or_create(model=model, defaults=defaults)
    return row


# --- the signed click link ----------------------------------------------------------------------------------------


def click_token(*, impression: Impression) -> str:
    return signing.dumps({"i": impression.pk}, salt=CLICK_SALT, compress=True)


def click_impression(*, token: str) -> Impression:
    """The impression a link names; NotFound for a forged or mangled link, Gone for an expired one."""
    try:
        data = signing.loads(token, salt=CLICK_SALT, max_age=settings.SPONSORED_CLICK_TTL_S)
    except signing.SignatureExpired:
        raise Gone("This sponsored link has expired.") from None
    except signing.BadSignature:
        raise NotFound("Not found.") from None
    pk = data.get("i") if isinstance(data, dict) else None
    impression = Impression.objects.select_related("campaign").filter(pk=pk).first() if isinstance(pk, int) else None
    if impression is None:
        raise NotFound("Not found.")
    return impression


def daily_row(*, campaign_id: int, day: date) -> CampaignDaily:
    row, _ = CampaignDaily.objects.get_or_create(campaign_id=campaign_id, day=day)
    return row


def click_record(*, token: str) -> str:
    """Follow a signed click link: log the click once per impression and return the campaign's own landing URL.

    1. Verify the signature and the expiry (click_impression).
    2. In one transaction: mark the impression clicked only if it was not (``clicked_at IS NULL`` in the UPDATE), so
       a second click, a reload or two clicks at once log one click and charge once.
    3. Lock the campaign's row for the day, charge min(price, budget left), add the click.
    4. If what is left cannot pay another click at the bid, stop the campaign for the day (active -> exhausted).
    The redirect goes to the campaign's landing URL as stored, never to anything the link carries.
    """
    impression = click_impression(token=token)
    campaign = impression.campaign
    day = today()
    with transaction.atomic():
        first = Impression.objects.filter(pk=impression.pk, clicked_at__isnull=True).update(
            clicked_at=timezone.now(), click_day=day
        )
        if first:
            # A MOSAIC impression was paid with its answer: its price per click is 0, so the click is free.
            charge = spend_add(campaign_id=campaign.pk, cents=impression.price_per_click_cents, day=day, clicks=1)
            if charge:
                Impression.objects.filter(pk=impression.pk).update(charged_cents=charge, charge_day=day)
    return campaign.landing_url


def spend_add(*, campaign_id: int, cents: int, day: date, clicks: int = 0) -> int:
    """Add a charge to the campaign's day, capped by what is left of its daily budget; returns what was charged.

    Under the day row's lock, so two charges at once never pass the budget. When what is left cannot pay one more
    click at the bid, the campaign is stopped for the day (active -> exhausted). Call inside a transaction."""
    daily_row(campaign_id=campaign_id, day=day)
    row = CampaignDaily.objects.select_for_update().get(campaign_id=campaign_id, day=day)
    campaign = Campaign.objects.get(pk=campaign_id)
    left = max(0, campaign.daily_budget_cents - row.spend_cents)
    charge = min(max(0, int(cents)), left)
    CampaignDaily.objects.filter(pk=row.pk).update(clicks=F("clicks") + clicks, spend_cents=F("spend_cents") + charge)
    if left - charge < campaign.bid_cents:
        compare_and_set(Campaign, pk=campaign.pk, from_status=C.ACTIVE, to_status=C.EXHAUSTED, exhausted_on=day,
                        status_message="The daily budget is spent; the campaign runs again tomorrow.")
    return charge


# --- billing ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BillingResult:
    invoice: AdInvoice | None
    status: str  # "nothing", "paid", "failed", "already", "no_card"


def invoice_key(*, group_id: int, period: date, currency: str) -> str:
    return f"ads-group-{group_id}-{period.isoformat()}-{currency}"


def groups_to_bill(*, before: date) -> list[tuple[int, str]]:
    """(group id, period ISO date) pairs with charges (clicks, MOSAIC answers) on finished days not yet invoiced."""
    rows = (Impression.objects.filter(charge_day__lt=before, invoice__isnull=True, charged_cents__gt=0)
            .values_list("campaign__group_id", "charge_day").distinct())
    return sorted({(g, d.isoformat()) for g, d in rows if d is not None})


def ads_bill_group(*, group: PreferenceGroup, period: date) -> list[BillingResult]:
    """Charge the group's unbilled clicks and MOSAIC answers of ``period`` (a finished day), one invoice per currency.

    1. Under the group's row lock, find or create the invoice by its key (group, period, currency) and attach the
       day's unbilled charged impressions to it: the amount is fixed before Stripe hears of it.
    2. Charge the saved card off-session with that key. A run that crashed after Stripe charged finds the charge by
       its key (``payment_intent_find``) instead of charging again; a paid or failed invoice is not charged again.
    3. A declined card fails the invoice and pauses the group's running campaigns with a message for its admins.
    """
    results = []
    currencies = sorted(set(Impression.objects.filter(campaign__group=group, charge_day=period, invoice__isnull=True,
                                                      charged_cents__gt=0).values_list("currency", flat=True))
                        | set(AdInvoice.objects.filter(group=group, period=period, status=AdInvoice.Status.CHARGING)
                              .values_list("currency", flat=True)))
    for cur in currencies:
        results.append(_bill_one(group=group, period=period, currency=cur))
    return results


def _bill_one(*, group: PreferenceGroup, period: date, currency: str) -> BillingResult:
    key = invoice_key(group_id=group.pk, period=period, currency=currency)
    with transaction.atomic():
        PreferenceGroup.objects.select_for_update().get(pk=group.pk)
        invoice = AdInvoice.objects.filter(idempotency_key=key).first()
        if invoice is None:
            pending = Impression.objects.filter(campaign__group=group, charge_day=period, currency=currency,
                                                invoice__isnull=True, charged_cents__gt=0)
            amount = int(pending.aggregate(total=Sum("charged_cents"))["total"] or 0)
            if amount <= 0:
                return BillingResult(None, "nothing")
            try:
                with transaction.atomic():
                    invoice = AdInvoice.objects.create(group=group, period=period, currency=currency,
                                                       amount_cents=amount, idempotency_key=key)
            except IntegrityError:
                invoice = AdInvoice.objects.get(idempotency_key=key)
            else:
                pending.update(invoice=invoice)
    if invoice.status != AdInvoice.Status.CHARGING:
        return BillingResult(invoice, "already")
    customer = BillingCustomer.objects.filter(group=group).first()
    if customer is None or not customer.has_card:
        _fail(invoice, "No card on file when the clicks were billed.")
        return BillingResult(invoice, "no_card")
    pi = gateway.payment_intent_find(customer_id=customer.stripe_customer_id, idempotency_key=key)
    if pi is None:
        try:
            pi = gateway.charge_create(
                customer_id=customer.stripe_customer_id, payment_method_id=customer.payment_method_id,
                amount_cents=invoice.amount_cents, currency=currency, idempotency_key=key,
                metadata={"ad_invoice_id": str(invoice.pk), "group_id": str(group.pk), "period": period.isoformat()},
            )
        except gateway.CardDeclined as exc:
            _fail(invoice, f"The card was declined: {exc.decline_code or exc.message}.")
            return BillingResult(invoice, "failed")
    if pi.status == "succeeded":
        compare_and_set(AdInvoice, pk=invoice.pk, from_status=AdInvoice.Status.CHARGING, to_status=AdInvoice.Status.PAID,
                        stripe_payment_intent_id=pi.id)
        invoice.refresh_from_db()
        return BillingResult(invoice, "paid")
    if pi.status == "requires_payment_method":
        AdInvoice.objects.filter(pk=invoice.pk).update(stripe_payment_intent_id=pi.id)
        _fail(invoice, pi.error_message or "The card was declined.")
        return BillingResult(invoice, "failed")
    # processing: the next run finds it by its key and finishes it
    AdInvoice.objects.filter(pk=invoice.pk).update(stripe_payment_intent_id=pi.id)
    return BillingResult(invoice, "charging")


def _fail(invoice: AdInvoice, message: str) -> None:
    compare_and_set(AdInvoice, pk=invoice.pk, from_status=AdInvoice.Status.CHARGING, to_status=AdInvoice.Status.FAILED,
                    failure_message=message[:500])
    note = f"Paused: billing for {invoice.period:%d %b %Y} failed ({message.rstrip('.')}). Update the card, then resume."
    for pk in Campaign.objects.filter(group_id=invoice.group_id, status__in=[C.ACTIVE, C.EXHAUSTED]).values_list("pk", flat=True):
        compare_and_set(Campaign, pk=pk, from_status=[C.ACTIVE, C.EXHAUSTED], to_status=C.PAUSED,
                        status_message=note[:300])
    invoice.refresh_from_db()
