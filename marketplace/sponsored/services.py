"""Writing sponsored answers' data: campaigns (by the advertiser group's admins), deployments' ad settings (staff),
clicks through the signed link, and the billing of click spend.

Campaign statuses move only by ``compare_and_set`` against ``Campaign.TRANSITIONS``. A campaign's daily spend moves
only under its ``CampaignDaily`` row lock, so two clicks at once can never spend past the daily budget.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, timedelta

from django.conf import settings
from django.core import signing
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, Max, Q, Sum
from django.utils import timezone

from marketplace.billing import stripe_gateway as gateway
from marketplace.billing.models import BillingCustomer
from marketplace.core import currency as money
from marketplace.core.errors import AppError, Conflict, Gone, NotAllowed, NotFound, Unavailable
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
    """activate (needs the group's card on file and no unpaid ad invoice), pause, or end. A repeated click finds the
    move done and is refused with a message, never applied twice.

    Activating first retries, with the card now on file, any failed ad invoice whose card has changed since it
    failed (``ad_invoices_retry``): the debt is recovered before the group's ads run again."""
    advertiser_require_admin(user=by, group=campaign.group)
    if action == "activate":
        customer = BillingCustomer.objects.filter(group=campaign.group).first()
        if customer is None or not customer.has_card:
            raise AppError("Add a card on the group's billing page first: clicks are charged to it.", code="no_card")
        _require_no_failed_invoice(group=campaign.group)
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


def _require_no_failed_invoice(*, group: PreferenceGroup) -> None:
    """Refuse while the group owes a failed ad invoice; a card changed since the failure is charged for it first."""
    try:
        ad_invoices_retry(group=group)
    except gateway.GatewayUnavailable:
        raise Unavailable("The payment provider cannot be reached to retry the failed ad charge; nothing was changed. "
                          "Please try again in a minute.", code="payment_unavailable") from None
    unpaid = AdInvoice.objects.filter(group=group, status=AdInvoice.Status.FAILED).order_by("period").first()
    if unpaid is None:
        return
    owed = money.format_money(unpaid.amount_cents, unpaid.currency)
    raise AppError(
        f"The ad charge of {owed} for {unpaid.period:%d %b %Y} failed ({unpaid.failure_message.rstrip('.')}). "
        "Update the card on the group's billing page: the charge is retried with the new card, then the campaign "
        "can start.", code="unpaid_ad_invoice")


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
    """Follow a signed click link: log the click once per impression and return the landing URL the ad showed.

    1. Verify the signature and the expiry (click_impression).
    2. In one transaction: mark the impression clicked only if it was not (``clicked_at IS NULL`` in the UPDATE), so
       a second click, a reload or two clicks at once log one click and charge once.
    3. Decide whether the click is billable: its campaign still runs (active or exhausted; a click on an ended or
       paused campaign is free), and the API user the ad was shown to has not already had
       ``SPONSORED_MAX_BILLED_CLICKS_PER_USER_DAY`` billed clicks on this campaign today (counted under the day row's
       lock, so two clicks at once cannot both slip under the cap).
    4. Count the click in the day and charge a billable one min(price, budget left) (``spend_add``), which stops
       the campaign for the day when what is left cannot pay another click at the bid.
    The redirect goes to the landing URL copied onto the impression when it was served, never to anything the link
    carries and never to an address the advertiser put on the campaign afterwards.
    """
    impression = click_impression(token=token)
    if not impression.landing_url:
        raise NotFound("Not found.")  # only a row made outside ad_serve lacks one: no address to vouch for
    day = today()
    with transaction.atomic():
        first = Impression.objects.filter(pk=impression.pk, clicked_at__isnull=True).update(
            clicked_at=timezone.now(), click_day=day
        )
        if first:
            # Every first click is counted in the day; only a billable one costs its price.
            cents = impression.price_per_click_cents if _billable(impression=impression, day=day) else 0
            charge = spend_add(campaign_id=impression.campaign_id, cents=cents, day=day, clicks=1)
            if charge:
                Impression.objects.filter(pk=impression.pk).update(charged_cents=charge, charge_day=day)
    return impression.landing_url


def _billable(*, impression: Impression, day: date) -> bool:
    """Whether a first click on this impression is charged. Call inside the click's transaction."""
    if impression.kind != Impression.Kind.CLICK or impression.price_per_click_cents <= 0:
        return False  # a MOSAIC impression was paid with its answer; a zero price costs nothing anyway
    status = Campaign.objects.filter(pk=impression.campaign_id).values_list("status", flat=True).first()
    if status not in (C.ACTIVE, C.EXHAUSTED):
        return False  # ended or paused since the ad was shown: the advertiser stopped paying for it
    if impression.requested_by_id is None:
        return True
    daily_row(campaign_id=impression.campaign_id, day=day)
    CampaignDaily.objects.select_for_update().get(campaign_id=impression.campaign_id, day=day)
    billed = Impression.objects.filter(campaign_id=impression.campaign_id, requested_by_id=impression.requested_by_id,
                                       click_day=day, charged_cents__gt=0).count()
    return billed < settings.SPONSORED_MAX_BILLED_CLICKS_PER_USER_DAY


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
    status: str  # "nothing", "below_minimum", "paid", "failed", "charging", "already", "no_card"


# An invoice still charging this long after its last write was left by a run that died, ran out of retries or saw
# Stripe "processing": the next billing run takes it up again (finding any charge by its key, never charging twice).
CHARGING_GRACE = timedelta(minutes=15)


def invoice_key(*, group_id: int, period: date, currency: str, attempt: int = 1) -> str:
    base = f"ads-group-{group_id}-{period.isoformat()}-{currency}"
    return base if attempt == 1 else f"{base}-attempt-{attempt}"


def _unbilled(*, group_id: int, through: date):
    """The group's charged impressions of days up to ``through`` that no invoice carries yet (carried over when a
    day's total was below Stripe's minimum charge)."""
    return Impression.objects.filter(campaign__group_id=group_id, charge_day__lte=through, invoice__isnull=True,
                                     charged_cents__gt=0)


def groups_to_bill(*, before: date) -> list[tuple[int, str]]:
    """(group id, period ISO date) pairs the billing run takes up:

    - a group with charges (clicks, MOSAIC answers) of finished days not yet invoiced, at its latest such day (the
      invoice carries the earlier days too);
    - an invoice still ``charging`` after ``CHARGING_GRACE`` (a run died, retries ran out, Stripe said processing);
    - a ``failed`` invoice whose group has had a different card put on file since it failed."""
    rows = (Impression.objects.filter(charge_day__lt=before, invoice__isnull=True, charged_cents__gt=0)
            .values("campaign__group_id").annotate(latest=Max("charge_day"))
            .values_list("campaign__group_id", "latest"))
    pairs = {(g, d.isoformat()) for g, d in rows if d is not None}
    stuck = AdInvoice.objects.filter(status=AdInvoice.Status.CHARGING,
                                     updated_at__lt=timezone.now() - CHARGING_GRACE).values_list("group_id", "period")
    pairs |= {(g, d.isoformat()) for g, d in stuck}
    pairs |= {(g, d.isoformat()) for g, d in _retryable().values_list("group_id", "period")}
    return sorted(pairs)


def _retryable():
    """Failed invoices whose group's card on file is not the one they failed with (a card added or replaced)."""
    return (AdInvoice.objects.filter(status=AdInvoice.Status.FAILED, group__billing__payment_method_id__gt="")
            .exclude(failed_payment_method_id=F("group__billing__payment_method_id")))


def ad_invoices_retry(*, group: PreferenceGroup) -> list[BillingResult]:
    """Charge the group's failed ad invoices again with its card on file, where that card changed since they failed."""
    return [_bill_one(group=group, period=p, currency=c)
            for p, c in _retryable().filter(group=group).order_by("period").values_list("period", "currency")]


def ads_bill_group(*, group: PreferenceGroup, period: date) -> list[BillingResult]:
    """Charge the group's unbilled clicks and MOSAIC answers up to ``period`` (a finished day), one invoice per
    currency; take up its invoices of ``period`` left charging, or failed while a new card is on file.

    1. Under the group's row lock, find the invoice of (group, period, currency) or create it: the unbilled charges
       of ``period`` and earlier days, rounded down to an amount Stripe takes (``charge_floor``). Below Stripe's
       minimum charge (``currency.minimum_charge``) no invoice is made: the charges stay unbilled and go on a later
       day's invoice. The amount is fixed and the impressions attached before Stripe hears of it.
    2. A failed invoice whose group's card changed since moves back to charging (failed -> charging) with a new
       attempt and so a new idempotency key: Stripe would replay the old key's refusal.
    3. Charge the saved card off-session with the invoice's key. A run that crashed after Stripe charged finds the
       charge by its key (``payment_intent_find``) instead of charging again; a paid invoice is not charged again.
    4. A declined card, or a refusal that retrying cannot fix (``GatewayError``), fails the invoice with a message
       and pauses the group's running campaigns; Stripe unreachable (``GatewayUnavailable``) propagates so the task
       retries, and a charge Stripe reports as processing stays charging for a later run to check.
    """
    unbilled = set(_unbilled(group_id=group.pk, through=period).values_list("currency", flat=True))
    open_ = set(AdInvoice.objects.filter(group=group, period=period, status=AdInvoice.Status.CHARGING)
                .values_list("currency", flat=True))
    retry = set(_retryable().filter(group=group, period=period).values_list("currency", flat=True))
    return [_bill_one(group=group, period=period, currency=cur) for cur in sorted(unbilled | open_ | retry)]


def _bill_one(*, group: PreferenceGroup, period: date, currency: str) -> BillingResult:
    with transaction.atomic():
        PreferenceGroup.objects.select_for_update().get(pk=group.pk)
        customer = BillingCustomer.objects.filter(group=group).first()
        invoice = AdInvoice.objects.filter(group=group, period=period, currency=currency).first()
        if invoice is None:
            pending = _unbilled(group_id=group.pk, through=period).filter(currency=currency)
            total = int(pending.aggregate(total=Sum("charged_cents"))["total"] or 0)
            if total <= 0:
                return BillingResult(None, "nothing")
            # Three-decimal currencies charge multiples of 10: the last fraction is not charged (never a cent more).
            amount = money.charge_floor(total, currency)
            if amount < money.minimum_charge(currency):
                return BillingResult(None, "below_minimum")  # the impressions stay unbilled: a later invoice takes them
            key = invoice_key(group_id=group.pk, period=period, currency=currency)
            try:
                with transaction.atomic():
                    invoice = AdInvoice.objects.create(group=group, period=period, currency=currency,
                                                       amount_cents=amount, idempotency_key=key)
            except IntegrityError:
                invoice = AdInvoice.objects.get(idempotency_key=key)
            else:
                pending.update(invoice=invoice)
        elif (invoice.status == AdInvoice.Status.FAILED and customer is not None and customer.has_card
              and customer.payment_method_id != invoice.failed_payment_method_id):
            attempt = invoice.attempt + 1
            compare_and_set(AdInvoice, pk=invoice.pk, from_status=AdInvoice.Status.FAILED,
                            to_status=AdInvoice.Status.CHARGING, where=Q(attempt=invoice.attempt), attempt=attempt,
                            idempotency_key=invoice_key(group_id=group.pk, period=period, currency=currency,
                                                        attempt=attempt),
                            stripe_payment_intent_id="", failure_message="", updated_at=timezone.now())
            invoice.refresh_from_db()
    if invoice.status != AdInvoice.Status.CHARGING:
        return BillingResult(invoice, "already")
    if customer is None or not customer.has_card:
        _fail(invoice, "No card on file when the clicks were billed.", payment_method_id="")
        return BillingResult(invoice, "no_card")
    card = customer.payment_method_id
    key = invoice.idempotency_key
    try:
        pi = gateway.payment_intent_find(customer_id=customer.stripe_customer_id, idempotency_key=key)
        if pi is None:
            pi = gateway.charge_create(
                customer_id=customer.stripe_customer_id, payment_method_id=card,
                amount_cents=invoice.amount_cents, currency=currency, idempotency_key=key,
                metadata={"ad_invoice_id": str(invoice.pk), "group_id": str(group.pk), "period": period.isoformat()},
            )
    except gateway.CardDeclined as exc:
        _fail(invoice, f"The card was declined: {exc.decline_code or exc.message}.", payment_method_id=card)
        return BillingResult(invoice, "failed")
    except gateway.GatewayUnavailable:
        raise  # the task retries with backoff; past its retries the invoice stays charging for a later run
    except gateway.GatewayError as exc:
        _fail(invoice, f"The payment provider refused the charge: {exc.message}", payment_method_id=card)
        return BillingResult(invoice, "failed")
    if pi.status == "succeeded":
        compare_and_set(AdInvoice, pk=invoice.pk, from_status=AdInvoice.Status.CHARGING, to_status=AdInvoice.Status.PAID,
                        stripe_payment_intent_id=pi.id, updated_at=timezone.now())
        invoice.refresh_from_db()
        return BillingResult(invoice, "paid")
    if pi.status == "processing":
        # The bank has not answered yet: a later run (after CHARGING_GRACE) finds it by its key and finishes it.
        AdInvoice.objects.filter(pk=invoice.pk).update(stripe_payment_intent_id=pi.id, updated_at=timezone.now())
        invoice.refresh_from_db()
        return BillingResult(invoice, "charging")
    # requires_payment_method (declined), requires_action (the bank wants the cardholder, who is not there), canceled
    AdInvoice.objects.filter(pk=invoice.pk).update(stripe_payment_intent_id=pi.id)
    message = pi.error_message or ("The bank asks the cardholder to confirm the payment." if pi.status ==
                                   "requires_action" else "The card was declined.")
    _fail(invoice, message, payment_method_id=card)
    return BillingResult(invoice, "failed")


def _fail(invoice: AdInvoice, message: str, *, payment_method_id: str) -> None:
    """Fail the invoice, noting the card it failed with (a different card later retries it), and pause the group's
    running campaigns with a message for its admins."""
    compare_and_set(AdInvoice, pk=invoice.pk, from_status=AdInvoice.Status.CHARGING, to_status=AdInvoice.Status.FAILED,
                    failure_message=message[:500], failed_payment_method_id=payment_method_id,
                    updated_at=timezone.now())
    note = f"Paused: billing for {invoice.period:%d %b %Y} failed ({message.rstrip('.')}). Update the card, then resume."
    for pk in Campaign.objects.filter(group_id=invoice.group_id, status__in=[C.ACTIVE, C.EXHAUSTED]).values_list("pk", flat=True):
        compare_and_set(Campaign, pk=pk, from_status=[C.ACTIVE, C.EXHAUSTED], to_status=C.PAUSED,
                        status_message=note[:300])
    invoice.refresh_from_db()
