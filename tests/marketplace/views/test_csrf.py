"""CSRF protection stays on for every form: a POST without the token is refused and changes nothing."""

from __future__ import annotations

import pytest
from django.test import Client

from marketplace.groups.invitations import invitation_create
from marketplace.models import ApiToken, Membership, PreferenceGroup
from tests.factories import PASSWORD, make_group, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def strict_client():
    return Client(enforce_csrf_checks=True)


def test_a_post_without_the_token_gets_403_and_changes_nothing(strict_client):
    user = make_user()
    group = make_group(admin=user)
    _, token = invitation_create(group=group, by=user)
    strict_client.force_login(user)
    posts = [
        ("/groups/new/", {"name": "Sneaky"}),
        (f"/groups/{group.slug}/settings/", {"name": "Renamed"}),
        (f"/groups/{group.slug}/invitations/", {"email": "", "role": "member"}),
        (f"/groups/{group.slug}/leave/", {}),
        ("/accounts/tokens/", {"name": "stolen"}),
        ("/accounts/profile/", {"first_name": "Mallory"}),
        ("/accounts/logout/", {}),
        (f"/invitations/{token}/", {"action": "decline"}),
    ]
    for url, data in posts:
        assert strict_client.post(url, data).status_code == 403, url
    assert PreferenceGroup.objects.get().name == group.name
    assert group.invitations.count() == 1 and group.invitations.get().status == "pending"
    assert not ApiToken.objects.exists()
    assert Membership.objects.filter(user=user).exists()
    user.refresh_from_db()
    assert user.first_name == ""


def test_login_and_signup_need_the_token_too(strict_client):
    make_user("a@example.com")
    assert strict_client.post("/accounts/login/", {"username": "a@example.com", "password": PASSWORD}).status_code == 403
    assert strict_client.post("/accounts/signup/", {"email": "b@example.com"}).status_code == 403


def test_a_post_with_the_token_from_the_page_works(strict_client):
    user = make_user()
    strict_client.force_login(user)
    strict_client.get("/groups/new/")
    csrf = strict_client.cookies["csrftoken"].value
    response = strict_client.post("/groups/new/", {"name": "Fine", "csrfmiddlewaretoken": csrf})
    assert response.status_code == 302
    assert PreferenceGroup.objects.filter(name="Fine").exists()
