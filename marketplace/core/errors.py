"""The errors services raise for people: a message they can act on, a stable code, optionally the field at fault.

They say what went wrong in the domain's terms (not found, not allowed, a conflict with the current state, gone,
payment refused, a service unavailable) and carry no HTTP status: the web layer maps each kind to a response in
one place (marketplace.web.errors), for pages and for the API alike.
"""

from __future__ import annotations


class AppError(Exception):
    """The request cannot be done as asked (bad input, or a rule refuses it)."""

    default_code = "invalid"

    def __init__(self, message: str, *, code: str | None = None, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.field = field


class NotAllowed(AppError):
    default_code = "forbidden"

    def __init__(self, message: str = "You do not have access to this.", *, code: str | None = None,
                 field: str | None = None) -> None:
        super().__init__(message, code=code, field=field)


class NotFound(AppError):
    """Also what outsiders get for things that exist but are not theirs: the answer never says which."""

    default_code = "not_found"

    def __init__(self, message: str = "Not found.", *, code: str | None = None, field: str | None = None) -> None:
        super().__init__(message, code=code, field=field)


class Conflict(AppError):
    """The thing is in a state that does not allow this now (a closed round, the last admin, a double submission)."""

    default_code = "conflict"


class Gone(AppError):
    """The thing existed but can no longer be used (a used, revoked or expired invitation)."""

    default_code = "gone"


class PaymentRefused(AppError):
    """The card was declined or needs an action the platform cannot take."""

    default_code = "card_declined"


class Unavailable(AppError):
    """An outside service (Stripe, the broker) is down; nothing was changed, trying again later works."""

    default_code = "unavailable"


class UnsupportedMedia(AppError):
    default_code = "unsupported_media_type"
