"""Invitations: by e-mail or shareable link, single use, expiring, bound to an address when it has one."""

from __future__ import annotations

import html
import re
from datetime import timedelta

import pytest
from django.utils import timezone

from marketplace.accounts.tokens import hash_token
from marketplace.core.errors import AppError, NotAllowed
from marketplace.groups.invitations import (
    EXPIRED,
    REVOKED,
    USED,
    WRONG_ACCOUNT,
    invitation_accept,
    invitation_create,
    invitation_decline,
    invitation_revoke,
    invitation_send,
)
from marketplace.models import Invitation, Membership
from tests.factories import make_group, make_user

pytestmark = pytest.mark.django_db


def text(response) -> str:
    return html.unescape(response.content.decode())


def is_member(user, group) -> bool:
    return Membership.objects.filter(user=user, group=group).exists()


def test_an_admin_invites_by_email_and_only_a_hash_is_stored(client, mailoutbox, django_capture_on_commit_callbacks):
    admin = make_user()
    group = make_group(admin=admin, name="Calm Coders")
    client.force_login(admin)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/groups/{group.slug}/invitations/", {"email": "Friend@Example.com", "role": "member"})
    assert response.status_code == 302
    invitation = Invitation.objects.get()
    assert invitation.email == "friend@example.com"
    assert mailoutbox == []  # mailed by a task, not in the request
    assert invitation_send(invitation_id=invitation.pk)  # what the worker's invitation_send_task runs
    invitation.refresh_from_db()
    assert len(mailoutbox) == 1 and mailoutbox[0].to == ["friend@example.com"]
    token = re.search(r"/invitations/([^/\s]+)/", mailoutbox[0].body).group(1)
    assert invitation.token_hash == hash_token(token) and token not in invitation.token_hash
    assert "Calm Coders" not in mailoutbox[0].subject and "Calm Coders" in mailoutbox[0].body

    friend = make_user("friend@example.com")
    client.force_login(friend)
    page = client.get(f"/invitations/{token}/")
    assert page.status_code == 200 and "Join Calm Coders" in page.content.decode()
    response = client.post(f"/invitations/{token}/", {"action": "accept"})
    assert response["Location"] == f"/groups/{group.slug}/"
    assert Membership.objects.get(user=friend, group=group).role == "member"
    invitation.refresh_from_db()
    assert invitation.status == "accepted" and invitation.responded_by == friend


def test_an_admin_creates_a_link_that_is_shown_once_and_anyone_logged_in_can_accept(client):
    admin = make_user()
    group = make_group(admin=admin)
    client.force_login(admin)
    response = client.post(f"/groups/{group.slug}/invitations/", {"email": "", "role": "admin"})
    link = re.search(r'data-testid="invitation-link">([^<]+)<', response.content.decode()).group(1)
    token = link.rstrip("/").rsplit("/", 1)[1]
    assert token not in client.get(f"/groups/{group.slug}/members/").content.decode()
    joiner = make_user()
    client.force_login(joiner)
    client.post(f"/invitations/{token}/", {"action": "accept"})
    assert Membership.objects.get(user=joiner, group=group).role == "admin"


def test_a_visitor_is_asked_to_log_in_and_nothing_happens(client):
    group = make_group()
    _, token = invitation_create(group=group, by=group.created_by)
    page = client.get(f"/invitations/{token}/").content.decode()
    assert "Log in" in page and f"next=/invitations/{token}/" in page.replace("%2F", "/")
    response = client.post(f"/invitations/{token}/", {"action": "accept"})
    assert response["Location"].startswith("/accounts/login/")
    assert Invitation.objects.get().status == "pending"


def test_declining_leaves_no_membership_and_uses_up_the_token(client):
    group = make_group()
    _, token = invitation_create(group=group, by=group.created_by)
    user = make_user()
    client.force_login(user)
    client.post(f"/invitations/{token}/", {"action": "decline"})
    assert Invitation.objects.get().status == "declined"
    assert not is_member(user, group)
    response = client.post(f"/invitations/{token}/", {"action": "accept"})
    assert response.status_code == 410 and USED in text(response)
    assert not is_member(user, group)


def test_an_expired_token_is_refused_with_its_message(client):
    group = make_group(name="Old Group")
    invitation, token = invitation_create(group=group, by=group.created_by)
    Invitation.objects.filter(pk=invitation.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    user = make_user()
    client.force_login(user)
    response = client.post(f"/invitations/{token}/", {"action": "accept"})
    assert response.status_code == 410 and EXPIRED in text(response)
    assert not is_member(user, group)
    assert Invitation.objects.get().status == "pending"


def test_a_reused_token_is_refused_with_its_message():
    group = make_group()
    _, token = invitation_create(group=group, by=group.created_by)
    first, second = make_user(), make_user()
    invitation_accept(token=token, user=first)
    with pytest.raises(AppError, match=re.escape(USED)):
        invitation_accept(token=token, user=second)
    assert is_member(first, group) and not is_member(second, group)


def test_an_email_invitation_for_another_account_is_refused_with_its_message(client):
    group = make_group(name="Private Club")
    _, token = invitation_create(group=group, by=group.created_by, email="right@example.com")
    wrong = make_user("wrong@example.com")
    client.force_login(wrong)
    get = client.get(f"/invitations/{token}/")
    assert get.status_code == 403 and WRONG_ACCOUNT in text(get)
    assert "Private Club" not in get.content.decode()
    for action in ("accept", "decline"):
        response = client.post(f"/invitations/{token}/", {"action": action})
        assert response.status_code == 403 and WRONG_ACCOUNT in text(response)
    assert not is_member(wrong, group)
    assert Invitation.objects.get().status == "pending"


def test_a_revoked_token_is_refused_with_its_message(client):
    admin = make_user()
    group = make_group(admin=admin)
    invitation, token = invitation_create(group=group, by=admin)
    client.force_login(admin)
    client.post(f"/groups/{group.slug}/invitations/{invitation.pk}/revoke/")
    assert Invitation.objects.get().status == "revoked"
    user = make_user()
    with pytest.raises(AppError, match=re.escape(REVOKED)):
        invitation_accept(token=token, user=user)
    assert not is_member(user, group)


def test_an_unknown_token_is_a_404_that_names_no_group(client):
    group = make_group(name="Hidden Name")
    invitation_create(group=group, by=group.created_by)
    client.force_login(make_user())
    response = client.get("/invitations/not-a-real-token/")
    assert response.status_code == 404 and "Hidden Name" not in text(response)
    assert client.post("/invitations/not-a-real-token/", {"action": "accept"}).status_code == 404


def test_only_admins_invite_and_members_are_not_invited_twice():
    admin, member = make_user(), make_user("in@example.com")
    group = make_group(admin=admin, members=[member])
    with pytest.raises(NotAllowed):
        invitation_create(group=group, by=member)
    with pytest.raises(AppError, match="already a member"):
        invitation_create(group=group, by=admin, email="IN@example.com")
    with pytest.raises(AppError):
        invitation_create(group=group, by=admin, email="not-an-address")
    assert not Invitation.objects.exists()


def test_accepting_while_already_a_member_keeps_the_token_unused():
    admin = make_user()
    group = make_group(admin=admin)
    _, token = invitation_create(group=group, by=admin)
    with pytest.raises(AppError, match="already a member"):
        invitation_accept(token=token, user=admin)
    assert Invitation.objects.get().status == "pending"


def test_declining_needs_the_right_account_too():
    group = make_group()
    _, token = invitation_create(group=group, by=group.created_by, email="a@example.com")
    with pytest.raises(AppError, match=re.escape(WRONG_ACCOUNT)):
        invitation_decline(token=token, user=make_user("b@example.com"))
    assert Invitation.objects.get().status == "pending"


def test_members_cannot_revoke_invitations():
    admin, member = make_user(), make_user()
    group = make_group(admin=admin, members=[member])
    invitation, _ = invitation_create(group=group, by=admin)
    with pytest.raises(NotAllowed):
        invitation_revoke(invitation=invitation, by=member)
    assert Invitation.objects.get().status == "pending"


def test_the_invitation_expires_after_the_configured_hours(settings):
    settings.INVITATION_TTL_HOURS = 2
    group = make_group()
    before = timezone.now()
    invitation, _ = invitation_create(group=group, by=group.created_by)
    assert timedelta(hours=2) <= invitation.expires_at - before < timedelta(hours=2, seconds=5)


def test_invitations_are_rate_limited_per_group_and_per_person(settings):
    from marketplace.core.errors import Conflict

    settings.INVITATIONS_PER_GROUP_PER_HOUR = 3
    settings.INVITATIONS_PER_USER_PER_HOUR = 5
    admin = make_user()
    first, second = make_group(admin=admin), make_group(admin=admin)
    for n in range(3):
        invitation_create(group=first, by=admin, email=f"a{n}@example.com")
    with pytest.raises(Conflict) as caught:
        invitation_create(group=first, by=admin, email="a9@example.com")
    assert caught.value.code == "invitation_rate_limited"
    invitation_create(group=second, by=admin)
    invitation_create(group=second, by=admin)
    with pytest.raises(Conflict):  # the person's own limit, over all their groups
        invitation_create(group=second, by=admin)
    assert Invitation.objects.count() == 5


def test_an_email_invitation_is_queued_through_the_outbox_and_a_mail_failure_is_retried(
    settings, django_capture_on_commit_callbacks, sent
):
    from marketplace.core import tasknames
    from marketplace.outbox.models import OutboxMessage
    from marketplace.tasks import invitation_send_task

    admin = make_user()
    group = make_group(admin=admin, name="=cmd|' /C calc'!A0 FREE MONEY")
    with django_capture_on_commit_callbacks(execute=True):
        invitation, _ = invitation_create(group=group, by=admin, email="friend@example.com")
    assert sent == [(tasknames.INVITATION_SEND, [invitation.pk])]
    assert OutboxMessage.objects.get().sent_at is not None
    assert invitation_send_task.autoretry_for and invitation_send_task.max_retries >= 5
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", 9  # nothing listens: the send raises, the task retries
    with pytest.raises(OSError):
        invitation_send(invitation_id=invitation.pk)
