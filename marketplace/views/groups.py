"""Group pages. Every view resolves the group through `group_for_member`, so outsiders get a 404 and learn nothing."""

from __future__ import annotations

from functools import wraps

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponseNotAllowed
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone

from marketplace.core.errors import AppError
from marketplace.forms import add_app_error
from marketplace.forms.groups import GroupForm, InvitationForm
from marketplace.groups.invitations import (
    invitation_accept,
    invitation_check,
    invitation_create,
    invitation_decline,
    invitation_revoke,
    invitation_url,
)
from marketplace.groups.selectors import (
    group_admin_count,
    group_for_member,
    group_members,
    group_pending_invitations,
    invitation_for_token,
    membership_of,
    user_groups,
)
from marketplace.groups.services import (
    group_create,
    group_update,
    membership_demote,
    membership_leave,
    membership_promote,
    membership_remove,
)
from marketplace.models import Invitation, Membership
from marketplace.rounds.selectors import group_round_rows
from marketplace.web.errors import http_status


def group_page(admin_only: bool = False, post_only: bool = False):
    """Resolve `slug` to the viewer's group and membership; 404 for outsiders (before anything else), 403 for members
    on admin pages, 405 for a GET to an action."""

    def decorator(view):
        @login_required
        @wraps(view)
        def wrapper(request, slug: str, *args, **kwargs):
            group = group_for_member(user=request.user, slug=slug)
            membership = membership_of(user=request.user, group=group)
            if admin_only and membership.role != Membership.Role.ADMIN:
                return render(request, "groups/forbidden.html", _context(group, membership, ""), status=403)
            if post_only and request.method != "POST":
                return HttpResponseNotAllowed(["POST"])
            request.group, request.membership = group, membership
            return view(request, group, membership, *args, **kwargs)

        return wrapper

    return decorator


def _context(group, membership, tab: str, **extra):
    return {"group": group, "membership": membership, "is_admin": membership.role == Membership.Role.ADMIN, "tab": tab, **extra}


@login_required
def group_list(request):
    return render(request, "groups/list.html", {"groups": user_groups(user=request.user)})


@login_required
def group_new(request):
    form = GroupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            group = group_create(user=request.user, **form.cleaned_data)
        except AppError as error:
            add_app_error(form, error)
        else:
            messages.success(request, f"Group “{group.name}” created. Invite people from the Members tab.")
            return redirect("group_detail", slug=group.slug)
    return render(request, "groups/new.html", {"form": form})


@group_page()
def group_detail(request, group, membership):
    members = group_members(group=group)
    rows = group_round_rows(group=group)[:5]
    return render(
        request, "groups/detail.html", _context(group, membership, "overview", members=members, round_rows=rows)
    )


def _members_context(request, group, membership, **extra):
    is_admin = membership.role == Membership.Role.ADMIN
    return _context(
        group,
        membership,
        "members",
        members=group_members(group=group),
        admin_count=group_admin_count(group=group),
        invitations=group_pending_invitations(group=group) if is_admin else [],
        invitation_form=extra.pop("invitation_form", None) or (InvitationForm() if is_admin else None),
        now_=timezone.now(),
        **extra,
    )


@group_page()
def group_members_view(request, group, membership):
    return render(request, "groups/members.html", _members_context(request, group, membership))


@group_page(admin_only=True)
def group_invitations(request, group, membership):
    if request.method != "POST":
        return redirect("group_members", slug=group.slug)
    form = InvitationForm(request.POST)
    if form.is_valid():
        try:
            invitation, plain = invitation_create(
                group=group, by=request.user, email=form.cleaned_data["email"], role=form.cleaned_data["role"]
            )
        except AppError as error:
            add_app_error(form, error)
        else:
            if invitation.email:
                messages.success(request, f"Invitation sent to {invitation.email}.")
                return redirect("group_members", slug=group.slug)
            # A link invitation is rendered, not redirected: the plain token never goes into the session.
            messages.success(request, "Invitation link created. Copy it now: it is shown only once.")
            response = render(
                request,
                "groups/members.html",
                _members_context(request, group, membership, new_link=invitation_url(plain), new_link_role=invitation.role),
            )
            response["Cache-Control"] = "no-store"
            return response
    return render(request, "groups/members.html", _members_context(request, group, membership, invitation_form=form))


@group_page(admin_only=True, post_only=True)
def invitation_revoke_view(request, group, membership, invitation_id: int):
    invitation = get_object_or_404(Invitation, pk=invitation_id, group=group)
    try:
        invitation_revoke(invitation=invitation, by=request.user)
    except AppError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"Invitation {('for ' + invitation.email) if invitation.email else 'link'} withdrawn.")
    return redirect("group_members", slug=group.slug)


def _membership_action(service, done: str):
    @group_page(admin_only=True, post_only=True)
    def view(request, group, membership, membership_id: int):
        target = get_object_or_404(Membership.objects.select_related("user"), pk=membership_id, group=group)
        try:
            service(membership=target, by=request.user)
        except AppError as error:
            messages.error(request, error.message)
        else:
            messages.success(request, done.format(email=target.user.email, group=group.name))
        if target.user_id == request.user.pk and not membership_of(user=request.user, group=group):
            return redirect("group_list")
        return redirect("group_members", slug=group.slug)

    return view


membership_promote_view = _membership_action(membership_promote, "{email} is now an admin.")
membership_demote_view = _membership_action(membership_demote, "{email} is now a member.")
membership_remove_view = _membership_action(membership_remove, "{email} was removed from {group}.")


@group_page()
def group_leave(request, group, membership):
    if request.method == "POST":
        try:
            membership_leave(group=group, user=request.user)
        except AppError as error:
            messages.error(request, error.message)
            return redirect("group_leave", slug=group.slug)
        messages.success(request, f"You left {group.name}.")
        return redirect("group_list")
    return render(
        request, "groups/leave.html", _context(group, membership, "leave", admin_count=group_admin_count(group=group))
    )


@group_page(admin_only=True)
def group_settings(request, group, membership):
    form = GroupForm(request.POST or None, initial={"name": group.name, "description": group.description})
    if request.method == "POST" and form.is_valid():
        try:
            group_update(group=group, by=request.user, **form.cleaned_data)
        except AppError as error:
            add_app_error(form, error)
        else:
            messages.success(request, "Settings saved.")
            return redirect("group_settings", slug=group.slug)
    return render(request, "groups/settings.html", _context(group, membership, "settings", form=form))


@group_page()
def group_rounds(request, group, membership):
    return render(request, "groups/rounds.html", _context(group, membership, "rounds", round_rows=group_round_rows(group=group)))


@group_page()
def group_preferences(request, group, membership):
    rows = [row for row in group_round_rows(group=group) if row["round"].status != "cancelled" or row["submission"]]
    return render(request, "groups/preferences.html", _context(group, membership, "preferences", round_rows=rows))


def invitation_respond(request, token: str):
    """GET shows the invitation (or why it cannot be used); POST with action=accept|decline answers it."""
    invitation = invitation_for_token(token=token)
    user = request.user if request.user.is_authenticated else None
    problem = None
    try:
        invitation_check(invitation=invitation, user=user)
    except AppError as error:
        problem = error
    if request.method == "POST":
        if user is None:
            return redirect(f"/accounts/login/?next=/invitations/{token}/")
        action = request.POST.get("action")
        try:
            if action == "accept":
                membership = invitation_accept(token=token, user=user)
                messages.success(request, f"Welcome to {membership.group.name}!")
                return redirect("group_detail", slug=membership.group.slug)
            if action == "decline":
                invitation_decline(token=token, user=user)
                messages.info(request, "Invitation declined.")
                return redirect("dashboard")
            problem = AppError("Choose accept or decline.")
        except AppError as error:
            problem = error
    status = http_status(problem) if problem else 200
    already_member = bool(user and invitation and membership_of(user=user, group=invitation.group))
    # The group's name is shown only while the token is usable, so an old or wrong link reveals nothing.
    context = {"invitation": None if problem else invitation, "problem": problem, "already_member": already_member}
    response = render(request, "groups/invitation.html", context, status=status)
    response["Cache-Control"] = "no-store"
    response["Referrer-Policy"] = "same-origin"
    return response
