"""Accounts: sign-up and profile. Usernames are the lower-cased e-mail, so e-mail is the login everywhere."""

from __future__ import annotations

from django.contrib.auth import get_user_model, password_validation
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction

from marketplace.core.errors import AppError
from marketplace.verification.services import signup_attempt_on_existing_account, verification_begin

DUPLICATE_EMAIL = "An account with this e-mail address already exists. Log in, or reset your password if you forgot it."


def normalise_email(email: str) -> str:
    return (email or "").strip().lower()


def user_signup(*, email: str, password: str, first_name: str = "", last_name: str = "", next_path: str = ""):
    """Create an account whose address is unconfirmed until the mailed link is opened; returns it, or None.

    The answer never says whether the address was registered: the password is checked first, then an address that
    has an account gets None (and its owner an e-mail) where a new one gets its account, and the caller shows the
    same "check your inbox" either way. Checked case-insensitively; a concurrent sign-up is caught by the unique
    username.
    """
    User = get_user_model()
    email = normalise_email(email)
    try:
        validate_email(email)
    except ValidationError as exc:
        raise AppError("Enter a valid e-mail address.", field="email") from exc
    candidate = User(username=email, email=email, first_name=first_name.strip(), last_name=last_name.strip())
    try:
        password_validation.validate_password(password, user=candidate)
    except ValidationError as exc:
        raise AppError(" ".join(exc.messages), code="weak_password", field="password") from exc
    existing = User.objects.filter(email__iexact=email).first() or User.objects.filter(username=email).first()
    if existing is not None:
        signup_attempt_on_existing_account(user=existing)
        return None
    candidate.set_password(password)
    try:
        with transaction.atomic():
            candidate.save()
            verification_begin(user=candidate, next_path=next_path)
    except IntegrityError:
        existing = User.objects.filter(username=email).first()
        if existing is not None:
            signup_attempt_on_existing_account(user=existing)
        return None
    return candidate


def user_update_profile(*, user, first_name: str, last_name: str):
    first_name, last_name = first_name.strip(), last_name.strip()
    if len(first_name) > 150 or len(last_name) > 150:
        raise AppError("Keep each name under 150 characters.", field="first_name")
    user.first_name, user.last_name = first_name, last_name
    user.save(update_fields=["first_name", "last_name"])
    return user
