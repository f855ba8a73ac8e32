from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend


class EmailBackend(ModelBackend):
    """Log in with the e-mail address; usernames are internal (we store the lower-cased e-mail there too)."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        email = (kwargs.get("email") or username or "").strip().lower()
        if not email or password is None:
            return None
        user = get_user_model().objects.filter(email__iexact=email).order_by("pk").first()
        if user is None:
            get_user_model()().set_password(password)  # equalise timing with the found-user path
            return None
        if user.check_password(password) and self.user_can_authenticate(user):
            return user
        return None


def login_username(request, credentials: dict | None) -> str:
    """The address django-axes counts failures against: the login form's e-mail, trimmed and lower-cased, so that
    "Ada@Example.com " and "ada@example.com" share one counter."""
    value = (credentials or {}).get("username") or (credentials or {}).get("email")
    if value is None and request is not None:
        value = request.POST.get("username", "")
    return (value or "").strip().lower()
