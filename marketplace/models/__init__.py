from marketplace.accounts.models import ApiToken
from marketplace.billing.models import BillingCustomer, Payment, WebhookEvent
from marketplace.groups.models import Invitation, Membership, PreferenceGroup
from marketplace.rounds.models import Bid, PreferenceSubmission, Round
from marketplace.rounds.outcomes import AuctionOutcome, GroupOutcome

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
