from marketplace.models.billing import BillingCustomer, Payment, WebhookEvent
from marketplace.models.groups import Invitation, Membership, PreferenceGroup
from marketplace.models.outcomes import AuctionOutcome, GroupOutcome
from marketplace.models.rounds import Bid, PreferenceSubmission, Round
from marketplace.models.tokens import ApiToken

__all__ = [
    "ApiToken",
    "AuctionOutcome",
    "Bid",
    "BillingCustomer",
    "GroupOutcome",
    "Invitation",
    "Membership",
    "Payment",
    "PreferenceGroup",
    "PreferenceSubmission",
    "Round",
    "WebhookEvent",
]
