from __future__ import annotations

from urllib.parse import quote

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from marketplace.accounts.services import user_signup, user_update_profile
from marketplace.accounts.tokens import api_token_create, api_token_revoke
from marketplace.core.errors import AppError
from marketplace.forms import add_app_error
from marketplace.forms.accounts import ApiTokenForm, ProfileForm, SignupForm
from marketplace.groups.selectors import user_groups
from marketplace.models import ApiToken
from marketplace.verification.services import verification_confirm

SIGNUP_SESSION_KEY = "signup_user_id"


def safe_next(request, fallback: str = "dashboard") -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return target
    return fallback


def signup(request):
    if request.user.is_authenticated:
        return redirect(safe_next(request))
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            user = user_signup(
                email=form.cleaned_data["email"],
                password=form.cleaned_data["password"],
                first_name=form.cleaned_data["first_name"],
                last_name=form.cleaned_data["last_name"],
                next_path=safe_next(request, ""),
            )
        except AppError as error:
            add_app_error(form, error)
        else:
            # The same answer whether or not the address already had an account (user is None then).
            request.session[SIGNUP_SESSION_KEY] = user.pk if user is not None else None
            messages.success(
                request,
                f"Check your inbox: we sent a link to {form.cleaned_data['email'].strip().lower()}. "
                "Open it to confirm your address and finish signing up.",
            )
            return redirect("login")
    return render(request, "registration/signup.html", {"form": form, "next": safe_next(request, "")})


def verify_email(request, token: str):
    """The link mailed at sign-up. In the browser that signed up it also logs the new account in."""
    user, next_path = verification_confirm(token=token)
    messages.success(request, "Your e-mail address is confirmed. Welcome! Your account is ready.")
    if next_path and not url_has_allowed_host_and_scheme(next_path, allowed_hosts={request.get_host()}):
        next_path = ""
    if request.session.get(SIGNUP_SESSION_KEY) == user.pk and user.is_active:
        request.session.pop(SIGNUP_SESSION_KEY, None)
        login(request, user, backend="marketplace.accounts.auth_backends.EmailBackend")
        return redirect(next_path or "dashboard")
    if request.user.is_authenticated and request.user.pk == user.pk:
        return redirect(next_path or "dashboard")
    login_url = reverse("login")
    return redirect(f"{login_url}?next={quote(next_path)}" if next_path else login_url)


def _profile_context(request, **extra):
    return {
        "groups": user_groups(user=request.user),
        "tokens": ApiToken.objects.filter(user=request.user).order_by("-created_at"),
        "token_form": ApiTokenForm(),
        **extra,
    }


@login_required
def profile(request):
    user = request.user
    form = ProfileForm(request.POST or None, initial={"first_name": user.first_name, "last_name": user.last_name})
    if request.method == "POST" and form.is_valid():
        try:
            user_update_profile(user=user, **form.cleaned_data)
        except AppError as error:
            add_app_error(form, error)
        else:
            messages.success(request, "Profile saved.")
            return redirect("profile")
    return render(request, "accounts/profile.html", _profile_context(request, form=form))


@login_required
@require_POST
def token_create(request):
    token_form = ApiTokenForm(request.POST)
    plain = None
    if token_form.is_valid():
        try:
            token, plain = api_token_create(user=request.user, name=token_form.cleaned_data["name"])
        except AppError as error:
            add_app_error(token_form, error)
        else:
            token_form = ApiTokenForm()
            messages.success(request, f"Token “{token.name}” created. Copy it now: it will not be shown again.")
    form = ProfileForm(initial={"first_name": request.user.first_name, "last_name": request.user.last_name})
    # Rendered, not redirected: the plain token must never sit in a session or a URL.
    response = render(
        request, "accounts/profile.html", _profile_context(request, form=form, token_form=token_form, new_token=plain)
    )
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def token_revoke(request, token_id: int):
    token = get_object_or_404(ApiToken, pk=token_id, user=request.user)
    api_token_revoke(token=token, by=request.user)
    messages.success(request, f"Token “{token.name}” ({token.prefix}…) revoked.")
    return redirect("profile")
