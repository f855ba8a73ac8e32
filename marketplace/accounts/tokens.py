"""API tokens: created with a plain value shown once, stored only as a SHA-256 hash, revoked by deleting the row."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.contrib.auth.models import User
from django.utils import timezone

from marketplace.accounts.models import ApiToken
from marketplace.core.errors import AppError, NotFound

LAST_USED_RESOLUTION = timedelta(minutes=1)

TOKEN_PREFIX = "tm_"
MAX_TOKENS_PER_USER = 20


def hash_token(plain: str) -> str:
    return hashlib.sha256(plain.encode()).hexdigest()


def api_token_create(*, user: User, name: str) -> tuple[ApiToken, str]:
    """A new token for `user`. The plain value is returned once and never stored."""
    name = (name or "").strip() or "default"
    if len(name) > 80:
        raise AppError("Keep the token name under 80 characters.", field="name")
    if ApiToken.objects.filter(user=user).count() >= MAX_TOKENS_PER_USER:
        raise AppError(f"You already have {MAX_TOKENS_PER_USER} tokens; revoke one you no longer use first.", field="name")
    plain = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(user=user, name=name, prefix=plain[:11], key_hash=hash_token(plain))
    return token, plain


def api_token_authenticate(*, key: str) -> User | None:
    """The active user owning `key`, or None. Looks up by hash, so the comparison never touches the plain value."""
    if not key or not key.startswith(TOKEN_PREFIX) or len(key) > 200:
        return None
    token = ApiToken.objects.select_related("user").filter(key_hash=hash_token(key)).first()
    if token is None or not token.user.is_active:
        return None
    now = timezone.now()
    # "Last used" to the minute: one write a minute per token instead of one per request, which under load queued
    # every request of a token behind the same row lock.
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token.user


def api_token_revoke(*, token: ApiToken, by: User) -> None:
    # Someone else's token looks the same as a missing one.
    if token.user_id != by.pk:
        raise NotFound("That token does not exist.")
    ApiToken.objects.filter(pk=token.pk).delete()
