"""Accounts in the browser: sign-up, log in/out, password change and reset, profile and API tokens."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from marketplace.accounts.tokens import api_token_authenticate, api_token_create, api_token_revoke, hash_token
from marketplace.core.errors import AppError
from marketplace.models import ApiToken
from tests.factories import PASSWORD, make_group, make_user

pytestmark = pytest.mark.django_db
User = get_user_model()
NEW_PASSWORD = "another-Horse-staple-77"


def signup(client, email="Ada@Example.com", password=PASSWORD, confirm=None, **extra):
    data = {"email": email, "password": password, "password_confirm": confirm or password, **extra}
    return client.post("/accounts/signup/", data)


def test_it_signs_up_with_a_lower_cased_email_as_username_and_logs_in(client):
    response = signup(client, first_name="Ada")
    assert response.status_code == 302
    assert response["Location"] == reverse("dashboard")
    user = User.objects.get()
    assert user.username == user.email == "ada@example.com"
    assert user.check_password(PASSWORD)
    page = client.get("/dashboard/")
    assert page.status_code == 200
    assert "Hello, Ada" in page.content.decode()


def test_it_refuses_a_duplicate_email_whatever_its_case(client):
    make_user("ada@example.com")
    response = signup(client, email="ADA@example.com")
    assert response.status_code == 200
    assert "already exists" in response.content.decode()
    assert User.objects.count() == 1


def test_it_refuses_a_password_the_validators_reject_and_shows_why_beside_the_field(client):
    response = signup(client, password="12345678")
    body = response.content.decode()
    assert response.status_code == 200
    assert "too common" in body or "entirely numeric" in body
    assert 'class="field has-error"' in body
    assert not User.objects.exists()


def test_it_refuses_mismatched_passwords(client):
    response = signup(client, confirm="something-else-entirely-1")
    assert "The two passwords differ." in response.content.decode()
    assert not User.objects.exists()


def test_it_logs_in_by_email_in_any_case_and_logs_out_only_by_post(client):
    make_user("grace@example.com")
    response = client.post("/accounts/login/", {"username": "Grace@Example.com", "password": PASSWORD})
    assert response.status_code == 302
    assert client.get("/dashboard/").status_code == 200
    assert client.get("/accounts/logout/").status_code == 405
    assert client.get("/dashboard/").status_code == 200
    assert client.post("/accounts/logout/").status_code == 302
    assert client.get("/dashboard/")["Location"].startswith("/accounts/login/")


def test_it_refuses_a_wrong_password_with_a_message(client):
    make_user("grace@example.com")
    response = client.post("/accounts/login/", {"username": "grace@example.com", "password": "wrong-one-123"})
    assert response.status_code == 200
    assert "do not match an account" in response.content.decode()


def test_it_changes_the_password(client):
    user = make_user()
    client.force_login(user)
    response = client.post(
        "/accounts/password/change/",
        {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )
    assert response.status_code == 302
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)


def test_it_resets_a_forgotten_password_through_the_emailed_link(client, mailoutbox):
    user = make_user("lin@example.com")
    response = client.post("/accounts/password/reset/", {"email": "LIN@example.com"})
    assert response.status_code == 302
    assert response["Location"] == "/accounts/password/reset/done/"
    assert len(mailoutbox) == 1
    link = re.search(r"http://testserver(/accounts/password/reset/\S+/\S+/)", mailoutbox[0].body).group(1)
    form_page = client.get(link, follow=True)
    assert form_page.status_code == 200
    set_url = form_page.redirect_chain[-1][0]
    done = client.post(set_url, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    assert done["Location"] == "/accounts/password/reset/complete/"
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)


def test_it_sends_no_reset_email_for_an_unknown_address_but_says_the_same(client, mailoutbox):
    response = client.post("/accounts/password/reset/", {"email": "nobody@example.com"})
    assert response["Location"] == "/accounts/password/reset/done/"
    assert mailoutbox == []


def test_the_profile_shows_name_email_and_groups(client):
    user = make_user("kim@example.com")
    make_group(admin=user, name="Polite Bots")
    client.force_login(user)
    client.post("/accounts/profile/", {"first_name": "Kim", "last_name": "Lee"})
    body = client.get("/accounts/profile/").content.decode()
    assert "kim@example.com" in body and "Kim Lee" in body and "Polite Bots" in body


def test_it_shows_a_new_token_once_and_stores_only_its_hash(client):
    user = make_user()
    client.force_login(user)
    response = client.post("/accounts/tokens/", {"name": "CI"})
    assert response.status_code == 200
    plain = re.search(r'data-testid="new-token">([^<]+)<', response.content.decode()).group(1)
    token = ApiToken.objects.get(user=user)
    assert token.key_hash == hash_token(plain) and plain not in token.key_hash
    assert plain.startswith(token.prefix)
    later = client.get("/accounts/profile/").content.decode()
    assert plain not in later and token.prefix in later
    assert api_token_authenticate(key=plain) == user


def test_it_revokes_a_token_and_it_stops_working(client):
    user = make_user()
    token, plain = api_token_create(user=user, name="script")
    client.force_login(user)
    assert client.post(f"/accounts/tokens/{token.pk}/revoke/").status_code == 302
    assert not ApiToken.objects.exists()
    assert api_token_authenticate(key=plain) is None


def test_nobody_can_revoke_someone_elses_token(client):
    owner, other = make_user(), make_user()
    token, plain = api_token_create(user=owner, name="mine")
    client.force_login(other)
    assert client.post(f"/accounts/tokens/{token.pk}/revoke/").status_code == 404
    with pytest.raises(AppError):
        api_token_revoke(token=token, by=other)
    assert api_token_authenticate(key=plain) == owner


def test_it_authenticates_no_one_with_a_wrong_or_inactive_token():
    user = make_user()
    _, plain = api_token_create(user=user, name="x")
    assert api_token_authenticate(key=plain + "x") is None
    assert api_token_authenticate(key="") is None
    user.is_active = False
    user.save()
    assert api_token_authenticate(key=plain) is None


def test_pages_that_need_an_account_send_visitors_to_log_in(client):
    for url in ["/dashboard/", "/accounts/profile/", "/groups/", "/groups/new/", "/accounts/password/change/"]:
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/accounts/login/?next="), url


def test_home_and_nav_render_for_visitors_and_members(client):
    body = client.get("/").content.decode()
    assert "Log in" in body and "Sign up" in body and "Log out" not in body
    staff = make_user(staff=True)
    client.force_login(staff)
    body = client.get("/").content.decode()
    assert "Log out" in body and "My groups" in body and 'href="/staff/rounds/"' in body and "csrfmiddlewaretoken" in body
