"""The resend-confirmation page: a new link for an unconfirmed account, the same answer for every address, limits."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.utils import timezone

from marketplace.accounts.services import user_signup
from marketplace.verification.models import PendingVerification
from marketplace.verification.services import email_is_verified
from tests.factories import PASSWORD, make_user

pytestmark = pytest.mark.django_db
User = get_user_model()
RESEND = "/accounts/verify/resend/"


@pytest.fixture(autouse=True)
def fresh_limits():
    cache.clear()  # the per-client window lives in the cache
    yield
    cache.clear()


def _unconfirmed(email: str, *, sent_minutes_ago: float = 60):
    user = user_signup(email=email, password=PASSWORD)
    PendingVerification.objects.filter(user=user).update(
        last_sent_at=timezone.now() - timedelta(minutes=sent_minutes_ago)
    )
    return user


def _links(mailoutbox, email: str) -> list[str]:
    return [re.search(r"https?://\S+/accounts/verify/\S+/", m.body).group(0) for m in mailoutbox if m.to == [email]]


def test_it_mails_a_new_link_that_confirms_the_account(client, mailoutbox):
    user = _unconfirmed("lost@example.com")
    sent_at_signup = len(mailoutbox)
    response = client.post(RESEND, {"email": "Lost@Example.com"}, follow=True)
    assert response.status_code == 200 and "a new link is on its way" in response.content.decode()
    assert len(mailoutbox) == sent_at_signup + 1
    client.get(_links(mailoutbox, "lost@example.com")[-1].split("testserver", 1)[-1])
    assert email_is_verified(user=user)


def test_the_answer_is_the_same_for_unknown_confirmed_and_unconfirmed_addresses(client, mailoutbox):
    _unconfirmed("waiting@example.com")
    make_user("confirmed@example.com")
    before = len(mailoutbox)
    pages = []
    for email in ("waiting@example.com", "confirmed@example.com", "nobody@example.com"):
        response = client.post(RESEND, {"email": email})
        assert response.status_code == 302 and response["Location"] == RESEND
        pages.append(client.get(RESEND).content.decode().replace("csrfmiddlewaretoken", ""))
    strip = [re.sub(r'value="[^"]*"', "", p) for p in pages]
    assert strip[0] == strip[1] == strip[2]
    assert [m.to for m in mailoutbox[before:]] == [["waiting@example.com"]]  # only the unconfirmed account got mail


def test_an_address_gets_at_most_one_link_per_interval(client, mailoutbox, settings):
    settings.EMAIL_VERIFICATION_RESEND_INTERVAL_S = 120
    _unconfirmed("eager@example.com", sent_minutes_ago=1)  # the sign-up mail went out a minute ago
    for _ in range(3):
        client.post(RESEND, {"email": "eager@example.com"})
    assert len(_links(mailoutbox, "eager@example.com")) == 1  # the sign-up's only

    PendingVerification.objects.update(last_sent_at=timezone.now() - timedelta(minutes=3))
    for _ in range(3):
        client.post(RESEND, {"email": "eager@example.com"})
    assert len(_links(mailoutbox, "eager@example.com")) == 2


def test_a_client_gets_a_bounded_number_of_requests_per_hour(client, mailoutbox, settings):
    settings.EMAIL_VERIFICATION_RESEND_PER_CLIENT_HOUR = 2
    for n in range(3):
        _unconfirmed(f"victim{n}@example.com")
    before = len(mailoutbox)
    for n in range(3):
        assert client.post(RESEND, {"email": f"victim{n}@example.com"}).status_code == 302
    assert len(mailoutbox) == before + 2  # the third request is answered alike, and sends nothing


def test_bad_input_is_a_form_error_not_a_crash(client):
    for data in ({}, {"email": "not an address"}, {"email": "x" * 5000 + "@example.com"}, {"email": "\x00@example.com"}):
        response = client.post(RESEND, data)
        assert response.status_code == 200 and 'class="form"' in response.content.decode()


def test_a_signed_in_account_sees_its_address_and_a_confirmed_one_is_sent_on(client):
    user = _unconfirmed("me@example.com")
    client.force_login(user)
    assert 'value="me@example.com"' in client.get(RESEND).content.decode()
    PendingVerification.objects.all().delete()
    assert client.get(RESEND)["Location"] == "/dashboard/"


def test_an_unconfirmed_account_that_is_refused_is_linked_to_the_resend_page(client, rf):
    from marketplace.core.errors import NotAllowed
    from marketplace.groups.services import group_create
    from marketplace.web.errors import app_error_page

    user = _unconfirmed("blocked@example.com")
    client.force_login(user)
    # a form that refuses: the message names the page
    body = client.post("/groups/new/", {"name": "Squatters"}).content.decode()
    assert "/accounts/verify/resend/" in body
    # a page that refuses outright: the error page links it (other 403s keep the plain page)
    with pytest.raises(NotAllowed) as refused:
        group_create(user=user, name="Squatters")
    request = rf.get("/somewhere/")
    request.user = user
    page = app_error_page(request, refused.value).content.decode()
    assert 'href="/accounts/verify/resend/"' in page
    assert "verify/resend" not in app_error_page(request, NotAllowed("Admins only.")).content.decode()
