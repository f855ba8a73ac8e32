"""The site's own pages: home, dashboard, accounts, groups and invitations."""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import path

from marketplace.forms.accounts import EmailLoginForm
from marketplace.views import accounts, groups, home, verification

urlpatterns = [
    path("", home.home, name="home"),
    path("dashboard/", home.dashboard, name="dashboard"),
    # Accounts
    path("accounts/signup/", accounts.signup, name="signup"),
    path("accounts/verify/resend/", verification.verification_resend_page, name="verification_resend"),
    path("accounts/verify/<str:token>/", accounts.verify_email, name="verify_email"),
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(authentication_form=EmailLoginForm, redirect_authenticated_user=True),
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path(
        "accounts/password/change/",
        auth_views.PasswordChangeView.as_view(template_name="registration/password_change.html"),
        name="password_change",
    ),
    path(
        "accounts/password/change/done/",
        auth_views.PasswordChangeDoneView.as_view(template_name="registration/password_change_done_page.html"),
        name="password_change_done",
    ),
    path(
        "accounts/password/reset/",
        auth_views.PasswordResetView.as_view(
            template_name="registration/password_reset.html",
            email_template_name="registration/password_reset_email.txt",
            subject_template_name="registration/password_reset_subject.txt",
        ),
        name="password_reset",
    ),
    path(
        "accounts/password/reset/done/",
        auth_views.PasswordResetDoneView.as_view(template_name="registration/password_reset_sent.html"),
        name="password_reset_done",
    ),
    path(
        "accounts/password/reset/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(template_name="registration/password_reset_confirm_page.html"),
        name="password_reset_confirm",
    ),
    path(
        "accounts/password/reset/complete/",
        auth_views.PasswordResetCompleteView.as_view(template_name="registration/password_reset_complete_page.html"),
        name="password_reset_complete",
    ),
    path("accounts/profile/", accounts.profile, name="profile"),
    path("accounts/tokens/", accounts.token_create, name="token_create"),
    path("accounts/tokens/<int:token_id>/revoke/", accounts.token_revoke, name="token_revoke"),
    # Groups
    path("groups/", groups.group_list, name="group_list"),
    path("groups/new/", groups.group_new, name="group_create"),
    path("groups/<slug:slug>/", groups.group_detail, name="group_detail"),
    path("groups/<slug:slug>/members/", groups.group_members_view, name="group_members"),
    path("groups/<slug:slug>/members/<int:membership_id>/promote/", groups.membership_promote_view, name="membership_promote"),
    path("groups/<slug:slug>/members/<int:membership_id>/demote/", groups.membership_demote_view, name="membership_demote"),
    path("groups/<slug:slug>/members/<int:membership_id>/remove/", groups.membership_remove_view, name="membership_remove"),
    path("groups/<slug:slug>/invitations/", groups.group_invitations, name="group_invitations"),
    path(
        "groups/<slug:slug>/invitations/<int:invitation_id>/revoke/",
        groups.invitation_revoke_view,
        name="invitation_revoke",
    ),
    path("groups/<slug:slug>/leave/", groups.group_leave, name="group_leave"),
    path("groups/<slug:slug>/settings/", groups.group_settings, name="group_settings"),
    path("groups/<slug:slug>/rounds/", groups.group_rounds, name="group_rounds"),
    path("groups/<slug:slug>/preferences/", groups.group_preferences, name="group_preferences"),
    # Invitations are answered outside the group: the invitee is not a member yet.
    path("invitations/<str:token>/", groups.invitation_respond, name="invitation_respond"),
]
