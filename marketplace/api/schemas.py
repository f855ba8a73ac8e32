"""What the API sends and takes. Bid amounts appear only in BidOut, and only for a group's admins."""

from __future__ import annotations

from datetime import datetime

from ninja import Schema
from pydantic import Field

from marketplace.forms.bids import MAX_BID_CENTS


class ErrorDetail(Schema):
    code: str
    message: str
    field: str | None = None
    errors: list[str] | None = None


class ErrorOut(Schema):
    error: ErrorDetail


class RoundOut(Schema):
    slug: str
    title: str
    description: str
    status: str
    base_model: str
    kl_weight: float = Field(description="λ: currency units per nat of KL divergence from the base model.")
    candidates_per_prompt: int
    currency: str
    opens_at: datetime
    closes_at: datetime
    prompt_count: int
    participating_groups: int | None = Field(None, description="Groups that bid; null until bidding has closed.")


class MyGroupInRound(Schema):
    group_slug: str
    group_name: str
    role: str
    has_bid: bool
    preferences_version: int | None


class RoundDetailOut(RoundOut):
    prompts: list[str]
    my_groups: list[MyGroupInRound]


class GroupOut(Schema):
    slug: str
    name: str
    role: str


class PreferenceSubmissionOut(Schema):
    version: int
    kind: str
    row_count: int
    source_name: str
    submitted_by: str
    created_at: datetime


class PreferencesOut(Schema):
    current: PreferenceSubmissionOut | None
    version_count: int


class RubricPhrase(Schema):
    phrase: str
    weight: float


class BidIn(Schema):
    # strict: JSON true is not 1 cent and "150" is not 150; only a JSON integer in range is a bid.
    amount_cents: int = Field(
        strict=True, ge=1, le=MAX_BID_CENTS,
        description="The bid in minor units of the round's currency (cents), a JSON integer from 1 up to "
        "1,000,000 major units of the currency.",
    )


class BidOut(Schema):
    has_bid: bool
    amount_cents: int | None = Field(None, description="Only for the group's admins; null for other members.")
    currency: str | None = None
