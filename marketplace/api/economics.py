"""A group's resale of its delivered model in the JSON API: its listing and its revenue statement (per day: tokens,
revenue, the platform's and the group's shares). The group's admins and staff only, through the same access check as
the revenue-share page (``deals.selectors.revenue_share_access``): other members get 403, everyone else 404."""

from __future__ import annotations

from datetime import date

from ninja import Router, Schema

from marketplace.api.schemas import ErrorOut
from marketplace.core.errors import Conflict
from marketplace.deals.selectors import ResaleStatement, resale_statement, revenue_share_access
from marketplace.delivery.services import resale_listing_set

router = Router()
ERRORS = {400: ErrorOut, 401: ErrorOut, 403: ErrorOut, 404: ErrorOut, 409: ErrorOut}


class ListingIn(Schema):
    listed: bool
    price_per_mtok_cents: int


class ListingOut(Schema):
    model: str | None
    listed: bool
    price_per_mtok_cents: int


class StatementDayOut(Schema):
    day: date
    requests: int
    tokens: int
    revenue_cents: int
    platform_cents: int
    group_cents: int


class StatementOut(Schema):
    round: str
    group: str
    currency: str
    delta: float
    delta_agreed: bool
    delta_proposed: float | None
    listing: ListingOut
    days: list[StatementDayOut]
    totals: dict[str, int]


def _listing_out(st: ResaleStatement) -> dict:
    listing = st.listing
    return {
        "model": st.model.model_id if st.model is not None else None,
        "listed": bool(listing and listing.listed),
        "price_per_mtok_cents": listing.price_per_mtok_cents if listing is not None else 0,
    }


def _statement_out(st: ResaleStatement) -> dict:
    return {
        "round": st.round.slug,
        "group": st.group.slug,
        "currency": st.currency,
        "delta": st.delta,
        "delta_agreed": st.delta_agreed,
        "delta_proposed": st.delta_proposed,
        "listing": _listing_out(st),
        "days": [d.__dict__ for d in st.days],
        "totals": st.totals,
    }


@router.get(
    "/rounds/{slug}/groups/{group_slug}/revenue", response={200: StatementOut, **ERRORS}, tags=["groups"],
    summary="Your group's resale revenue per day and its split (admins and staff)",
)
def revenue_statement(request, slug: str, group_slug: str):
    access = revenue_share_access(user=request.auth, round_slug=slug, group_slug=group_slug)
    return _statement_out(resale_statement(round=access.round, group=access.group))


@router.put(
    "/rounds/{slug}/groups/{group_slug}/resale", response={200: ListingOut, **ERRORS}, tags=["groups"],
    summary="List (or withdraw) your group's model for resale at a price per 1M tokens, in minor units",
)
def resale_listing_put(request, slug: str, group_slug: str, payload: ListingIn):
    access = revenue_share_access(user=request.auth, round_slug=slug, group_slug=group_slug)
    statement = resale_statement(round=access.round, group=access.group)
    if statement.model is None:
        raise Conflict("The model is not published yet.", code="no_model")
    resale_listing_set(
        user=request.auth, model=statement.model, group=access.group,
        listed=payload.listed, price_per_mtok_cents=payload.price_per_mtok_cents,
    )
    return _listing_out(resale_statement(round=access.round, group=access.group))
