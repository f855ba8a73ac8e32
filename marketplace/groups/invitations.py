"""Invitations: single-use tokens stored only as SHA-256, with an expiry, optionally bound to one e-mail address."""

from __future__ import annotations

import secrets
from datetime import timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone

from marketplace.accounts.tokens import hash_token
from marketplace.core import tasknames
from marketplace.core.enqueue import enqueue_after_commit
from marketplace.core.errors import AppError, Conflict, Gone, NotAllowed, NotFound
from marketplace.core.transitions import compare_and_set
from marketplace.groups.models import Invitation, Membership, PreferenceGroup
from marketplace.verification.services import require_verified_email

S = Invitation.Status

INVALID = "This invitation link is not valid. Check that you copied all of it, or ask for a new one."
REVOKED = "This invitation was withdrawn by the group's admins. Ask them for a new one."
USED = "This invitation has already been used. Each invitation works once; ask the group's admins for a new one."
EXPIRED = "This invitation has expired. Ask the group's admins for a new one."
WRONG_ACCOUNT = (
    "This invitation was sent to a different e-mail address. Log in with the account for that address to accept it."
)


def invitation_url(token: str) -> str:
    return f"{settings.SITE_URL.rstrip('/')}/invitations/{token}/"


def _check_rate(*, group: PreferenceGroup, by) -> None:
    """At most settings.INVITATIONS_PER_GROUP_PER_HOUR from a group and INVITATIONS_PER_USER_PER_HOUR from a person
    (over all their groups), counted over the last hour: the platform's mail is not a free relay."""
    since = timezone.now() - timedelta(hours=1)
    if Invitation.objects.filter(group=group, created_at__gte=since).count() >= settings.INVITATIONS_PER_GROUP_PER_HOUR:
        raise Conflict(
            f"{group.name} has sent {settings.INVITATIONS_PER_GROUP_PER_HOUR} invitations in the last hour, the most "
            "allowed. Try again later.", code="invitation_rate_limited",
        )
    if Invitation.objects.filter(invited_by=by, created_at__gte=since).count() >= settings.INVITATIONS_PER_USER_PER_HOUR:
        raise Conflict(
            f"You have sent {settings.INVITATIONS_PER_USER_PER_HOUR} invitations in the last hour, the most allowed. "
            "Try again later.", code="invitation_rate_limited",
        )


def invitation_create(*, group: PreferenceGroup, by, email: str = "", role: str = "member") -> tuple[Invitation, str]:
    """A new invitation and its plain token (shown once for a link, never stored). E-mail invitations are mailed by
    a task after commit (invitation_send, with retries), so a mail server that is down never fails the request."""
    if not Membership.objects.filter(group=group, user=by, role=Membership.Role.ADMIN).exists():
        raise NotAllowed("Only the group's admins can invite people.")
    require_verified_email(user=by)
    _check_rate(group=group, by=by)
    if role not in Membership.Role.values:
        raise AppError("Choose admin or member.", field="role")
    email = (email or "").strip().lower()
    if email:
        try:
            validate_email(email)
        except Exception as exc:
            raise AppError("Enter a valid e-mail address, or leave it empty for a shareable link.", field="email") from exc
        if Membership.objects.filter(group=group, user__email__iexact=email).exists():
            raise AppError(f"{email} is already a member of {group.name}.", code="already_member", field="email")
    plain = secrets.token_urlsafe(32)
    expires_at = timezone.now() + timedelta(hours=settings.INVITATION_TTL_HOURS)
    try:
        invitation = Invitation.objects.create(
            group=group, email=email, role=role, token_hash=hash_token(plain), invited_by=by, expires_at=expires_at
        )
    except IntegrityError as exc:  # a 256-bit collision; worth a clear message rather than a 500
        raise AppError("Could not create the invitation; please try again.") from exc
    if email:
        # Through the outbox, after commit: a rolled-back invitation never leaves an e-mail with a dead link behind.
        enqueue_after_commit(tasknames.INVITATION_SEND, invitation.pk)
    return invitation, plain


def invitation_send(*, invitation_id: int) -> bool:
    """Mail a pending e-mail invitation its link; False when there is nothing to send (answered, revoked, no address).

    The plain token is never stored, not even in the task's message: each send mints a fresh one and replaces the
    stored hash, so only the newest e-mail's link works. A redelivered task therefore sends a second, working link.
    An SMTP failure raises, and the task retries with backoff.
    """
    with transaction.atomic():
        invitation = (
            Invitation.objects.select_for_update().select_related("group", "invited_by").filter(pk=invitation_id).first()
        )
        if invitation is None or invitation.status != S.PENDING or not invitation.email:
            return False
        plain = secrets.token_urlsafe(32)
        Invitation.objects.filter(pk=invitation.pk).update(token_hash=hash_token(plain))
        _send_invitation_email(invitation, plain)
    return True


def _send_invitation_email(invitation: Invitation, plain: str) -> None:
    inviter = invitation.invited_by.get_full_name() or invitation.invited_by.email
    send_mail(
        # A fixed subject: group and person names are chosen by whoever invites, so they stay out of it.
        subject="You have an invitation to a preference group on Tunemarket",
        message=(
            f"{inviter} invited you to join the preference group “{invitation.group.name}” as {invitation.role}.\n\n"
            f"Accept or decline here (you will need an account for {invitation.email}):\n{invitation_url(plain)}\n\n"
            f"The link works once and expires on {invitation.expires_at:%Y-%m-%d %H:%M} UTC."
        ),
        from_email=settings.DEFAULT_FROM_EMAIL,
        recipient_list=[invitation.email],
    )


def invitation_check(*, invitation: Invitation | None, user=None, now=None) -> Invitation:
    """Raise the reason `user` cannot answer this invitation, if there is one; return it otherwise."""
    if invitation is None:
        raise NotFound(INVALID, code="invitation_invalid")
    if invitation.status == S.REVOKED:
        raise Gone(REVOKED, code="invitation_revoked")
    if invitation.status != S.PENDING:
        raise Gone(USED, code="invitation_used")
    if invitation.expires_at <= (now or timezone.now()):
        raise Gone(EXPIRED, code="invitation_expired")
    if user is not None and invitation.email and invitation.email.lower() != (user.email or "").lower():
        raise NotAllowed(WRONG_ACCOUNT, code="invitation_wrong_account")
    return invitation


def _respond(*, token: str, user, to_status: str) -> Invitation:
    if not getattr(user, "is_authenticated", False):
        raise NotAllowed("Log in to answer this invitation.", code="login_required")
    if to_status == S.ACCEPTED:
        # An invitation bound to an address is only as good as the proof that the account owns that address.
        require_verified_email(user=user)
    found = Invitation.objects.select_related("group").filter(token_hash=hash_token(token or "")).first()
    invitation = invitation_check(invitation=found, user=user)
    now = timezone.now()
    # Single use: only the request that moves it out of `pending` goes on; a double click or a second tab finds it used.
    if not compare_and_set(
        Invitation, pk=invitation.pk, from_status=S.PENDING, to_status=to_status, responded_at=now, responded_by=user
    ):
        invitation.refresh_from_db()
        invitation_check(invitation=invitation, user=user)
        raise Gone(USED, code="invitation_used")
    invitation.status, invitation.responded_at, invitation.responded_by = to_status, now, user
    return invitation


def invitation_accept(*, token: str, user) -> Membership:
    """Join the group with the invitation's role. Refuses expired, used, revoked tokens and the wrong account."""
    with transaction.atomic():
        invitation = Invitation.objects.select_related("group").filter(token_hash=hash_token(token or "")).first()
        if invitation is not None and Membership.objects.filter(group=invitation.group, user=user).exists():
            invitation_check(invitation=invitation, user=user)
            raise Conflict(
                f"You are already a member of {invitation.group.name}.", code="already_member")
        invitation = _respond(token=token, user=user, to_status=S.ACCEPTED)
        try:
            with transaction.atomic():
                return Membership.objects.create(group=invitation.group, user=user, role=invitation.role)
        except IntegrityError as exc:
            # Joined through another invitation at the same moment: undo this acceptance too.
            raise Conflict(f"You are already a member of {invitation.group.name}.", code="already_member") from exc


def invitation_decline(*, token: str, user) -> Invitation:
    with transaction.atomic():
        return _respond(token=token, user=user, to_status=S.DECLINED)


def invitation_revoke(*, invitation: Invitation, by) -> Invitation:
    if not Membership.objects.filter(group_id=invitation.group_id, user=by, role=Membership.Role.ADMIN).exists():
        raise NotAllowed("Only the group's admins can withdraw invitations.")
    if not compare_and_set(Invitation, pk=invitation.pk, from_status=S.PENDING, to_status=S.REVOKED, responded_at=timezone.now(), responded_by=by):
        raise Conflict("Only a pending invitation can be withdrawn.", code="invitation_not_pending")
    invitation.status = S.REVOKED
    return invitation
