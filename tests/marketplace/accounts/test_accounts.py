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


def confirmation_link(mail) -> str:
    return re.search(r"https?://\S+/accounts/verify/\S+/", mail.body).group(0)


def test_it_signs_up_with_a_lower_cased_email_and_logs_in_from_the_mailed_link(client, mailoutbox):
    response = signup(client, first_name="Ada")
    assert response.status_code == 302 and response["Location"] == reverse("login")
    user = User.objects.get()
    assert user.username == user.email == "ada@example.com"
    assert user.check_password(PASSWORD)
    assert client.get("/dashboard/").status_code == 302  # not logged in before the address is confirmed
    (mail,) = mailoutbox
    assert mail.to == ["ada@example.com"]

    response = client.get(confirmation_link(mail).split("testserver", 1)[-1], follow=True)

    assert "Hello, Ada" in response.content.decode()
    assert "confirmed" in response.content.decode()


def test_sign_up_says_the_same_for_a_registered_address_and_mails_its_owner(client, mailoutbox):
    make_user("ada@example.com")
    taken = signup(client, email="ADA@example.com")
    fresh = signup(client, email="new@example.com")
    assert taken.status_code == fresh.status_code == 302 and taken["Location"] == fresh["Location"]
    shown = [str(m) for m in client.get(reverse("login")).context["messages"]]
    assert shown[0].replace("ada@example.com", "X") == shown[1].replace("new@example.com", "X")
    assert User.objects.filter(email__iexact="ada@example.com").count() == 1
    owner_mail = next(m for m in mailoutbox if m.to == ["ada@example.com"])
    assert "already has one" in owner_mail.body and "/accounts/verify/" not in owner_mail.body


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


def test_an_unconfirmed_account_cannot_accept_an_invitation_or_act_for_a_group(client, mailoutbox):
    from marketplace.core.errors import NotAllowed
    from marketplace.groups.invitations import invitation_accept, invitation_create
    from marketplace.groups.services import group_create

    admin = make_user("admin@example.com")
    group = make_group(admin=admin)
    _, token = invitation_create(group=group, by=admin, email="victim@example.com")
    signup(client, email="victim@example.com")  # an attacker who does not own the mailbox
    squatter = User.objects.get(email="victim@example.com")

    for attempt in (
        lambda: invitation_accept(token=token, user=squatter),
        lambda: group_create(user=squatter, name="Squat"),
    ):
        with pytest.raises(NotAllowed) as caught:
            attempt()
        assert caught.value.code == "email_unverified"
    assert not group.memberships.filter(user=squatter).exists()

    client.get(confirmation_link(mailoutbox[-1]).split("testserver", 1)[-1])  # the mailbox's owner confirms
    assert invitation_accept(token=token, user=squatter).group == group


def test_a_tampered_or_expired_confirmation_link_is_refused(client, mailoutbox, settings):
    from marketplace.verification.services import email_is_verified

    signup(client, email="eve@example.com")
    link = confirmation_link(mailoutbox[-1]).split("testserver", 1)[-1]
    assert client.get(link[:-3] + "xx/").status_code == 410
    settings.EMAIL_VERIFICATION_TTL_HOURS = 0
    assert client.get(link).status_code == 410
    assert not email_is_verified(user=User.objects.get(email="eve@example.com"))


def test_logins_are_throttled_after_the_failure_limit_even_with_the_right_password(client, settings):
    make_user("grace@example.com")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post("/accounts/login/", {"username": "Grace@example.com", "password": "wrong-one-123"})
    response = client.post("/accounts/login/", {"username": "grace@example.com", "password": PASSWORD})
    assert response.status_code == 429
    assert "Too many failed log-ins" in response.content.decode()
    assert client.get("/dashboard/").status_code == 302


def test_a_successful_login_resets_the_failure_count(client, settings):
    make_user("grace@example.com")
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        client.post("/accounts/login/", {"username": "grace@example.com", "password": "wrong-one-123"})
    assert client.post("/accounts/login/", {"username": "grace@example.com", "password": PASSWORD}).status_code == 302
    client.post("/accounts/logout/")
    client.post("/accounts/login/", {"username": "grace@example.com", "password": "wrong-one-123"})
    assert client.post("/accounts/login/", {"username": "grace@example.com", "password": PASSWORD}).status_code == 302
