"""Sponsored answers' pages (mounted by marketplace.urls)."""

from __future__ import annotations

from django.urls import path

from marketplace.sponsored import views

urlpatterns = [
    path("groups/<slug:slug>/ads/", views.campaign_list, name="campaign_list"),
    path("groups/<slug:slug>/ads/new/", views.campaign_create, name="campaign_create"),
    path("groups/<slug:slug>/ads/<int:campaign_id>/", views.campaign_detail, name="campaign_detail"),
    path("groups/<slug:slug>/ads/<int:campaign_id>/edit/", views.campaign_edit, name="campaign_edit"),
    path("groups/<slug:slug>/ads/<int:campaign_id>/status/", views.campaign_status, name="campaign_status"),
    path("ads/click/<str:token>/", views.sponsored_click, name="sponsored_click"),
    path("staff/ads/", views.staff_deployments, name="staff_sponsored"),
]
