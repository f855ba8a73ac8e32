"""Rounds: the public pages, a group's preferences and bid in a round, and the staff pages."""

from __future__ import annotations

from django.urls import path

from marketplace.views import bids, economics, preferences, rounds, staff

urlpatterns = [
    path("rounds/", rounds.round_list, name="round_list"),
    path("rounds/<slug:slug>/", rounds.round_detail, name="round_detail"),
    path("rounds/<slug:slug>/groups/<slug:group_slug>/preferences/", preferences.preferences_edit, name="preferences_edit"),
    path("rounds/<slug:slug>/groups/<slug:group_slug>/candidates.csv", preferences.candidates_csv, name="candidates_csv"),
    path("rounds/<slug:slug>/groups/<slug:group_slug>/bid/", bids.bid_edit, name="bid_edit"),
    path("rounds/<slug:slug>/groups/<slug:group_slug>/bid/withdraw/", bids.bid_withdraw, name="bid_withdraw"),
    path("staff/rounds/", staff.staff_round_list, name="staff_round_list"),
    path("staff/rounds/new/", staff.staff_round_new, name="staff_round_new"),
    path("staff/rounds/<slug:slug>/", staff.staff_round_detail, name="staff_round_detail"),
    path("staff/rounds/<slug:slug>/edit/", staff.staff_round_edit, name="staff_round_edit"),
    path("staff/rounds/<slug:slug>/open/", staff.staff_round_action, {"action": "open"}, name="staff_round_open"),
    path("staff/rounds/<slug:slug>/close/", staff.staff_round_action, {"action": "close"}, name="staff_round_close"),
    path("staff/rounds/<slug:slug>/cancel/", staff.staff_round_action, {"action": "cancel"}, name="staff_round_cancel"),
    path("staff/rounds/<slug:slug>/resume/", staff.staff_round_action, {"action": "resume"}, name="staff_round_resume"),
    path("staff/rounds/<slug:slug>/lab/", staff.staff_round_lab, name="staff_round_lab"),
    # The economics tools (marketplace.deals): launch pricing, a round's contract, a group's revenue share.
    path("staff/pricing/", economics.staff_pricing, name="staff_pricing"),
    path("staff/rounds/<slug:slug>/contract/", economics.staff_round_contract, name="staff_round_contract"),
    path("rounds/<slug:slug>/groups/<slug:group_slug>/revenue-share/", economics.revenue_share, name="revenue_share"),
]
