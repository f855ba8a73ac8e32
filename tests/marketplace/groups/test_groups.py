"""Preference groups: creation, roles, the last-admin rule, and that outsiders learn nothing."""

from __future__ import annotations

import pytest

from marketplace.core.errors import AppError, NotAllowed, NotFound
from marketplace.groups.selectors import group_for_member, is_group_admin, membership_of, user_groups
from marketplace.groups.services import (
    group_create,
    membership_demote,
    membership_leave,
    membership_promote,
    membership_remove,
)
from marketplace.models import Membership, PreferenceGroup
from tests.factories import make_bid, make_group, make_round, make_user

pytestmark = pytest.mark.django_db
ADMIN, MEMBER = Membership.Role.ADMIN, Membership.Role.MEMBER


def role_of(user, group):
    m = Membership.objects.filter(user=user, group=group).first()
    return m.role if m else None


def test_creating_a_group_makes_the_creator_its_admin_with_a_unique_slug(client):
    user = make_user()
    client.force_login(user)
    response = client.post("/groups/new/", {"name": "Polite Bots", "description": "Be kind"})
    group = PreferenceGroup.objects.get()
    assert response["Location"] == f"/groups/{group.slug}/"
    assert group.slug == "polite-bots"
    assert role_of(user, group) == ADMIN
    second = group_create(user=make_user(), name="Polite  bots!")
    assert second.slug == "polite-bots-2"


def test_a_group_named_new_does_not_shadow_the_create_page():
    group = group_create(user=make_user(), name="New")
    assert group.slug != "new"


def test_it_refuses_a_group_without_a_name(client):
    client.force_login(make_user())
    response = client.post("/groups/new/", {"name": "   "})
    assert response.status_code == 200
    assert "field-error" in response.content.decode()
    assert not PreferenceGroup.objects.exists()


def test_my_groups_lists_only_my_groups_or_an_empty_state(client):
    me = make_user()
    client.force_login(me)
    assert "You are not in any group yet" in client.get("/groups/").content.decode()
    make_group(admin=me, members=[make_user(), make_user()], name="Mine")
    make_group(name="Theirs")
    body = client.get("/groups/").content.decode()
    assert "Mine" in body and "Theirs" not in body and "3 members" in body
    assert [(g.name, g.my_role, g.member_count) for g in user_groups(user=me)] == [("Mine", "admin", 3)]


GROUP_PAGES = ["", "members/", "rounds/", "preferences/", "settings/", "leave/"]
GROUP_POSTS = ["invitations/", "leave/", "settings/"]


def test_outsiders_get_404_on_every_group_page_and_never_see_the_name(client):
    group = make_group(name="Secret Society Zeta")
    membership = group.memberships.get()
    outsider = make_user(staff=True)  # staff too: group pages are for members only
    client.force_login(outsider)
    urls = [f"/groups/{group.slug}/{page}" for page in GROUP_PAGES]
    urls += [f"/groups/{group.slug}/members/{membership.pk}/{action}/" for action in ("promote", "demote", "remove")]
    urls += [f"/groups/{group.slug}/invitations/1/revoke/"]
    for url in urls:
        for method in (client.get, client.post):
            response = method(url)
            assert response.status_code == 404, (method, url)
            assert "Secret Society Zeta" not in response.content.decode()
    # A missing group looks exactly the same.
    assert client.get("/groups/no-such-group/").status_code == 404
    assert role_of(membership.user, group) == ADMIN
    with pytest.raises(NotFound):
        group_for_member(user=outsider, slug=group.slug)


def test_visitors_are_sent_to_log_in_from_group_pages(client):
    group = make_group()
    response = client.get(f"/groups/{group.slug}/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_members_see_the_group_and_its_member_list_but_cannot_manage(client):
    admin, member = make_user("boss@example.com"), make_user("pat@example.com")
    group = make_group(admin=admin, members=[member], name="Tea Lovers")
    client.force_login(member)
    for page in ["", "members/", "rounds/", "preferences/", "leave/"]:
        response = client.get(f"/groups/{group.slug}/{page}")
        assert response.status_code == 200, page
        assert "Tea Lovers" in response.content.decode()
    members_page = client.get(f"/groups/{group.slug}/members/").content.decode()
    assert "boss@example.com" in members_page and "Make admin" not in members_page and "Invite someone" not in members_page
    admin_membership = group.memberships.get(user=admin)
    assert client.get(f"/groups/{group.slug}/settings/").status_code == 403
    assert client.post(f"/groups/{group.slug}/settings/", {"name": "Hijacked"}).status_code == 403
    assert client.post(f"/groups/{group.slug}/members/{admin_membership.pk}/demote/").status_code == 403
    assert client.post(f"/groups/{group.slug}/members/{admin_membership.pk}/remove/").status_code == 403
    own = group.memberships.get(user=member)
    assert client.post(f"/groups/{group.slug}/members/{own.pk}/promote/").status_code == 403
    assert client.post(f"/groups/{group.slug}/invitations/", {"email": "x@example.com", "role": "admin"}).status_code == 403
    group.refresh_from_db()
    assert group.name == "Tea Lovers"
    assert role_of(admin, group) == ADMIN and role_of(member, group) == MEMBER
    assert not group.invitations.exists()


def test_an_admin_promotes_demotes_and_removes_members(client):
    admin, member = make_user(), make_user()
    group = make_group(admin=admin, members=[member])
    target = group.memberships.get(user=member)
    client.force_login(admin)
    client.post(f"/groups/{group.slug}/members/{target.pk}/promote/")
    assert role_of(member, group) == ADMIN
    client.post(f"/groups/{group.slug}/members/{target.pk}/demote/")
    assert role_of(member, group) == MEMBER
    response = client.post(f"/groups/{group.slug}/members/{target.pk}/remove/", follow=True)
    assert role_of(member, group) is None
    assert "was removed" in response.content.decode()


def test_the_last_admin_cannot_be_demoted_removed_or_leave():
    admin, member = make_user(), make_user()
    group = make_group(admin=admin, members=[member])
    mine = group.memberships.get(user=admin)
    with pytest.raises(AppError, match="at least one admin"):
        membership_demote(membership=mine, by=admin)
    with pytest.raises(AppError, match="at least one admin"):
        membership_remove(membership=mine, by=admin)
    with pytest.raises(AppError, match="last admin"):
        membership_leave(group=group, user=admin)
    assert role_of(admin, group) == ADMIN


def test_the_last_admin_is_told_why_in_the_page(client):
    admin = make_user()
    group = make_group(admin=admin, members=[make_user()])
    client.force_login(admin)
    response = client.post(f"/groups/{group.slug}/leave/", follow=True)
    assert "last admin" in response.content.decode()
    assert role_of(admin, group) == ADMIN


def test_an_admin_may_leave_after_handing_over():
    admin, member = make_user(), make_user()
    group = make_group(admin=admin, members=[member])
    membership_promote(membership=group.memberships.get(user=member), by=admin)
    membership_leave(group=group, user=admin)
    assert role_of(admin, group) is None and role_of(member, group) == ADMIN


def test_a_member_leaves_through_the_page(client):
    member = make_user()
    group = make_group(members=[member])
    client.force_login(member)
    response = client.post(f"/groups/{group.slug}/leave/")
    assert response["Location"] == "/groups/"
    assert role_of(member, group) is None
    assert client.get(f"/groups/{group.slug}/").status_code == 404


def test_only_admins_may_change_roles_through_the_services():
    admin, member, other = make_user(), make_user(), make_user()
    group = make_group(admin=admin, members=[member, other])
    with pytest.raises(NotAllowed):
        membership_promote(membership=group.memberships.get(user=other), by=member)
    with pytest.raises(NotAllowed):
        membership_remove(membership=group.memberships.get(user=admin), by=member)
    assert role_of(other, group) == MEMBER and role_of(admin, group) == ADMIN


def test_an_admin_renames_the_group_and_the_slug_stays(client):
    admin = make_user()
    group = make_group(admin=admin)
    client.force_login(admin)
    client.post(f"/groups/{group.slug}/settings/", {"name": "Renamed", "description": "New words"})
    old_slug = group.slug
    group.refresh_from_db()
    assert (group.name, group.description, group.slug) == ("Renamed", "New words", old_slug)


def test_the_rounds_tab_shows_participation_but_never_the_bid_amount(client):
    admin, member = make_user(), make_user()
    group = make_group(admin=admin, members=[member])
    bid_round = make_round(title="Support tone")
    make_bid(round=bid_round, group=group, amount_cents=987_654)
    make_round(title="Draft thing", status="draft")
    client.force_login(member)
    body = client.get(f"/groups/{group.slug}/rounds/").content.decode()
    assert "Support tone" in body and "Bid placed" in body and f"/rounds/{bid_round.slug}/" in body
    assert "9,876" not in body and "987654" not in body
    assert "Draft thing" not in body
    prefs = client.get(f"/groups/{group.slug}/preferences/").content.decode()
    assert f"/rounds/{bid_round.slug}/groups/{group.slug}/preferences/" in prefs


def test_group_nav_links_billing_for_members(client):
    member = make_user()
    group = make_group(members=[member])
    client.force_login(member)
    assert f'href="/groups/{group.slug}/billing/"' in client.get(f"/groups/{group.slug}/").content.decode()


def test_selectors_tell_members_from_admins():
    admin, member, outsider = make_user(), make_user(), make_user()
    group = make_group(admin=admin, members=[member])
    assert is_group_admin(user=admin, group=group) and not is_group_admin(user=member, group=group)
    assert membership_of(user=member, group=group).role == MEMBER
    assert membership_of(user=outsider, group=group) is None
    assert group_for_member(user=member, slug=group.slug) == group
