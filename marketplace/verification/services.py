"""E-mail verification: a signed, expiring link mailed at sign-up; an unconfirmed account may not act for a group.

The link's token is ``django.core.signing`` over (user id, address) with its own salt, valid for
settings.EMAIL_VERIFICATION_TTL_HOURS; nothing secret is stored. Confirming deletes the account's PendingVerification
row (marketplace.verification.models), so the link works once.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import signing
from django.core.cache import cache
from django.core.mail import send_mail
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from marketplace.core.errors import Gone, NotAllowed
from marketplace.verification.models import PendingVerification

log = logging.getLogger(__name__)
SALT = "marketplace.verification.email"
UNVERIFIED = (
    "Confirm your e-mail address first: open the link we sent to {email}. "
    "Until then you cannot join, create or act for a group. No e-mail? Ask for a new link at {resend}"
)
# What the resend page answers, whatever happened: it never tells whether an address has an account.
RESENT = (
    "If an account with that address is waiting for confirmation, a new link is on its way. "
    "Links are sent at most once every {minutes} minutes per address."
)
BAD_LINK = "This confirmation link is not valid or has expired. Sign up again with the same address to get a new one."


def email_is_verified(*, user) -> bool:
    return not PendingVerification.objects.filter(user_id=user.pk).exists()


def require_verified_email(*, user) -> None:
    """Refuse (NotAllowed, code "email_unverified") an account whose address is not confirmed yet."""
    if getattr(user, "is_authenticated", False) and not email_is_verified(user=user):
        resend = f"{settings.SITE_URL.rstrip('/')}{reverse('verification_resend')}"
        raise NotAllowed(UNVERIFIED.format(email=user.email, resend=resend), code="email_unverified")


def verification_token(*, user, next_path: str = "") -> str:
    return signing.dumps({"u": user.pk, "e": user.email.lower(), "n": next_path}, salt=SALT, compress=True)


def verification_url(*, user, next_path: str = "") -> str:
    path = reverse("verify_email", kwargs={"token": verification_token(user=user, next_path=next_path)})
    return f"{settings.SITE_URL.rstrip('/')}{path}"


def verification_begin(*, user, next_path: str = "") -> None:
    """Mark a new account unconfirmed and mail it the link. A mail server that is down is logged, not raised:
    signing up again with the same address sends a new link."""
    PendingVerification.objects.get_or_create(user=user)
    verification_mail(user=user, next_path=next_path)


def verification_mail(*, user, next_path: str = "") -> None:
    try:
        send_mail(
            subject="Confirm your e-mail address for Tunemarket",
            message=(
                "Open this link to confirm your address and finish creating your Tunemarket account:\n"
                f"{verification_url(user=user, next_path=next_path)}\n\n"
                f"The link works for {settings.EMAIL_VERIFICATION_TTL_HOURS} hours. "
                "If you did not sign up, ignore this message."
            ),
            from_email=settings.DEFAULT_FROM_EMAIL,
            recipient_list=[user.email],
        )
    except OSError:
        log.exception("could not send the confirmation e-mail to user %s", user.pk)
        return
    PendingVerification.objects.filter(user=user).update(last_sent_at=timezone.now())


def verification_resend(*, email: str, client: str = "") -> bool:
    """Mail a new confirmation link to the unconfirmed account of ``email``, if there is one; True if a mail went out.

    Callers show ``RESENT`` whatever this returns, so the page cannot tell a registered address from another.
    Two limits keep it from being a mail cannon: one link per address per EMAIL_VERIFICATION_RESEND_INTERVAL_S
    (claimed by one conditional UPDATE of ``last_sent_at``, so two requests at once send one mail), and
    EMAIL_VERIFICATION_RESEND_PER_CLIENT_HOUR requests per client address and hour (Django's cache, fixed window).
    """
    if client and not _client_allowed(client):
        return False
    user = get_user_model().objects.filter(email__iexact=(email or "").strip(), is_active=True).first()
    if user is None:
        return False
    now = timezone.now()
    due = now - timedelta(seconds=settings.EMAIL_VERIFICATION_RESEND_INTERVAL_S)
    claimed = PendingVerification.objects.filter(
        Q(last_sent_at__isnull=True) | Q(last_sent_at__lt=due), user=user
    ).update(last_sent_at=now)
    if claimed != 1:
        return False  # confirmed already, or a link went out a moment ago
    verification_mail(user=user)
    return True


def _client_allowed(client: str) -> bool:
    key = f"verification-resend:{client}"
    cache.add(key, 0, timeout=3600)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.add(key, 1, timeout=3600)
        count = 1
    return count <= settings.EMAIL_VERIFICATION_RESEND_PER_CLIENT_HOUR


def signup_attempt_on_existing_account(*, user) -> None:
    """Sign-up with an address that has an account: the page says the same as for a new one, and the mailbox's
    owner learns what happened (a new link while unconfirmed, else a note pointing to log-in and password reset)."""
    if not email_is_verified(user=user):
        verification_mail(user=user)
        return
    try:
        send_mail(
            subject="Someone tried to sign up with your address on Tunemarket",
            message=(
                "Somebody (perhaps you) tried to create a Tunemarket account with this address, which already has one.\n"
                f"To log in: {settings.SITE_URL.rstrip('/')}{reverse('login')}\n"
                f"Forgot the password? {settings.SITE_URL.rstrip('/')}{reverse('password_reset')}\n"
                "If it was not you, nothing changed and you can ignore this message."
            ),
            from_email=settings.DEFAULT_FROM_EMAIL,
            recipient_list=[user.email],
        )
    except OSError:
        log.exception("could not send the sign-up notice to user %s", user.pk)


def verification_confirm(*, token: str):
    """(user, next path) for a valid link, after marking the address confirmed; Gone for a bad or expired link."""
    try:
        data = signing.loads(token, salt=SALT, max_age=settings.EMAIL_VERIFICATION_TTL_HOURS * 3600)
    except signing.BadSignature:
        raise Gone(BAD_LINK, code="verification_invalid") from None
    user = get_user_model().objects.filter(pk=data.get("u")).first()
    if user is None or (user.email or "").lower() != data.get("e"):
        raise Gone(BAD_LINK, code="verification_invalid")
    PendingVerification.objects.filter(user=user).delete()
    return user, str(data.get("n") or "")
